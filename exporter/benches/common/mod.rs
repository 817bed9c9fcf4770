//! What the sink benchmarks share: one 1M-record window (mostly IPv4
//! TCP/UDP, some IPv6, ICMP/ICMPv6, a few NODATA; 200 ENIs), generated the
//! same way for each, and the median.

#![allow(dead_code)]

use exporter::record::{Action, Direction, LogStatus, Record, VERSION};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const RECORDS: usize = 1_000_000;
pub const WINDOW: u64 = 1_764_248_400;
pub const INTERVAL: u64 = 600;
pub const ENIS: u32 = 200;

/// splitmix64: a fixed, dependency-free sequence.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One window of one flow log over `ENIS` ENIs in one VPC.
pub fn window() -> Vec<Record> {
    let mut rng = Rng(42);
    let services = [443u16, 80, 53, 22, 3306, 6379, 8080, 123, 5432, 9092];
    let flags = [0x1bu8, 0x1b, 0x1b, 0x13, 0x12, 0x02, 0x18, 0x19, 0x04, 0x14];
    let mut out = Vec::with_capacity(RECORDS);
    let base = |eni: u32| Record {
        version: VERSION,
        account_id: "1234567890".into(),
        vpc_id: "vpc-2ze0example".into(),
        vswitch_id: format!("vsw-2ze{:04}", eni % 8),
        vm_id: Some(format!("i-2ze{eni:06}")),
        eni_id: format!("eni-2ze{eni:06}"),
        srcaddr: None,
        dstaddr: None,
        srcport: None,
        dstport: None,
        protocol: None,
        direction: None,
        packets: 0,
        bytes: 0,
        start: WINDOW,
        end: WINDOW + INTERVAL - 1,
        tcp_flags: 0,
        log_status: LogStatus::NoData,
        action: None,
        flow_log_id: "fl-2ze0example".into(),
        window_start: WINDOW,
    };
    while out.len() < RECORDS {
        let eni = rng.below(u64::from(ENIS)) as u32;
        let kind = rng.below(1000);
        if kind < 5 {
            out.push(base(eni)); // NODATA (0.5 %)
            continue;
        }
        let v6 = (5..85).contains(&kind); // 8 % IPv6
        let (own, peer): (IpAddr, IpAddr) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(0x2408, 0x4000, 0x1f, eni as u16, 0, 0, 0, 5)),
                IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    rng.below(65536) as u16,
                    0,
                    0,
                    0,
                    0,
                    rng.below(65536) as u16,
                )),
            )
        } else {
            let peer = if rng.below(3) == 0 {
                Ipv4Addr::from(0x0a00_0000 | rng.below(1 << 16) as u32) // east-west
            } else {
                Ipv4Addr::from(rng.next() as u32 | 0x0100_0000) // Internet
            };
            (
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (eni << 8) | 5)),
                IpAddr::V4(peer),
            )
        };
        let r = rng.below(100);
        // 75 % TCP, 20 % UDP, 5 % ICMP(v6).
        let (protocol, sport, dport, tcp_flags) = if r < 75 {
            let f = flags[rng.below(flags.len() as u64) as usize];
            (
                6u8,
                32_768 + rng.below(28_000) as u16,
                services[rng.below(services.len() as u64) as usize],
                f,
            )
        } else if r < 95 {
            (
                17,
                32_768 + rng.below(28_000) as u16,
                services[rng.below(3) as usize + 1],
                0,
            )
        } else {
            let icmp = if rng.below(4) == 0 {
                3 * 256 + 3
            } else {
                8 * 256
            };
            (if v6 { 58 } else { 1 }, 0, icmp, 0)
        };
        let outbound = rng.below(2) == 0;
        let packets = 1 + rng.below(64) * rng.below(64);
        let start = WINDOW + rng.below(INTERVAL);
        let (srcaddr, dstaddr, srcport, dstport) = if outbound {
            (own, peer, sport, dport)
        } else {
            (peer, own, dport, sport)
        };
        out.push(Record {
            srcaddr: Some(srcaddr),
            dstaddr: Some(dstaddr),
            srcport: Some(srcport),
            dstport: Some(dstport),
            protocol: Some(protocol),
            direction: Some(if outbound {
                Direction::Out
            } else {
                Direction::In
            }),
            packets,
            bytes: packets * (40 + rng.below(1460)),
            start,
            end: start + rng.below(WINDOW + INTERVAL - start),
            tcp_flags,
            log_status: LogStatus::Ok,
            action: Some(if rng.below(50) == 0 {
                Action::Reject
            } else {
                Action::Accept
            }),
            ..base(eni)
        });
    }
    out
}

/// The median of some timings.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
