//! `flowlogd bench datapath`: the per-core datapath rate (parse, attribution,
//! verdict, flow-table update) at a given number of concurrent flows, with
//! this machine's memory limit for the same table size measured in the same
//! run, so the two can be compared.
//!
//! Packets are written into a small ring of frames just before they are
//! processed, as a NIC's DMA leaves them in the cache; the flow of each
//! packet is drawn at random among `flows`, the worst case for the table.
//! The cost of writing the frames is measured alone and reported too.

use crate::attrib::Attribution;
use crate::flow::{FlowTable, PROBE};
use crate::policy::{CompiledPolicy, Policy};
use crate::wire::{parse, LinkType, PacketMeta};
use crate::worker::{AcceptAll, Handoff, Seen, Verdicts, Worker, WORKER_BURST};
use exporter::config::Config;
use std::sync::Arc;
use std::time::Instant;

/// One figure of the datapath benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DatapathFigures {
    /// Concurrent flows.
    pub flows: u64,
    /// Packets processed.
    pub packets: u64,
    /// Million packets per second on one core (frame writing included).
    pub mpps: f64,
    /// Nanoseconds per packet.
    pub ns_per_packet: f64,
    /// Nanoseconds per packet spent writing the frames alone.
    pub ns_per_packet_frame_writing: f64,
    /// Flow-table slots.
    pub table_slots: u64,
    /// Bytes of one flow entry.
    pub entry_bytes: u64,
    /// Table bytes divided by concurrent flows.
    pub table_bytes_per_flow: f64,
    /// Evictions (flows that did not fit their probe window).
    pub evictions: u64,
    /// Random 64-byte read-modify-writes per second (millions) over a table
    /// of the same size, bursts of 32 with prefetch: the memory limit.
    pub memory_limit_mops: f64,
    /// `mpps / memory_limit_mops`.
    pub fraction_of_memory_limit: f64,
}

struct Rng(u64);

