//! The record's fields as a query sees them, and one record as a row of
//! borrowed values (no allocation per record on the fast paths).

use std::fmt;

/// A field of a record (RECORDS.md's keys, then `flow-log-id` and
/// `window-start`), or `peer`: the address on the other side from the ENI
/// (`srcaddr` for `in`, `dstaddr` for `out`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    /// `version`
    Version,
    /// `account-id`
    AccountId,
    /// `vpc-id`
    VpcId,
    /// `vswitch-id`
    VswitchId,
    /// `vm-id`
    VmId,
    /// `eni-id`
    EniId,
    /// `srcaddr`
    SrcAddr,
    /// `dstaddr`
    DstAddr,
    /// `srcport`
    SrcPort,
    /// `dstport`
    DstPort,
    /// `protocol`
    Protocol,
    /// `direction`
    Direction,
    /// `packets`
    Packets,
    /// `bytes`
    Bytes,
    /// `start`
    Start,
    /// `end`
    End,
    /// `tcp-flags`
    TcpFlags,
    /// `log-status`
    LogStatus,
    /// `action`
    Action,
    /// `flow-log-id`
    FlowLogId,
    /// `window-start`
    WindowStart,
    /// Derived: the peer address (`srcaddr` of `in`, `dstaddr` of `out`).
    Peer,
}

/// Number of stored fields (every field but [`Field::Peer`]).
pub const STORED: usize = 21;

impl Field {
    /// Every stored field, in the record's order.
    pub const ALL_STORED: [Field; STORED] = [
        Field::Version,
        Field::AccountId,
        Field::VpcId,
        Field::VswitchId,
        Field::VmId,
        Field::EniId,
        Field::SrcAddr,
        Field::DstAddr,
        Field::SrcPort,
        Field::DstPort,
        Field::Protocol,
        Field::Direction,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::TcpFlags,
        Field::LogStatus,
        Field::Action,
        Field::FlowLogId,
        Field::WindowStart,
    ];

