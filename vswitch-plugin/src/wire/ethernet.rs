//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.
//!
//! RECORDS.md: up to two VLAN tags (TPID 0x8100, 0x88a8, 0x9100) are skipped
//! before the EtherType; only IPv4 (0x0800) and IPv6 (0x86DD) are logged,
//! any other EtherType (ARP, LLDP, MPLS, PPPoE, an 802.3 length, a third
//! tag...) is `NotIp`. A frame too short for its header or a tag is
//! `Malformed(ShortLink)`.

use super::link::{Link, NetProto};
use super::{be16, get, Field, Malformed, ParseError};

mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
}

/// Ethernet II header length.
pub(super) const HEADER_LEN: usize = 14;

/// The EtherTypes the parser knows.
pub(super) mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// The pre-standard QinQ tag some switches still send.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// A view of an Ethernet II header.
#[derive(Debug)]
pub(super) struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks the 14-byte header is captured.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Malformed::ShortLink);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        get(self.buffer.as_ref(), field::DESTINATION)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        get(self.buffer.as_ref(), field::SOURCE)
    }

    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

mod vlan_field {
    use super::Field;
    /// Priority, DEI and VLAN id.
    #[cfg(test)]
    pub const TCI: Field = 0..2;
    /// The EtherType after the tag.
    pub const ETHERTYPE: Field = 2..4;
}

/// The part of a VLAN tag after its TPID: 2 bytes TCI, 2 bytes EtherType.
pub(super) const VLAN_TAG_LEN: usize = 4;

/// A view of a VLAN tag (the 4 bytes after the TPID).
#[derive(Debug)]
pub(super) struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Checks the 4 bytes are captured.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Malformed> {
        if buffer.as_ref().len() < VLAN_TAG_LEN {
            return Err(Malformed::ShortLink);
        }
        Ok(VlanTag { buffer })
    }

    /// The VLAN id (low 12 bits of the TCI).
    #[cfg(test)]
    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), vlan_field::TCI) & 0x0fff
    }

    /// The EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), vlan_field::ETHERTYPE)
    }
}

#[inline(always)]
fn is_vlan(t: u16) -> bool {
    matches!(t, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD)
}

