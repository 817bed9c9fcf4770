//! The questions: filter, group by fields, sum records / packets / bytes,
//! sort, keep the top N. One scan can answer several questions at once
//! (the report does).

use crate::filter::Filter;
use crate::model::{Field, FieldSet, Row, V};
use crate::scan::{scan, ScanStats};
use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::path::Path;

/// What groups are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Sum of `bytes`.
    Bytes,
    /// Sum of `packets`.
    Packets,
    /// Number of records.
    Records,
}

impl Metric {
    /// Parses `bytes`, `packets`, `records`.
    pub fn parse(s: &str) -> Option<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "bytes" => Some(Metric::Bytes),
            "packets" => Some(Metric::Packets),
            "records" => Some(Metric::Records),
            _ => None,
        }
    }
}

/// The order of the answer's groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Largest first by a metric; ties by group key.
    Desc(Metric),
    /// By group key, ascending (times in order, addresses numerically).
    Key,
}

/// One question.
#[derive(Clone, Debug)]
pub struct Query {
    /// Which records count.
    pub filter: Filter,
    /// Group by these fields (none: one total).
    pub group_by: Vec<Field>,
    /// Keep the first N groups after sorting.
    pub top: Option<usize>,
    /// The order.
    pub order: Order,
}

impl Query {
    /// A query of everything, grouped by `group_by`, largest bytes first.
    pub fn new(group_by: Vec<Field>) -> Query {
        Query {
            filter: Filter::default(),
            group_by,
            top: None,
            order: Order::Desc(Metric::Bytes),
        }
    }

    /// The fields this query reads.
    pub fn needs(&self) -> FieldSet {
        let mut s = self.filter.needs().with(Field::Packets).with(Field::Bytes);
        for f in &self.group_by {
            s.add(*f);
        }
        s
    }
}

/// One group of the answer: its key (one value per group-by field) and sums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Values of the group-by fields, in their order (exact JSON values).
    pub key: Vec<Value>,
    /// Records in the group.
    pub records: u64,
    /// Sum of `packets`.
    pub packets: u64,
    /// Sum of `bytes`.
    pub bytes: u64,
}

impl Group {
    /// The value of a metric.
    pub fn metric(&self, m: Metric) -> u64 {
        match m {
            Metric::Bytes => self.bytes,
            Metric::Packets => self.packets,
            Metric::Records => self.records,
        }
    }
}

/// The answer to one question.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The group-by fields.
    pub group_by: Vec<Field>,
    /// The groups, sorted, cut to the top N.
    pub groups: Vec<Group>,
    /// Groups before the cut.
    pub groups_total: usize,
    /// Sums over every matching record (all groups, not only the top N).
    pub total: Group,
    /// What the scan read.
    pub scan: ScanStats,
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Sums per group, keyed by the group values' bytes (no allocation for a
/// group already seen).
#[derive(Debug)]
pub struct Aggregator {
    group_by: Vec<Field>,
    /// Groups whose key fits an [`Entry`]: key and sums in one cache
    /// line of the table, so a lookup touches one line of memory.
    short: ShortTable,
    /// Rows with short keys waiting for their lookup: they are looked up
    /// [`BATCH`] at a time, so that their table lines are fetched from
    /// memory together rather than one after the other.
    pending: Vec<Pending>,
    /// Groups with longer keys (IPv6 pairs, long ids).
    long: HashMap<Box<[u8]>, Slot, BuildHasherDefault<KeyHasher>>,
    /// The key values of group `Slot::idx`, kept for the answer.
    keys: Vec<Vec<Value>>,
    key: Vec<u8>,
    total: Group,
}

/// Hashes group keys (a few short strings and numbers): 8 bytes at a
/// time with a multiply, then murmur3's finaliser, so that the high bits
/// the table's positions come from are well mixed. (FxHash's output varies
/// too little in them for keys like addresses that differ in a few bytes.)
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h.rotate_left(5) ^ v).wrapping_mul(K);
        }
        let mut tail = 0u64;
        for (i, b) in chunks.remainder().iter().enumerate() {
            tail |= u64::from(*b) << (8 * i);
        }
        self.0 = (h.rotate_left(5) ^ tail ^ (bytes.len() as u64)).wrapping_mul(K);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(K);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

