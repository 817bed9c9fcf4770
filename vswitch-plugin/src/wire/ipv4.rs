//! IPv4 headers and the RECORDS.md rules on them.
//!
//! - `bytes` is Total Length, or, when it is 0 (TSO, BIG TCP), what the wire
//!   carried from the IP header on.
//! - Malformed: fewer than 20 bytes captured, IHL below 5, a non-zero Total
//!   Length below the header or above what the wire carried.
//! - A non-first fragment (offset > 0) has no L4 header: ports and flags 0.
//! - The L4 header starts after IHL * 4 bytes and is read only within both
//!   the captured bytes and Total Length (Ethernet padding is not L4).

use super::{be16, byte, get, l4, Field, Malformed, PacketMeta};

mod field {
    use super::Field;
    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    pub const LENGTH: Field = 2..4;
    /// Flags (3 bits) and fragment offset (13 bits, in 8-byte units).
    pub const FLG_OFF: Field = 6..8;
    pub const PROTOCOL: usize = 9;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// The fixed IPv4 header.
pub(super) const HEADER_LEN: usize = 20;

/// A view of an IPv4 header.
#[derive(Debug)]
pub(super) struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks the fixed 20-byte header is captured. Options, IHL and Total
    /// Length are checked by [`parse`], which knows the wire length; no
    /// accessor reads past byte 20.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::Ipv4Header);
        }
        Ok(Ipv4Packet { buffer })
    }

    #[cfg(test)]
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// IHL * 4: the header length in bytes, options included (0..=60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The Total Length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff
    }

    /// The More Fragments flag.
    #[cfg(test)]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PROTOCOL)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        get(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        get(self.buffer.as_ref(), field::DST_ADDR)
    }
}