    /// The record key (`peer` for the derived field).
    pub fn name(self) -> &'static str {
        match self {
            Field::Version => "version",
            Field::AccountId => "account-id",
            Field::VpcId => "vpc-id",
            Field::VswitchId => "vswitch-id",
            Field::VmId => "vm-id",
            Field::EniId => "eni-id",
            Field::SrcAddr => "srcaddr",
            Field::DstAddr => "dstaddr",
            Field::SrcPort => "srcport",
            Field::DstPort => "dstport",
            Field::Protocol => "protocol",
            Field::Direction => "direction",
            Field::Packets => "packets",
            Field::Bytes => "bytes",
            Field::Start => "start",
            Field::End => "end",
            Field::TcpFlags => "tcp-flags",
            Field::LogStatus => "log-status",
            Field::Action => "action",
            Field::FlowLogId => "flow-log-id",
            Field::WindowStart => "window-start",
            Field::Peer => "peer",
        }
    }

    /// The field a record key names (the key exactly as in the record, or
    /// with `_` for `-`, or without the dashes: `eni-id`, `eni_id`, `eniid`),
    /// also `src`/`dst` for the addresses and `window` for `window-start`.
    pub fn parse(s: &str) -> Option<Field> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        let f = match norm.as_str() {
            "src" => Field::SrcAddr,
            "dst" => Field::DstAddr,
            "window" => Field::WindowStart,
            "peer" => Field::Peer,
            "proto" => Field::Protocol,
            "status" => Field::LogStatus,
            "eni" => Field::EniId,
            "vpc" => Field::VpcId,
            "vswitch" => Field::VswitchId,
            "vm" => Field::VmId,
            "account" => Field::AccountId,
            "flowlog" => Field::FlowLogId,
            "flags" => Field::TcpFlags,
            _ => *Field::ALL_STORED
                .iter()
                .find(|f| f.name().replace('-', "") == norm)?,
        };
        Some(f)
    }

    /// Position among the stored fields (`Peer` has none).
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The field of a JSON key, when it is one of the record's. Dispatched
    /// on the key's length and first byte, then compared as one integer
    /// (no `memcmp` call): this runs for every key of every JSON Lines
    /// record.
    #[inline]
    pub fn of_key(key: &[u8]) -> Option<Field> {
        /// Up to 16 bytes as one little-endian integer.
        const fn pack(k: &[u8]) -> u128 {
            let mut x = 0u128;
            let mut i = 0;
            while i < k.len() {
                x |= (k[i] as u128) << (8 * i);
                i += 1;
            }
            x
        }
        #[inline(always)]
        fn is<const N: usize>(key: &[u8], want: u128) -> bool {
            match <&[u8; N]>::try_from(key) {
                Ok(k) => pack(k) == want,
                Err(_) => false,
            }
        }
        macro_rules! key {
            ($f:expr, $n:literal, $s:literal) => {{
                const P: u128 = pack($s);
                ($f, is::<$n>(key, P))
            }};
        }
        let f = match (key.len(), key.first()?) {
            (7, b'v') => key!(Field::Version, 7, b"version"),
            (10, b'a') => key!(Field::AccountId, 10, b"account-id"),
            (6, b'v') => key!(Field::VpcId, 6, b"vpc-id"),
            (10, b'v') => key!(Field::VswitchId, 10, b"vswitch-id"),
            (5, b'v') => key!(Field::VmId, 5, b"vm-id"),
            (6, b'e') => key!(Field::EniId, 6, b"eni-id"),
            (7, b's') if key[3] == b'a' => key!(Field::SrcAddr, 7, b"srcaddr"),
            (7, b'd') if key[3] == b'a' => key!(Field::DstAddr, 7, b"dstaddr"),
            (7, b's') => key!(Field::SrcPort, 7, b"srcport"),
            (7, b'd') => key!(Field::DstPort, 7, b"dstport"),
            (8, b'p') => key!(Field::Protocol, 8, b"protocol"),
            (9, b'd') => key!(Field::Direction, 9, b"direction"),
            (7, b'p') => key!(Field::Packets, 7, b"packets"),
            (5, b'b') => key!(Field::Bytes, 5, b"bytes"),
            (5, b's') => key!(Field::Start, 5, b"start"),
            (3, b'e') => key!(Field::End, 3, b"end"),
            (9, b't') => key!(Field::TcpFlags, 9, b"tcp-flags"),
            (10, b'l') => key!(Field::LogStatus, 10, b"log-status"),
            (6, b'a') => key!(Field::Action, 6, b"action"),
            (11, b'f') => key!(Field::FlowLogId, 11, b"flow-log-id"),
            (12, b'w') => key!(Field::WindowStart, 12, b"window-start"),
            _ => return None,
        };
        f.1.then_some(f.0)
    }

    /// Whether the field holds a number (else a string).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Field::Version
                | Field::SrcPort
                | Field::DstPort
                | Field::Protocol
                | Field::Packets
                | Field::Bytes
                | Field::Start
                | Field::End
                | Field::TcpFlags
                | Field::WindowStart
        )
    }

    /// Every field name a user may write, for error messages.
    pub fn names() -> String {
        let mut v: Vec<&str> = Field::ALL_STORED.iter().map(|f| f.name()).collect();
        v.push("peer");
        v.join(", ")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of fields (one bit each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    /// Every stored field.
    pub const ALL: FieldSet = FieldSet((1 << STORED) - 1);

    /// Adds `f` (`peer` adds what it is made of).
    pub fn add(&mut self, f: Field) {
        if f == Field::Peer {
            self.0 |= 1 << Field::SrcAddr.index()
                | 1 << Field::DstAddr.index()
                | 1 << Field::Direction.index();
        } else {
            self.0 |= 1 << f.index();
        }
    }

    /// With `f` added.
    pub fn with(mut self, f: Field) -> FieldSet {
        self.add(f);
        self
    }

    /// Whether the stored field `f` is in the set.
    #[inline]
    pub fn has(self, f: Field) -> bool {
        self.0 & (1 << f.index()) != 0
    }

    /// The stored fields in the set, in record order.
    pub fn fields(self) -> impl Iterator<Item = Field> {
        Field::ALL_STORED.into_iter().filter(move |f| self.has(*f))
    }
}

/// One value of a row: borrowed text, a number (as parsed, or as the
/// decimal digits it was written with), or null (also for a missing key).
/// Text is kept as bytes: the JSON Lines reader does not check UTF-8 per
/// value (serde_json does, on the slow path); output converts lossily.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum V<'a> {
    /// `null`, or the key is absent.
    #[default]
    Null,
    /// A string value (without its quotes; JSON escapes already undone).
    Str(&'a [u8]),
    /// A non-negative integer written as decimal digits (not yet parsed).
    Digits(&'a [u8]),
    /// A number.
    Num(u64),
}

impl<'a> V<'a> {
    /// The number, if this is one.
    #[inline]
    pub fn num(self) -> Option<u64> {
        match self {
            V::Num(n) => Some(n),
            V::Digits(d) => parse_digits(d),
            _ => None,
        }
    }

    /// The text, if this is a string of valid UTF-8.
    #[inline]
    pub fn str(self) -> Option<&'a str> {
        match self {
            V::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// Whether this is null.
    pub fn is_null(self) -> bool {
        self == V::Null
    }

    /// As a JSON value (numbers exact, strings as they are).
    pub fn to_json(self) -> serde_json::Value {
        match self {
            V::Null => serde_json::Value::Null,
            V::Str(s) => serde_json::Value::String(String::from_utf8_lossy(s).into_owned()),
            V::Digits(_) | V::Num(_) => match self.num() {
                Some(n) => serde_json::Value::from(n),
                None => serde_json::Value::Null,
            },
        }
    }
}

/// Parses ASCII decimal digits (at most 20) into a `u64`.
#[inline]
pub fn parse_digits(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in d {
        let v = b.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(v))?;
    }
    Some(n)
}

/// One record as the query sees it: a value per stored field. A field
/// whose bit in `set` is clear reads as null, so a reader can reuse one
/// row for many records and clear only the mask.
#[derive(Clone, Copy, Debug, Default)]
pub struct Row<'a> {
    /// Values by [`Field::index`]; valid where `set` has the bit.
    pub vals: [V<'a>; STORED],
    /// Which values are set.
    pub set: u32,
}

impl<'a> Row<'a> {
    /// Sets a value.
    #[inline]
    pub fn put(&mut self, f: Field, v: V<'a>) {
        self.vals[f.index()] = v;
        self.set |= 1 << f.index();
    }

    /// The stored value of `f`.
    #[inline]
    fn stored(&self, f: Field) -> V<'a> {
        if self.set & (1 << f.index()) != 0 {
            self.vals[f.index()]
        } else {
            V::Null
        }
    }

    /// The value of `f` (for `peer`, the address on the far side).
    #[inline]
    pub fn get(&self, f: Field) -> V<'a> {
        if f == Field::Peer {
            return match self.stored(Field::Direction) {
                V::Str(b"in") => self.stored(Field::SrcAddr),
                V::Str(b"out") => self.stored(Field::DstAddr),
                _ => V::Null,
            };
        }
        self.stored(f)
    }

    /// `packets`, 0 when absent.
    #[inline]
    pub fn packets(&self) -> u64 {
        self.stored(Field::Packets).num().unwrap_or(0)
    }

    /// `bytes`, 0 when absent.
    #[inline]
    pub fn bytes(&self) -> u64 {
        self.stored(Field::Bytes).num().unwrap_or(0)
    }

    /// The stored fields as one JSON object in record order.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        Field::ALL_STORED
            .iter()
            .map(|f| (f.name().to_owned(), self.stored(*f).to_json()))
            .collect()
    }
}

