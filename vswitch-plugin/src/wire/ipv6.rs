//! IPv6 headers, the extension-header walk and the Jumbo Payload option.
//!
//! RECORDS.md:
//! - `bytes` is 40 + Payload Length; with Payload Length 0, 40 + the Jumbo
//!   Payload option's length if there is one, else 40.
//! - Malformed: fewer than 40 bytes captured; 40 + Payload Length (or the
//!   jumbo length) beyond what the wire carried; more than 8 extension
//!   headers; a header running past the captured bytes or past the packet's
//!   own length.
//! - Walked: Hop-by-Hop (0), Routing (43), Fragment (44), Destination
//!   Options (60), AH (51, length (len + 2) * 4); the others are (len + 1) * 8
//!   bytes. Any other Next Header is the upper-layer protocol.
//! - A Fragment header with offset > 0: a non-first fragment, `protocol` is
//!   the Fragment header's Next Header, ports and flags 0.

use super::{be16, be32, byte, get, l4, Field, Malformed, PacketMeta};

mod field {
    use super::Field;
    /// Version, traffic class, flow label.
    #[cfg(test)]
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// The fixed IPv6 header.
pub(super) const HEADER_LEN: usize = 40;
/// At most this many extension headers; one more is malformed.
pub(super) const MAX_EXT_HEADERS: usize = 8;

/// Next Header values.
pub(super) mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AH: u8 = 51;
    pub const DST_OPTS: u8 = 60;
}

/// A view of an IPv6 header.
#[derive(Debug)]
pub(super) struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks the 40-byte header is captured.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::Ipv6Header);
        }
        Ok(Ipv6Packet { buffer })
    }

    #[cfg(test)]
    pub fn version(&self) -> u8 {
        (super::be32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 28) as u8
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        byte(self.buffer.as_ref(), field::NXT_HDR)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        get(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        get(self.buffer.as_ref(), field::DST_ADDR)
    }
}

mod ext_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
}

/// The two bytes every walked extension header starts with.
pub(super) const EXT_MIN_LEN: usize = 2;

/// A view of the common start of an extension header (Next Header, Hdr Ext
/// Len). The header's full length depends on its type: [`ext_len`].
#[derive(Debug)]
pub(super) struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Checks the first two bytes are there.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < EXT_MIN_LEN {
            return Err(Malformed::Ipv6ExtChain);
        }
        Ok(ExtHeader { buffer })
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        byte(self.buffer.as_ref(), ext_field::NXT_HDR)
    }

    #[inline]
    pub fn header_len_field(&self) -> u8 {
        byte(self.buffer.as_ref(), ext_field::LENGTH)
    }
}

/// The length in bytes of an extension header of type `kind` whose Hdr Ext
/// Len field is `len`. The Fragment header is always 8 bytes: its second
/// byte is reserved, not a length.
#[inline(always)]
fn ext_len(kind: u8, len: u8) -> usize {
    match kind {
        next_header::AH => (usize::from(len) + 2) * 4,
        next_header::FRAGMENT => frag_field::HEADER_LEN,
        _ => (usize::from(len) + 1) * 8,
    }
}

mod frag_field {
    use super::Field;
    pub const NXT_HDR: usize = 0;
    /// Offset (13 bits, 8-byte units), 2 reserved bits, M flag.
    pub const OFF_M: Field = 2..4;
    pub const HEADER_LEN: usize = 8;
}

/// A view of an IPv6 Fragment header.
#[derive(Debug)]
pub(super) struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Checks the 8 bytes are there.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < frag_field::HEADER_LEN {
            return Err(Malformed::Ipv6ExtChain);
        }
        Ok(FragmentHeader { buffer })
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        byte(self.buffer.as_ref(), frag_field::NXT_HDR)
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), frag_field::OFF_M) >> 3
    }

    #[cfg(test)]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), frag_field::OFF_M) & 1 != 0
    }
}

