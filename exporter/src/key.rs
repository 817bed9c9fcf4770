//! The flow key of RECORDS.md, as the datapath's tables and the exporter's
//! merge hold it.

use crate::record::{Action, Direction};

/// `meta` bit: the addresses are IPv6.
pub const META_V6: u8 = 1;
/// `meta` bit: direction `out` (else `in`).
pub const META_OUT: u8 = 2;
/// `meta` bit: action `REJECT` (else `ACCEPT`).
pub const META_REJECT: u8 = 4;

/// RECORDS.md's key: `(eni-id, direction, action, srcaddr, dstaddr,
/// protocol, srcport, dstport)`, packed in 40 bytes. IPv4 addresses sit in
/// the first four bytes of the 16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C, align(8))]
pub struct FlowKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port (or ICMP type*256+code).
    pub dport: u16,
    /// ENI index in the configuration.
    pub eni: u16,
    /// IANA protocol.
    pub proto: u8,
    /// [`META_V6`] | [`META_OUT`] | [`META_REJECT`].
    pub meta: u8,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == 40);

impl FlowKey {
    /// The key as five little-endian words, for hashing and comparing.
    #[inline(always)]
    fn words(&self) -> [u64; 5] {
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        [
            w(&self.src[..8]),
            w(&self.src[8..]),
            w(&self.dst[..8]),
            w(&self.dst[8..]),
            u64::from(self.sport)
                | u64::from(self.dport) << 16
                | u64::from(self.eni) << 32
                | u64::from(self.proto) << 48
                | u64::from(self.meta) << 56,
        ]
    }

    /// A fast, well-mixed 64-bit hash of the key (multiply-fold per word).
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut h: u64 = 0x243F_6A88_85A3_08D3;
        for w in self.words() {
            let m = u128::from(h ^ w) * u128::from(K);
            h = (m as u64) ^ ((m >> 64) as u64);
        }
        h
    }

    /// Direction of the key.
    pub fn direction(&self) -> Direction {
        if self.meta & META_OUT != 0 {
            Direction::Out
        } else {
            Direction::In
        }
    }

    /// Verdict of the key.
    pub fn action(&self) -> Action {
        if self.meta & META_REJECT != 0 {
            Action::Reject
        } else {
            Action::Accept
        }
    }

    /// Source and destination as `IpAddr`.
    pub fn addrs(&self) -> (std::net::IpAddr, std::net::IpAddr) {
        fn ip(b: &[u8; 16], v6: bool) -> std::net::IpAddr {
            if v6 {
                std::net::Ipv6Addr::from(*b).into()
            } else {
                std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
            }
        }
        let v6 = self.meta & META_V6 != 0;
        (ip(&self.src, v6), ip(&self.dst, v6))
    }
}
