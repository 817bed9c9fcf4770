//! The per-worker connection table of the stateful security groups: fixed
//! capacity set at start (`--conns-per-core`), no allocation per packet,
//! idle expiry (TCP 910 s, others 180 s) swept a few slots per packet so no
//! burst waits on it.
//!
//! Buckets of [`WINDOW`] slots, two candidate buckets per key, one tag byte
//! per slot in a separate small array; an expired slot is simply emptied (no
//! tombstones), and a new connection takes the first free or expired slot
//! of its buckets. Two full buckets mean "full": the caller counts it and
//! the packet is judged by the rules alone.

use crate::flow::{FlowEntry, META_REJECT};
use crate::mem::{HugeSlice, Zeroable};
use crate::wire::PacketMeta;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Slots per bucket.
pub const WINDOW: usize = 8;
/// Idle timeout of a TCP connection, nanoseconds (910 s).
pub const TCP_IDLE: u64 = 910 * NS;
/// Idle timeout of any other connection, nanoseconds (180 s).
pub const OTHER_IDLE: u64 = 180 * NS;
/// Nanoseconds per second: the table keeps packet times in nanoseconds, so
/// an entry expires exactly when its last packet is 910 s (or 180 s) old.
pub const NS: u64 = 1_000_000_000;

/// A connection at one ENI: its protocol and its two endpoints in a fixed
/// order (for ICMP and ICMPv6, the two addresses only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ConnKey {
    /// The smaller endpoint's address.
    pub a: [u8; 16],
    /// The larger endpoint's address.
    pub b: [u8; 16],
    /// Port of `a`.
    pub pa: u16,
    /// Port of `b`.
    pub pb: u16,
    /// ENI index.
    pub eni: u16,
    /// Protocol.
    pub proto: u8,
    /// 1 if IPv6.
    pub flags: u8,
}

const _: () = assert!(std::mem::size_of::<ConnKey>() == 40);

impl ConnKey {
    /// The key of `m` at `eni`, the same for both directions.
    #[inline]
    pub fn new(eni: u16, m: &PacketMeta) -> ConnKey {
        let icmp = m.protocol == 1 || m.protocol == 58;
        let (sp, dp) = if icmp {
            (0, 0)
        } else {
            (m.src_port, m.dst_port)
        };
        // Order the endpoints by (address, port), comparing addresses as
        // integers (a byte-array compare is a library call).
        let (s, d) = (u128::from_be_bytes(m.src), u128::from_be_bytes(m.dst));
        let (a, pa, b, pb) = if (s, sp) <= (d, dp) {
            (m.src, sp, m.dst, dp)
        } else {
            (m.dst, dp, m.src, sp)
        };
        ConnKey {
            a,
            b,
            pa,
            pb,
            eni,
            proto: m.protocol,
            flags: u8::from(m.v6),
        }
    }

    #[inline(always)]
    fn words(&self) -> [u64; 5] {
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        [
            w(&self.a[..8]),
            w(&self.a[8..]),
            w(&self.b[..8]),
            w(&self.b[8..]),
            u64::from(self.pa)
                | u64::from(self.pb) << 16
                | u64::from(self.eni) << 32
                | u64::from(self.proto) << 48
                | u64::from(self.flags & 1) << 56,
        ]
    }

    /// A well-mixed hash of the key.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        exporter::key::hash_words(self.words())
    }

    pub fn idle(&self) -> u64 {
        if self.proto == 6 {
            TCP_IDLE
        } else {
            OTHER_IDLE
        }
    }
}

/// One slot: the key, aligned to a cache line so a lookup's key compare
/// touches one line. Its expiry time is in the table's dense `deadlines`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct Slot {
    key: ConnKey,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

// SAFETY: integers and byte arrays only: all-zero is valid (an unused slot).
#[allow(unsafe_code)]
unsafe impl Zeroable for Slot {}

/// What [`ConnTable::touch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// The connection was there; its time is refreshed.
    Refreshed,
    /// A new connection.
    Opened,
    /// No room in its buckets: not tracked.
    Full,
}

