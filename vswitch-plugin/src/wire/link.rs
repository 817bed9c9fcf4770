//! The link layers without Ethernet addresses (raw IP, Linux cooked capture
//! v1 and v2, BSD and OpenBSD loopback) and the dispatch over all link
//! types: where the IP header starts and which IP version the link layer
//! announces.

use super::ethernet::{self, EthernetFrame};
use super::{be16, get, Field, LinkType, Malformed, PacketMeta, ParseError};

/// The IP version the link layer announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NetProto {
    /// EtherType 0x0800, raw IPv4, AF_INET.
    Ipv4,
    /// EtherType 0x86DD, raw IPv6, AF_INET6.
    Ipv6,
    /// Raw IP: the version nibble decides.
    Either,
}

/// Where the link layer ends and what it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub net: NetProto,
    /// Link header length including VLAN tags: the IP header starts here.
    /// Never more than the frame's length.
    pub header_len: usize,
}

/// Reads the link header of `frame`, fills the MACs of `meta` for Ethernet
/// (they stay zero otherwise) and says where IP starts.
#[inline]
pub(super) fn strip(
    link: LinkType,
    frame: &[u8],
    meta: &mut PacketMeta,
) -> Result<Link, ParseError> {
    match link {
        LinkType::Ethernet => {
            let eth = EthernetFrame::new_checked(frame)?;
            meta.dst_mac = eth.dst_addr();
            meta.src_mac = eth.src_addr();
            ethernet::after_ethertype(frame, eth.ethertype(), ethernet::HEADER_LEN)
        }
        LinkType::RawIp => Ok(Link {
            net: NetProto::Either,
            header_len: 0,
        }),
        LinkType::RawIpv4 => Ok(Link {
            net: NetProto::Ipv4,
            header_len: 0,
        }),
        LinkType::RawIpv6 => Ok(Link {
            net: NetProto::Ipv6,
            header_len: 0,
        }),
        LinkType::LinuxSll => {
            let sll = SllHeader::new_checked(frame)?;
            ethernet::after_ethertype(frame, sll.protocol(), sll::HEADER_LEN)
        }
        LinkType::LinuxSll2 => {
            let sll = Sll2Header::new_checked(frame)?;
            ethernet::after_ethertype(frame, sll.protocol(), sll2::HEADER_LEN)
        }
        LinkType::Null => {
            let raw = NullHeader::new_checked(frame)?.family_bytes();
            // Written in the capturing host's byte order: try both. No value
            // of the family set reads as another member in the other order.
            let net = family(u32::from_le_bytes(raw)).or_else(|| family(u32::from_be_bytes(raw)));
            net.map(|net| Link {
                net,
                header_len: null::HEADER_LEN,
            })
            .ok_or(ParseError::NotIp)
        }
        LinkType::Loop => {
            let raw = NullHeader::new_checked(frame)?.family_bytes();
            family(u32::from_be_bytes(raw))
                .map(|net| Link {
                    net,
                    header_len: null::HEADER_LEN,
                })
                .ok_or(ParseError::NotIp)
        }
    }
}

/// A loopback address family: 2 is AF_INET everywhere; AF_INET6 is 10
/// (Linux), 24 (NetBSD, OpenBSD), 28 (FreeBSD) or 30 (Darwin).
#[inline]
fn family(af: u32) -> Option<NetProto> {
    match af {
        2 => Some(NetProto::Ipv4),
        10 | 24 | 28 | 30 => Some(NetProto::Ipv6),
        _ => None,
    }
}

mod sll {
    use super::Field;
    /// The protocol, an EtherType for Ethernet devices.
    pub const PROTOCOL: Field = 14..16;
    pub const HEADER_LEN: usize = 16;
}

/// A Linux cooked capture v1 header (pcap 113).
#[derive(Debug)]
pub(super) struct SllHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SllHeader<T> {
    /// Checks the 16-byte header is captured.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < sll::HEADER_LEN {
            return Err(Malformed::ShortLink);
        }
        Ok(SllHeader { buffer })
    }

    /// The protocol field (an EtherType).
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), sll::PROTOCOL)
    }
}

