//! `flowlogctl top`: polls `stats` and shows counters as per-second rates
//! computed from the difference of two samples.
//!
//! Which fields are counters is decided by name, as the server's stats
//! grow: every non-negative integer whose key is not an identity (`*_id`,
//! `worker`, ...), not a duration or percentage (by unit suffix) and has no
//! gauge word (`depth`, `occupancy`, `capacity`, `high`, `water`, `used`,
//! `lag`, `active`, ...); a key ending in `_total` is always a counter.
//! Counters become `<key>_per_s`; everything else is shown as it is now.

use super::render::{is_identity, unit_of, Unit};
use serde_json::{Map, Number, Value};

const GAUGE_WORDS: &[&str] = &[
    "depth",
    "occupancy",
    "capacity",
    "high",
    "water",
    "hwm",
    "size",
    "max",
    "min",
    "limit",
    "used",
    "use",
    "current",
    "active",
    "lag",
    "interval",
    "pending",
    "queued",
    "backlog",
    "free",
    "len",
    "length",
    "level",
    "open",
    "clients",
    "workers",
    "enis",
    "now",
    "pid",
    "version",
    "protocol",
];

/// Whether the integer field `key` counts events (so its rate is shown).
pub fn is_counter(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_total") {
        return true;
    }
    if is_identity(&k) || !matches!(unit_of(&k), Unit::Count | Unit::Bytes) {
        return false;
    }
    if matches!(k.as_str(), "flows" | "conns" | "connections" | "entries") {
        return false;
    }
    !k.split(['_', '-', '.']).any(|w| GAUGE_WORDS.contains(&w))
}

/// `cur` with every counter replaced by its rate since `prev`, `dt` seconds
/// earlier (`null` where `prev` lacks it or it went down: a restart).
pub fn rates(prev: Option<&Value>, cur: &Value, dt: f64) -> Value {
    match cur {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let before = prev.and_then(|p| p.get(k));
                match v {
                    Value::Number(n) if n.as_u64().is_some() && is_counter(k) => {
                        let rate = match (n.as_u64(), before.and_then(Value::as_u64)) {
                            (Some(now), Some(then)) if now >= then && dt > 0.0 => {
                                Number::from_f64((now - then) as f64 / dt).map(Value::Number)
                            }
                            _ => None,
                        };
                        out.insert(format!("{k}_per_s"), rate.unwrap_or(Value::Null));
                    }
                    Value::Object(_) | Value::Array(_) => {
                        out.insert(k.clone(), rates(before, v, dt));
                    }
                    other => {
                        out.insert(k.clone(), other.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(rows) => {
            let before = prev.and_then(Value::as_array);
            Value::Array(
                rows.iter()
                    .enumerate()
                    .map(|(i, row)| {
                        let key = identity(row);
                        let matched = before.and_then(|b| match &key {
                            Some(k) => b.iter().find(|r| identity(r).as_ref() == Some(k)),
                            None => b.get(i),
                        });
                        rates(matched, row, dt)
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// What names a row: its identity fields, in key order.
fn identity(row: &Value) -> Option<String> {
    let m = row.as_object()?;
    let parts: Vec<String> = m
        .iter()
        .filter(|(k, _)| is_identity(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counters() {
        assert!(is_counter("packets_in"));
        assert!(is_counter("rx_bytes"));
        assert!(is_counter("evictions"));
        assert!(is_counter("records_exported"));
        assert!(!is_counter("ring_depth"));
        assert!(!is_counter("flows_high_water"));
        assert!(!is_counter("exporter_lag_s"));
        assert!(!is_counter("worker"));
        assert!(!is_counter("flow_log_id"));
        assert!(is_counter("conns_opened_total"));
    }

    #[test]
    fn rates_by_row_identity() {
        let a = json!({"workers": [{"worker": 1, "packets": 100, "ring_depth": 3},
                                   {"worker": 0, "packets": 10}]});
        let b = json!({"workers": [{"worker": 0, "packets": 30},
                                   {"worker": 1, "packets": 50, "ring_depth": 4},
                                   {"worker": 2, "packets": 5}]});
        let r = rates(Some(&a), &b, 2.0);
        assert_eq!(
            r,
            json!({"workers": [{"worker": 0, "packets_per_s": 10.0},
                               {"worker": 1, "packets_per_s": null, "ring_depth": 4},
                               {"worker": 2, "packets_per_s": null}]})
        );
    }
}