/// Where a key is or would go in a [`ConnTable`].
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    b1: usize,
    b2: usize,
    tag: u8,
    slot: Option<usize>,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Per connection slot, when its connection expires (Unix ns): its last
/// accepted packet's time plus its idle timeout. Apart from the keys (8
/// bytes a connection), and shared by the worker and its exporter: a packet
/// that passes by its flow's remembered verdict does not write here (its
/// time stays in its flow entry, [`FlowEntry::last_ns`]); the exporter
/// brings those times in with [`ConnDeadlines::write_back`] when it drains
/// the flow table, the worker when it evicts an entry.
pub struct ConnDeadlines(HugeSlice<AtomicU64>);

impl std::fmt::Debug for ConnDeadlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnDeadlines({})", self.0.len())
    }
}

impl ConnDeadlines {
    /// Raises the deadline of the connection that let `e` through to its
    /// last packet plus its idle timeout, `e` being an entry of a table
    /// whose slice starts at Unix second `slice_start`. Nothing for an
    /// entry that holds no connection (a REJECT, a stateless or host
    /// verdict, a full connection table).
    #[inline]
    pub fn write_back(&self, e: &FlowEntry, slice_start: u64) {
        if e.key.meta & META_REJECT != 0 || e.hint >= crate::worker::HINT_STATELESS {
            return;
        }
        let idle = if e.key.proto == 6 {
            TCP_IDLE
        } else {
            OTHER_IDLE
        };
        if let Some(d) = self.0.get(e.hint as usize) {
            d.fetch_max(e.last_ns(slice_start) + idle, Relaxed);
        }
    }
}

/// A worker's connection table: buckets of [`WINDOW`] slots, two candidate
/// buckets per key, and beside the slots one tag byte per slot (8 per
/// bucket, read as one `u64`), so a lookup compares the key only where the
/// tag matches — a miss (a scan) touches the small tag array only.
///
/// A connection's stored deadline may lag behind the packets of its flows
/// that passed by a remembered verdict (see [`ConnDeadlines`]), never in a
/// way a reader can see: every flow entry's first packet was judged and
/// touched the connection, so the stored deadline is at least that table's
/// earliest judged packet plus the idle timeout (at least 180 s), and the
/// worker makes sure a table is written back before that (slices are at
/// most 60 s; see `Worker`).
#[derive(Debug)]
pub struct ConnTable {
    slots: HugeSlice<Slot>,
    deadlines: Arc<ConnDeadlines>,
    tags: HugeSlice<u64>,
    bmask: usize,
    cursor: usize,
    len: usize,
}

impl ConnTable {
    /// Room for `conns` connections (rounded up to a power of two, at least
    /// two buckets).
    pub fn new(conns: usize) -> ConnTable {
        let n = conns.max(2 * WINDOW).next_power_of_two();
        ConnTable {
            slots: HugeSlice::zeroed(n),
            deadlines: Arc::new(ConnDeadlines(HugeSlice::zeroed(n))),
            tags: HugeSlice::zeroed(n / WINDOW),
            bmask: n / WINDOW - 1,
            cursor: 0,
            len: 0,
        }
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Connections held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// No connection held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn deadline(&self, i: usize) -> &AtomicU64 {
        &self.deadlines.0[i]
    }

    #[inline(always)]
    fn live(&self, i: usize, now: u64) -> bool {
        now < self.deadline(i).load(Relaxed)
    }

    /// The deadlines, for the exporter's write-back.
    pub fn deadlines(&self) -> Arc<ConnDeadlines> {
        self.deadlines.clone()
    }

    /// [`ConnDeadlines::write_back`] of an entry the worker evicted.
    #[inline]
    pub fn write_back(&self, e: &FlowEntry, slice_start: u64) {
        self.deadlines.write_back(e, slice_start);
    }

    #[inline(always)]
    fn same(s: &Slot, k: &ConnKey) -> bool {
        let (x, y) = (s.key.words(), k.words());
        ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0
    }

    /// The two candidate buckets and the tag (never 0) of a hash.
    #[inline(always)]
    fn place(&self, h: u64) -> (usize, usize, u8) {
        let b1 = h as usize & self.bmask;
        let mut b2 = (h >> 32) as usize & self.bmask;
        if b2 == b1 {
            b2 = (b1 + 1) & self.bmask;
        }
        (b1, b2, ((h >> 56) as u8) | 1)
    }

