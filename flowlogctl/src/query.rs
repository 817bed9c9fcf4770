//! The questions: filter, group by fields, sum records / packets / bytes,
//! sort, keep the top N. One scan can answer several questions at once
//! (the report does).

use crate::filter::Filter;
use crate::model::{Field, FieldSet, Row, V};
use crate::scan::{scan, ScanStats};
use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
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
    short: HashSet<Entry, BuildHasherDefault<KeyHasher>>,
    /// Groups with longer keys (IPv6 pairs, long ids).
    long: HashMap<Box<[u8]>, Slot, BuildHasherDefault<KeyHasher>>,
    /// The key values of group `Slot::idx`, kept for the answer.
    keys: Vec<Vec<Value>>,
    key: Vec<u8>,
    total: Group,
}

/// Hashes group keys (a few short strings and numbers): 8 bytes at a
/// time with a multiply, then murmur3's finaliser, so that the high bits
/// the table's tags come from are well mixed. (FxHash's output varies too
/// little in them for keys like addresses that differ in a few bytes:
/// tags collide and every probe ends in a `memcmp`.)
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

/// Longest group key kept inline in the table (an IPv4 address pair with
/// its separator is at most 31 bytes).
const INLINE: usize = 31;

/// A group with a short key: the key, zero-padded, and its sums, in one
/// 64-byte cache line. Equality and hash look at the key only; the sums
/// are cells, so a set lookup can update them in place.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct Entry {
    len: u8,
    key: [u8; INLINE],
    idx: u32,
    records: Cell<u64>,
    packets: Cell<u64>,
    bytes: Cell<u64>,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        self.len == o.len && self.key == o.key
    }
}

impl Eq for Entry {}

impl std::hash::Hash for Entry {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(&self.key[..usize::from(self.len)]);
    }
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
            short: HashSet::default(),
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
        for (i, f) in self.group_by.iter().enumerate() {
            if i > 0 {
                self.key.push(SEP);
            }
            match r.get(*f) {
                V::Null => self.key.push(0),
                V::Str(s) | V::Digits(s) => self.key.extend_from_slice(s),
                V::Num(n) => push_digits(&mut self.key, n),
            }
        }
        if self.key.len() <= INLINE {
            let mut probe = Entry {
                len: self.key.len() as u8,
                key: [0; INLINE],
                idx: 0,
                records: Cell::new(0),
                packets: Cell::new(0),
                bytes: Cell::new(0),
            };
            probe.key[..self.key.len()].copy_from_slice(&self.key);
            let e = match self.short.get(&probe) {
                Some(e) => e,
                None => {
                    probe.idx = self.new_group(r);
                    let again = probe.clone();
                    self.short.insert(probe);
                    self.short.get(&again).expect("just inserted")
                }
            };
            e.records.set(e.records.get() + 1);
            e.packets.set(e.packets.get() + packets);
            e.bytes.set(e.bytes.get() + bytes);
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

    /// Keeps the key values of a new group; its index.
    #[cold]
    fn new_group(&mut self, r: &Row<'_>) -> u32 {
        self.keys
            .push(self.group_by.iter().map(|f| r.get(*f).to_json()).collect());
        (self.keys.len() - 1) as u32
    }

    /// The sorted, cut answer.
    pub fn finish(self, order: Order, top: Option<usize>, scan: ScanStats) -> Answer {
        let mut keys: Vec<Option<Vec<Value>>> = self.keys.into_iter().map(Some).collect();
        let mut groups: Vec<Group> = self
            .short
            .into_iter()
            .map(|e| Slot {
                idx: e.idx,
                records: e.records.get(),
                packets: e.packets.get(),
                bytes: e.bytes.get(),
            })
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
