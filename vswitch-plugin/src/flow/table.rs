//! A fixed-capacity flow table: open addressing with linear probing over a
//! short window of cache-line-sized entries. Capacity is set at start and
//! never grows; a full probe window evicts its oldest entry (the exporter
//! merges it back into its window), or, when the caller cannot take an
//! eviction, the packet is counted as skipped for its ENI (SKIPDATA).

use super::{FlowKey, META_REJECT};
use crate::mem;
use exporter::record::Action;

/// Entries examined for a key before the table counts as full for it.
pub const PROBE: usize = 16;

/// One flow: key and counters in one 64-byte cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct FlowEntry {
    /// The key.
    pub key: FlowKey,
    /// IP-level bytes.
    pub bytes: u64,
    /// Packets (an entry about to pass `u32::MAX` goes to the exporter, which
    /// merges it, and starts again).
    pub packets: u32,
    /// What the policy said may be reused for this flow's next packets
    /// (see [`crate::worker::Verdicts::judge_hinted`]).
    pub hint: u32,
    /// Seconds from the table's slice start to the first packet (slices
    /// are at most a minute long; clamped at 255).
    pub first: u8,
    /// Seconds from the table's slice start to the last packet.
    pub last: u8,
    /// OR of TCP flags.
    pub flags: u8,
    /// Slot in use.
    pub used: bool,
    /// Nanoseconds into its second of the last packet: with `last`, the
    /// last packet's exact time, which its connection's expiry is counted
    /// from (see [`FlowEntry::last_ns`]).
    pub last_frac: u32,
}

const _: () = assert!(std::mem::size_of::<FlowEntry>() == 64);

/// Whether two keys differ in their verdict bit at most (their words
/// compared with that bit masked off the last).
#[inline(always)]
fn twins(a: &FlowKey, b: &FlowKey) -> bool {
    let (x, y) = (a.words(), b.words());
    let verdict = u64::from(META_REJECT) << 56;
    ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | ((x[4] ^ y[4]) & !verdict))
        == 0
}

impl FlowEntry {
    /// A new entry holding one packet, `off` seconds into the slice.
    #[inline(always)]
    fn first(key: FlowKey, pkt: &Sample, off: u8, hint: u32) -> FlowEntry {
        FlowEntry {
            key,
            packets: 1,
            bytes: u64::from(pkt.bytes),
            hint,
            first: off,
            last: off,
            flags: pkt.flags,
            used: true,
            last_frac: pkt.frac,
        }
    }

    /// Adds one packet, `off` seconds into the slice. Every field is read
    /// before any is written: `first` and `last` are neighbours, and a wide load of both
    /// right after a narrow store to one of them would wait for the store
    /// (no store-to-load forwarding).
    #[inline(always)]
    fn count(&mut self, pkt: &Sample, off: u8) {
        let Sample {
            bytes, frac, flags, ..
        } = *pkt;
        // The later of the two times (a capture may reorder packets), as
        // one comparison.
        let later = (u64::from(off) << 32 | u64::from(frac))
            >= (u64::from(self.last) << 32 | u64::from(self.last_frac));
        let (first, last, last_frac) = (
            self.first.min(off),
            if later { off } else { self.last },
            if later { frac } else { self.last_frac },
        );
        let (packets, total, f) = (
            self.packets + 1,
            self.bytes + u64::from(bytes),
            self.flags | flags,
        );
        self.packets = packets;
        self.bytes = total;
        self.first = first;
        self.last = last;
        self.flags = f;
        self.last_frac = last_frac;
    }

    /// The last packet's time, Unix ns, in a table whose slice starts at
    /// Unix second `slice_start`.
    #[inline]
    pub fn last_ns(&self, slice_start: u64) -> u64 {
        (slice_start + u64::from(self.last)) * 1_000_000_000 + u64::from(self.last_frac)
    }
}

/// Skipped traffic of one ENI in one slice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Packets not recorded.
    pub packets: u64,
    /// Their IP-level bytes.
    pub bytes: u64,
}

