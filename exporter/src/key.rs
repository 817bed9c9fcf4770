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
#[derive(Clone, Copy, Debug, Default, Eq, PartialOrd, Ord)]
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

/// A fast, well-mixed 64-bit hash of five words: two independent
/// multiply-folds over word pairs (they run in parallel), then one more over
/// their sum and the last word (wyhash's "mum" step). Shared by the flow key
/// and the datapath's connection key.
#[inline(always)]
pub fn hash_words([a, b, c, d, e]: [u64; 5]) -> u64 {
    #[inline(always)]
    fn mum(a: u64, b: u64) -> u64 {
        let m = u128::from(a) * u128::from(b);
        (m as u64) ^ ((m >> 64) as u64)
    }
    let x = mum(a ^ 0xA076_1D64_78BD_642F, b ^ 0xE703_7ED1_A0B4_28DB);
    let y = mum(c ^ 0x8EBC_6AF0_9C88_C6E3, d ^ 0x5899_65CC_7537_4CC3);
    mum(x ^ y ^ 0x1D8E_4E27_C47D_124F, e ^ 0x9E37_79B9_7F4A_7C15)
}

impl PartialEq for FlowKey {
    /// Word-wise: five 64-bit compares instead of byte-array compares.
    #[inline(always)]
    fn eq(&self, o: &FlowKey) -> bool {
        let (a, b) = (self.words(), o.words());
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl std::hash::Hash for FlowKey {
    /// The same words that `eq` compares.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.words().hash(h);
    }
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == 40);

impl FlowKey {
    /// The key as five little-endian words, for hashing and comparing:
    /// the two addresses as two words each, then ports, ENI, protocol and
    /// meta (the meta byte is the top byte of the last word).
    #[inline(always)]
    pub fn words(&self) -> [u64; 5] {
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

    /// A fast, well-mixed 64-bit hash of the key ([`hash_words`]).
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        hash_words(self.words())
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
