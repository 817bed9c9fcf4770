//! The per-core worker: takes packets already parsed and attributed to
//! ENIs, takes the policy verdict, and records them in its flow table. At
//! each slice boundary it hands the table to the exporter over an SPSC ring
//! and takes a cleared one from the return ring. Nothing here allocates,
//! locks or waits for the exporter: a missing free table or a full eviction
//! ring turns into counted, skipped packets (SKIPDATA).

use crate::flow::{key_of, FlowEntry, FlowKey, FlowTable, Insert, Judge, Sample};
use crate::policy::conn::{ConnDeadlines, OTHER_IDLE};
use crate::wire::PacketMeta;
use crossbeam::queue::ArrayQueue;
use exporter::record::{Action, Direction};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The longest slice a worker's table covers, seconds. A divisor of every
/// aggregation interval (60, 300, 600), and well under the shortest idle
/// timeout (180 s): a flow's remembered verdict is reused only within its
/// table, so its connection, touched by the flow's first packet there, is
/// still live (see [`crate::policy::conn::ConnDeadlines`]).
pub const MAX_SLICE_SECS: u64 = 60;

/// How many keys ahead the worker prefetches table buckets.
const PREFETCH_AHEAD: usize = 12;

/// No ENI (in [`Seen::out_eni`] / [`Seen::in_eni`]).
pub const NO_ENI: u16 = u16::MAX;

/// Packets a worker takes per call, and the most it hashes and prefetches
/// ahead.
pub const WORKER_BURST: usize = 64;

/// One packet, parsed and attributed: what a dispatcher (replay) or the RX
/// loop (DPDK) hands the worker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// The parsed packet.
    pub meta: PacketMeta,
    /// Packet time, Unix seconds (replay clock or wall clock).
    pub secs: u64,
    /// The same time in Unix nanoseconds (connection expiry is exact).
    pub ns: u64,
    /// The ENI that sent it (`out`), or [`NO_ENI`].
    pub out_eni: u16,
    /// The ENI it is addressed to (`in`), or [`NO_ENI`].
    pub in_eni: u16,
    /// A verdict the host vSwitch already took, if any (used as is).
    pub host_verdict: Option<Action>,
}

/// The policy seam: the security-group / network-ACL verdict for one packet
/// at one ENI. Per worker (it may keep connection state), so `&mut self`.
pub trait Verdicts: Send {
    /// The verdict for `m` at `eni` in direction `dir` at `now_ns` (Unix
    /// nanoseconds).
    fn judge(&mut self, eni: u16, dir: Direction, m: &PacketMeta, now_ns: u64) -> Action;

    /// [`Verdicts::judge`], and a hint the worker keeps in the flow's entry
    /// and hands to [`Verdicts::reuse`] for the flow's next packets:
    /// [`HINT_NONE`] (judge every packet; the default), [`HINT_STATELESS`]
    /// (an ACCEPT that depends on the flow key alone), or a value of the
    /// policy's own (a tracked connection).
    #[inline]
    fn judge_hinted(
        &mut self,
        eni: u16,
        dir: Direction,
        m: &PacketMeta,
        now_ns: u64,
    ) -> (Action, u32) {
        (self.judge(eni, dir, m, now_ns), HINT_NONE)
    }

    /// Whether a later packet of a flow whose last ACCEPTed packet was at
    /// `last_secs` (Unix seconds, in the same table and configuration) is
    /// accepted again without a judgement, as `judge` would accept it. The
    /// packet's time is kept in its flow's entry, which reaches the
    /// policy's state through [`Verdicts::conn_deadlines`] (the exporter,
    /// when it drains the table) or [`Verdicts::evicted`].
    /// `proto` is the flow's protocol; `secs`/`now_ns` the packet's time.
    #[inline]
    fn reuse(&mut self, hint: u32, _proto: u8, _last_secs: u64, _secs: u64, _now_ns: u64) -> bool {
        hint == HINT_STATELESS
    }