fn hash_key(key: &[u8]) -> u64 {
    let mut h = KeyHasher::default();
    h.write(key);
    h.finish()
}

/// Longest group key kept inline in the table (an IPv4 address pair with
/// its separator is at most 31 bytes).
const INLINE: usize = 31;

/// Rows whose lookups are issued together (see [`Aggregator::drain`]).
const BATCH: usize = 32;

/// At most this many group-by fields take the batched path (their value
/// kinds fit [`Pending::kinds`], two bits each).
const MAX_BATCHED_FIELDS: usize = 16;

/// A group with a short key: a tag from its hash, the key (zero-padded)
/// and its sums, in one 64-byte cache line. `tag == 0`: an empty slot.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Entry {
    tag: u32,
    idx: u32,
    len: u8,
    key: [u8; INLINE],
    records: u64,
    packets: u64,
    bytes: u64,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

const EMPTY: Entry = Entry {
    tag: 0,
    idx: 0,
    len: 0,
    key: [0; INLINE],
    records: 0,
    packets: 0,
    bytes: 0,
};

/// Open addressing with linear probing over [`Entry`] lines; a slot's
/// home is the top bits of the key's hash. At most half full.
#[derive(Debug)]
struct ShortTable {
    slots: Vec<Entry>,
    shift: u32,
    used: usize,
}