/// Hop-by-Hop option types.
mod option {
    pub const PAD1: u8 = 0x00;
    pub const JUMBO: u8 = 0xc2;
    /// The Jumbo Payload option's data length.
    pub const JUMBO_LEN: u8 = 4;
}

/// The Jumbo Payload length of the Hop-by-Hop header at the start of `hbh`
/// (the bytes after the IPv6 header), if it is captured and carries a
/// well-formed Jumbo Payload option. Off the hot path: only for Payload
/// Length 0. The scan is bounded by the header's length (at most 2 KiB).
#[cold]
fn jumbo_len(hbh: &[u8]) -> Option<u32> {
    let hdr = ExtHeader::new_checked(hbh).ok()?;
    let len = ext_len(next_header::HOP_BY_HOP, hdr.header_len_field());
    let options = hbh.get(EXT_MIN_LEN..len)?;
    let mut at = 0usize;
    while let Some(&kind) = options.get(at) {
        if kind == option::PAD1 {
            at += 1;
            continue;
        }
        let opt_len = *options.get(at + 1)?;
        if kind == option::JUMBO && opt_len == option::JUMBO_LEN {
            let data = options.get(at + 2..at + 6)?;
            return Some(be32(data, 0..4));
        }
        at += 2 + usize::from(opt_len);
    }
    None
}