    /// Background work owed by a burst in which `reuse` let packets
    /// through (the policy's expiry sweep), done at the end of that burst.
    #[inline]
    fn housekeeping(&mut self, _now_ns: u64) {}

    /// Where the exporter writes back the times of a drained table's
    /// entries whose hint is a tracked connection (none without state).
    fn conn_deadlines(&self) -> Option<Arc<ConnDeadlines>> {
        None
    }

    /// An entry the worker evicted from its table, whose slice starts at
    /// Unix second `slice_start`: its times reach the policy's state now.
    #[inline]
    fn evicted(&mut self, _e: &FlowEntry, _slice_start: u64) {}
}

/// A hint: no verdict may be reused, every packet is judged.
pub const HINT_NONE: u32 = u32::MAX;

/// A hint: an ACCEPT that follows from the flow key alone (the same
/// addresses, ports, protocol, ENI and direction get it again), reusable
/// for as long as the flow's table and configuration last.
pub const HINT_STATELESS: u32 = u32::MAX - 1;

/// One observation as [`FlowTable::record`] sees the policy: a host's
/// verdict is used as is (and never reused), otherwise the policy's.
struct Packet<'a, P: Verdicts> {
    policy: &'a mut P,
    seen: &'a Seen,
    eni: u16,
    dir: Direction,
    proto: u8,
    reused: bool,
    /// The earliest judged packet time of the table (Unix ns).
    touch_min: &'a mut u64,
}

impl<P: Verdicts> Judge for Packet<'_, P> {
    #[inline(always)]
    fn reuse(&mut self, hint: u32, last_secs: u64) -> bool {
        let s = self.seen;
        self.reused = s.host_verdict.is_none()
            && self.policy.reuse(hint, self.proto, last_secs, s.secs, s.ns);
        self.reused
    }

    #[inline(never)]
    fn judge(&mut self) -> (Action, u32) {
        let s = self.seen;
        *self.touch_min = (*self.touch_min).min(s.ns);
        match s.host_verdict {
            Some(a) => (a, HINT_NONE),
            None => {
                let (a, hint) = self.policy.judge_hinted(self.eni, self.dir, &s.meta, s.ns);
                (a, if a == Action::Accept { hint } else { HINT_NONE })
            }
        }
    }
}

/// No policy: every packet is accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Verdicts for AcceptAll {
    #[inline]
    fn judge(&mut self, _: u16, _: Direction, _: &PacketMeta, _: u64) -> Action {
        Action::Accept
    }

    #[inline]
    fn judge_hinted(&mut self, _: u16, _: Direction, _: &PacketMeta, _: u64) -> (Action, u32) {
        (Action::Accept, HINT_STATELESS)
    }
}

/// Messages beside the tables, in order, to the exporter.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    /// A flow evicted from a full table; `slice` is its table's slice start.
    Evicted {
        /// Slice start, Unix seconds.
        slice: u64,
        /// Configuration generation it was recorded under.
        gen: u32,
        /// The entry.
        entry: FlowEntry,
    },
    /// Packets skipped while no table was free.
    Skipped {
        /// Slice start, Unix seconds.
        slice: u64,
        /// Configuration generation they were counted under.
        gen: u32,
        /// ENI index.
        eni: u16,
        /// Packets.
        packets: u64,
        /// IP-level bytes.
        bytes: u64,
    },
}

/// What a worker shares with the exporter. The rings are bounded and
/// allocated at start; each has exactly one producer and one consumer.
#[derive(Debug)]
pub struct Handoff {
    /// Retired tables, worker → exporter. Capacity = the pool size, so a
    /// push can never fail.
    pub retired: ArrayQueue<Box<FlowTable>>,
    /// Cleared tables, exporter → worker.
    pub free: ArrayQueue<Box<FlowTable>>,
    /// Evictions and skip reports, worker → exporter.
    pub side: ArrayQueue<Side>,
    /// Start (Unix seconds) of the slice the worker is in; everything before
    /// it has been pushed. `u64::MAX` once the worker has finished.
    pub watermark: AtomicU64,
    /// Set once the worker pushed its last table.
    pub done: AtomicBool,
    /// Tables the exporter returned so far (replay paces on it).
    pub returned: AtomicU64,
    /// Set when a thread on either side stopped by a panic: whoever waits
    /// on the other side gives up instead of waiting for ever.
    pub failed: AtomicBool,
    /// The worker's connection deadlines, when its policy keeps state: the
    /// exporter writes a drained table's times back there before it returns
    /// the table (see [`crate::policy::conn::ConnDeadlines`]).
    pub conn_deadlines: OnceLock<Arc<ConnDeadlines>>,
}