impl ShortTable {
    fn new() -> ShortTable {
        ShortTable {
            slots: vec![EMPTY; 1 << 10],
            shift: 64 - 10,
            used: 0,
        }
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    /// The slot of a key (`len` bytes of `key`), inserting it (with
    /// `idx`, from `new_idx`) when absent.
    #[inline]
    fn slot(
        &mut self,
        h: u64,
        len: u8,
        key: &[u8; INLINE],
        new_idx: impl FnOnce() -> u32,
    ) -> usize {
        let tag = (h as u32) | 1;
        let mask = self.slots.len() - 1;
        let mut i = self.home(h);
        loop {
            let e = &self.slots[i];
            if e.tag == tag && e.len == len && e.key == *key {
                return i;
            }
            if e.tag == 0 {
                break;
            }
            i = (i + 1) & mask;
        }
        if 2 * (self.used + 1) > self.slots.len() {
            self.grow();
            return self.slot(h, len, key, new_idx);
        }
        self.used += 1;
        self.slots[i] = Entry {
            tag,
            idx: new_idx(),
            len,
            key: *key,
            ..EMPTY
        };
        i
    }

    #[cold]
    fn grow(&mut self) {
        let bigger = vec![EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        self.shift -= 1;
        let mask = self.slots.len() - 1;
        for e in old.into_iter().filter(|e| e.tag != 0) {
            let mut i = self.home(hash_key(&e.key[..usize::from(e.len)]));
            while self.slots[i].tag != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = e;
        }
    }

    fn into_slots(self) -> impl Iterator<Item = Slot> {
        self.slots.into_iter().filter(|e| e.tag != 0).map(|e| Slot {
            idx: e.idx,
            records: e.records,
            packets: e.packets,
            bytes: e.bytes,
        })
    }
}

/// A row counted but not yet looked up: its key, the kind of each key
/// value (two bits per field: 0 null, 1 text, 2 number; the values are
/// rebuilt from the key for a new group), and its sums.
#[derive(Clone, Copy, Debug)]
struct Pending {
    h: u64,
    len: u8,
    key: [u8; INLINE],
    kinds: u32,
    packets: u64,
    bytes: u64,
}

/// A group's sums, and where its key values are.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    idx: u32,
    records: u64,
    packets: u64,
    bytes: u64,
}

/// Separates the values of a group key; no value holds it.
const SEP: u8 = 0x1f;

fn push_digits(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

impl Aggregator {
    /// An empty aggregation by these fields.
    pub fn new(group_by: &[Field]) -> Aggregator {
        Aggregator {
            group_by: group_by.to_vec(),
            short: ShortTable::new(),
            pending: Vec::with_capacity(BATCH),
            long: HashMap::default(),
            keys: Vec::new(),
            key: Vec::with_capacity(128),
            total: Group {
                key: Vec::new(),
                records: 0,
                packets: 0,
                bytes: 0,
            },
        }
    }

    /// Counts one record.
    #[inline]
    pub fn add(&mut self, r: &Row<'_>) {
        let (packets, bytes) = (r.packets(), r.bytes());
        self.total.records += 1;
        self.total.packets += packets;
        self.total.bytes += bytes;
        self.key.clear();
        let mut kinds = 0u32;
        let mut seps = 0;
        for (i, f) in self.group_by.iter().enumerate() {
            if i > 0 {
                self.key.push(SEP);
            }
            let kind = match r.get(*f) {
                V::Null => {
                    self.key.push(0);
                    0
                }
                V::Str(s) => {
                    self.key.extend_from_slice(s);
                    seps += s.iter().filter(|b| **b == SEP).count();
                    1
                }
                V::Digits(s) => {
                    self.key.extend_from_slice(s);
                    2
                }
                V::Num(n) => {
                    push_digits(&mut self.key, n);
                    2
                }
            };
            if i < MAX_BATCHED_FIELDS {
                kinds |= kind << (2 * i);
            }
        }
        // Batched when the values can be rebuilt from the key: no text
        // value holds the separator, and the kinds fit.
        if self.key.len() <= INLINE && seps == 0 && self.group_by.len() <= MAX_BATCHED_FIELDS {
            let mut p = Pending {
                h: hash_key(&self.key),
                len: self.key.len() as u8,
                key: [0; INLINE],
                kinds,
                packets,
                bytes,
            };
            p.key[..self.key.len()].copy_from_slice(&self.key);
            self.pending.push(p);
            if self.pending.len() == BATCH {
                self.drain();
            }
        } else {
            let slot = match self.long.get_mut(&self.key[..]) {
                Some(s) => s,
                None => {
                    let idx = self.new_group(r);
                    self.long
                        .entry(self.key.clone().into_boxed_slice())
                        .or_insert(Slot {
                            idx,
                            ..Slot::default()
                        })
                }
            };
            slot.records += 1;
            slot.packets += packets;
            slot.bytes += bytes;
        }
    }

    /// Looks the pending rows up and adds them to their groups. First
    /// every row's home line is read: those loads do not depend on each
    /// other, so the CPU has them all in flight at once and the lookups
    /// that follow find the lines in cache (a prefetch, in safe code).
    fn drain(&mut self) {
        let mut touch = 0u32;
        for p in &self.pending {
            touch ^= self.short.slots[self.short.home(p.h)].tag;
        }
        std::hint::black_box(touch);
        let pending = std::mem::take(&mut self.pending);
        let fields = self.group_by.len();
        for p in &pending {
            let (short, keys) = (&mut self.short, &mut self.keys);
            let i = short.slot(p.h, p.len, &p.key, || {
                keys.push(values_of(&p.key[..usize::from(p.len)], p.kinds, fields));
                (keys.len() - 1) as u32
            });
            let e = &mut short.slots[i];
            e.records += 1;
            e.packets += p.packets;
            e.bytes += p.bytes;
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// Keeps the key values of a new group; its index.
    #[cold]
    fn new_group(&mut self, r: &Row<'_>) -> u32 {
        self.keys
            .push(self.group_by.iter().map(|f| r.get(*f).to_json()).collect());
        (self.keys.len() - 1) as u32
    }

    /// The sorted, cut answer.
    pub fn finish(mut self, order: Order, top: Option<usize>, scan: ScanStats) -> Answer {
        self.drain();
        let mut keys: Vec<Option<Vec<Value>>> = self.keys.into_iter().map(Some).collect();
        let mut groups: Vec<Group> = self
            .short
            .into_slots()
            .chain(self.long.into_values())
            .map(|s| Group {
                key: keys[s.idx as usize].take().unwrap_or_default(),
                records: s.records,
                packets: s.packets,
                bytes: s.bytes,
            })
            .collect();
        sort_groups(&mut groups, order);
        let groups_total = groups.len();
        if let Some(n) = top {
            groups.truncate(n);
        }
        Answer {
            group_by: self.group_by,
            groups,
            groups_total,
            total: self.total,
            scan,
        }
    }
}

/// The values of a short key, rebuilt from its bytes and their kinds.
#[cold]
fn values_of(key: &[u8], kinds: u32, fields: usize) -> Vec<Value> {
    key.split(|b| *b == SEP)
        .take(fields)
        .enumerate()
        .map(|(i, part)| match (kinds >> (2 * i)) & 3 {
            0 => Value::Null,
            1 => Value::String(String::from_utf8_lossy(part).into_owned()),
            _ => crate::model::parse_digits(part).map_or(Value::Null, Value::from),
        })
        .collect()
}

/// Sorts groups: by a metric, largest first, ties by key; or by key.
pub fn sort_groups(groups: &mut [Group], order: Order) {
    match order {
        Order::Desc(m) => groups.sort_by(|a, b| {
            b.metric(m)
                .cmp(&a.metric(m))
                .then_with(|| cmp_keys(&a.key, &b.key))
        }),
        Order::Key => groups.sort_by(|a, b| cmp_keys(&a.key, &b.key)),
    }
}

/// Compares group keys value by value: null first, numbers numerically,
/// addresses as addresses, other text as text.
pub fn cmp_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_value(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn cmp_value(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_u64()
            .cmp(&y.as_u64())
            .then_with(|| x.to_string().cmp(&y.to_string())),
        (Value::String(x), Value::String(y)) => match (x.parse::<IpAddr>(), y.parse::<IpAddr>()) {
            (Ok(p), Ok(q)) => p.cmp(&q),
            _ => x.cmp(y),
        },
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Answers several questions with one scan of `store`, reading the files
/// whose windows can hold records with `start` in `[from, to)` (each
/// query's own filter still applies).
pub fn run_queries(
    store: &Path,
    from: Option<u64>,
    to: Option<u64>,
    queries: &[Query],
) -> Result<Vec<Answer>> {
    let mut needs = FieldSet::default();
    for q in queries {
        for f in q.needs().fields() {
            needs.add(f);
        }
    }
    let mut aggs: Vec<Aggregator> = queries
        .iter()
        .map(|q| Aggregator::new(&q.group_by))
        .collect();
    let stats = scan(store, from, to, needs, |row| {
        for (q, a) in queries.iter().zip(aggs.iter_mut()) {
            if q.filter.matches(row) {
                a.add(row);
            }
        }
    })?;
    Ok(aggs
        .into_iter()
        .zip(queries)
        .map(|(a, q)| a.finish(q.order, q.top, stats))
        .collect())
}

/// Answers one question.
pub fn run_query(store: &Path, q: &Query) -> Result<Answer> {
    let mut v = run_queries(store, q.filter.from, q.filter.to, std::slice::from_ref(q))?;
    Ok(v.pop().expect("one answer per query"))
}

/// Listed records (every field, as JSON objects), how many matched in
/// all, and what the scan read.
pub type Listing = (Vec<serde_json::Map<String, Value>>, usize, ScanStats);

/// The matching records themselves (every field), in file order, at most
/// `limit` of them; and what the scan read.
pub fn list_records(store: &Path, filter: &Filter, limit: Option<usize>) -> Result<Listing> {
    let mut out = Vec::new();
    let mut matched = 0usize;
    let stats = scan(store, filter.from, filter.to, FieldSet::ALL, |row| {
        if filter.matches(row) {
            matched += 1;
            if limit.is_none_or(|l| out.len() < l) {
                out.push(row.to_json());
            }
        }
    })?;
    Ok((out, matched, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse_line, Parsed};

    fn add(a: &mut Aggregator, line: &str) {
        let mut r = crate::model::Row::default();
        match parse_line(line.as_bytes(), &mut r) {
            Parsed::Fast => a.add(&r),
            _ => panic!(),
        }
    }

    /// The batched table against a plain map: many groups (the table
    /// grows several times, rows wait in batches), keys mixing text,
    /// numbers and nulls, a text value holding the separator (the
    /// unbatched path), and no group-by at all.
    #[test]
    fn batched_groups_equal_a_plain_map() {
        let mut plain: std::collections::BTreeMap<(String, String), (u64, u64, u64)> =
            Default::default();
        let mut a = Aggregator::new(&[Field::SrcAddr, Field::DstPort]);
        let mut none = Aggregator::new(&[]);
        for i in 0..20_000u64 {
            let g = (i * 7919) % 5_003;
            let src = match g % 11 {
                0 => None,
                1 => Some("a\u{1f}b".to_string()),
                _ => Some(format!("10.{}.{}.{}", g % 3, g / 256, g % 256)),
            };
            let port = (g % 13 != 0).then_some(g % 1000);
            let mut r = crate::model::Row::default();
            r.put(
                Field::SrcAddr,
                src.as_deref().map_or(V::Null, |s| V::Str(s.as_bytes())),
            );
            r.put(Field::DstPort, port.map_or(V::Null, V::Num));
            r.put(Field::Packets, V::Num(i % 5));
            r.put(Field::Bytes, V::Num(i));
            a.add(&r);
            none.add(&r);
            let e = plain
                .entry((
                    src.map_or(Value::Null, Value::from).to_string(),
                    port.map_or(Value::Null, Value::from).to_string(),
                ))
                .or_default();
            e.0 += 1;
            e.1 += i % 5;
            e.2 += i;
        }
        let ans = a.finish(Order::Key, None, ScanStats::default());
        assert_eq!(ans.groups_total, plain.len());
        let got: std::collections::BTreeMap<(String, String), (u64, u64, u64)> = ans
            .groups
            .iter()
            .map(|g| {
                assert_eq!(g.key.len(), 2, "{:?}", g.key);
                (
                    (g.key[0].to_string(), g.key[1].to_string()),
                    (g.records, g.packets, g.bytes),
                )
            })
            .collect();
        assert_eq!(got, plain);
        let all = none.finish(Order::Key, None, ScanStats::default());
        assert_eq!(all.groups.len(), 1);
        assert!(all.groups[0].key.is_empty());
        assert_eq!(all.groups[0].records, 20_000);
        assert_eq!(all.groups[0].bytes, (0..20_000u64).sum::<u64>());
    }

    #[test]
    fn groups_sum_and_sort() {
        let mut a = Aggregator::new(&[Field::SrcAddr, Field::DstPort]);
        add(
            &mut a,
            r#"{"srcaddr":"10.0.0.2","dstport":80,"packets":1,"bytes":100}"#,
        );
        add(
            &mut a,
            r#"{"srcaddr":"10.0.0.10","dstport":80,"packets":2,"bytes":100}"#,
        );
        add(
            &mut a,
            r#"{"srcaddr":"10.0.0.2","dstport":80,"packets":3,"bytes":50}"#,
        );
        add(
            &mut a,
            r#"{"srcaddr":null,"dstport":null,"packets":0,"bytes":0}"#,
        );
        let ans = a.finish(Order::Desc(Metric::Bytes), Some(2), ScanStats::default());
        assert_eq!(ans.groups_total, 3);
        assert_eq!(ans.total.bytes, 250);
        assert_eq!(ans.total.records, 4);
        assert_eq!(ans.groups.len(), 2);
        assert_eq!(
            ans.groups[0].key,
            vec![Value::from("10.0.0.2"), Value::from(80)]
        );
        assert_eq!(
            (
                ans.groups[0].records,
                ans.groups[0].packets,
                ans.groups[0].bytes
            ),
            (2, 4, 150)
        );
        assert_eq!(ans.groups[1].key[0], Value::from("10.0.0.10"));
        let mut g = vec![
            Group {
                key: vec![Value::from("10.0.0.10")],
                records: 1,
                packets: 1,
                bytes: 1,
            },
            Group {
                key: vec![Value::from("10.0.0.9")],
                records: 1,
                packets: 1,
                bytes: 1,
            },
            Group {
                key: vec![Value::Null],
                records: 1,
                packets: 1,
                bytes: 1,
            },
        ];
        sort_groups(&mut g, Order::Key);
        assert_eq!(g[0].key[0], Value::Null);
        assert_eq!(g[1].key[0], Value::from("10.0.0.9"));
    }
}