    #[inline(always)]
    fn find(&self, k: &ConnKey, b1: usize, b2: usize, tag: u8) -> Option<usize> {
        for b in [b1, b2] {
            let x = self.tags[b] ^ (LO * u64::from(tag));
            // Bytes of x that are zero (tag equal); a borrow may flag a byte
            // above a real match too, which the key compare rejects.
            let mut m = x.wrapping_sub(LO) & !x & HI;
            while m != 0 {
                let i = b * WINDOW + (m.trailing_zeros() / 8) as usize;
                if Self::same(&self.slots[i], k) {
                    return Some(i);
                }
                m &= m - 1;
            }
        }
        None
    }

    /// Where `k` is or would go: computed once per packet, used by
    /// [`ConnTable::tracked`] and [`ConnTable::touch_slot`].
    #[inline]
    pub fn probe(&self, k: &ConnKey) -> Probe {
        let (b1, b2, tag) = self.place(k.hash());
        Probe {
            b1,
            b2,
            tag,
            slot: self.find(k, b1, b2, tag),
        }
    }

    /// Whether the probed connection is tracked and unexpired at `now`.
    #[inline]
    pub fn tracked(&self, p: &Probe, now: u64) -> bool {
        p.slot.is_some_and(|i| self.live(i, now))
    }

    /// Whether `k` is a tracked, unexpired connection at `now`.
    #[inline]
    pub fn lookup(&self, k: &ConnKey, now: u64) -> bool {
        let p = self.probe(k);
        self.tracked(&p, now)
    }

    #[inline(always)]
    fn set_tag(&mut self, i: usize, tag: u8) {
        let (b, j) = (i / WINDOW, (i % WINDOW) * 8);
        self.tags[b] = (self.tags[b] & !(0xFFu64 << j)) | (u64::from(tag) << j);
    }

    #[inline(always)]
    fn tag_at(&self, i: usize) -> u8 {
        (self.tags[i / WINDOW] >> ((i % WINDOW) * 8)) as u8
    }

    /// Opens or refreshes `k` at `now`.
    #[inline]
    pub fn touch(&mut self, k: &ConnKey, now: u64) -> Touch {
        let p = self.probe(k);
        self.touch_slot(k, &p, now).0
    }

    /// Opens or refreshes `k`, probed as `p` (with no change to the table
    /// since), at `now`; and the slot the connection is in (`None` when the
    /// table is full).
    #[inline]
    pub fn touch_slot(&mut self, k: &ConnKey, p: &Probe, now: u64) -> (Touch, Option<usize>) {
        let Probe { b1, b2, tag, slot } = *p;
        if let Some(i) = slot {
            let d = now + k.idle();
            if self.live(i, now) {
                // The maximum: a packet out of order (or a write-back) may
                // have left a later deadline.
                self.deadline(i).fetch_max(d, Relaxed);
                return (Touch::Refreshed, Some(i));
            }
            // Expired: it starts again as a new connection. (A write-back
            // of its old flows brings nothing later than its expiry.)
            self.deadline(i).store(d, Relaxed);
            return (Touch::Opened, Some(i));
        }
        // A free slot, or one whose connection has expired, in either bucket.
        for b in [b1, b2] {
            for j in 0..WINDOW {
                let i = b * WINDOW + j;
                let used = self.tag_at(i) != 0;
                if !used || !self.live(i, now) {
                    if !used {
                        self.len += 1;
                    }
                    self.slots[i] = Slot { key: *k };
                    self.deadline(i).store(now + k.idle(), Relaxed);
                    self.set_tag(i, tag);
                    return (Touch::Opened, Some(i));
                }
            }
        }
        (Touch::Full, None)
    }

