//! Classic pcap: a 24-byte file header, then records of a 16-byte header
//! (seconds, sub-second, captured length, original length) and the captured
//! bytes. Walked in place over the mapped file.

use super::{Corruption, Frame, PcapHeader, Step, MAX_CAPLEN};
use crate::wire::LinkType;

/// Bytes of the file header.
pub(super) const FILE_HEADER_LEN: usize = 24;
/// Bytes of a record header.
const RECORD_HEADER_LEN: usize = 16;

#[inline(always)]
fn rd32(b: &[u8; 4], big_endian: bool) -> u32 {
    if big_endian {
        u32::from_be_bytes(*b)
    } else {
        u32::from_le_bytes(*b)
    }
}

/// Reads the file header; `data` holds at least [`FILE_HEADER_LEN`] bytes.
pub(super) fn read_file_header(data: &[u8], big_endian: bool, nanos: bool) -> PcapHeader {
    let field = |i: usize| {
        rd32(
            &[data[i], data[i + 1], data[i + 2], data[i + 3]],
            big_endian,
        )
    };
    let versions = field(4);
    // Major then minor, each 16 bits in the file's byte order.
    let (major, minor) = if big_endian {
        ((versions >> 16) as u16, versions as u16)
    } else {
        (versions as u16, (versions >> 16) as u16)
    };
    let snaplen = field(16);
    let linktype_field = field(20);
    PcapHeader {
        big_endian,
        nanos,
        version: (major, minor),
        snaplen,
        linktype: linktype_field & 0xffff,
        fcs_len: (linktype_field & 0x0400_0000 != 0).then(|| ((linktype_field >> 28) * 2) as u8),
    }
}

/// Iteration state: everything per-file, decided once.
#[derive(Debug)]
pub(super) struct PcapWalk {
    big_endian: bool,
    /// Nanoseconds per unit of the sub-second field: 1 or 1000.
    frac_scale: u64,
    link: Option<LinkType>,
    linktype: u32,
    max_caplen: u32,
}

impl PcapWalk {
    pub(super) fn new(h: &PcapHeader) -> PcapWalk {
        PcapWalk {
            big_endian: h.big_endian,
            frac_scale: if h.nanos { 1 } else { 1000 },
            link: LinkType::from_linktype(h.linktype),
            linktype: h.linktype,
            max_caplen: h.snaplen.max(MAX_CAPLEN),
        }
    }

    /// Reads the record at `*pos` and moves past it; on a cut or damaged
    /// record, `*pos` stays on it.
    #[inline]
    pub(super) fn step<'a>(&self, data: &'a [u8], pos: &mut usize) -> Step<'a> {
        let rest = &data[(*pos).min(data.len())..];
        let Some((hdr, body)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
            return if rest.is_empty() {
                Step::End
            } else {
                Step::Truncated
            };
        };
        let word = |i: usize| {
            rd32(
                &[hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]],
                self.big_endian,
            )
        };
        let (secs, frac, caplen, orig_len) = (word(0), word(4), word(8), word(12));
        if caplen > self.max_caplen {
            return Step::Corrupt(Corruption::CaplenTooLarge {
                caplen,
                max: self.max_caplen,
            });
        }
        let Some(frame) = body.get(..caplen as usize) else {
            return Step::Truncated;
        };
        *pos += RECORD_HEADER_LEN + caplen as usize;
        Step::Frame(Frame {
            // u32 seconds * 10^9 < 2^63; a sub-second field out of range
            // (seen in fuzzed files) just carries into the seconds.
            ts_nanos: u64::from(secs) * 1_000_000_000 + u64::from(frac) * self.frac_scale,
            link: self.link,
            linktype_raw: self.linktype,
            data: frame,
            orig_len,
        })
    }
}