impl Rng {
    #[inline(always)]
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const RING: usize = 1024;
const STRIDE: usize = 128;
const ENIS: u64 = 8;

/// Frame templates: IPv4/TCP and IPv6/TCP from ENI MAC 02:00:00:00:00:0X to a gateway.
fn template(v6: bool) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01];
    if v6 {
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        f.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    } else {
        f.extend([0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend([10, 0, 0, 1, 198, 51, 100, 1]);
    }
    f.extend([
        0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f
}

/// Writes flow `id`'s addresses and ports into the frame (IPv6 for one flow
/// in three). Outbound: from ENI `id % 8` to the Internet. Inbound: from the
/// Internet to ENI `id % 8`, to destination port `id % 65536` (a scan when
/// every `id` is new).
#[inline(always)]
fn write_flow(buf: &mut [u8], id: u64, v4: &[u8], v6: &[u8], inbound: bool) -> usize {
    let eni = (id % ENIS) as u8 + 1;
    let len = if id.is_multiple_of(3) {
        buf[..v6.len()].copy_from_slice(v6);
        buf[11] = eni;
        buf[37] = eni; // src fd00::X
        buf[46..52].copy_from_slice(&(id as u32 as u64).to_be_bytes()[2..]);
        buf[54..56].copy_from_slice(&((id >> 32) as u16 ^ 0x9c40).to_be_bytes());
        buf[56..58].copy_from_slice(&(id as u16).to_be_bytes());
        if inbound {
            // swap addresses and ports
            for i in 0..16 {
                buf.swap(22 + i, 38 + i);
            }
            buf.swap(54, 56);
            buf.swap(55, 57);
        }
        v6.len()
    } else {
        buf[..v4.len()].copy_from_slice(v4);
        buf[11] = eni;
        buf[29] = eni;
        buf[30..34].copy_from_slice(&((id as u32) | 0x8000_0000).to_be_bytes());
        buf[34..36].copy_from_slice(&((id >> 32) as u16 ^ 0x9c40).to_be_bytes());
        buf[36..38].copy_from_slice(&(id as u16).to_be_bytes());
        if inbound {
            for i in 0..4 {
                buf.swap(26 + i, 30 + i);
            }
            buf.swap(34, 36);
            buf.swap(35, 37);
        }
        v4.len()
    };
    if inbound {
        for i in 0..6 {
            buf.swap(i, 6 + i);
        }
    }
    len
}

/// The benchmark host: 8 ENIs. With `rules: Some(n)` every ENI has one
/// security group of `n` random rules (ingress rules of every kind, egress
/// rules that only accept), else no security group (no policy).
fn bench_config(rules: Option<usize>) -> exporter::config::Config {
    let sg = if rules.is_some() {
        r#""security_group_ids":["sg-bench"],"#
    } else {
        ""
    };
    let enis: Vec<String> = (1..=ENIS)
        .map(|i| {
            format!(
                r#"{{"eni_id":"eni-{i}","mac":"02:00:00:00:00:{i:02x}","ips":["10.0.0.{i}","fd00::{i:x}"],{sg}
                "instance_type":"ecs.g7.large","vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1", "vm_id": null, "port": null}}"#
            )
        })
        .collect();
    let mut rng = Rng(0x5eed);
    let rule_json: Vec<String> = (0..rules.unwrap_or(0))
        .map(|i| {
            let r = rng.next();
            let proto = ["tcp", "udp", "icmp", "all"][(r % 4) as usize];
            let lo = (r >> 8) % 60000 + 1;
            let hi = lo + (r >> 24) % 2000;
            let ports = if proto == "tcp" || proto == "udp" { format!("{lo}/{hi}") } else { "-1/-1".into() };
            let v6 = (r >> 40).is_multiple_of(3);
            let cidr = if v6 {
                format!("fd{:02x}:{:x}::/{}", (r >> 44) % 256, (r >> 52) % 65536, 16 + (r >> 50) % 48)
            } else {
                format!("10.{}.{}.0/{}", (r >> 44) % 256, (r >> 52) % 256, 8 + (r >> 50) % 17)
            };
            let (dir, policy) = if i % 2 == 0 {
                ("ingress", if (r >> 60).is_multiple_of(2) { "accept" } else { "drop" })
            } else {
                ("egress", "accept")
            };
            format!(
                r#"{{"direction":"{dir}","policy":"{policy}","priority":{},"ip_protocol":"{proto}","port_range":"{ports}","cidr":"{cidr}"}}"#,
                1 + (r >> 33) % 100
            )
        })
        .collect();
    let groups = if rules.is_some() {
        format!(
            r#"[{{"security_group_id":"sg-bench","rules":[{}]}}]"#,
            rule_json.join(",")
        )
    } else {
        "[]".into()
    };
    let text = format!(
        r#"{{"host":"bench","enis":[{}],"vswitches":[{{"vswitch_id":"vsw-1","vpc_id":"vpc-1"}}],
        "security_groups":{groups},"network_acls":[],"flow_logs":[]}}"#,
        enis.join(",")
    );
    exporter::config::from_json(&text, "bench").expect("bench configuration is valid")
}