    /// Empties up to `n` slots' worth of expired connections, continuing
    /// where the last call stopped; counts them in `expired`.
    #[inline]
    pub fn sweep(&mut self, now: u64, n: usize, expired: &mut u64) {
        for _ in 0..n {
            let i = self.cursor;
            if self.tag_at(i) != 0 && !self.live(i, now) {
                self.set_tag(i, 0);
                self.len -= 1;
                *expired += 1;
            }
            self.cursor = (i + 1) & (self.slots.len() - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, proto: u8) -> PacketMeta {
        let mut m = PacketMeta {
            protocol: proto,
            src_port: sp,
            dst_port: dp,
            ..PacketMeta::default()
        };
        m.src[..4].copy_from_slice(&src);
        m.dst[..4].copy_from_slice(&dst);
        m
    }

    #[test]
    fn both_directions_share_a_key_and_icmp_ignores_type() {
        let a = meta([10, 0, 0, 1], 40000, [8, 8, 8, 8], 53, 17);
        let b = meta([8, 8, 8, 8], 53, [10, 0, 0, 1], 40000, 17);
        assert_eq!(ConnKey::new(3, &a), ConnKey::new(3, &b));
        assert_ne!(ConnKey::new(3, &a), ConnKey::new(4, &a), "per ENI");
        let req = meta([10, 0, 0, 1], 0, [10, 0, 0, 2], 8 << 8, 1);
        let rep = meta([10, 0, 0, 2], 0, [10, 0, 0, 1], 0, 1);
        assert_eq!(ConnKey::new(0, &req), ConnKey::new(0, &rep));
    }

    #[test]
    fn expiry_tcp_910_others_180() {
        let mut t = ConnTable::new(64);
        let tcp = ConnKey::new(0, &meta([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, 6));
        let udp = ConnKey::new(0, &meta([10, 0, 0, 1], 1, [10, 0, 0, 2], 2, 17));
        assert_eq!(t.touch(&tcp, 1000 * NS), Touch::Opened);
        assert_eq!(t.touch(&udp, 1000 * NS), Touch::Opened);
        assert_eq!(t.touch(&udp, 1010 * NS), Touch::Refreshed);
        assert!(t.lookup(&udp, 1189 * NS));
        assert!(!t.lookup(&udp, 1190 * NS), "180 s after its last packet");
        assert!(t.lookup(&tcp, 1909 * NS));
        assert!(!t.lookup(&tcp, 1910 * NS), "910 s after its last packet");
        let mut expired = 0;
        t.sweep(5000 * NS, 64, &mut expired);
        assert_eq!((expired, t.len()), (2, 0));
    }

    #[test]
    fn a_full_table_says_so() {
        // Two buckets: every key has both as candidates.
        let mut t = ConnTable::new(2 * WINDOW);
        let mut full = 0;
        for i in 0..(4 * WINDOW) as u16 {
            let k = ConnKey::new(0, &meta([10, 0, 0, 1], i, [10, 0, 0, 2], 80, 6));
            if t.touch(&k, NS) == Touch::Full {
                full += 1;
            }
        }
        assert_eq!(full, 2 * WINDOW);
        assert_eq!(t.len(), 2 * WINDOW);
        // Every tracked key is found; none of the others.
        let found = (0..(4 * WINDOW) as u16)
            .filter(|&i| {
                t.lookup(
                    &ConnKey::new(0, &meta([10, 0, 0, 1], i, [10, 0, 0, 2], 80, 6)),
                    2,
                )
            })
            .count();
        assert_eq!(found, 2 * WINDOW);
    }

    #[test]
    fn many_connections_are_all_found() {
        let mut t = ConnTable::new(1 << 12);
        let keys: Vec<ConnKey> = (0..2000u16)
            .map(|i| {
                ConnKey::new(
                    i % 7,
                    &meta([10, 0, (i >> 8) as u8, i as u8], i, [8, 8, 8, 8], 53, 17),
                )
            })
            .collect();
        for k in &keys {
            assert_eq!(t.touch(k, 5 * NS), Touch::Opened);
        }
        for k in &keys {
            assert!(t.lookup(k, 6 * NS));
            assert_eq!(t.touch(k, 7 * NS), Touch::Refreshed);
        }
        assert!(!t.lookup(
            &ConnKey::new(0, &meta([1, 2, 3, 4], 1, [5, 6, 7, 8], 9, 17)),
            7
        ));
    }
}