/// What one packet adds to its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// IP-level bytes.
    pub bytes: u32,
    /// Packet time, Unix seconds.
    pub secs: u64,
    /// Nanoseconds into that second (below 10^9).
    pub frac: u32,
    /// TCP flags.
    pub flags: u8,
}

/// The verdict side of [`FlowTable::record`].
pub trait Judge {
    /// Whether the flow's remembered `hint` still gives ACCEPT for this
    /// packet, its previous packet having been at `last_secs`.
    fn reuse(&mut self, hint: u32, last_secs: u64) -> bool;
    /// The packet's verdict, and the hint to remember with it.
    fn judge(&mut self) -> (Action, u32);
}

/// What [`FlowTable::update`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// The key was there; counters added.
    Updated,
    /// A new entry.
    Inserted,
    /// A new entry took the slot of this (older) one, which the caller must
    /// hand to the exporter.
    Evicted(FlowEntry),
    /// No room and no eviction allowed: the packet was counted as skipped.
    Skipped,
}

/// A per-core flow table for one time slice.
#[derive(Debug)]
pub struct FlowTable {
    entries: mem::HugeSlice<FlowEntry>,
    mask: usize,
    len: usize,
    slice_start: u64,
    gen: u32,
    skipped: Box<[Skipped]>,
    any_skipped: bool,
}

impl FlowTable {
    /// A table with room for `flows` flows (rounded up to a power of two, at
    /// least [`PROBE`]) and skip counters for `enis` ENIs. Allocates now and
    /// never again.
    pub fn new(flows: usize, enis: usize) -> FlowTable {
        let slots = flows.max(PROBE).next_power_of_two();
        FlowTable {
            entries: mem::HugeSlice::zeroed(slots),
            mask: slots - 1,
            len: 0,
            slice_start: 0,
            gen: 0,
            skipped: vec![Skipped::default(); enis.max(1)].into_boxed_slice(),
            any_skipped: false,
        }
    }

