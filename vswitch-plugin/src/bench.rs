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
use crate::wire::{parse, LinkType, PacketMeta};
use crate::worker::{AcceptAll, Handoff, Seen, Worker, WORKER_BURST};
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

/// Writes flow `id`'s addresses and ports into the frame (IPv6 for one flow in three).
#[inline(always)]
fn write_flow(buf: &mut [u8], id: u64, v4: &[u8], v6: &[u8]) -> usize {
    let eni = (id % ENIS) as u8 + 1;
    if id.is_multiple_of(3) {
        buf[..v6.len()].copy_from_slice(v6);
        buf[11] = eni;
        buf[53] = eni; // src fd00::X
        buf[46..52].copy_from_slice(&(id as u32 as u64).to_be_bytes()[2..]);
        buf[54..58].copy_from_slice(&(id as u32).to_be_bytes());
        buf[62..64].copy_from_slice(&((id >> 32) as u16 ^ 0x9c40).to_be_bytes());
        v6.len()
    } else {
        buf[..v4.len()].copy_from_slice(v4);
        buf[11] = eni;
        buf[29] = eni;
        buf[30..34].copy_from_slice(&((id as u32) | 0x8000_0000).to_be_bytes());
        buf[34..36].copy_from_slice(&((id >> 32) as u16 ^ 0x9c40).to_be_bytes());
        v4.len()
    }
}

fn bench_config() -> exporter::config::Config {
    let enis: Vec<String> = (1..=ENIS)
        .map(|i| {
            format!(
                r#"{{"eni_id":"eni-{i}","mac":"02:00:00:00:00:{i:02x}","ips":["10.0.0.{i}","fd00::{i:x}"],
                "instance_type":"ecs.g7.large","vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1"}}"#
            )
        })
        .collect();
    let text = format!(
        r#"{{"host":"bench","enis":[{}],"vswitches":[{{"vswitch_id":"vsw-1","vpc_id":"vpc-1"}}],
        "security_groups":[],"network_acls":[],"flow_logs":[]}}"#,
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

/// Runs the datapath benchmark at `flows` concurrent flows for `packets` packets.
pub fn datapath(flows: u64, packets: u64) -> DatapathFigures {
    let flows = flows.max(1);
    let cfg = bench_config();
    let attribution = Attribution::from_config(&cfg);
    // Half-full at most: linear probing over PROBE slots stays short.
    let slots = (flows as usize * 2).max(PROBE).next_power_of_two();
    let pool = (0..2)
        .map(|_| Box::new(FlowTable::new(slots, cfg.enis.len())))
        .collect();
    let (handoff, active) = Handoff::new(pool, 1 << 20);
    let mut worker = Worker::new(active, handoff.clone(), 600, cfg.enis.len(), AcceptAll);
    let (v4, v6) = (template(false), template(true));
    let mut ring = vec![0u8; RING * STRIDE];
    let mut lens = [0usize; RING];
    let mut burst = [Seen::default(); WORKER_BURST];
    let mut meta = PacketMeta::default();

    // Frame writing alone.
    let mut rng = Rng(42);
    let t0 = Instant::now();
    let mut sink = 0u64;
    for p in 0..packets {
        let slot = (p as usize) % RING;
        let id = rng.next() % flows;
        lens[slot] = write_flow(&mut ring[slot * STRIDE..(slot + 1) * STRIDE], id, &v4, &v6);
        sink = sink.wrapping_add(u64::from(ring[slot * STRIDE + 30]));
    }
    std::hint::black_box(sink);
    let gen_ns = t0.elapsed().as_secs_f64() * 1e9 / packets as f64;

    // Warm the table with every flow once, then measure.
    let run = |worker: &mut Worker<AcceptAll>,
               rng: &mut Rng,
               n: u64,
               ring: &mut [u8],
               lens: &mut [usize; RING],
               burst: &mut [Seen; WORKER_BURST],
               meta: &mut PacketMeta,
               seq: bool| {
        let mut p = 0u64;
        while p < n {
            let k = WORKER_BURST.min((n - p) as usize);
            for (j, seen) in burst.iter_mut().take(k).enumerate() {
                let slot = ((p as usize) + j) % RING;
                let id = if seq {
                    p + j as u64
                } else {
                    rng.next() % flows
                };
                let buf = &mut ring[slot * STRIDE..(slot + 1) * STRIDE];
                lens[slot] = write_flow(buf, id, &v4, &v6);
                let frame = &buf[..lens[slot]];
                if parse(LinkType::Ethernet, frame, frame.len() as u32, meta).is_ok() {
                    let (out_eni, in_eni) = attribution.attribute(true, meta);
                    *seen = Seen {
                        meta: *meta,
                        secs: 1_800_000_000,
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
    run(
        &mut worker,
        &mut rng,
        flows,
        &mut ring,
        &mut lens,
        &mut burst,
        &mut meta,
        true,
    );
    let t1 = Instant::now();
    run(
        &mut worker,
        &mut rng,
        packets,
        &mut ring,
        &mut lens,
        &mut burst,
        &mut meta,
        false,
    );
    let secs = t1.elapsed().as_secs_f64();
    let mpps = packets as f64 / secs / 1e6;
    let mem = memory_limit(slots, packets.max(1 << 24));
    let table_bytes = (slots * std::mem::size_of::<crate::flow::FlowEntry>()) as f64;
    DatapathFigures {
        flows,
        packets,
        mpps,
        ns_per_packet: secs * 1e9 / packets as f64,
        ns_per_packet_frame_writing: gen_ns,
        table_slots: slots as u64,
        entry_bytes: std::mem::size_of::<crate::flow::FlowEntry>() as u64,
        table_bytes_per_flow: table_bytes / flows as f64,
        evictions: worker.counters.evictions,
        memory_limit_mops: mem,
        fraction_of_memory_limit: mpps / mem,
    }
}
