//! Attribution: which ENI sent a packet (`out`) and which it is addressed to
//! (`in`), by Ethernet address, or by IP address for captures without one
//! (RECORDS.md, "Where a packet is seen").

use crate::wire::PacketMeta;
use crate::worker::NO_ENI;
use exporter::config::Config;
use std::net::IpAddr;

/// A small open-addressing map from a 128-bit key to an ENI index, sized to
/// at most a quarter full so a lookup is one or two probes of a table that
/// stays in L1. (A general-purpose hash map costs several times more here,
/// measured with `flowlogd bench datapath`.)
#[derive(Clone, Debug)]
struct SmallMap {
    keys: Box<[u128]>,
    vals: Box<[u16]>,
    mask: usize,
}

impl SmallMap {
    fn new(entries: &[(u128, u16)]) -> SmallMap {
        let slots = (entries.len() * 4).max(16).next_power_of_two();
        let mut m = SmallMap {
            keys: vec![0; slots].into_boxed_slice(),
            vals: vec![NO_ENI; slots].into_boxed_slice(),
            mask: slots - 1,
        };
        for &(k, v) in entries {
            let mut i = Self::slot(k) & m.mask;
            while m.vals[i] != NO_ENI && m.keys[i] != k {
                i = (i + 1) & m.mask;
            }
            m.keys[i] = k;
            m.vals[i] = v;
        }
        m
    }

    #[inline(always)]
    fn slot(k: u128) -> usize {
        let x = (k as u64) ^ ((k >> 64) as u64).rotate_left(23);
        (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
    }

    #[inline(always)]
    fn get(&self, k: u128) -> u16 {
        let mut i = Self::slot(k) & self.mask;
        loop {
            let v = self.vals[i];
            if v == NO_ENI || self.keys[i] == k {
                return v;
            }
            i = (i + 1) & self.mask;
        }
    }
}

impl Default for SmallMap {
    fn default() -> Self {
        SmallMap::new(&[])
    }
}

#[inline(always)]
fn mac_key(m: &[u8; 6]) -> u128 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(m);
    u128::from(u64::from_le_bytes(b))
}

/// Lookup tables from the configuration's ENIs. Built off the datapath;
/// lookups do not allocate. IPv4 keys carry a marker bit so they never meet
/// an IPv6 key.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    macs: SmallMap,
    ips: SmallMap,
}

const V4_MARK: u128 = 1 << 127;

#[inline(always)]
fn ip_key(a: &[u8; 16], v6: bool) -> u128 {
    if v6 {
        u128::from_be_bytes(*a)
    } else {
        V4_MARK | u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
    }
}

impl Attribution {
    /// From every ENI of `c`, by index.
    pub fn from_config(c: &Config) -> Attribution {
        Self::from_config_except(c, &[])
    }

    /// From the ENIs of `c` whose `gone[index]` is not set (ENIs that left
    /// the host keep their index but are no longer recognised).
    pub fn from_config_except(c: &Config, gone: &[bool]) -> Attribution {
        let mut macs = Vec::new();
        let mut ips = Vec::new();
        for (i, e) in c.enis.iter().enumerate() {
            if gone.get(i).copied().unwrap_or(false) {
                continue;
            }
            let i = i as u16;
            macs.push((mac_key(&e.mac.0), i));
            for ip in &e.ips {
                ips.push(match ip {
                    IpAddr::V4(v) => (V4_MARK | u128::from(u32::from(*v)), i),
                    IpAddr::V6(v) => (u128::from(*v), i),
                });
            }
        }
        Attribution {
            macs: SmallMap::new(&macs),
            ips: SmallMap::new(&ips),
        }
    }

    /// The ENI whose MAC is `mac`, if any.
    #[inline]
    pub fn eni_of_mac(&self, mac: &[u8; 6]) -> Option<u16> {
        let e = self.macs.get(mac_key(mac));
        (e != NO_ENI).then_some(e)
    }

    /// `(out ENI, in ENI)` of a parsed packet, [`NO_ENI`] where none.
    /// With Ethernet addresses: source MAC means `out`, destination MAC `in`
    /// (never for a broadcast or multicast destination). Without: the same
    /// by IP address.
    #[inline]
    pub fn attribute(&self, has_mac: bool, m: &PacketMeta) -> (u16, u16) {
        if has_mac {
            let out = self.macs.get(mac_key(&m.src_mac));
            let inn = if m.dst_mac[0] & 1 != 0 {
                NO_ENI
            } else {
                self.macs.get(mac_key(&m.dst_mac))
            };
            (out, inn)
        } else {
            (
                self.ips.get(ip_key(&m.src, m.v6)),
                self.ips.get(ip_key(&m.dst, m.v6)),
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
    fn small_map_finds_every_key_and_nothing_else() {
        let entries: Vec<(u128, u16)> = (0..100u16)
            .map(|i| (u128::from(i) * 0x1_0000_0001 + 7, i))
            .collect();
        let m = SmallMap::new(&entries);
        for &(k, v) in &entries {
            assert_eq!(m.get(k), v);
        }
        assert_eq!(m.get(3), NO_ENI);
        assert_eq!(SmallMap::default().get(0), NO_ENI);
        // IPv4 10.0.0.1 and IPv6 ::a00:1 are different keys.
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut b = [0u8; 16];
        b[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_ne!(ip_key(&a, false), ip_key(&b, true));
    }

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