/// IPv4 address in the first four bytes of a 16-byte address.
#[inline(always)]
fn widen([a, b, c, d]: [u8; 4]) -> [u8; 16] {
    [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// Parses the IPv4 packet `ip` (captured bytes from the IP header on; the
/// version nibble was checked by the caller). `wire_ip_len` is what the wire
/// carried from the IP header on, at least `ip.len()`.
#[inline]
pub(super) fn parse(ip: &[u8], wire_ip_len: u32, m: &mut PacketMeta) -> Result<(), Malformed> {
    let pkt = Ipv4Packet::new_checked(ip)?;
    let header_len = pkt.header_len();
    if header_len < HEADER_LEN {
        return Err(Malformed::Ipv4Header);
    }
    // `header_len` is at most 60.
    let header_len32 = header_len as u32;
    let total = u32::from(pkt.total_len());
    let ip_len = if total == 0 {
        // TSO / BIG TCP: the packet is what the wire carried. Options
        // beyond that cannot be: "options past the data".
        if header_len32 > wire_ip_len {
            return Err(Malformed::Ipv4Header);
        }
        wire_ip_len
    } else {
        if total < header_len32 || total > wire_ip_len {
            return Err(Malformed::Ipv4Length);
        }
        total
    };

    m.v6 = false;
    m.src = widen(pkt.src_addr());
    m.dst = widen(pkt.dst_addr());
    m.protocol = pkt.protocol();
    m.bytes = ip_len;
    if pkt.frag_offset() != 0 {
        m.fragment = true;
        return Ok(());
    }
    // The L4 header lies within both the captured bytes and the packet.
    // Snap-length choice: options cut by the snap length are not malformed
    // (the addresses, in the fixed 20 bytes, were read); `get` then yields
    // nothing and the L4 header counts as not present.
    let end = ip.len().min(usize::try_from(ip_len).unwrap_or(usize::MAX));
    if let Some(l4) = ip.get(header_len..end) {
        l4::fill(m.protocol, l4, m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{LinkType, Malformed};
    use super::*;

    /// IPv4 UDP DNS query, 10.1.2.3:33000 -> 8.8.8.8:53, with one 4-byte
    /// option (router alert) and 4 bytes of payload.
    const GOLDEN: [u8; 36] = [
        0x46, // version 4, IHL 6 (24 bytes)
        0x00, // DSCP/ECN
        0x00, 0x24, // Total Length 36
        0xab, 0xcd, // identification
        0x00, 0x00, // flags 0, offset 0
        0x40, // TTL
        0x11, // protocol UDP
        0xbe, 0xef, // checksum (not verified)
        10, 1, 2, 3, // source
        8, 8, 8, 8, // destination
        0x94, 0x04, 0x00, 0x00, // option: router alert
        0x80, 0xe8, // UDP source port 33000
        0x00, 0x35, // UDP destination port 53
        0x00, 0x0c, // UDP length 12
        0x00, 0x00, // UDP checksum
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    #[test]
    fn view_fields() {
        let p = Ipv4Packet::new_checked(&GOLDEN[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 36);
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.more_frags());
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), [10, 1, 2, 3]);
        assert_eq!(p.dst_addr(), [8, 8, 8, 8]);
        // Exactly 20 bytes is enough for the view; 19 is not.
        assert!(Ipv4Packet::new_checked(&GOLDEN[..20]).is_ok());
        assert_eq!(
            Ipv4Packet::new_checked(&GOLDEN[..19]).unwrap_err(),
            Malformed::Ipv4Header
        );
    }

    #[test]
    fn golden() {
        let m = run(LinkType::RawIpv4, &GOLDEN).unwrap();
        assert!(!m.v6);
        assert_eq!(m.src, widen([10, 1, 2, 3]));
        assert_eq!(m.dst, widen([8, 8, 8, 8]));
        assert_eq!(
            (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
            (17, 33000, 53, 0)
        );
        assert_eq!(m.bytes, 36);
        assert!(!m.fragment);
    }

    #[test]
    fn too_short() {
        for n in 1..HEADER_LEN {
            assert_eq!(
                run(LinkType::RawIp, &GOLDEN[..n]),
                mal(Malformed::Ipv4Header),
                "{n}"
            );
        }
    }

    /// Bytes and the malformed rules: (frame, wire_len, result).
    #[test]
    fn length_rules_table() {
        let tcp_ = tcp(80, 1234, 0x18);
        let ok = |b| Ok::<u32, Malformed>(b);
        type Case = (&'static str, Vec<u8>, u32, Result<u32, Malformed>);
        let cases: Vec<Case> = vec![
            ("plain", ipv4(6, 0, &[], &tcp_, None), 40, ok(40)),
            (
                "ihl 0",
                set(ipv4(6, 0, &[], &tcp_, None), 0, 0x40),
                40,
                Err(Malformed::Ipv4Header),
            ),
            (
                "ihl 4",
                set(ipv4(6, 0, &[], &tcp_, None), 0, 0x44),
                40,
                Err(Malformed::Ipv4Header),
            ),
            (
                "ihl 5",
                set(ipv4(6, 0, &[], &tcp_, None), 0, 0x45),
                40,
                ok(40),
            ),
            (
                "tl < 20",
                ipv4(6, 0, &[], &tcp_, Some(19)),
                40,
                Err(Malformed::Ipv4Length),
            ),
            (
                "tl < ihl*4",
                ipv4(6, 0, &[0; 8], &tcp_, Some(27)),
                48,
                Err(Malformed::Ipv4Length),
            ),
            (
                "tl = ihl*4",
                ipv4(6, 0, &[0; 8], &tcp_, Some(28)),
                48,
                ok(28),
            ),
            (
                "tl > wire",
                ipv4(6, 0, &[], &tcp_, Some(41)),
                40,
                Err(Malformed::Ipv4Length),
            ),
            // Snap length cut the capture, not the packet: wire says 1500.
            ("snap", ipv4(6, 0, &[], &tcp_, Some(1500)), 1500, ok(1500)),
            (
                "snap, tl > wire",
                ipv4(6, 0, &[], &tcp_, Some(1501)),
                1500,
                Err(Malformed::Ipv4Length),
            ),
            // Total Length 0: the wire length (TSO, BIG TCP).
            ("tl 0", ipv4(6, 0, &[], &tcp_, Some(0)), 40, ok(40)),
            (
                "tl 0 big",
                ipv4(6, 0, &[], &tcp_, Some(0)),
                180_000,
                ok(180_000),
            ),
            (
                "tl 0 max",
                ipv4(6, 0, &[], &tcp_, Some(0)),
                u32::MAX,
                ok(u32::MAX),
            ),
            // Total Length 0 with IHL 15 on a 40-byte wire: options past the data.
            (
                "tl 0 options past wire",
                set(ipv4(6, 0, &[], &tcp_, Some(0)), 0, 0x4f),
                40,
                Err(Malformed::Ipv4Header),
            ),
        ];
        for (name, frame, wire, want) in cases {
            let got = run_wire(LinkType::RawIp, &frame, wire).map(|m| m.bytes);
            assert_eq!(
                got,
                want.map_err(super::super::ParseError::Malformed),
                "{name}"
            );
        }
    }

    fn set(mut v: Vec<u8>, at: usize, b: u8) -> Vec<u8> {
        v[at] = b;
        v
    }

    /// Total Length 0 counts the frame's original length minus the link
    /// header, FCS and padding included.
    #[test]
    fn total_len_zero_ethernet() {
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &[], &tcp(1, 2, 0x10), Some(0))]);
        let m = run_wire(LinkType::Ethernet, &f, 65_000 + 14).unwrap();
        assert_eq!(m.bytes, 65_000);
        assert_eq!((m.src_port, m.dst_port, m.tcp_flags), (1, 2, 0x10));
        // Captured only: 54 bytes frame -> 40.
        assert_eq!(run(LinkType::Ethernet, &f).unwrap().bytes, 40);
    }

    /// IPv4 options: the L4 header starts after IHL * 4.
    #[test]
    fn options() {
        for words in 0..=10usize {
            let opts = vec![1u8; words * 4]; // NOPs
            let f = ipv4(6, 0, &opts, &tcp(4000, 80, 0x11), None);
            let m = run(LinkType::RawIp, &f).unwrap();
            assert_eq!(
                (m.src_port, m.dst_port, m.tcp_flags),
                (4000, 80, 0x11),
                "{words}"
            );
            assert_eq!(m.bytes as usize, 40 + words * 4);
        }
    }

    /// Options cut by the snap length: the packet is logged (addresses are
    /// in the fixed header) but the L4 header is not present.
    #[test]
    fn options_cut_by_snap() {
        let f = ipv4(17, 0, &[1; 40], &udp(1, 2), None); // IHL 15, 68 bytes
        let total = u32::try_from(f.len()).unwrap();
        for cut in 20..60 {
            let m = run_wire(LinkType::RawIp, &f[..cut], total).unwrap();
            assert_eq!(m.src, widen([10, 0, 0, 1]), "{cut}");
            assert_eq!((m.protocol, m.src_port, m.dst_port), (17, 0, 0), "{cut}");
            assert_eq!(m.bytes, total);
        }
        // From 68 the UDP header is captured.
        assert_eq!(run_wire(LinkType::RawIp, &f, total).unwrap().src_port, 1);
    }

    /// Fragments: offset > 0 has no L4 header; offset 0 with MF does.
    #[test]
    fn fragments_table() {
        for (frag, non_first) in [
            (0x0000u16, false), // not fragmented
            (0x4000, false),    // DF
            (0x2000, false),    // MF, offset 0: first fragment
            (0x2001, true),     // MF, offset 8
            (0x0001, true),     // last fragment
            (0x1fff, true),     // largest offset
            (0x5fff, true),     // DF + offset (odd, still non-first)
        ] {
            let f = ipv4(6, frag, &[], &tcp(1, 2, 0x02), None);
            let m = run(LinkType::RawIp, &f).unwrap();
            assert_eq!(m.fragment, non_first, "{frag:#x}");
            assert_eq!(m.protocol, 6);
            let want = if non_first { (0, 0, 0) } else { (1, 2, 0x02) };
            assert_eq!((m.src_port, m.dst_port, m.tcp_flags), want, "{frag:#x}");
            assert_eq!(m.bytes, 40);
        }
    }

    /// Ethernet padding is not L4: a 20-byte IPv4 packet padded to 60 bytes
    /// carries no UDP header even though 26 more bytes were captured.
    #[test]
    fn padding_is_not_l4() {
        let mut f = cat(&[&eth(0x0800), &ipv4(17, 0, &[], &[], None)]);
        f.extend_from_slice(&[0x11; 26]);
        let m = run(LinkType::Ethernet, &f).unwrap();
        assert_eq!(
            (m.protocol, m.src_port, m.dst_port, m.bytes),
            (17, 0, 0, 20)
        );
        // 7 bytes of UDP within Total Length, padding after: still absent.
        let mut f = cat(&[&eth(0x0800), &ipv4(17, 0, &[], &udp(9, 9)[..7], None)]);
        f.extend_from_slice(&[0x11; 19]);
        assert_eq!(run(LinkType::Ethernet, &f).unwrap().src_port, 0);
    }

    /// Other protocols have no ports; AH, ESP, GRE are not opened in IPv4.
    #[test]
    fn other_protocols() {
        for p in [0u8, 2, 4, 41, 47, 50, 51, 89, 255] {
            let f = ipv4(p, 0, &[], &tcp(1, 2, 0xff), None);
            let m = run(LinkType::RawIp, &f).unwrap();
            assert_eq!(
                (m.protocol, m.src_port, m.dst_port, m.tcp_flags),
                (p, 0, 0, 0)
            );
        }
    }
}
