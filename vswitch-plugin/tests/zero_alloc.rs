//! Proves that the steady-state per-packet path allocates nothing: parse,
//! attribution, verdict, flow-table update and slice rotation, measured with
//! a counting global allocator on the worker's thread.

use flowlog::attrib::Attribution;
use flowlog::flow::FlowTable;
use flowlog::wire::{parse, LinkType, PacketMeta};
use flowlog::worker::{AcceptAll, Handoff, Seen, Worker, WORKER_BURST};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; we only
// count calls made while the current thread is measuring.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from System.alloc with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn frame(i: u32, v6: bool) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if v6 {
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
        f.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend([0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0]);
        f.extend(i.to_be_bytes());
    } else {
        f.extend([
            0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1,
        ]);
        f.extend(i.to_be_bytes());
    }
    f.extend((i as u16).to_be_bytes());
    f.extend([0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x10, 0, 0, 0, 0, 0, 0]);
    f
}

#[test]
fn steady_state_allocates_nothing() {
    let cfg = exporter::config::from_json(
        r#"{"host":"h","enis":[{"eni_id":"eni-1","mac":"02:00:00:00:00:01","ips":[],
            "instance_type":"ecs.g7.large","vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1", "vm_id": null, "port": null}],
            "vswitches":[{"vswitch_id":"vsw-1","vpc_id":"vpc-1"}],"security_groups":[],
            "network_acls":[],"flow_logs":[]}"#,
        "test",
    )
    .expect("config");
    let attribution = Attribution::from_config(&cfg);
    let frames: Vec<Vec<u8>> = (0..4096).map(|i| frame(i, i % 3 == 0)).collect();
    let pool = (0..3)
        .map(|_| Box::new(FlowTable::new(1 << 12, 4)))
        .collect();
    let (handoff, active) = Handoff::new(pool, 1024);
    let mut worker = Worker::new(active, handoff.clone(), 60, 4, AcceptAll);
    let mut burst = [Seen::default(); WORKER_BURST];
    let mut meta = PacketMeta::default();

    let mut run = |rounds: u64, base_secs: u64| {
        for r in 0..rounds {
            for chunk in frames.chunks(WORKER_BURST) {
                for (j, f) in chunk.iter().enumerate() {
                    parse(LinkType::Ethernet, f, f.len() as u32, &mut meta).expect("valid frame");
                    let (out_eni, in_eni) = attribution.attribute(true, &meta);
                    burst[j] = Seen {
                        meta,
                        secs: base_secs + r * 30,
                        ns: (base_secs + r * 30) * 1_000_000_000,
                        out_eni,
                        in_eni,
                        host_verdict: None,
                    };
                }
                worker.process(&burst[..chunk.len()]);
            }
            // The exporter's part, done here off the measured thread's count:
            // retired tables come back cleared.
            MEASURING.with(|m| m.set(false));
            while let Some(mut t) = handoff.retired.pop() {
                t.drain(|_| {}, |_, _| {});
                let _ = handoff.free.push(t);
            }
            while handoff.side.pop().is_some() {}
            MEASURING.with(|m| m.set(true));
        }
    };
    run(4, 1_000_000); // warm-up: first touches, first rotations
    let before = ALLOCS.load(Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    run(20, 2_000_000);
    MEASURING.with(|m| m.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(
        worker.counters.rotations >= 10,
        "the measured run crossed slice boundaries"
    );
    assert!(worker.counters.observations >= 20 * 4096);
    assert_eq!(allocs, 0, "allocations on the per-packet path");
}