impl Handoff {
    /// Rings for a pool of `tables` tables and `side` side messages; all the
    /// tables but the active one start on the free ring.
    pub fn new(pool: Vec<Box<FlowTable>>, side: usize) -> (Arc<Handoff>, Box<FlowTable>) {
        assert!(pool.len() >= 2, "a worker needs at least two tables");
        let n = pool.len();
        let h = Handoff {
            retired: ArrayQueue::new(n),
            free: ArrayQueue::new(n),
            side: ArrayQueue::new(side.max(1)),
            watermark: AtomicU64::new(0),
            done: AtomicBool::new(false),
            returned: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            conn_deadlines: OnceLock::new(),
        };
        let mut it = pool.into_iter();
        let active = it.next().expect("two tables");
        for t in it {
            h.free.push(t).expect("room for the pool");
        }
        (Arc::new(h), active)
    }
}

/// Held by each thread of a replay or a run: if the thread ends by a
/// panic (a bug), every other one is told: `stop` is raised (workers stop
/// in order), each `Handoff` is marked failed and done (the exporter ends
/// with what it has, a dispatcher waiting on a ring gives up), so the
/// process fails with the panic's message instead of waiting for ever on a
/// thread that will never answer.
pub struct Tripwire<'a> {
    /// Every worker's handoff.
    pub handoffs: &'a [Arc<Handoff>],
    /// The flag that stops the workers.
    pub stop: &'a AtomicBool,
}

impl Drop for Tripwire<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop.store(true, Ordering::Release);
            for h in self.handoffs {
                h.failed.store(true, Ordering::Release);
                h.watermark.store(u64::MAX, Ordering::Release);
                h.done.store(true, Ordering::Release);
            }
        }
    }
}

/// Counters of one worker (written only by it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Packets handed to the worker.
    pub packets: u64,
    /// Observations recorded (a packet between two ENIs counts twice).
    pub observations: u64,
    /// Observations with a REJECT verdict.
    pub rejected: u64,
    /// Entries evicted to the exporter.
    pub evictions: u64,
    /// Observations skipped (in SKIPDATA).
    pub skipped: u64,
    /// Slice rotations.
    pub rotations: u64,
    /// Rotations that found no free table.
    pub no_free_table: u64,
    /// Highest number of flows a table held.
    pub high_water: u64,
    /// Retired tables the exporter had not written back by the time a
    /// packet could have needed their connection times (a stalled exporter;
    /// zero in a healthy run, and replay waits instead).
    pub late_writebacks: u64,
}

impl WorkerCounters {
    /// Adds another worker's counters (the high-water mark is the maximum).
    pub fn add(&mut self, c: &WorkerCounters) {
        self.packets += c.packets;
        self.observations += c.observations;
        self.rejected += c.rejected;
        self.evictions += c.evictions;
        self.skipped += c.skipped;
        self.rotations += c.rotations;
        self.no_free_table += c.no_free_table;
        self.high_water = self.high_water.max(c.high_water);
        self.late_writebacks += c.late_writebacks;
    }
}