/// A row that owns its text: what the slow paths (the text form, JSON with
/// escapes) produce.
#[derive(Clone, Debug, Default)]
pub struct OwnedRow {
    vals: Vec<OwnedV>,
}

#[derive(Clone, Debug, Default)]
enum OwnedV {
    #[default]
    Null,
    Str(String),
    Num(u64),
}

impl OwnedRow {
    /// From a parsed JSON object (unknown keys ignored; a value of another
    /// type than the field's becomes null).
    pub fn from_json(obj: &serde_json::Map<String, serde_json::Value>) -> OwnedRow {
        let mut vals = vec![OwnedV::Null; STORED];
        for (k, v) in obj {
            let Some(f) = Field::of_key(k.as_bytes()) else {
                continue;
            };
            vals[f.index()] = match v {
                serde_json::Value::String(s) => OwnedV::Str(s.clone()),
                serde_json::Value::Number(n) => n.as_u64().map_or(OwnedV::Null, OwnedV::Num),
                _ => OwnedV::Null,
            };
        }
        OwnedRow { vals }
    }

    /// From a parsed record.
    pub fn from_record(r: &exporter::record::Record) -> OwnedRow {
        let s = |x: &str| OwnedV::Str(x.to_owned());
        let os = |x: Option<String>| x.map_or(OwnedV::Null, OwnedV::Str);
        let on = |x: Option<u64>| x.map_or(OwnedV::Null, OwnedV::Num);
        OwnedRow {
            vals: vec![
                OwnedV::Num(u64::from(r.version)),
                s(&r.account_id),
                s(&r.vpc_id),
                s(&r.vswitch_id),
                os(r.vm_id.clone()),
                s(&r.eni_id),
                os(r.srcaddr.map(|a| a.to_string())),
                os(r.dstaddr.map(|a| a.to_string())),
                on(r.srcport.map(u64::from)),
                on(r.dstport.map(u64::from)),
                on(r.protocol.map(u64::from)),
                os(r.direction.map(|d| d.as_str().to_owned())),
                OwnedV::Num(r.packets),
                OwnedV::Num(r.bytes),
                OwnedV::Num(r.start),
                OwnedV::Num(r.end),
                OwnedV::Num(u64::from(r.tcp_flags)),
                s(r.log_status.as_str()),
                os(r.action.map(|a| a.as_str().to_owned())),
                s(&r.flow_log_id),
                OwnedV::Num(r.window_start),
            ],
        }
    }

