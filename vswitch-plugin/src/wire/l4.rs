//! The L4 headers flow logs read: ports, ICMP type and code, TCP flags.
//!
//! RECORDS.md "Ports": TCP (6), UDP (17) and SCTP (132) give their ports;
//! ICMP (1) and ICMPv6 (58) give srcport 0 and dstport `type * 256 + code`;
//! any other protocol gives 0 and 0. A header counts as present only if its
//! fixed part (TCP 20, UDP 8, SCTP 12, ICMP 8, ICMPv6 4 bytes) lies within
//! both the captured bytes and the IP packet's own length; the caller passes
//! exactly that intersection, so `new_checked` on it is the whole rule.

use super::{be16, byte, Field, PacketMeta};

/// IANA protocol numbers.
pub(super) mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Ports at the start of the header: TCP, UDP and SCTP share them.
mod port_field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
}

mod tcp_field {
    /// CWR ECE URG ACK PSH RST SYN FIN.
    pub const FLAGS: usize = 13;
    pub const HEADER_LEN: usize = 20;
}

/// A view of a TCP header's fixed 20 bytes.
#[derive(Debug)]
pub(super) struct TcpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpHeader<T> {
    /// `None` when the fixed 20 bytes are not all there.
    #[inline]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= tcp_field::HEADER_LEN).then_some(TcpHeader { buffer })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), port_field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), port_field::DST_PORT)
    }

    /// The flags byte (the NS bit, in byte 12, is not part of it).
    #[inline]
    pub fn flags(&self) -> u8 {
        byte(self.buffer.as_ref(), tcp_field::FLAGS)
    }
}

mod udp_field {
    #[cfg(test)]
    pub const LENGTH: super::Field = 4..6;
    pub const HEADER_LEN: usize = 8;
}

/// A view of a UDP header.
#[derive(Debug)]
pub(super) struct UdpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpHeader<T> {
    /// `None` when the 8 bytes are not all there.
    #[inline]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= udp_field::HEADER_LEN).then_some(UdpHeader { buffer })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), port_field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), port_field::DST_PORT)
    }

    /// The UDP Length field (not used: the IP length rules).
    #[cfg(test)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), udp_field::LENGTH)
    }
}

mod sctp_field {
    #[cfg(test)]
    pub const VERIFICATION_TAG: super::Field = 4..8;
    pub const HEADER_LEN: usize = 12;
}

/// A view of an SCTP common header.
#[derive(Debug)]
pub(super) struct SctpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpHeader<T> {
    /// `None` when the 12 bytes are not all there.
    #[inline]
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= sctp_field::HEADER_LEN).then_some(SctpHeader { buffer })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), port_field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), port_field::DST_PORT)
    }

    #[cfg(test)]
    pub fn verification_tag(&self) -> u32 {
        super::be32(self.buffer.as_ref(), sctp_field::VERIFICATION_TAG)
    }
}

mod icmp_field {
    use super::Field;
    /// Type and code, read together: `type * 256 + code`.
    pub const TYPE_CODE: Field = 0..2;
    /// ICMP (v4): type, code, checksum, 4 bytes of rest-of-header.
    pub const V4_HEADER_LEN: usize = 8;
    /// ICMPv6: type, code, checksum.
    pub const V6_HEADER_LEN: usize = 4;
}

/// A view of an ICMP or ICMPv6 header.
#[derive(Debug)]
pub(super) struct IcmpHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpHeader<T> {
    /// ICMP (protocol 1): `None` unless the 8 fixed bytes are there.
    #[inline]
    pub fn new_checked_v4(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= icmp_field::V4_HEADER_LEN).then_some(IcmpHeader { buffer })
    }

    /// ICMPv6 (protocol 58): `None` unless the 4 fixed bytes are there.
    #[inline]
    pub fn new_checked_v6(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= icmp_field::V6_HEADER_LEN).then_some(IcmpHeader { buffer })
    }

    /// `type * 256 + code`, the flow-log dstport.
    #[inline]
    pub fn type_code(&self) -> u16 {
        be16(self.buffer.as_ref(), icmp_field::TYPE_CODE)
    }
}