/// One datapath core's state.
pub struct Worker<P: Verdicts> {
    table: Option<Box<FlowTable>>,
    handoff: Arc<Handoff>,
    slice_secs: u64,
    slice: u64,
    started: bool,
    gen: u32,
    /// Capacity of every table of its pool (they are made alike).
    table_capacity: usize,
    policy: P,
    // Skips while no table was free, per ENI, for the current slice.
    orphan_skips: Box<[(u64, u64)]>,
    // The slice the kept skip counts belong to (the first, if they span more).
    orphan_slice: Option<u64>,
    keys: [FlowKey; 2 * WORKER_BURST],
    hashes: [u64; 2 * WORKER_BURST],
    which: [u8; 2 * WORKER_BURST],
    verdicts: [Action; WORKER_BURST],
    burst_len: usize,
    /// Write-back of connection times: per table retired and not yet
    /// returned, in order, the earliest time (Unix ns) a packet recorded in
    /// it was judged at (`u64::MAX`: none, or given up on). Empty when the
    /// policy keeps no state.
    unreturned: VecDeque<u64>,
    /// Tables returned that the ring above has accounted for.
    returned_seen: u64,
    /// The earliest judged packet time of the active table.
    touch_min: u64,
    /// A packet at or after this time (Unix ns) could read a connection
    /// whose later times are still in an unreturned table.
    wb_guard: u64,
    /// Wait for that write-back (replay) instead of counting it late.
    wait_writeback: bool,
    /// Counters.
    pub counters: WorkerCounters,
}

impl<P: Verdicts> std::fmt::Debug for Worker<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("slice", &self.slice)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<P: Verdicts> Worker<P> {
    /// A worker rotating every `slice_secs` seconds, recording into `active`
    /// and exchanging tables over `handoff`; `enis` sizes the skip counters.
    pub fn new(
        active: Box<FlowTable>,
        handoff: Arc<Handoff>,
        slice_secs: u64,
        enis: usize,
        policy: P,
    ) -> Self {
        // Tables out at once: at most the pool, and one more while a
        // returned table's count is not yet visible (allocated now, never
        // grown; none when the policy keeps no state).
        let unreturned = match policy.conn_deadlines() {
            Some(d) => {
                let _ = handoff.conn_deadlines.set(d);
                VecDeque::with_capacity(handoff.retired.capacity() + 2)
            }
            None => VecDeque::new(),
        };
        Worker {
            table_capacity: active.capacity(),
            table: Some(active),
            handoff,
            slice_secs: slice_for(slice_secs),
            slice: 0,
            started: false,
            gen: 0,
            policy,
            orphan_skips: vec![(0, 0); enis.max(1)].into_boxed_slice(),
            orphan_slice: None,
            keys: [FlowKey::default(); 2 * WORKER_BURST],
            hashes: [0; 2 * WORKER_BURST],
            which: [0; 2 * WORKER_BURST],
            verdicts: [Action::Accept; WORKER_BURST],
            burst_len: 0,
            unreturned,
            returned_seen: 0,
            touch_min: u64::MAX,
            wb_guard: u64::MAX,
            wait_writeback: false,
            counters: WorkerCounters::default(),
        }
    }

    /// Whether to wait for the exporter's write-back of a retired table
    /// when a packet could need it (replay: the capture's clock runs ahead
    /// of the exporter), rather than count it in
    /// [`WorkerCounters::late_writebacks`] (a live datapath never waits).
    pub fn wait_for_writeback(&mut self, wait: bool) {
        self.wait_writeback = wait;
    }

    /// Hands the active table to the exporter (the ring's capacity is the
    /// pool size: this cannot fail; if it did, the table stays).
    fn retire(&mut self) {
        if let Some(t) = self.table.take() {
            self.counters.high_water = self.counters.high_water.max(t.len() as u64);
            let touched = std::mem::replace(&mut self.touch_min, u64::MAX);
            match self.handoff.retired.push(t) {
                Ok(()) => self.note_retired(touched),
                Err(t) => {
                    self.table = Some(t);
                    self.touch_min = touched;
                }
            }
        }
    }

    fn note_retired(&mut self, touched: u64) {
        if self.handoff.conn_deadlines.get().is_none() {
            return;
        }
        if self.unreturned.len() == self.unreturned.capacity() {
            self.sync_returned();
        }
        if self.unreturned.len() < self.unreturned.capacity() {
            self.unreturned.push_back(touched);
        }
        self.wb_guard = self.wb_guard.min(touched.saturating_add(OTHER_IDLE));
    }

