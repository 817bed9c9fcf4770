//! pcapng: a sequence of blocks (type, total length, body, total length
//! again), grouped in sections that each start with a Section Header Block
//! giving the section's byte order. Interface Description Blocks give each
//! interface its link type, snap length and time resolution; packets come in
//! Enhanced (EPB), Simple (SPB) or obsolete Packet (PB) blocks. Every other
//! block is skipped.

use super::{Corruption, Frame, Step, MAX_CAPLEN, PCAPNG_BYTE_ORDER, PCAPNG_SHB};
use crate::wire::LinkType;

const IDB: u32 = 0x0000_0001;
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;

/// IDB options we read.
const OPT_END: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// How to turn an interface's timestamp units into nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// Units are 10^-9 / n seconds coarser than a nanosecond: multiply.
    Mul(u64),
    /// Units finer than a nanosecond: divide.
    Div(u64),
    /// Units of 2^-k seconds: `ts * 10^9 >> k`.
    Pow2(u32),
    /// Units so fine (10^-29 s or finer) that every timestamp is 0 ns.
    Zero,
}

impl Scale {
    /// From the `if_tsresol` byte: 10^-v, or 2^-(v & 0x7f) with the high bit.
    fn from_tsresol(v: u8) -> Scale {
        if v & 0x80 != 0 {
            return Scale::Pow2(u32::from(v & 0x7f));
        }
        let exp = u32::from(v);
        if exp <= 9 {
            Scale::Mul(10u64.pow(9 - exp))
        } else {
            10u64.checked_pow(exp - 9).map_or(Scale::Zero, Scale::Div)
        }
    }

    #[inline]
    fn nanos(self, ts: u64) -> u64 {
        match self {
            Scale::Mul(m) => ts.saturating_mul(m),
            Scale::Div(d) => ts / d,
            Scale::Pow2(k) if k < 128 => {
                let n = (u128::from(ts) * 1_000_000_000) >> k;
                u64::try_from(n).unwrap_or(u64::MAX)
            }
            Scale::Pow2(_) | Scale::Zero => 0,
        }
    }
}

/// One interface of the current section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Option<LinkType>,
    linktype: u32,
    snaplen: u32,
    max_caplen: u32,
    scale: Scale,
    /// `if_tsoffset`, in seconds.
    offset_s: i64,
}

/// Iteration state.
#[derive(Debug)]
pub(super) struct NgWalk {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Time of the last packet with a timestamp, for SPBs (which have none).
    last_ts: u64,
}

/// The block at the cursor, checked for length.
struct Block<'a> {
    btype: u32,
    len: u32,
    /// Between the leading length and the trailing length.
    body: &'a [u8],
}

impl NgWalk {
    pub(super) fn new() -> NgWalk {
        NgWalk {
            big_endian: false,
            interfaces: Vec::new(),
            last_ts: 0,
        }
    }

    #[inline(always)]
    fn u32_at(&self, b: &[u8], i: usize) -> u32 {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    }