/// Random 64-byte read-modify-writes per second (millions) over `slots`
/// cache lines, in bursts of 32 with prefetch.
pub fn memory_limit(slots: usize, ops: u64) -> f64 {
    let mut t = crate::mem::HugeSlice::<crate::mem::CacheLine>::zeroed(slots);
    for (i, l) in t.iter_mut().enumerate() {
        l.0[0] = i as u64;
    }
    let mask = slots - 1;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut idx = [0usize; 32];
    let start = Instant::now();
    let mut done = 0;
    while done < ops {
        for i in idx.iter_mut() {
            *i = rng.next() as usize & mask;
            crate::mem::prefetch(&t[*i]);
        }
        for &i in &idx {
            let l = &mut t[i];
            l.0[0] = l.0[0].wrapping_add(1);
            l.0[1] ^= l.0[0];
        }
        done += 32;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(&t);
    done as f64 / secs / 1e6
}

/// What one timed run measured.
struct Run {
    mpps: f64,
    secs: f64,
    evictions: u64,
    rejected: u64,
    slots: usize,
}

/// Drives `packets` packets through parse, attribution and a worker with
/// policy `policy`, after a warm-up pass over every flow once. `unique`: a
/// new flow id for every packet (a scan) instead of ids drawn among `flows`.
fn drive<P: Verdicts>(
    cfg: &Config,
    policy: P,
    flows: u64,
    packets: u64,
    inbound: bool,
    unique: bool,
) -> Run {
    let attribution = Attribution::from_config(cfg);
    // Half-full at most: linear probing over PROBE slots stays short.
    let slots = (flows as usize * 2).max(PROBE).next_power_of_two();
    let pool = (0..2)
        .map(|_| Box::new(FlowTable::new(slots, cfg.enis.len())))
        .collect();
    let (handoff, active) = Handoff::new(pool, 1 << 20);
    let mut worker = Worker::new(active, handoff.clone(), 600, cfg.enis.len(), policy);
    let (v4, v6) = (template(false), template(true));
    let mut ring = vec![0u8; RING * STRIDE];
    let mut burst = [Seen::default(); WORKER_BURST];
    let mut meta = PacketMeta::default();
    let mut rng = Rng(42);
    let mut next_id = flows;
    let mut run = |worker: &mut Worker<P>, n: u64, warm: bool| {
        let mut p = 0u64;
        while p < n {
            let k = WORKER_BURST.min((n - p) as usize);
            for (j, seen) in burst.iter_mut().take(k).enumerate() {
                let slot = ((p as usize) + j) % RING;
                let id = if warm {
                    p + j as u64
                } else if unique {
                    next_id += 1;
                    next_id
                } else {
                    rng.next() % flows
                };
                let buf = &mut ring[slot * STRIDE..(slot + 1) * STRIDE];
                let len = write_flow(buf, id, &v4, &v6, inbound);
                let frame = &buf[..len];
                if parse(LinkType::Ethernet, frame, frame.len() as u32, &mut meta).is_ok() {
                    let (out_eni, in_eni) = attribution.attribute(true, &meta);
                    *seen = Seen {
                        meta,
                        secs: 1_800_000_000,
                        ns: 1_800_000_000 * 1_000_000_000,
                        out_eni,
                        in_eni,
                        host_verdict: None,
                    };
                }
            }
            worker.process(&burst[..k]);
            p += k as u64;
        }
    };
    run(&mut worker, flows, true);
    let t = Instant::now();
    run(&mut worker, packets, false);
    let secs = t.elapsed().as_secs_f64();
    Run {
        mpps: packets as f64 / secs / 1e6,
        secs,
        evictions: worker.counters.evictions,
        rejected: worker.counters.rejected,
        slots,
    }
}

/// Nanoseconds per packet spent writing the benchmark's frames alone.
fn frame_writing_ns(flows: u64, packets: u64) -> f64 {
    let (v4, v6) = (template(false), template(true));
    let mut ring = vec![0u8; RING * STRIDE];
    let mut rng = Rng(42);
    let t0 = Instant::now();
    let mut sink = 0u64;
    for p in 0..packets {
        let slot = (p as usize) % RING;
        let id = rng.next() % flows;
        write_flow(
            &mut ring[slot * STRIDE..(slot + 1) * STRIDE],
            id,
            &v4,
            &v6,
            false,
        );
        sink = sink.wrapping_add(u64::from(ring[slot * STRIDE + 30]));
    }
    std::hint::black_box(sink);
    t0.elapsed().as_secs_f64() * 1e9 / packets as f64
}

/// Runs the datapath benchmark at `flows` concurrent flows for `packets` packets.
pub fn datapath(flows: u64, packets: u64) -> DatapathFigures {
    let flows = flows.max(1);
    let cfg = bench_config(None);
    let gen_ns = frame_writing_ns(flows, packets);
    let r = drive(&cfg, AcceptAll, flows, packets, false, false);
    let mem = memory_limit(r.slots, packets.max(1 << 24));
    let table_bytes = (r.slots * std::mem::size_of::<crate::flow::FlowEntry>()) as f64;
    DatapathFigures {
        flows,
        packets,
        mpps: r.mpps,
        ns_per_packet: r.secs * 1e9 / packets as f64,
        ns_per_packet_frame_writing: gen_ns,
        table_slots: r.slots as u64,
        entry_bytes: std::mem::size_of::<crate::flow::FlowEntry>() as u64,
        table_bytes_per_flow: table_bytes / flows as f64,
        evictions: r.evictions,
        memory_limit_mops: mem,
        fraction_of_memory_limit: r.mpps / mem,
    }
}

/// One figure of the policy benchmark.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyFigures {
    /// Security-group rules per ENI.
    pub rules: usize,
    /// Concurrent flows of the established traffic.
    pub flows: u64,
    /// Rounds: each measures the four runs below one after the other, so a
    /// ratio compares runs of the same seconds (a shared VM's speed drifts
    /// from one second to the next); every figure is the median over rounds.
    pub rounds: usize,
    /// The same traffic with no policy, Mpps (same run).
    pub no_policy_mpps: f64,
    /// Established traffic (every packet of a tracked connection), Mpps.
    pub established_mpps: f64,
    /// A scan (every packet a new inbound connection), Mpps.
    pub scan_mpps: f64,
    /// `established_mpps / no_policy_mpps` of each round, median.
    pub established_ratio: f64,
    /// `scan_mpps / no_policy_mpps` of each round, median.
    pub scan_ratio: f64,
    /// The scan's traffic with no policy, Mpps (same run): every packet a
    /// new flow costs the flow table too, whatever the policy.
    pub no_policy_scan_mpps: f64,
    /// `scan_mpps / no_policy_scan_mpps` of each round, median: what the
    /// policy itself costs a scan.
    pub scan_ratio_same_traffic: f64,
    /// `established_mpps / no_policy_mpps` of every round, in order.
    pub established_ratios: Vec<f64>,
    /// `scan_mpps / no_policy_scan_mpps` of every round, in order.
    pub scan_ratios_same_traffic: Vec<f64>,
    /// Packets rejected during the scan's warm-up and timed run (by the
    /// default ingress drop or a drop rule), first round.
    pub scan_rejected: u64,
}