/// Given the EtherType read at the end of a link header that ends at
/// `offset` within `frame`, skips up to two VLAN tags and classifies what
/// follows. Shared by Ethernet and the Linux cooked captures.
#[inline]
pub(super) fn after_ethertype(
    frame: &[u8],
    mut ether: u16,
    mut offset: usize,
) -> Result<Link, ParseError> {
    // Two tags at most: a constant trip count the compiler unrolls.
    for _ in 0..2 {
        if !is_vlan(ether) {
            break;
        }
        let tag = VlanTag::new_checked(frame.get(offset..).unwrap_or_default())?;
        ether = tag.ethertype();
        // `offset + 4` is within the frame: the tag was checked.
        offset = offset.saturating_add(VLAN_TAG_LEN);
    }
    let net = match ether {
        ethertype::IPV4 => NetProto::Ipv4,
        ethertype::IPV6 => NetProto::Ipv6,
        _ => return Err(ParseError::NotIp),
    };
    Ok(Link {
        net,
        header_len: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{LinkType, Malformed, ParseError};
    use super::*;

    /// A captured frame from a real host: Ethernet, IPv4, TCP SYN.
    const GOLDEN: [u8; 54] = [
        0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d, // destination MAC
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // source MAC
        0x08, 0x00, // EtherType IPv4
        0x45, // version 4, IHL 5
        0x00, // DSCP/ECN
        0x00, 0x28, // Total Length 40
        0x1c, 0x46, // identification
        0x40, 0x00, // DF, offset 0
        0x40, // TTL 64
        0x06, // protocol TCP
        0x00, 0x00, // checksum (not verified)
        192, 168, 1, 10, // source 192.168.1.10
        93, 184, 216, 34, // destination 93.184.216.34
        0xc3, 0x50, // source port 50000
        0x01, 0xbb, // destination port 443
        0x00, 0x00, 0x00, 0x01, // sequence
        0x00, 0x00, 0x00, 0x00, // acknowledgement
        0x50, // data offset 5
        0x02, // flags: SYN
        0xfa, 0xf0, // window
        0x00, 0x00, // checksum
        0x00, 0x00, // urgent pointer
    ];

    #[test]
    fn view_fields() {
        let eth = EthernetFrame::new_checked(&GOLDEN[..]).unwrap();
        assert_eq!(eth.dst_addr(), [0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d]);
        assert_eq!(eth.src_addr(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(eth.ethertype(), 0x0800);
        let tag = VlanTag::new_checked(&[0x20, 0x64, 0x86, 0xdd][..]).unwrap();
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.ethertype(), 0x86dd);
        assert!(VlanTag::new_checked(&[0u8; 3][..]).is_err());
    }

    #[test]
    fn golden_frame() {
        let m = run_wire(LinkType::Ethernet, &GOLDEN, 60).unwrap(); // 6 bytes padding on the wire
        assert_eq!(m.dst_mac, [0x00, 0x1b, 0x21, 0x3a, 0x4c, 0x5d]);
        assert_eq!(m.src_mac, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert!(!m.v6);
        assert_eq!(m.src, [192, 168, 1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            m.dst,
            [93, 184, 216, 34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(m.protocol, 6);
        assert_eq!((m.src_port, m.dst_port), (50000, 443));
        assert_eq!(m.tcp_flags, 0x02);
        assert!(!m.fragment);
        assert_eq!(m.bytes, 40);
    }

    #[test]
    fn too_short_for_header() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                run(LinkType::Ethernet, &GOLDEN[..n]),
                mal(Malformed::ShortLink),
                "{n}"
            );
        }
        // The header alone: IPv4 announced but no IPv4 header.
        assert_eq!(
            run(LinkType::Ethernet, &GOLDEN[..14]),
            mal(Malformed::Ipv4Header)
        );
    }

    /// Zero, one and two tags of every TPID, in every combination.
    #[test]
    fn vlan_tags_table() {
        let ip = ipv4(17, 0, &[], &udp(5353, 5353), None);
        let tpids = [ethertype::VLAN, ethertype::QINQ, ethertype::QINQ_OLD];
        let mut cases: Vec<Vec<u16>> = vec![vec![]];
        for a in tpids {
            cases.push(vec![a]);
            for b in tpids {
                cases.push(vec![a, b]);
            }
        }
        for tags in cases {
            // Ethernet header whose EtherType is the first TPID (or IPv4).
            let mut f = eth(tags.first().copied().unwrap_or(ethertype::IPV4));
            for (i, _) in tags.iter().enumerate() {
                let next = tags.get(i + 1).copied().unwrap_or(ethertype::IPV4);
                f.extend_from_slice(&[0x00, 0x0a]); // TCI: VLAN 10
                f.extend_from_slice(&next.to_be_bytes());
            }
            let hdr = f.len();
            f.extend_from_slice(&ip);
            let m = run(LinkType::Ethernet, &f).unwrap();
            assert_eq!(
                (m.src_port, m.dst_port, m.bytes),
                (5353, 5353, 28),
                "{tags:x?}"
            );
            assert_eq!(m.src_mac, MAC_SRC);
            // Total Length 0 subtracts the tags too.
            let mut z = f.clone();
            z[hdr + 2] = 0;
            z[hdr + 3] = 0;
            let m = run_wire(LinkType::Ethernet, &z, 1000).unwrap();
            let hdr = u32::try_from(hdr).unwrap();
            assert_eq!(m.bytes, 1000 - hdr, "{tags:x?}");
            // Every cut inside the tags is ShortLink.
            for n in 14..usize::try_from(hdr).unwrap() {
                assert_eq!(run(LinkType::Ethernet, &f[..n]), mal(Malformed::ShortLink));
            }
        }
    }

    /// A third tag is not skipped: its TPID is an EtherType that is not IP.
    #[test]
    fn three_tags_not_ip() {
        let mut f = eth(ethertype::QINQ);
        f.extend_from_slice(&[0, 1, 0x81, 0x00]);
        f.extend_from_slice(&[0, 2, 0x81, 0x00]);
        f.extend_from_slice(&[0, 3, 0x08, 0x00]);
        f.extend_from_slice(&ipv4(17, 0, &[], &udp(1, 2), None));
        assert_eq!(run(LinkType::Ethernet, &f), Err(ParseError::NotIp));
    }

    /// Non-IP EtherTypes, directly and behind a tag.
    #[test]
    fn not_ip_table() {
        let ip = ipv4(17, 0, &[], &udp(1, 2), None);
        for t in [
            0x0806, // ARP
            0x88cc, // LLDP
            0x8847, // MPLS unicast
            0x8848, // MPLS multicast
            0x8863, // PPPoE discovery
            0x8864, // PPPoE session
            0x88e5, // MACsec
            0x8035, // RARP
            0x0000, // 802.3 length
            0x05dc, // 802.3 length 1500
            0xffff,
        ] {
            assert_eq!(
                run(LinkType::Ethernet, &cat(&[&eth(t), &ip])),
                Err(ParseError::NotIp)
            );
            let tagged = cat(&[&eth(0x8100), &[0, 1], &u16::to_be_bytes(t), &ip]);
            assert_eq!(run(LinkType::Ethernet, &tagged), Err(ParseError::NotIp));
        }
    }

    /// The version nibble must match the EtherType.
    #[test]
    fn version_mismatch() {
        let v4 = ipv4(17, 0, &[], &udp(1, 2), None);
        let v6 = ipv6(17, &udp(1, 2), None);
        assert_eq!(
            run(LinkType::Ethernet, &cat(&[&eth(0x86dd), &v4])),
            mal(Malformed::Version)
        );
        assert_eq!(
            run(LinkType::Ethernet, &cat(&[&eth(0x0800), &v6])),
            mal(Malformed::Version)
        );
        let mut bad = v4.clone();
        bad[0] = 0x55;
        assert_eq!(
            run(LinkType::Ethernet, &cat(&[&eth(0x0800), &bad])),
            mal(Malformed::Version)
        );
        // A short IPv6 header under 0x86dd.
        assert_eq!(
            run(LinkType::Ethernet, &cat(&[&eth(0x86dd), &v6[..39]])),
            mal(Malformed::Ipv6Header)
        );
    }
}