    /// Drops the tables the exporter has returned (written back) from the
    /// ring and recomputes the guard.
    fn sync_returned(&mut self) {
        let returned = self.handoff.returned.load(Ordering::Acquire);
        while self.returned_seen < returned && self.unreturned.pop_front().is_some() {
            self.returned_seen += 1;
        }
        self.wb_guard = self
            .unreturned
            .iter()
            .min()
            .map_or(u64::MAX, |t| t.saturating_add(OTHER_IDLE));
    }

    /// A packet at `now` (Unix ns) has reached the guard: a connection
    /// touched in an unreturned table may now look expired while a later
    /// packet of it waits in that table. Waits for the exporter (replay),
    /// or counts the table late and goes on.
    #[cold]
    #[inline(never)]
    fn await_writeback(&mut self, now: u64) {
        loop {
            self.sync_returned();
            if now < self.wb_guard {
                return;
            }
            if self.wait_writeback && !self.handoff.failed.load(Ordering::Acquire) {
                std::thread::yield_now();
                continue;
            }
            for t in self.unreturned.iter_mut() {
                if t.saturating_add(OTHER_IDLE) <= now {
                    *t = u64::MAX;
                    self.counters.late_writebacks += 1;
                }
            }
        }
    }

    /// The policy (to inspect its counters).
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Moves the worker's clock to `secs`: at a slice boundary the table is
    /// retired to the exporter. Idle workers call this too, so windows close.
    /// Within the current slice (nearly every packet) it is one compare;
    /// the division and the rest are left out of line for a new slice.
    #[inline(always)]
    pub fn advance(&mut self, secs: u64) {
        if self.started && secs < self.slice + self.slice_secs {
            return;
        }
        self.start_or_rotate(secs);
    }

    #[inline(never)]
    fn start_or_rotate(&mut self, secs: u64) {
        let slice = secs - secs % self.slice_secs;
        if !self.started {
            self.started = true;
            self.slice = slice;
            if let Some(t) = self.table.as_mut() {
                t.reset(slice);
            }
            self.handoff.watermark.store(slice, Ordering::Release);
            return;
        }
        if slice > self.slice {
            self.rotate(slice);
        }
    }

    /// Hands the skip counts kept while no table was free to the exporter,
    /// for the slice they were counted in. `wait`: at the end, wait for room
    /// (nothing may be lost); otherwise a count that finds the side ring full
    /// is kept for the next rotation and still reported with its slice.
    fn flush_orphans(&mut self, wait: bool) {
        let slice = self.orphan_slice.unwrap_or(self.slice);
        let mut kept = false;
        for (eni, s) in self.orphan_skips.iter_mut().enumerate() {
            if s.0 > 0 {
                let mut msg = Side::Skipped {
                    slice,
                    gen: self.gen,
                    eni: eni as u16,
                    packets: s.0,
                    bytes: s.1,
                };
                loop {
                    match self.handoff.side.push(msg) {
                        Ok(()) => {
                            *s = (0, 0);
                            break;
                        }
                        Err(back) if wait => {
                            msg = back;
                            std::thread::yield_now();
                        }
                        Err(_) => {
                            kept = true;
                            break;
                        }
                    }
                }
            }
        }
        if !kept {
            self.orphan_slice = None;
        }
    }

    fn rotate(&mut self, slice: u64) {
        self.counters.rotations += 1;
        self.retire();
        self.flush_orphans(false);
        self.slice = slice;
        if self.table.is_none() {
            self.table = self.handoff.free.pop();
        }
        match self.table.as_mut() {
            Some(t) => {
                t.reset(slice);
                t.set_gen(self.gen);
            }
            None => self.counters.no_free_table += 1,
        }
        self.handoff.watermark.store(slice, Ordering::Release);
    }