/// The median of `v` (the mean of the middle two for an even count; 0 for
/// none).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Each `a` over the `b` of the same round.
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

/// The policy benchmark: established traffic and a scan with `rules`
/// security-group rules per ENI, beside the no-policy rate of the same
/// traffic, in `rounds` rounds of `packets` packets per run.
pub fn policy(rules: usize, flows: u64, packets: u64, rounds: usize) -> PolicyFigures {
    let flows = flows.max(1);
    let rounds = rounds.max(1);
    let plain = bench_config(None);
    let with = bench_config(Some(rules));
    let compiled = Arc::new(CompiledPolicy::from_config(&with));
    let conns = (flows as usize * 2).max(1 << 16);
    let (mut base, mut est, mut scan, mut scan_base) = (vec![], vec![], vec![], vec![]);
    let mut scan_rejected = None;
    for _ in 0..rounds {
        base.push(drive(&plain, AcceptAll, flows, packets, false, false).mpps);
        let p = Policy::new(compiled.clone(), conns);
        est.push(drive(&with, p, flows, packets, false, false).mpps);
        let p = Policy::new(compiled.clone(), conns);
        let s = drive(&with, p, flows, packets, true, true);
        scan_rejected.get_or_insert(s.rejected);
        scan.push(s.mpps);
        scan_base.push(drive(&plain, AcceptAll, flows, packets, true, true).mpps);
    }
    let established_ratios = ratios(&est, &base);
    let scan_ratios_same_traffic = ratios(&scan, &scan_base);
    PolicyFigures {
        rules,
        flows,
        rounds,
        no_policy_mpps: median(&base),
        established_mpps: median(&est),
        scan_mpps: median(&scan),
        established_ratio: median(&established_ratios),
        scan_ratio: median(&ratios(&scan, &base)),
        no_policy_scan_mpps: median(&scan_base),
        scan_ratio_same_traffic: median(&scan_ratios_same_traffic),
        established_ratios,
        scan_ratios_same_traffic,
        scan_rejected: scan_rejected.unwrap_or(0),
    }
}