/// Parses the IPv6 packet `ip` (captured bytes from the IP header on; the
/// version nibble was checked by the caller). `wire_ip_len` is what the wire
/// carried from the IP header on, at least `ip.len()`.
#[inline]
pub(super) fn parse(ip: &[u8], wire_ip_len: u32, m: &mut PacketMeta) -> Result<(), Malformed> {
    let pkt = Ipv6Packet::new_checked(ip)?;
    let mut next = pkt.next_header();
    let payload_len = pkt.payload_len();
    let ip_len: u32 = if payload_len != 0 {
        40 + u32::from(payload_len)
    } else if next == next_header::HOP_BY_HOP {
        match jumbo_len(ip.get(HEADER_LEN..).unwrap_or_default()) {
            Some(j) => 40u32.checked_add(j).ok_or(Malformed::Ipv6Length)?,
            None => 40,
        }
    } else {
        40
    };
    if ip_len > wire_ip_len {
        return Err(Malformed::Ipv6Length);
    }

    m.v6 = true;
    m.src = pkt.src_addr();
    m.dst = pkt.dst_addr();
    m.bytes = ip_len;

    // Everything after the fixed header lies within both the captured bytes
    // and the packet's own length.
    let end = ip.len().min(usize::try_from(ip_len).unwrap_or(usize::MAX));
    let ip = ip.get(..end).unwrap_or_default();
    let mut offset = HEADER_LEN;
    let mut count = 0usize;
    while matches!(
        next,
        next_header::HOP_BY_HOP
            | next_header::ROUTING
            | next_header::FRAGMENT
            | next_header::AH
            | next_header::DST_OPTS
    ) {
        count += 1;
        if count > MAX_EXT_HEADERS {
            return Err(Malformed::Ipv6ExtChain);
        }
        let rest = ip.get(offset..).unwrap_or_default();
        let hdr = ExtHeader::new_checked(rest)?;
        let len = ext_len(next, hdr.header_len_field());
        if rest.len() < len {
            return Err(Malformed::Ipv6ExtChain);
        }
        if next == next_header::FRAGMENT {
            let frag = FragmentHeader::new_checked(rest)?;
            if frag.frag_offset() != 0 {
                m.protocol = frag.next_header();
                m.fragment = true;
                return Ok(());
            }
        }
        next = hdr.next_header();
        // At most 9 headers of at most 2 KiB each: no overflow.
        offset += len;
    }
    m.protocol = next;
    if let Some(l4) = ip.get(offset..) {
        l4::fill(next, l4, m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{LinkType, Malformed, ParseError};
    use super::*;

    /// IPv6 TCP SYN-ACK 2001:db8::80 port 443 -> 2001:db8::1 port 51000.
    const GOLDEN: [u8; 60] = [
        0x60, 0x0a, 0xbc, 0xde, // version 6, traffic class 0, flow label 0xabcde
        0x00, 0x14, // Payload Length 20
        0x06, // Next Header TCP
        0x40, // hop limit
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, // source
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // destination
        0x01, 0xbb, // TCP source port 443
        0xc7, 0x38, // TCP destination port 51000
        0, 0, 0, 9, // sequence
        0, 0, 0, 2,    // acknowledgement
        0x50, // data offset 5
        0x12, // flags SYN|ACK
        0xff, 0xff, // window
        0, 0, 0, 0, // checksum, urgent pointer
    ];

    const SRC: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
    ];

    #[test]
    fn view_fields() {
        let p = Ipv6Packet::new_checked(&GOLDEN[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr()[15], 1);
        let f = FragmentHeader::new_checked(&[17u8, 0, 0x00, 0xb9, 0, 0, 0, 1][..]).unwrap();
        assert_eq!(f.next_header(), 17);
        assert_eq!(f.frag_offset(), 23); // 0xb9 >> 3
        assert!(f.more_frags());
        assert!(FragmentHeader::new_checked(&[0u8; 7][..]).is_err());
        assert!(ExtHeader::new_checked(&[0u8; 1][..]).is_err());
    }

    #[test]
    fn golden() {
        let m = run(LinkType::RawIp, &GOLDEN).unwrap();
        assert!(m.v6);
        assert_eq!(m.src, SRC);
        assert_eq!(
            (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
            (6, 443, 51000, 0x12)
        );
        assert_eq!(m.bytes, 60);
        assert!(!m.fragment);
    }

    #[test]
    fn too_short() {
        for n in 1..HEADER_LEN {
            assert_eq!(
                run(LinkType::RawIp, &GOLDEN[..n]),
                mal(Malformed::Ipv6Header),
                "{n}"
            );
        }
        // Header only: the TCP header is not present, still logged.
        let m = run_wire(LinkType::RawIp, &GOLDEN[..40], 60).unwrap();
        assert_eq!((m.protocol, m.src_port, m.bytes), (6, 0, 60));
    }

    /// Payload Length against the wire.
    #[test]
    fn length_rules_table() {
        let t = tcp(1, 2, 0x10);
        for (name, frame, wire, want) in [
            ("exact", ipv6(6, &t, None), 60u32, Ok(60u32)),
            ("snap cut", ipv6(6, &t, Some(1460)), 1500, Ok(1500)),
            (
                "beyond wire",
                ipv6(6, &t, Some(21)),
                60,
                Err(Malformed::Ipv6Length),
            ),
            (
                "beyond wire, big",
                ipv6(6, &t, Some(0xffff)),
                1500,
                Err(Malformed::Ipv6Length),
            ),
            ("max", ipv6(6, &t, Some(0xffff)), 65_575, Ok(65_575)),
            // Payload Length 0 without a Hop-by-Hop header: 40.
            ("zero", ipv6(6, &t, Some(0)), 60, Ok(40)),
            ("zero, no next", ipv6(59, &[], Some(0)), 40, Ok(40)),
        ] {
            let got = run_wire(LinkType::RawIp, &frame, wire).map(|m| m.bytes);
            assert_eq!(got, want.map_err(ParseError::Malformed), "{name}");
        }
        // Payload Length 0: the TCP header lies past the 40-byte packet.
        let m = run(LinkType::RawIp, &ipv6(6, &t, Some(0))).unwrap();
        assert_eq!((m.src_port, m.dst_port), (0, 0));
    }

    /// An extension header of `kind` with `len` in its length field, padded
    /// to its real size.
    fn ext(kind: u8, next: u8, len: u8) -> Vec<u8> {
        let n = ext_len(kind, len);
        let mut v = vec![next, len];
        v.resize(n, 1); // PadN-ish filler
        if kind == next_header::FRAGMENT {
            v[1] = 0;
            v[2] = 0;
            v[3] = 0;
        }
        v
    }

    /// Every walked type, alone, in front of UDP, and the lengths they take.
    #[test]
    fn ext_headers_table() {
        for (kind, len, size) in [
            (next_header::HOP_BY_HOP, 0u8, 8usize),
            (next_header::HOP_BY_HOP, 3, 32),
            (next_header::ROUTING, 0, 8),
            (next_header::ROUTING, 2, 24),
            (next_header::DST_OPTS, 1, 16),
            (next_header::DST_OPTS, 255, 2048),
            (next_header::AH, 1, 12), // (1 + 2) * 4
            (next_header::AH, 4, 24), // (4 + 2) * 4, the usual 96-bit ICV
            (next_header::AH, 0, 8),  // (0 + 2) * 4
            (next_header::FRAGMENT, 0, 8),
        ] {
            let e = ext(kind, 17, len);
            assert_eq!(e.len(), size, "{kind} {len}");
            let f = ipv6(kind, &cat(&[&e, &udp(7, 9)]), None);
            let m = run(LinkType::RawIp, &f).unwrap();
            assert_eq!(
                (m.protocol, m.src_port, m.dst_port),
                (17, 7, 9),
                "{kind} {len}"
            );
            assert_eq!(m.bytes as usize, 40 + size + 8);
            assert!(!m.fragment);
            // Cut inside the extension header (captured and wire): malformed.
            let cut = 40 + size - 1;
            let wire = u32::try_from(f.len()).unwrap();
            assert_eq!(
                run_wire(LinkType::RawIp, &f[..cut], wire),
                mal(Malformed::Ipv6ExtChain),
                "{kind} {len} past captured"
            );
            // Packet length ends inside it, though more bytes were captured.
            let pl = u16::try_from(size - 1).unwrap();
            let mut g = f.clone();
            g[4..6].copy_from_slice(&pl.to_be_bytes());
            assert_eq!(
                run(LinkType::RawIp, &g),
                mal(Malformed::Ipv6ExtChain),
                "{kind} {len} past packet"
            );
            // The full extension header but only part of UDP: not present.
            let g = f[..40 + size + 7].to_vec();
            let m = run_wire(LinkType::RawIp, &g, u32::try_from(f.len()).unwrap()).unwrap();
            assert_eq!((m.protocol, m.src_port, m.dst_port), (17, 0, 0));
        }
    }

    /// Up to 8 extension headers are walked; the 9th is malformed.
    #[test]
    fn ext_chain_limit() {
        for n in 1..=10usize {
            let kinds = [
                next_header::HOP_BY_HOP,
                next_header::DST_OPTS,
                next_header::ROUTING,
                next_header::AH,
                next_header::FRAGMENT,
                next_header::DST_OPTS,
                next_header::ROUTING,
                next_header::DST_OPTS,
                next_header::DST_OPTS,
                next_header::DST_OPTS,
            ];
            let mut payload = Vec::new();
            for i in 0..n {
                let next = if i + 1 < n { kinds[i + 1] } else { 6 };
                payload.extend_from_slice(&ext(kinds[i], next, 0));
            }
            payload.extend_from_slice(&tcp(22, 2222, 0x18));
            let f = ipv6(kinds[0], &payload, None);
            let got = run(LinkType::RawIp, &f);
            if n <= MAX_EXT_HEADERS {
                let m = got.unwrap();
                assert_eq!(
                    (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
                    (6, 22, 2222, 0x18)
                );
            } else {
                assert_eq!(got, mal(Malformed::Ipv6ExtChain), "{n} headers");
            }
        }
    }

    /// Fragment header: offset > 0 is a non-first fragment, protocol from the
    /// Fragment header, no ports; offset 0 (first fragment) is read through.
    #[test]
    fn fragment_table() {
        for (off_m, non_first) in [
            (0x0000u16, false), // atomic fragment
            (0x0001, false),    // first fragment, M set
            (0x0008, true),     // offset 1
            (0x0009, true),     // offset 1, M set
            (0xfff8, true),     // largest offset
        ] {
            let mut fh = vec![17u8, 0];
            fh.extend_from_slice(&off_m.to_be_bytes());
            fh.extend_from_slice(&[0, 0, 0, 0x2a]); // identification
            let f = ipv6(next_header::FRAGMENT, &cat(&[&fh, &udp(500, 4500)]), None);
            let m = run(LinkType::RawIp, &f).unwrap();
            assert_eq!(m.fragment, non_first, "{off_m:#x}");
            assert_eq!(m.protocol, 17);
            let want = if non_first { (0, 0) } else { (500, 4500) };
            assert_eq!((m.src_port, m.dst_port), want);
            assert_eq!(m.bytes, 56);
        }
        // Non-first fragment behind a Destination Options header; the Next
        // Header of the fragment is itself an extension header (Routing): it
        // is the protocol, and the chain is not walked further.
        let dst = ext(next_header::DST_OPTS, next_header::FRAGMENT, 0);
        let fh = [next_header::ROUTING, 0, 0x01, 0x00, 0, 0, 0, 1];
        let f = ipv6(next_header::DST_OPTS, &cat(&[&dst, &fh, &[0xff; 3]]), None);
        let m = run(LinkType::RawIp, &f).unwrap();
        assert_eq!((m.protocol, m.fragment, m.src_port), (43, true, 0));
        // A Fragment header cut short.
        let f = ipv6(next_header::FRAGMENT, &fh[..7], None);
        assert_eq!(run(LinkType::RawIp, &f), mal(Malformed::Ipv6ExtChain));
        // Reserved byte set: still 8 bytes long.
        let f = ipv6(
            next_header::FRAGMENT,
            &cat(&[&[6, 0xff, 0, 0, 0, 0, 0, 1], &tcp(1, 2, 4)]),
            None,
        );
        let m = run(LinkType::RawIp, &f).unwrap();
        assert_eq!((m.protocol, m.src_port, m.tcp_flags), (6, 1, 4));
    }

    /// Hop-by-Hop with a Jumbo Payload option: 8 bytes.
    fn hbh_jumbo(next: u8, jumbo: u32) -> Vec<u8> {
        let mut v = vec![next, 0, option::JUMBO, option::JUMBO_LEN];
        v.extend_from_slice(&jumbo.to_be_bytes());
        v
    }

    /// Payload Length 0: jumbo length if a Jumbo Payload option is there.
    #[test]
    fn jumbo_table() {
        let t = tcp(5001, 40000, 0x10);
        // A 100,000-byte jumbogram, captured to 68 bytes.
        let f = ipv6(0, &cat(&[&hbh_jumbo(6, 100_000), &t]), Some(0));
        let m = run_wire(LinkType::RawIp, &f, 100_040).unwrap();
        assert_eq!(m.bytes, 100_040);
        assert_eq!(
            (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
            (6, 5001, 40000, 0x10)
        );
        // Beyond the wire.
        assert_eq!(
            run_wire(LinkType::RawIp, &f, 100_039),
            mal(Malformed::Ipv6Length)
        );
        // Largest jumbo: 40 + u32::MAX overflows u32, beyond any wire.
        let f = ipv6(0, &cat(&[&hbh_jumbo(6, u32::MAX), &t]), Some(0));
        assert_eq!(
            run_wire(LinkType::RawIp, &f, u32::MAX),
            mal(Malformed::Ipv6Length)
        );
        let f = ipv6(0, &cat(&[&hbh_jumbo(6, u32::MAX - 40), &t]), Some(0));
        assert_eq!(
            run_wire(LinkType::RawIp, &f, u32::MAX).unwrap().bytes,
            u32::MAX
        );
        // Pad1 and PadN before the option, in a 16-byte Hop-by-Hop header.
        let mut h = vec![17, 1, 0x00, 0x01, 0x01, 0x00, option::JUMBO, 4];
        h.extend_from_slice(&70_000u32.to_be_bytes());
        h.extend_from_slice(&[0x01, 0x02, 0, 0]); // PadN 2
        let f = ipv6(0, &cat(&[&h, &udp(1, 2)]), Some(0));
        let m = run_wire(LinkType::RawIp, &f, 70_040).unwrap();
        assert_eq!((m.bytes, m.src_port), (70_040, 1));
        // Payload Length non-zero: the option is ignored.
        let f = ipv6(0, &cat(&[&hbh_jumbo(6, 100_000), &t]), None);
        assert_eq!(run_wire(LinkType::RawIp, &f, 100_040).unwrap().bytes, 68);
        // Jumbo option with a wrong length is no jumbo: packet is 40 bytes,
        // and the Hop-by-Hop header lies past it.
        let mut h = hbh_jumbo(6, 100_000);
        h[3] = 3;
        let f = ipv6(0, &cat(&[&h, &t]), Some(0));
        assert_eq!(
            run_wire(LinkType::RawIp, &f, 100_040),
            mal(Malformed::Ipv6ExtChain)
        );
        // Payload Length 0, Hop-by-Hop without jumbo: likewise.
        let f = ipv6(0, &cat(&[&ext(0, 6, 0), &t]), Some(0));
        assert_eq!(run(LinkType::RawIp, &f), mal(Malformed::Ipv6ExtChain));
        // Jumbo in a later header (Destination Options) does not count.
        let mut h = hbh_jumbo(6, 100_000);
        h[0] = 6;
        let f = ipv6(next_header::DST_OPTS, &cat(&[&h, &t]), Some(0));
        assert_eq!(
            run_wire(LinkType::RawIp, &f, 100_040),
            mal(Malformed::Ipv6ExtChain)
        );
        // Jumbo Hop-by-Hop cut by the snap length: no jumbo can be read;
        // the header runs past the captured bytes.
        let f = ipv6(0, &hbh_jumbo(6, 100_000)[..6], Some(0));
        assert_eq!(
            run_wire(LinkType::RawIp, &f, 100_040),
            mal(Malformed::Ipv6ExtChain)
        );
        // Jumbo smaller than the Hop-by-Hop header itself.
        let f = ipv6(0, &cat(&[&hbh_jumbo(6, 4), &t]), Some(0));
        assert_eq!(run(LinkType::RawIp, &f), mal(Malformed::Ipv6ExtChain));
    }

    #[test]
    fn jumbo_scan_never_panics_on_odd_options() {
        for opts in [
            vec![0u8, 0, 0, 0, 0, 0],           // all Pad1
            vec![1, 4, 0, 0, 0, 0],             // PadN 4
            vec![1, 200, 0, 0, 0, 0],           // PadN overrunning the header
            vec![1, 0, option::JUMBO, 4, 1, 2], // jumbo data cut by the header end
            vec![0, 0, 0, 0, 0, option::JUMBO],
        ] {
            let mut h = vec![6u8, 0];
            h.extend_from_slice(&opts);
            h.resize(8, 0);
            assert_eq!(jumbo_len(&h), None, "{opts:?}");
        }
        assert_eq!(jumbo_len(&[]), None);
        assert_eq!(jumbo_len(&[6]), None);
        assert_eq!(jumbo_len(&[6, 0, 0xc2, 4, 0, 1, 0, 0]), Some(0x0001_0000));
    }

    /// ESP and No Next Header end the walk: they are the protocol.
    #[test]
    fn upper_layer_table() {
        for p in [50u8, 59, 41, 47, 4, 135, 139, 140, 253] {
            let f = ipv6(p, &[0u8; 32], None);
            let m = run(LinkType::RawIp, &f).unwrap();
            assert_eq!(
                (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
                (p, 0, 0, 0)
            );
        }
    }
}