    #[inline(always)]
    fn u16_at(&self, b: &[u8], i: usize) -> u16 {
        let w = [b[i], b[i + 1]];
        if self.big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        }
    }

    /// Reads blocks from `*pos` until a packet, the end, or a problem; `*pos`
    /// ends past the packet's block, or on the block that could not be read.
    pub(super) fn step<'a>(&mut self, data: &'a [u8], pos: &mut usize) -> Step<'a> {
        loop {
            let block = match self.block(data, *pos) {
                Ok(Some(b)) => b,
                Ok(None) => return Step::End,
                Err(step) => return step,
            };
            let too_short = Step::Corrupt(Corruption::BlockTooShort {
                block_type: block.btype,
                len: block.len,
            });
            let body = block.body;
            let packet = match block.btype {
                PCAPNG_SHB => {
                    // Byte order was settled in `block`; then major, minor.
                    if body.len() < 8 {
                        return too_short;
                    }
                    let (major, minor) = (self.u16_at(body, 4), self.u16_at(body, 6));
                    if major != 1 {
                        return Step::Corrupt(Corruption::SectionVersion { major, minor });
                    }
                    self.interfaces.clear();
                    None
                }
                IDB => {
                    if body.len() < 8 {
                        return too_short;
                    }
                    self.add_interface(body);
                    None
                }
                EPB => {
                    if body.len() < 20 {
                        return too_short;
                    }
                    let id = self.u32_at(body, 0);
                    let ts =
                        u64::from(self.u32_at(body, 4)) << 32 | u64::from(self.u32_at(body, 8));
                    let (caplen, orig_len) = (self.u32_at(body, 12), self.u32_at(body, 16));
                    Some((id, Some(ts), caplen, orig_len, 20))
                }
                SPB => {
                    if body.len() < 4 {
                        return too_short;
                    }
                    let orig_len = self.u32_at(body, 0);
                    // No captured length: the smaller of the packet, the
                    // interface's snap length, and what the block holds.
                    let snaplen = match self.interfaces.first() {
                        Some(i) if i.snaplen != 0 => i.snaplen,
                        _ => u32::MAX,
                    };
                    let room = u32::try_from(body.len() - 4).unwrap_or(u32::MAX);
                    Some((0, None, orig_len.min(snaplen).min(room), orig_len, 4))
                }
                PB => {
                    if body.len() < 20 {
                        return too_short;
                    }
                    let id = u32::from(self.u16_at(body, 0));
                    let ts =
                        u64::from(self.u32_at(body, 4)) << 32 | u64::from(self.u32_at(body, 8));
                    let (caplen, orig_len) = (self.u32_at(body, 12), self.u32_at(body, 16));
                    Some((id, Some(ts), caplen, orig_len, 20))
                }
                _ => None,
            };
            let Some((id, ts, caplen, orig_len, fixed)) = packet else {
                *pos += block.len as usize;
                continue;
            };
            let Some(iface) = self.interfaces.get(id as usize).copied() else {
                return Step::Corrupt(Corruption::UnknownInterface(id));
            };
            if caplen > iface.max_caplen {
                return Step::Corrupt(Corruption::CaplenTooLarge {
                    caplen,
                    max: iface.max_caplen,
                });
            }
            let Some(frame) = body.get(fixed..fixed + caplen as usize) else {
                return too_short;
            };
            let ts_nanos = match ts {
                Some(units) => {
                    let t = iface
                        .scale
                        .nanos(units)
                        .saturating_add_signed(iface.offset_s.saturating_mul(1_000_000_000));
                    self.last_ts = t;
                    t
                }
                None => self.last_ts,
            };
            *pos += block.len as usize;
            return Step::Frame(Frame {
                ts_nanos,
                link: iface.link,
                linktype_raw: iface.linktype,
                data: frame,
                orig_len,
            });
        }
    }

    /// The block at `pos`: `Ok(None)` at the end of the file, `Err` with the
    /// step to return when it is cut or its lengths are wrong. An SHB sets
    /// the byte order before its length is read.
    fn block<'a>(&mut self, data: &'a [u8], pos: usize) -> Result<Option<Block<'a>>, Step<'a>> {
        let rest = data.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < 12 {
            return Err(Step::Truncated);
        }
        // Block type 0x0a0d0d0a reads the same in both byte orders.
        let raw_type = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if raw_type == PCAPNG_SHB {
            let bom = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
            self.big_endian = match bom {
                PCAPNG_BYTE_ORDER => true,
                m if m.swap_bytes() == PCAPNG_BYTE_ORDER => false,
                m => return Err(Step::Corrupt(Corruption::BadByteOrderMagic(m))),
            };
        }
        let btype = self.u32_at(rest, 0);
        let len = self.u32_at(rest, 4);
        if len < 12 || len & 3 != 0 {
            return Err(Step::Corrupt(Corruption::BadBlockLength(len)));
        }
        let Some(whole) = rest.get(..len as usize) else {
            return Err(Step::Truncated);
        };
        let trailing = self.u32_at(whole, whole.len() - 4);
        if trailing != len {
            return Err(Step::Corrupt(Corruption::BlockLengthMismatch {
                leading: len,
                trailing,
            }));
        }
        Ok(Some(Block {
            btype,
            len,
            body: &whole[8..whole.len() - 4],
        }))
    }

    /// Reads an IDB body (at least 8 bytes): link type, snap length, options.
    fn add_interface(&mut self, body: &[u8]) {
        let linktype = u32::from(self.u16_at(body, 0));
        let snaplen = self.u32_at(body, 4);
        let mut scale = Scale::Mul(1000); // 10^-6 s by default
        let mut offset_s = 0i64;
        // Options are metadata: a damaged option list loses options, not
        // packets, so it ends the list rather than the file.
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let (code, len) = (self.u16_at(opts, 0), usize::from(self.u16_at(opts, 2)));
            if code == OPT_END {
                break;
            }
            let Some(value) = opts.get(4..4 + len) else {
                break;
            };
            match (code, value) {
                (IF_TSRESOL, &[v]) => scale = Scale::from_tsresol(v),
                (IF_TSOFFSET, v) if v.len() == 8 => {
                    let w: [u8; 8] = v.try_into().unwrap_or_default();
                    offset_s = if self.big_endian {
                        i64::from_be_bytes(w)
                    } else {
                        i64::from_le_bytes(w)
                    };
                }
                _ => {}
            }
            let padded = (4 + len + 3) & !3;
            opts = opts.get(padded..).unwrap_or_default();
        }
        self.interfaces.push(Interface {
            link: LinkType::from_linktype(linktype),
            linktype,
            snaplen,
            max_caplen: snaplen.max(MAX_CAPLEN),
            scale,
            offset_s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Scale;

    #[test]
    fn tsresol_scales() {
        assert_eq!(Scale::from_tsresol(6).nanos(1_500_000), 1_500_000_000);
        assert_eq!(Scale::from_tsresol(9).nanos(42), 42);
        assert_eq!(Scale::from_tsresol(0).nanos(3), 3_000_000_000);
        assert_eq!(Scale::from_tsresol(12).nanos(5_000_000), 5_000);
        // 2^-10 s units: 1024 units are one second.
        assert_eq!(Scale::from_tsresol(0x80 | 10).nanos(1024), 1_000_000_000);
        assert_eq!(Scale::from_tsresol(0x80 | 30).nanos(1 << 30), 1_000_000_000);
        assert_eq!(Scale::from_tsresol(0x80).nanos(2), 2_000_000_000);
        assert_eq!(Scale::from_tsresol(40).nanos(u64::MAX), 0);
        assert_eq!(Scale::from_tsresol(0x80 | 127).nanos(u64::MAX), 0);
    }
}
