//! Attribution: which ENI sent a packet (`out`) and which it is addressed to
//! (`in`), by Ethernet address, or by IP address for captures without one
//! (RECORDS.md, "Where a packet is seen").

use crate::wire::PacketMeta;
use crate::worker::NO_ENI;
use exporter::config::Config;
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// Lookup tables from the configuration's ENIs. Built off the datapath;
/// lookups do not allocate.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    macs: FxHashMap<[u8; 6], u16>,
    v4: FxHashMap<[u8; 4], u16>,
    v6: FxHashMap<[u8; 16], u16>,
}

impl Attribution {
    /// From every ENI of `c`, by index.
    pub fn from_config(c: &Config) -> Attribution {
        let mut a = Attribution::default();
        for (i, e) in c.enis.iter().enumerate() {
            let i = i as u16;
            a.macs.insert(e.mac.0, i);
            for ip in &e.ips {
                match ip {
                    IpAddr::V4(v) => a.v4.insert(v.octets(), i),
                    IpAddr::V6(v) => a.v6.insert(v.octets(), i),
                };
            }
        }
        a
    }

    /// `(out ENI, in ENI)` of a parsed packet, [`NO_ENI`] where none.
    /// With Ethernet addresses: source MAC means `out`, destination MAC `in`
    /// (never for a broadcast or multicast destination). Without: the same
    /// by IP address.
    #[inline]
    pub fn attribute(&self, has_mac: bool, m: &PacketMeta) -> (u16, u16) {
        if has_mac {
            let out = self.macs.get(&m.src_mac).copied().unwrap_or(NO_ENI);
            let inn = if m.dst_mac[0] & 1 != 0 {
                NO_ENI
            } else {
                self.macs.get(&m.dst_mac).copied().unwrap_or(NO_ENI)
            };
            (out, inn)
        } else if m.v6 {
            (
                self.v6.get(&m.src).copied().unwrap_or(NO_ENI),
                self.v6.get(&m.dst).copied().unwrap_or(NO_ENI),
            )
        } else {
            let four = |b: &[u8; 16]| [b[0], b[1], b[2], b[3]];
            (
                self.v4.get(&four(&m.src)).copied().unwrap_or(NO_ENI),
                self.v4.get(&four(&m.dst)).copied().unwrap_or(NO_ENI),
            )
        }
    }
}

/// A hash of the connection that is the same in both directions, so both
/// directions of a connection meet on one worker (and one connection-table
/// share): each endpoint (address, port) is hashed alone and the two are
/// combined with XOR, which is symmetric. ICMP and ICMPv6 are hashed by
/// their addresses only, as CONFIG.md keys their connections.
#[inline]
pub fn symmetric_hash(m: &PacketMeta) -> u64 {
    #[inline(always)]
    fn endpoint(a: &[u8; 16], port: u16) -> u64 {
        let lo = u64::from_le_bytes(a[..8].try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(a[8..].try_into().expect("8 bytes"));
        let x = (lo ^ hi.rotate_left(29) ^ u64::from(port)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 31)
    }
    let icmp = m.protocol == 1 || m.protocol == 58;
    let (sp, dp) = if icmp {
        (0, 0)
    } else {
        (m.src_port, m.dst_port)
    };
    let h = endpoint(&m.src, sp) ^ endpoint(&m.dst, dp) ^ u64::from(m.protocol);
    let h = h.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_both_ways() {
        let mut m = PacketMeta {
            protocol: 6,
            src_port: 40000,
            dst_port: 443,
            ..PacketMeta::default()
        };
        m.src[..4].copy_from_slice(&[10, 0, 0, 1]);
        m.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut r = m;
        std::mem::swap(&mut r.src, &mut r.dst);
        std::mem::swap(&mut r.src_port, &mut r.dst_port);
        assert_eq!(symmetric_hash(&m), symmetric_hash(&r));
        let mut other = m;
        other.dst_port = 444;
        assert_ne!(symmetric_hash(&m), symmetric_hash(&other));
        // ICMP echo request and reply differ in type but meet.
        let mut q = m;
        q.protocol = 1;
        q.src_port = 0;
        q.dst_port = 8 << 8;
        let mut a = q;
        std::mem::swap(&mut a.src, &mut a.dst);
        a.dst_port = 0;
        assert_eq!(symmetric_hash(&q), symmetric_hash(&a));
    }
}
