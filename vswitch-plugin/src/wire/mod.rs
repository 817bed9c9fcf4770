//! Zero-copy packet parsing: views over borrowed bytes (smoltcp's style) for
//! the link layers, IPv4/IPv6 and the L4 headers that flow logs read. No
//! input may panic it; every rule of RECORDS.md about ports, bytes and
//! malformed packets lives here.

/// The link layer of a frame, from the capture's link type or the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II with up to two VLAN tags (pcap 1).
    Ethernet,
    /// Raw IP, version from the first nibble (pcap 101; 12/14 on some systems).
    RawIp,
    /// Raw IPv4 only (pcap 228).
    RawIpv4,
    /// Raw IPv6 only (pcap 229).
    RawIpv6,
    /// Linux cooked capture v1 (pcap 113), 16-byte header.
    LinuxSll,
    /// Linux cooked capture v2 (pcap 276), 20-byte header.
    LinuxSll2,
    /// BSD loopback, 4-byte address family in host byte order of the writer
    /// (pcap 0); both byte orders are accepted.
    Null,
    /// OpenBSD loopback, 4-byte address family in network byte order (pcap 108).
    Loop,
}

impl LinkType {
    /// The link type for a pcap/pcapng LINKTYPE_ value, if we support it.
    pub fn from_linktype(v: u32) -> Option<LinkType> {
        Some(match v {
            1 => LinkType::Ethernet,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::RawIpv4,
            229 => LinkType::RawIpv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    /// Whether frames of this link type carry Ethernet addresses.
    pub fn has_mac(self) -> bool {
        matches!(self, LinkType::Ethernet)
    }
}

/// What the datapath needs of one packet. Filled in place (no allocation);
/// addresses are 16 bytes, IPv4 in the first four with `v6 == false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Ethernet source (zero when the link type has none).
    pub src_mac: [u8; 6],
    /// Ethernet destination (zero when the link type has none).
    pub dst_mac: [u8; 6],
    /// Source address; IPv4 in `[0..4]`, rest zero.
    pub src: [u8; 16],
    /// Destination address; IPv4 in `[0..4]`, rest zero.
    pub dst: [u8; 16],
    /// IPv6 (true) or IPv4 (false).
    pub v6: bool,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// L4 source port, 0 per RECORDS.md "Ports" where there is none.
    pub src_port: u16,
    /// L4 destination port, or `type * 256 + code` for ICMP/ICMPv6.
    pub dst_port: u16,
    /// TCP flags byte, 0 if not TCP or no full TCP header.
    pub tcp_flags: u8,
    /// A non-first fragment (no L4 header).
    pub fragment: bool,
    /// IP-level bytes per RECORDS.md "Bytes".
    pub bytes: u32,
}

/// Why a frame is not logged. Small and `Copy`: it is on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not IPv4 or IPv6 (ARP, LLDP, MPLS, PPPoE, ...): counted, not logged.
    NotIp,
    /// An IP header that cannot be read or is inconsistent (RECORDS.md).
    Malformed(Malformed),
}

/// Which rule of RECORDS.md made a packet malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Frame shorter than its link header or a VLAN tag.
    ShortLink,
    /// IP version does not match the EtherType / link type.
    Version,
    /// IPv4 header shorter than 20 bytes or IHL < 5, or options past the data.
    Ipv4Header,
    /// IPv4 Total Length non-zero and below the header, or beyond the wire.
    Ipv4Length,
    /// IPv6 header shorter than 40 bytes.
    Ipv6Header,
    /// 40 + Payload Length (or jumbo length) beyond the wire.
    Ipv6Length,
    /// Extension-header chain longer than 8, or past the captured bytes or
    /// the packet's own length.
    Ipv6ExtChain,
}

/// Parses one frame. `frame` is the captured bytes; `wire_len` is the frame's
/// original length on the wire (pcap `orig_len`; for DPDK the packet length).
/// On success `out` is fully overwritten.
pub fn parse(
    link: LinkType,
    frame: &[u8],
    wire_len: u32,
    out: &mut PacketMeta,
) -> Result<(), ParseError> {
    let _ = (link, frame, wire_len, out);
    Err(ParseError::NotIp)
}