    /// Slots (the capacity in flows).
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No flow held and nothing skipped.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.any_skipped
    }

    /// Memory of the entries, in bytes.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
    }

    /// Unix second at which this table's slice starts.
    pub fn slice_start(&self) -> u64 {
        self.slice_start
    }

    /// The configuration generation its flows were recorded under.
    pub fn gen(&self) -> u32 {
        self.gen
    }

    /// Sets the configuration generation of what it will record.
    pub fn set_gen(&mut self, gen: u32) {
        self.gen = gen;
    }

    /// Starts a new slice; the table must have been drained.
    pub fn reset(&mut self, slice_start: u64) {
        debug_assert!(self.is_empty(), "reset of a table that was not drained");
        self.slice_start = slice_start;
    }

    /// Brings the home slot of `hash` into the cache, and the slot after it
    /// once the table is more than a quarter full. Linear probing leaves a
    /// flow past its home slot about a seventh of the time at a quarter
    /// load and a third at half; below a quarter, the second line costs a
    /// fill buffer on every packet (the misses a core can have in flight
    /// are what a lookup is bound by) to save a miss on a few: `flowlogd
    /// run` at 7% load forwards 1.5-3% more without it; at half load (the
    /// 1M-flow datapath bench) it took that bench from 12.5 to 16.1 Mpps
    /// (docs/BENCHMARKS.md).
    #[inline(always)]
    pub fn prefetch(&self, hash: u64) {
        let i = hash as usize & self.mask;
        mem::prefetch(&self.entries[i]);
        if self.len > self.mask / 4 {
            mem::prefetch(&self.entries[(i + 1) & self.mask]);
        }
    }

    /// Whole seconds from the slice start to `secs` (clamped into a `u8`:
    /// slices are at most a minute long).
    #[inline(always)]
    fn offset(&self, secs: u64) -> u8 {
        secs.saturating_sub(self.slice_start)
            .min(u64::from(u8::MAX)) as u8
    }

    /// Counts a packet of `eni` as skipped.
    #[inline]
    pub fn skip(&mut self, eni: u16, bytes: u32) {
        let i = usize::from(eni).min(self.skipped.len() - 1);
        let s = &mut self.skipped[i];
        s.packets += 1;
        s.bytes += u64::from(bytes);
        self.any_skipped = true;
    }

    /// Adds one packet of `key` (whose hash is `hash`) at Unix second `secs`
    /// (clamped into the slice). `may_evict` says whether the caller can take
    /// an evicted entry now.
    #[inline(always)]
    pub fn update(
        &mut self,
        key: &FlowKey,
        hash: u64,
        pkt: Sample,
        may_evict: bool,
        hint: u32,
    ) -> Insert {
        let off = self.offset(pkt.secs);
        let home = hash as usize & self.mask;
        let mut oldest = home;
        let mut oldest_last = u8::MAX;
        for p in 0..PROBE {
            let i = (home + p) & self.mask;
            let e = &mut self.entries[i];
            if !e.used {
                *e = FlowEntry::first(*key, &pkt, off, hint);
                self.len += 1;
                return Insert::Inserted;
            }
            if e.key == *key {
                if e.packets == u32::MAX {
                    // Full counters: the exporter merges this part, the
                    // entry starts again with this packet.
                    oldest = i;
                    break;
                }
                e.hint = hint;
                e.count(&pkt, off);
                return Insert::Updated;
            }
            if e.last < oldest_last {
                oldest_last = e.last;
                oldest = i;
            }
        }
        if !may_evict {
            self.skip(key.eni, pkt.bytes);
            return Insert::Skipped;
        }
        let new = FlowEntry::first(*key, &pkt, off, hint);
        Insert::Evicted(std::mem::replace(&mut self.entries[oldest], new))
    }

    /// Records one packet of a flow whose verdict is not known yet, with one
    /// walk of the probe window. `key` is the flow's ACCEPT key, `hash` its
    /// hash (the REJECT twin lives in the same window). If the table holds
    /// the ACCEPT flow and `v` reuses its hint (given the flow's last packet,
    /// Unix seconds), the packet is counted there with no judgement.
    /// Otherwise `v` judges it, and the packet goes to the flow of that
    /// verdict (its hint written there) as [`FlowTable::update`] would.
    #[inline(always)]
    pub fn record(
        &mut self,
        key: &FlowKey,
        hash: u64,
        pkt: Sample,
        may_evict: bool,
        v: &mut impl Judge,
    ) -> (Action, Insert) {
        let off = self.offset(pkt.secs);
        let home = hash as usize & self.mask;
        // One walk: the ACCEPT flow (reused right there when it can be), its
        // REJECT twin, the first free slot, the oldest entry.
        let (mut acc, mut rej, mut free) = (None, None, None);
        let mut oldest = home;
        let mut oldest_last = u8::MAX;
        for p in 0..PROBE {
            let i = (home + p) & self.mask;
            let e = &mut self.entries[i];
            if !e.used {
                free = Some(i);
                break;
            }
            if twins(&e.key, key) {
                if e.key.meta & META_REJECT != 0 {
                    rej = Some(i);
                } else {
                    if e.packets < u32::MAX && v.reuse(e.hint, self.slice_start + u64::from(e.last))
                    {
                        e.count(&pkt, off);
                        return (Action::Accept, Insert::Updated);
                    }
                    acc = Some(i);
                }
            }
            if e.last < oldest_last {
                oldest_last = e.last;
                oldest = i;
            }
        }
        let (action, hint) = v.judge();
        let at = match action {
            Action::Accept => acc,
            Action::Reject => rej,
        };
        let mut k = *key;
        if action == Action::Reject {
            k.meta |= META_REJECT;
        }
        let slot = match (at, free) {
            (Some(i), _) => {
                let e = &mut self.entries[i];
                if e.packets < u32::MAX {
                    e.hint = hint;
                    e.count(&pkt, off);
                    return (action, Insert::Updated);
                }
                // Full counters: the exporter merges this part, the entry
                // starts again with this packet.
                i
            }
            (None, Some(i)) => {
                self.entries[i] = FlowEntry::first(k, &pkt, off, hint);
                self.len += 1;
                return (action, Insert::Inserted);
            }
            (None, None) => oldest,
        };
        if !may_evict {
            self.skip(k.eni, pkt.bytes);
            return (action, Insert::Skipped);
        }
        let new = FlowEntry::first(k, &pkt, off, hint);
        (
            action,
            Insert::Evicted(std::mem::replace(&mut self.entries[slot], new)),
        )
    }

    /// Hands every entry and every ENI's skip count to the callbacks, leaving
    /// the table empty for reuse.
    pub fn drain(&mut self, mut flow: impl FnMut(&FlowEntry), skipped: impl FnMut(u16, Skipped)) {
        if self.len > 0 {
            for e in self.entries.iter_mut() {
                if e.used {
                    flow(e);
                    e.used = false;
                }
            }
            self.len = 0;
        }
        self.drain_skipped(skipped);
    }

    /// Hands every ENI's skip count to the callback and clears them.
    pub fn drain_skipped(&mut self, mut skipped: impl FnMut(u16, Skipped)) {
        if self.any_skipped {
            for (i, s) in self.skipped.iter_mut().enumerate() {
                if s.packets > 0 {
                    skipped(i as u16, *s);
                    *s = Skipped::default();
                }
            }
            self.any_skipped = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::HINT_NONE;

    fn smp(bytes: u32, secs: u64, flags: u8) -> Sample {
        Sample {
            bytes,
            secs,
            frac: 0,
            flags,
        }
    }
    use proptest::prelude::*;

    fn key(n: u32) -> FlowKey {
        let mut k = FlowKey {
            proto: 6,
            ..FlowKey::default()
        };
        k.src[..4].copy_from_slice(&n.to_be_bytes());
        k
    }

    fn collect(t: &mut FlowTable) -> (Vec<FlowEntry>, Vec<(u16, Skipped)>) {
        let (mut f, mut s) = (Vec::new(), Vec::new());
        t.drain(|e| f.push(*e), |i, k| s.push((i, k)));
        (f, s)
    }

    #[test]
    fn aggregates_one_key() {
        let mut t = FlowTable::new(16, 1);
        t.reset(600);
        let k = key(1);
        assert_eq!(
            t.update(&k, k.hash(), smp(100, 605, 0x02), true, HINT_NONE),
            Insert::Inserted
        );
        assert_eq!(
            t.update(&k, k.hash(), smp(40, 601, 0x10), true, HINT_NONE),
            Insert::Updated
        );
        assert_eq!(
            t.update(&k, k.hash(), smp(60, 650, 0x01), true, HINT_NONE),
            Insert::Updated
        );
        let (f, s) = collect(&mut t);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].packets, f[0].bytes, f[0].first, f[0].last, f[0].flags),
            (3, 200, 1, 50, 0x13)
        );
        assert!(s.is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_evicts_the_oldest_or_skips() {
        let mut t = FlowTable::new(PROBE, 4);
        assert_eq!(t.capacity(), PROBE);
        t.reset(0);
        for n in 0..PROBE as u32 {
            let k = key(n);
            assert_eq!(
                t.update(&k, 0, smp(10, u64::from(n) + 1, 0), true, HINT_NONE),
                Insert::Inserted
            );
        }
        let k = key(100);
        match t.update(&k, 0, smp(10, 20, 0), true, HINT_NONE) {
            Insert::Evicted(e) => {
                assert_eq!(e.key, key(0), "the entry with the oldest last packet")
            }
            other => panic!("expected an eviction, got {other:?}"),
        }
        let k = FlowKey { eni: 3, ..key(101) };
        assert_eq!(
            t.update(&k, 0, smp(77, 21, 0), false, HINT_NONE),
            Insert::Skipped
        );
        let (f, s) = collect(&mut t);
        assert_eq!(f.len(), PROBE);
        assert_eq!(
            s,
            vec![(
                3,
                Skipped {
                    packets: 1,
                    bytes: 77
                }
            )]
        );
    }

    #[test]
    fn one_cache_line_per_flow() {
        assert_eq!(std::mem::size_of::<FlowEntry>(), 64);
        assert_eq!(std::mem::align_of::<FlowEntry>(), 64);
        let t = FlowTable::new(1000, 1);
        assert_eq!(t.capacity(), 1024);
        assert_eq!(t.bytes(), 1024 * 64);
    }

    /// A scripted policy for `record`: the hint it reuses, the verdict it gives.
    struct Script {
        reuse: Option<u32>,
        verdict: (Action, u32),
        judged: u32,
    }

    impl Judge for Script {
        fn reuse(&mut self, hint: u32, _last: u64) -> bool {
            self.reuse == Some(hint)
        }
        fn judge(&mut self) -> (Action, u32) {
            self.judged += 1;
            self.verdict
        }
    }

    #[test]
    fn record_reuses_a_remembered_verdict_and_keeps_rejects_apart() {
        let mut t = FlowTable::new(64, 1);
        t.reset(0);
        let k = key(7);
        let mut v = Script {
            reuse: Some(5),
            verdict: (Action::Accept, 5),
            judged: 0,
        };
        let h = k.hash();
        assert_eq!(
            t.record(&k, h, smp(10, 1, 0), true, &mut v),
            (Action::Accept, Insert::Inserted)
        );
        assert_eq!(
            t.record(&k, h, smp(10, 2, 0), true, &mut v),
            (Action::Accept, Insert::Updated)
        );
        assert_eq!(v.judged, 1, "the second packet reused hint 5");
        // The hint no longer holds: judged again, now REJECT, into its own flow.
        v.reuse = None;
        v.verdict = (Action::Reject, HINT_NONE);
        assert_eq!(
            t.record(&k, h, smp(10, 3, 0), true, &mut v),
            (Action::Reject, Insert::Inserted)
        );
        assert_eq!(
            t.record(&k, h, smp(10, 4, 0), true, &mut v),
            (Action::Reject, Insert::Updated)
        );
        assert_eq!(v.judged, 3);
        let (f, _) = collect(&mut t);
        let mut got: Vec<(bool, u32)> = f
            .iter()
            .map(|e| (e.key.meta & META_REJECT != 0, e.packets))
            .collect();
        got.sort();
        assert_eq!(got, vec![(false, 2), (true, 2)]);
    }

    #[test]
    fn an_entry_with_full_counters_goes_to_the_exporter() {
        let mut t = FlowTable::new(16, 1);
        t.reset(0);
        let k = key(1);
        assert_eq!(
            t.update(&k, 0, smp(10, 1, 0), true, HINT_NONE),
            Insert::Inserted
        );
        t.entries[0].packets = u32::MAX;
        match t.update(&k, 0, smp(20, 2, 0), true, HINT_NONE) {
            Insert::Evicted(e) => assert_eq!((e.key, e.packets, e.bytes), (k, u32::MAX, 10)),
            other => panic!("{other:?}"),
        }
        assert_eq!((t.entries[0].packets, t.entries[0].bytes), (1, 20));
        assert_eq!(t.len(), 1);
        t.entries[0].packets = u32::MAX;
        assert_eq!(
            t.update(&k, 0, smp(30, 3, 0), false, HINT_NONE),
            Insert::Skipped
        );
    }

    proptest! {
        // Whatever the order and collisions, every packet ends in exactly one
        // place: a drained entry, an eviction, or a skip count.
        #[test]
        fn nothing_is_lost(ops in proptest::collection::vec((0u32..40, 1u32..1500, any::<bool>()), 1..400)) {
            let mut t = FlowTable::new(16, 1);
            t.reset(0);
            let (mut pk, mut by) = (0u64, 0u64);
            let (mut out_p, mut out_b) = (0u64, 0u64);
            for (n, bytes, may) in ops {
                let k = key(n);
                pk += 1;
                by += u64::from(bytes);
                if let Insert::Evicted(e) = t.update(&k, k.hash() & 0xF, smp(bytes, 1, 0), may, HINT_NONE) {
                    out_p += u64::from(e.packets);
                    out_b += e.bytes;
                }
            }
            let (f, s) = collect(&mut t);
            for e in &f {
                out_p += u64::from(e.packets);
                out_b += e.bytes;
            }
            for (_, k) in &s {
                out_p += k.packets;
                out_b += k.bytes;
            }
            prop_assert_eq!((pk, by), (out_p, out_b));
            let mut keys: Vec<_> = f.iter().map(|e| e.key).collect();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), f.len(), "no key twice in a table");
        }
    }
}