mod sll2 {
    use super::Field;
    /// The protocol, an EtherType for Ethernet devices.
    pub const PROTOCOL: Field = 0..2;
    pub const HEADER_LEN: usize = 20;
}

/// A Linux cooked capture v2 header (pcap 276).
#[derive(Debug)]
pub(super) struct Sll2Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Sll2Header<T> {
    /// Checks the 20-byte header is captured.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < sll2::HEADER_LEN {
            return Err(Malformed::ShortLink);
        }
        Ok(Sll2Header { buffer })
    }

    /// The protocol field (an EtherType).
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), sll2::PROTOCOL)
    }
}

mod null {
    use super::Field;
    /// The address family, 4 bytes in the writer's (Null) or network
    /// (Loop) byte order.
    pub const FAMILY: Field = 0..4;
    pub const HEADER_LEN: usize = 4;
}

/// A BSD loopback header (pcap 0 and 108).
#[derive(Debug)]
pub(super) struct NullHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NullHeader<T> {
    /// Checks the 4-byte header is captured.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < null::HEADER_LEN {
            return Err(Malformed::ShortLink);
        }
        Ok(NullHeader { buffer })
    }

    /// The address family's raw bytes; the byte order depends on the link.
    #[inline]
    pub fn family_bytes(&self) -> [u8; 4] {
        get(self.buffer.as_ref(), null::FAMILY)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{LinkType, Malformed, ParseError};

    fn sll(protocol: u16) -> Vec<u8> {
        let mut v = vec![
            0x00, 0x00, // packet type: to us
            0x00, 0x01, // ARPHRD_ETHER
            0x00, 0x06, // address length
            0x02, 0, 0, 0, 0, 0x09, 0, 0, // address, padded to 8
        ];
        v.extend_from_slice(&protocol.to_be_bytes()); // protocol
        v
    }

    fn sll2(protocol: u16) -> Vec<u8> {
        let mut v = protocol.to_be_bytes().to_vec(); // protocol
        v.extend_from_slice(&[
            0x00, 0x00, // reserved
            0x00, 0x00, 0x00, 0x03, // interface index
            0x00, 0x01, // ARPHRD_ETHER
            0x04, // packet type: outgoing
            0x06, // address length
            0x02, 0, 0, 0, 0, 0x09, 0, 0, // address, padded to 8
        ]);
        v
    }

    fn v4_udp() -> Vec<u8> {
        ipv4(17, 0, &[], &udp(1000, 53), None)
    }

    fn v6_udp() -> Vec<u8> {
        ipv6(17, &udp(1000, 53), None)
    }

    /// Golden Linux cooked v1 frame: 16-byte header, then IPv4/UDP.
    #[test]
    fn sll_v1_golden() {
        let f = cat(&[&sll(0x0800), &v4_udp()]);
        let m = run(LinkType::LinuxSll, &f).unwrap();
        assert_eq!(m.src_mac, [0; 6], "cooked captures carry no MACs for us");
        assert_eq!(m.dst_mac, [0; 6]);
        assert_eq!(&m.src[..4], &[10, 0, 0, 1]);
        assert_eq!(
            (m.protocol, m.src_port, m.dst_port, m.bytes),
            (17, 1000, 53, 28)
        );
        let f = cat(&[&sll(0x86dd), &v6_udp()]);
        let m = run(LinkType::LinuxSll, &f).unwrap();
        assert!(m.v6);
        assert_eq!(m.bytes, 48);
        // Total Length 0: wire length minus the 16-byte header.
        let f = cat(&[&sll(0x0800), &ipv4(6, 0, &[], &tcp(1, 2, 0x10), Some(0))]);
        assert_eq!(run_wire(LinkType::LinuxSll, &f, 1000).unwrap().bytes, 984);
    }

    /// Golden Linux cooked v2 frame: 20-byte header, protocol first.
    #[test]
    fn sll_v2_golden() {
        let f = cat(&[&sll2(0x0800), &v4_udp()]);
        let m = run(LinkType::LinuxSll2, &f).unwrap();
        assert_eq!(
            (m.protocol, m.src_port, m.dst_port, m.bytes),
            (17, 1000, 53, 28)
        );
        assert_eq!(m.src_mac, [0; 6]);
        let f = cat(&[&sll2(0x86dd), &v6_udp()]);
        assert!(run(LinkType::LinuxSll2, &f).unwrap().v6);
        let f = cat(&[&sll2(0x0800), &ipv4(6, 0, &[], &tcp(1, 2, 0x10), Some(0))]);
        assert_eq!(run_wire(LinkType::LinuxSll2, &f, 1000).unwrap().bytes, 980);
    }

    #[test]
    fn sll_short_and_not_ip() {
        for n in 0..16 {
            assert_eq!(
                run(LinkType::LinuxSll, &sll(0x0800)[..n]),
                mal(Malformed::ShortLink)
            );
        }
        for n in 0..20 {
            assert_eq!(
                run(LinkType::LinuxSll2, &sll2(0x0800)[..n]),
                mal(Malformed::ShortLink)
            );
        }
        // ARP, 802.2 LLC (protocol 4), MPLS, PPPoE session: not IP.
        for p in [0x0806, 0x0004, 0x0001, 0x8847, 0x8864] {
            assert_eq!(
                run(LinkType::LinuxSll, &cat(&[&sll(p), &v4_udp()])),
                Err(ParseError::NotIp)
            );
            assert_eq!(
                run(LinkType::LinuxSll2, &cat(&[&sll2(p), &v4_udp()])),
                Err(ParseError::NotIp)
            );
        }
        // Header only, IPv4 announced: no IPv4 header.
        assert_eq!(
            run(LinkType::LinuxSll, &sll(0x0800)),
            mal(Malformed::Ipv4Header)
        );
        assert_eq!(
            run(LinkType::LinuxSll2, &sll2(0x86dd)),
            mal(Malformed::Ipv6Header)
        );
        // Version mismatch.
        assert_eq!(
            run(LinkType::LinuxSll, &cat(&[&sll(0x86dd), &v4_udp()])),
            mal(Malformed::Version)
        );
    }

    /// A VLAN tag re-inserted by libpcap after a cooked header is skipped.
    #[test]
    fn sll_vlan() {
        let f = cat(&[&sll(0x8100), &[0x00, 0x05, 0x08, 0x00], &v4_udp()]);
        let m = run(LinkType::LinuxSll, &f).unwrap();
        assert_eq!((m.src_port, m.dst_port), (1000, 53));
        let f = cat(&[&sll2(0x8100), &[0x00, 0x05, 0x86, 0xdd], &v6_udp()]);
        assert!(run(LinkType::LinuxSll2, &f).unwrap().v6);
        assert_eq!(
            run(LinkType::LinuxSll, &cat(&[&sll(0x8100), &[0]])),
            mal(Malformed::ShortLink)
        );
    }

    /// BSD loopback: AF in either byte order; 2 = IPv4, 10/24/28/30 = IPv6.
    #[test]
    fn null_families_table() {
        let v4 = v4_udp();
        let v6 = v6_udp();
        for (af, ip, v6_expected) in [
            (2u32, &v4, false),
            (10, &v6, true),
            (24, &v6, true),
            (28, &v6, true),
            (30, &v6, true),
        ] {
            for hdr in [af.to_le_bytes(), af.to_be_bytes()] {
                let m = run(LinkType::Null, &cat(&[&hdr, ip])).unwrap();
                assert_eq!(m.v6, v6_expected, "af {af} {hdr:?}");
                assert_eq!((m.src_port, m.dst_port), (1000, 53));
                assert_eq!(m.src_mac, [0; 6]);
            }
            // Loop: network order only.
            let m = run(LinkType::Loop, &cat(&[&af.to_be_bytes(), ip])).unwrap();
            assert_eq!(m.v6, v6_expected);
            assert_eq!(
                run(LinkType::Loop, &cat(&[&af.to_le_bytes(), ip])),
                Err(ParseError::NotIp),
                "af {af} little-endian on Loop"
            );
        }
        // Other families (AF_UNSPEC, AF_UNIX, AF_APPLETALK, AF_IPX...): not IP.
        for af in [0u32, 1, 3, 7, 16, 23, 0x0200_0002, u32::MAX] {
            for hdr in [af.to_le_bytes(), af.to_be_bytes()] {
                assert_eq!(
                    run(LinkType::Null, &cat(&[&hdr, &v4])),
                    Err(ParseError::NotIp)
                );
            }
            assert_eq!(
                run(LinkType::Loop, &cat(&[&af.to_be_bytes(), &v4])),
                Err(ParseError::NotIp)
            );
        }
        // Mismatched family and version.
        assert_eq!(
            run(LinkType::Null, &cat(&[&[2, 0, 0, 0], &v6])),
            mal(Malformed::Version)
        );
        assert_eq!(
            run(LinkType::Loop, &cat(&[&[0, 0, 0, 24], &v4])),
            mal(Malformed::Version)
        );
        // Too short for the family.
        for n in 0..4 {
            assert_eq!(
                run(LinkType::Null, &[2, 0, 0, 0][..n]),
                mal(Malformed::ShortLink)
            );
            assert_eq!(
                run(LinkType::Loop, &[0, 0, 0, 2][..n]),
                mal(Malformed::ShortLink)
            );
        }
        // Header only.
        assert_eq!(
            run(LinkType::Null, &[2, 0, 0, 0]),
            mal(Malformed::Ipv4Header)
        );
        assert_eq!(
            run(LinkType::Loop, &[0, 0, 0, 30]),
            mal(Malformed::Ipv6Header)
        );
        // Total Length 0: wire length minus the 4-byte header.
        let f = cat(&[&[2, 0, 0, 0], &ipv4(6, 0, &[], &tcp(1, 2, 2), Some(0))]);
        assert_eq!(run_wire(LinkType::Null, &f, 100).unwrap().bytes, 96);
    }

    /// Raw IP: 101 by the version nibble, 228 only IPv4, 229 only IPv6.
    #[test]
    fn raw_ip_table() {
        let v4 = v4_udp();
        let v6 = v6_udp();
        for (link, frame, want) in [
            (LinkType::RawIp, &v4, Some(false)),
            (LinkType::RawIp, &v6, Some(true)),
            (LinkType::RawIpv4, &v4, Some(false)),
            (LinkType::RawIpv4, &v6, None),
            (LinkType::RawIpv6, &v6, Some(true)),
            (LinkType::RawIpv6, &v4, None),
        ] {
            match want {
                Some(v6) => {
                    let m = run(link, frame).unwrap();
                    assert_eq!(m.v6, v6);
                    assert_eq!(m.src_mac, [0; 6]);
                    assert_eq!(m.dst_mac, [0; 6]);
                    assert_eq!((m.src_port, m.dst_port), (1000, 53));
                }
                None => assert_eq!(run(link, frame), mal(Malformed::Version), "{link:?}"),
            }
        }
        // Neither 4 nor 6.
        for nibble in [0u8, 1, 5, 7, 15] {
            let mut f = v4.clone();
            f[0] = (nibble << 4) | 5;
            assert_eq!(
                run(LinkType::RawIp, &f),
                mal(Malformed::Version),
                "version {nibble}"
            );
        }
        // Total Length 0 on raw IP: the whole wire length.
        let f = ipv4(6, 0, &[], &tcp(1, 2, 2), Some(0));
        assert_eq!(run_wire(LinkType::RawIp, &f, 65_000).unwrap().bytes, 65_000);
        assert_eq!(run(LinkType::RawIp, &[0x45]), mal(Malformed::Ipv4Header));
        assert_eq!(run(LinkType::RawIp, &[0x60]), mal(Malformed::Ipv6Header));
    }
}