/// What reading a capture costs before any packet is processed: the floor
/// under `flowlogd replay` (`flowlogd bench read`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReadFigures {
    /// Frames in the capture.
    pub packets: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Opening and mapping it, every page of the page cache mapped at once
    /// (what `flowlogd replay` does first), milliseconds.
    pub map_ms: f64,
    /// One byte read per 4 KiB page of a fresh mapping, nothing else: the
    /// page-table and TLB cost that any reader of a mapped file pays.
    pub touch_pages_ms: f64,
    /// Every frame found, its first bytes read (what the parser reads
    /// first), nothing else: `flowlogd replay`'s reader alone.
    pub walk_ms: f64,
    /// Unmapping it, milliseconds.
    pub unmap_ms: f64,
    /// Map + walk + unmap: no replay of this file can take less.
    pub reader_total_ms: f64,
    /// The same frames per second through the reader alone, millions.
    pub reader_mpps: f64,
    /// `read(2)` of the whole file into one 1 MiB buffer (what `cat` does),
    /// milliseconds.
    pub copy_ms: f64,
}

/// Measures [`ReadFigures`] for the capture at `path` (page cache warmed
/// first by one copy).
pub fn read(path: &std::path::Path) -> Result<ReadFigures, crate::capture::CaptureError> {
    use crate::capture::Capture;
    use std::io::Read;
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let copy = || -> f64 {
        let t = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        if let Ok(mut f) = std::fs::File::open(path) {
            while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
        }
        ms(t)
    };
    copy();
    let copy_ms = copy();
    // Pages alone.
    let cap = Capture::open(path)?;
    let t = Instant::now();
    let mut sum = 0u64;
    for page in cap.as_bytes().chunks(4096) {
        sum = sum.wrapping_add(u64::from(page[0]));
    }
    let touch_pages_ms = ms(t);
    drop(cap);
    // The reader.
    let t = Instant::now();
    let cap = Capture::open(path)?;
    let map_ms = ms(t);
    let t = Instant::now();
    let mut packets = 0u64;
    for f in cap.frames() {
        let Ok(f) = f else { break };
        packets += 1;
        let d = f.data;
        sum = sum
            .wrapping_add(u64::from(d.first().copied().unwrap_or(0)))
            .wrapping_add(u64::from(d.get(23).copied().unwrap_or(0)));
    }
    let walk_ms = ms(t);
    let bytes = cap.len_bytes();
    let t = Instant::now();
    drop(cap);
    let unmap_ms = ms(t);
    std::hint::black_box(sum);
    let reader_total_ms = map_ms + walk_ms + unmap_ms;
    Ok(ReadFigures {
        packets,
        bytes,
        map_ms,
        touch_pages_ms,
        walk_ms,
        unmap_ms,
        reader_total_ms,
        reader_mpps: packets as f64 / reader_total_ms / 1e3,
        copy_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::{median, policy, ratios};

    #[test]
    fn medians_and_paired_ratios() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(ratios(&[9.0, 4.0], &[10.0, 5.0]), vec![0.9, 0.8]);
    }

    #[test]
    fn the_policy_bench_reports_every_round() {
        let f = policy(10, 1000, 20_000, 3);
        assert_eq!(f.rounds, 3);
        assert_eq!(f.established_ratios.len(), 3);
        assert_eq!(f.scan_ratios_same_traffic.len(), 3);
        assert_eq!(f.established_ratio, median(&f.established_ratios));
        // Every scan packet is a new inbound connection that the default
        // ingress drop or a drop rule rejects.
        assert!(f.scan_rejected > 0);
        assert!(f.no_policy_mpps > 0.0 && f.established_mpps > 0.0);
    }
}