/// Fills ports and TCP flags of `m` from the L4 header at the start of
/// `l4`, which holds exactly the bytes both captured and within the IP
/// packet. Leaves them 0 (as `m` came) when the header is not present.
#[inline]
pub(super) fn fill(proto: u8, l4: &[u8], m: &mut PacketMeta) {
    match proto {
        protocol::TCP => {
            if let Some(h) = TcpHeader::new_checked(l4) {
                m.src_port = h.src_port();
                m.dst_port = h.dst_port();
                m.tcp_flags = h.flags();
            }
        }
        protocol::UDP => {
            if let Some(h) = UdpHeader::new_checked(l4) {
                m.src_port = h.src_port();
                m.dst_port = h.dst_port();
            }
        }
        protocol::SCTP => {
            if let Some(h) = SctpHeader::new_checked(l4) {
                m.src_port = h.src_port();
                m.dst_port = h.dst_port();
            }
        }
        protocol::ICMP => {
            if let Some(h) = IcmpHeader::new_checked_v4(l4) {
                m.dst_port = h.type_code();
            }
        }
        protocol::ICMPV6 => {
            if let Some(h) = IcmpHeader::new_checked_v6(l4) {
                m.dst_port = h.type_code();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{LinkType, PacketMeta};
    use super::*;

    /// TCP: 12345 -> 80, every flag bit set, NS bit set in byte 12.
    const TCP: [u8; 20] = [
        0x30, 0x39, // source port 12345
        0x00, 0x50, // destination port 80
        0x01, 0x02, 0x03, 0x04, // sequence
        0x05, 0x06, 0x07, 0x08, // acknowledgement
        0x51, // data offset 5, NS bit
        0xff, // CWR ECE URG ACK PSH RST SYN FIN
        0x72, 0x10, // window
        0x00, 0x00, // checksum
        0x00, 0x00, // urgent pointer
    ];

    /// UDP: 68 -> 67 (DHCP), length 308.
    const UDP: [u8; 8] = [
        0x00, 0x44, // source port 68
        0x00, 0x43, // destination port 67
        0x01, 0x34, // length 308
        0x00, 0x00, // checksum
    ];

    /// SCTP common header: 5060 -> 5061, tag 0xdeadbeef.
    const SCTP: [u8; 12] = [
        0x13, 0xc4, // source port 5060
        0x13, 0xc5, // destination port 5061
        0xde, 0xad, 0xbe, 0xef, // verification tag
        0x00, 0x00, 0x00, 0x00, // checksum
    ];

    /// ICMP destination unreachable, fragmentation needed (3/4).
    const ICMP: [u8; 8] = [
        0x03, // type 3
        0x04, // code 4
        0x00, 0x00, // checksum
        0x00, 0x00, 0x05, 0xdc, // unused, next-hop MTU 1500
    ];

    /// ICMPv6 echo request (128/0).
    const ICMPV6: [u8; 4] = [
        0x80, // type 128
        0x00, // code 0
        0x00, 0x00, // checksum
    ];

    #[test]
    fn views() {
        let t = TcpHeader::new_checked(&TCP[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.flags()), (12345, 80, 0xff));
        let u = UdpHeader::new_checked(&UDP[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (68, 67, 308));
        let s = SctpHeader::new_checked(&SCTP[..]).unwrap();
        assert_eq!(
            (s.src_port(), s.dst_port(), s.verification_tag()),
            (5060, 5061, 0xdeadbeef)
        );
        assert_eq!(
            IcmpHeader::new_checked_v4(&ICMP[..]).unwrap().type_code(),
            3 * 256 + 4
        );
        assert_eq!(
            IcmpHeader::new_checked_v6(&ICMPV6[..]).unwrap().type_code(),
            128 * 256
        );
        assert!(TcpHeader::new_checked(&TCP[..19]).is_none());
        assert!(UdpHeader::new_checked(&UDP[..7]).is_none());
        assert!(SctpHeader::new_checked(&SCTP[..11]).is_none());
        assert!(IcmpHeader::new_checked_v4(&ICMP[..7]).is_none());
        assert!(IcmpHeader::new_checked_v6(&ICMPV6[..3]).is_none());
    }

    /// (protocol, header, expected ports and flags): present at the fixed
    /// length, absent one byte short, through `fill` and through a whole
    /// IPv4 and IPv6 packet (cut by the snap length, and by the IP length).
    #[test]
    fn presence_table() {
        type Case<'a> = (u8, &'a [u8], (u16, u16, u8));
        let cases: [Case<'_>; 6] = [
            (protocol::TCP, &TCP, (12345, 80, 0xff)),
            (protocol::UDP, &UDP, (68, 67, 0)),
            (protocol::SCTP, &SCTP, (5060, 5061, 0)),
            (protocol::ICMP, &ICMP, (0, 0x0304, 0)),
            (protocol::ICMPV6, &ICMPV6, (0, 0x8000, 0)),
            // ICMP with only 4 bytes is not present (its fixed part is 8).
            (protocol::ICMP, &ICMP[..4], (0, 0, 0)),
        ];
        for (proto, hdr, want) in cases {
            let mut m = PacketMeta::default();
            fill(proto, hdr, &mut m);
            assert_eq!((m.src_port, m.dst_port, m.tcp_flags), want, "{proto}");
            if let Some(short) = hdr.len().checked_sub(1) {
                let mut m = PacketMeta::default();
                fill(proto, &hdr[..short], &mut m);
                assert_eq!(
                    (m.src_port, m.dst_port, m.tcp_flags),
                    (0, 0, 0),
                    "{proto} short"
                );
            }
            for v6 in [false, true] {
                let ip = if v6 {
                    ipv6(proto, hdr, None)
                } else {
                    ipv4(proto, 0, &[], hdr, None)
                };
                let m = run(LinkType::RawIp, &ip).unwrap();
                assert_eq!(
                    (m.src_port, m.dst_port, m.tcp_flags),
                    want,
                    "{proto} v6={v6}"
                );
                assert_eq!(m.protocol, proto);
                if hdr.is_empty() {
                    continue;
                }
                // Snap length one byte short of the header.
                let wire = u32::try_from(ip.len()).unwrap();
                let m = run_wire(LinkType::RawIp, &ip[..ip.len() - 1], wire).unwrap();
                assert_eq!(
                    (m.src_port, m.dst_port, m.tcp_flags),
                    (0, 0, 0),
                    "{proto} snap"
                );
                assert_eq!(m.bytes, wire);
                // IP length one byte short, the header's last byte captured
                // as trailing padding.
                let l = u16::try_from(hdr.len() - 1).unwrap();
                let ip = if v6 {
                    ipv6(proto, hdr, Some(l))
                } else {
                    ipv4(proto, 0, &[], hdr, Some(20 + l))
                };
                let m = run(LinkType::RawIp, &ip).unwrap();
                assert_eq!(
                    (m.src_port, m.dst_port, m.tcp_flags),
                    (0, 0, 0),
                    "{proto} iplen"
                );
            }
        }
    }

    /// Other protocols: no ports whatever follows.
    #[test]
    fn other_protocols_no_ports() {
        for proto in [0u8, 2, 8, 33, 47, 50, 51, 103, 136, 255] {
            let mut m = PacketMeta::default();
            fill(proto, &TCP, &mut m);
            assert_eq!((m.src_port, m.dst_port, m.tcp_flags), (0, 0, 0), "{proto}");
        }
    }

    /// ICMP dstport is type * 256 + code for all types and codes.
    #[test]
    fn icmp_type_code() {
        for (t, c) in [(0u8, 0u8), (8, 0), (3, 3), (11, 1), (255, 255)] {
            let h = [t, c, 0, 0, 0, 0, 0, 0];
            let m = run(LinkType::RawIp, &ipv4(1, 0, &[], &h, None)).unwrap();
            assert_eq!(
                (m.src_port, m.dst_port),
                (0, u16::from(t) * 256 + u16::from(c))
            );
            let m = run(LinkType::RawIp, &ipv6(58, &h[..4], None)).unwrap();
            assert_eq!(
                (m.src_port, m.dst_port),
                (0, u16::from(t) * 256 + u16::from(c))
            );
        }
    }
}