    /// Puts configuration generation `gen` in force from the next packet:
    /// the table so far goes to the exporter (recorded under the previous
    /// generation), a fresh one continues the same slice, and `apply`
    /// changes the verdicts (e.g. new rules; tracked connections stay).
    /// The table is handed over even when `gen` is the one in force: the
    /// verdicts its flows remember were given under the old rules.
    pub fn reconfigure(&mut self, gen: u32, apply: impl FnOnce(&mut P)) {
        if gen == self.gen && self.table.as_ref().is_none_or(|t| t.is_empty()) {
            apply(&mut self.policy);
            return;
        }
        if self.started {
            self.retire();
            // Skips kept so far belong to the previous generation.
            self.flush_orphans(true);
        }
        self.gen = gen;
        if self.table.is_none() {
            self.table = self.handoff.free.pop();
        }
        match self.table.as_mut() {
            Some(t) => {
                if t.is_empty() {
                    t.reset(self.slice);
                }
                t.set_gen(gen);
            }
            None => self.counters.no_free_table += 1,
        }
        apply(&mut self.policy);
    }

    /// The configuration generation in force.
    pub fn gen(&self) -> u32 {
        self.gen
    }

    /// Capacity of its tables, in flows.
    pub fn table_capacity(&self) -> usize {
        self.table_capacity
    }

    /// Flows in the table now.
    pub fn table_len(&self) -> usize {
        self.table.as_ref().map_or(0, |t| t.len())
    }

    /// Takes a missing table back as soon as the exporter returns one.
    #[inline]
    fn ensure_table(&mut self) {
        if self.table.is_none() {
            if let Some(mut t) = self.handoff.free.pop() {
                self.flush_orphans(false);
                t.reset(self.slice);
                t.set_gen(self.gen);
                self.table = Some(t);
            }
        }
    }