    /// The borrowed row.
    pub fn row(&self) -> Row<'_> {
        let mut row = Row::default();
        for (f, v) in Field::ALL_STORED.iter().zip(&self.vals) {
            row.put(
                *f,
                match v {
                    OwnedV::Null => V::Null,
                    OwnedV::Str(s) => V::Str(s.as_bytes()),
                    OwnedV::Num(n) => V::Num(*n),
                },
            );
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_parse_back() {
        for f in Field::ALL_STORED {
            assert_eq!(Field::parse(f.name()), Some(f));
            assert_eq!(Field::of_key(f.name().as_bytes()), Some(f));
            assert_eq!(Field::parse(&f.name().replace('-', "_")), Some(f));
        }
        assert_eq!(Field::parse("peer"), Some(Field::Peer));
        assert_eq!(Field::parse("src"), Some(Field::SrcAddr));
        assert_eq!(Field::parse("nope"), None);
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits(b"0"), Some(0));
        assert_eq!(parse_digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_digits(b"18446744073709551616"), None);
        assert_eq!(parse_digits(b"1a"), None);
        assert_eq!(parse_digits(b""), None);
    }

    #[test]
    fn peer_follows_direction() {
        let mut r = Row::default();
        r.put(Field::SrcAddr, V::Str(b"1.1.1.1"));
        r.put(Field::DstAddr, V::Str(b"2.2.2.2"));
        r.put(Field::Direction, V::Str(b"in"));
        assert_eq!(r.get(Field::Peer), V::Str(b"1.1.1.1"));
        r.put(Field::Direction, V::Str(b"out"));
        assert_eq!(r.get(Field::Peer), V::Str(b"2.2.2.2"));
        r.set = 0;
        assert_eq!(r.get(Field::Peer), V::Null);
    }
}