    /// Records a burst of packets (at most [`WORKER_BURST`]). Hashes every
    /// key and prefetches its bucket before touching any entry.
    ///
    /// Each observation (a packet at the ENI that sent it, then at the ENI
    /// it is addressed to) is first looked up under its ACCEPT key: a flow
    /// the table already holds carries the hint its policy gave, and when
    /// [`Verdicts::reuse`] says it still holds, the packet is counted with
    /// no judgement (established traffic: one memory access per packet,
    /// the flow's). Otherwise the policy judges it and the entry is written
    /// with the verdict and the new hint. A REJECT key is placed by the hash
    /// of its ACCEPT twin, so both share one home bucket.
    pub fn process(&mut self, pkts: &[Seen]) {
        debug_assert!(pkts.len() <= WORKER_BURST);
        let pkts = &pkts[..pkts.len().min(WORKER_BURST)];
        self.ensure_table();
        self.burst_len = pkts.len();
        self.verdicts[..pkts.len()].fill(Action::Accept);
        // Pass 1: the ACCEPT keys of every observation, and their hashes.
        let mut n = 0;
        for (pi, s) in pkts.iter().enumerate() {
            debug_assert_eq!(s.secs, s.ns / 1_000_000_000);
            for (eni, dir) in [(s.out_eni, Direction::Out), (s.in_eni, Direction::In)] {
                if eni != NO_ENI {
                    self.keys[n] = key_of(&s.meta, eni, dir, Action::Accept);
                    self.which[n] = pi as u8;
                    n += 1;
                }
            }
        }
        for i in 0..n {
            self.hashes[i] = self.keys[i].hash();
        }

        // Pass 2: verdicts and the table, with the bucket PREFETCH_AHEAD keys
        // on already requested (a bounded distance: more outstanding misses
        // than the core's fill buffers only stall the prefetches themselves).
        if let Some(t) = self.table.as_ref() {
            for i in 0..n.min(PREFETCH_AHEAD) {
                t.prefetch(self.hashes[i]);
            }
        }
        self.counters.packets += pkts.len() as u64;
        let mut reused = false;
        let mut now_ns = 0;
        for i in 0..n {
            if let Some(t) = self.table.as_ref() {
                if i + PREFETCH_AHEAD < n {
                    t.prefetch(self.hashes[i + PREFETCH_AHEAD]);
                }
            }
            let pi = usize::from(self.which[i]);
            let s = &pkts[pi];
            // East-west: a packet the sender's egress rejected never reaches
            // the receiver, which records nothing.
            if self.verdicts[pi] == Action::Reject {
                continue;
            }
            self.advance(s.secs);
            now_ns = s.ns;
            // Per packet: a table retired by this very burst (a capture's
            // clock can jump minutes within one) may be the one due.
            if now_ns >= self.wb_guard {
                self.await_writeback(now_ns);
            }
            let key = self.keys[i];
            self.counters.observations += 1;
            let h = match self.table.as_ref() {
                Some(t) if t.slice_start() == self.slice => self.hashes[i],
                _ => key.hash(),
            };
            let Some(t) = self.table.as_mut() else {
                let a = match s.host_verdict {
                    Some(a) => a,
                    None => self.policy.judge(key.eni, key.direction(), &s.meta, s.ns),
                };
                if a == Action::Reject {
                    self.verdicts[pi] = Action::Reject;
                    self.counters.rejected += 1;
                }
                let o =
                    &mut self.orphan_skips[usize::from(key.eni).min(self.orphan_skips.len() - 1)];
                o.0 += 1;
                o.1 += u64::from(s.meta.bytes);
                self.orphan_slice.get_or_insert(self.slice);
                self.counters.skipped += 1;
                continue;
            };
            let may_evict = self.handoff.side.len() < self.handoff.side.capacity();
            let mut v = Packet {
                policy: &mut self.policy,
                seen: s,
                eni: key.eni,
                dir: key.direction(),
                proto: key.proto,
                reused: false,
                touch_min: &mut self.touch_min,
            };
            let pkt = Sample {
                bytes: s.meta.bytes,
                secs: s.secs,
                frac: s.ns.wrapping_sub(s.secs.wrapping_mul(1_000_000_000)) as u32,
                flags: s.meta.tcp_flags,
            };
            let (a, ins) = t.record(&key, h, pkt, may_evict, &mut v);
            reused |= v.reused;
            if a == Action::Reject {
                self.verdicts[pi] = Action::Reject;
                self.counters.rejected += 1;
            }
            match ins {
                Insert::Updated | Insert::Inserted => {}
                Insert::Evicted(entry) => {
                    self.counters.evictions += 1;
                    let (slice, gen) = (t.slice_start(), t.gen());
                    self.policy.evicted(&entry, slice);
                    if let Err(Side::Evicted { entry, .. }) =
                        self.handoff.side.push(Side::Evicted { slice, gen, entry })
                    {
                        // Single producer: the room checked above is still
                        // there, so this is unreachable; count it anyway.
                        t.skip(entry.key.eni, entry.bytes.min(u64::from(u32::MAX)) as u32);
                    }
                }
                Insert::Skipped => self.counters.skipped += 1,
            }
        }
        if reused {
            self.policy.housekeeping(now_ns);
        }
    }

    /// The verdict of each packet of the last [`Worker::process`] call, in
    /// order: REJECT if the sender's egress or the receiver's ingress
    /// rejected it (what a vSwitch drops).
    pub fn verdicts(&self) -> &[Action] {
        &self.verdicts[..self.burst_len]
    }

    /// Ends the worker: retires its table and marks it done. The exporter
    /// then delivers everything.
    pub fn finish(mut self) -> (WorkerCounters, P) {
        self.retire();
        self.flush_orphans(true);
        self.handoff.watermark.store(u64::MAX, Ordering::Release);
        self.handoff.done.store(true, Ordering::Release);
        (self.counters, self.policy)
    }
}

/// The slice a worker uses for a plan whose slice is `plan_slice` seconds:
/// the largest divisor of both it and [`MAX_SLICE_SECS`] (so still a
/// divisor of every interval). Whoever paces a worker's rotations uses this.
pub fn slice_for(plan_slice: u64) -> u64 {
    gcd(plan_slice.max(1), MAX_SLICE_SECS)
}

/// Greatest common divisor.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
