//! Renders the JSON results of the operator socket as text for people:
//! arrays of objects as aligned tables with headers from their keys, other
//! objects as `key  value` lists, and every number with its unit, chosen by
//! the key's suffix (docs/control-protocol.md, "Units"):
//!
//! | key                         | shown as             |
//! |-----------------------------|----------------------|
//! | `*_bytes_per_s`             | `1.5 MiB/s`          |
//! | `*_per_s`, `*_pps`          | `12,345/s`           |
//! | `*bytes*`                   | `1.5 MiB`            |
//! | `*_s`, `*_secs`, `*_seconds`| `3 s`, `1.2 s`       |
//! | `*_ms`                      | `12 ms`              |
//! | `*_pct`, `*_percent`        | `42.0 %`             |
//! | `*_ratio`, `*_fraction`     | `42.0 %` (0–1 scaled)|
//! | `*_at`, `*_unix`, `*_time`, `*window`, `*window_start`, `*window_end` (seconds since 1970) | `2026-11-29T04:25:00Z` |
//! | any other integer           | `1,234,567`          |
//!
//! Identity columns (`id`, `*_id`, `name`, `worker`, ...) come first, so
//! the tables read well whatever order the server's keys arrive in.

use serde_json::{Map, Value};
use std::fmt::Write as _;

/// How a number is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Rate,
    Bytes,
    ByteRate,
    Seconds,
    Millis,
    Percent,
    Ratio,
    Time,
}

/// The unit of a value from its key.
pub fn unit_of(key: &str) -> Unit {
    let k = key.to_ascii_lowercase();
    let ends = |s: &[&str]| s.iter().any(|x| k.ends_with(x));
    let rate = ends(&["_per_s", "_per_sec", "_per_second", "_pps", "_rate"]);
    if rate && k.contains("bytes") || ends(&["_bps"]) {
        Unit::ByteRate
    } else if rate {
        Unit::Rate
    } else if k.contains("bytes") {
        Unit::Bytes
    } else if ends(&["_pct", "_percent"]) {
        Unit::Percent
    } else if ends(&["_ratio", "_fraction"]) {
        Unit::Ratio
    } else if ends(&[
        "_at",
        "_unix",
        "_time",
        "window",
        "window_start",
        "window_end",
    ]) {
        Unit::Time
    } else if ends(&["_ms", "_millis"]) {
        Unit::Millis
    } else if ends(&["_s", "_secs", "_seconds"]) || k == "uptime" {
        Unit::Seconds
    } else {
        Unit::Count
    }
}

/// Whether a column names its row (shown first).
pub fn is_identity(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "id" | "name" | "worker" | "lcore" | "core" | "queue" | "port" | "index" | "sink"
    ) || k.ends_with("_id")
        || k.ends_with("_name")
}

/// A header for a key: `packets_in_per_s` → `PACKETS IN/S`, `lag_s` →
/// `LAG` (the cells carry the unit).
pub fn header(key: &str) -> String {
    let mut k = key.to_owned();
    for (suffix, with) in [
        ("_per_second", "/s"),
        ("_per_sec", "/s"),
        ("_per_s", "/s"),
        ("_seconds", ""),
        ("_secs", ""),
        ("_s", ""),
        ("_ms", ""),
        ("_pct", ""),
        ("_percent", ""),
        ("_ratio", ""),
    ] {
        if let Some(stem) = k.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            k = format!("{stem}{with}");
            break;
        }
    }
    k.replace(['_', '-'], " ").to_uppercase()
}

/// Where an identity column goes: ids and names first, then workers, cores,
/// queues; `None` for other columns.
fn identity_rank(key: &str) -> Option<u8> {
    let k = key.to_ascii_lowercase();
    if !is_identity(&k) {
        return None;
    }
    Some(match k.as_str() {
        "id" => 0,
        _ if k.ends_with("_id") => 1,
        "name" => 2,
        _ if k.ends_with("_name") => 3,
        "worker" => 4,
        "lcore" | "core" => 5,
        _ => 6,
    })
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{} B", number(v))
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An integer with separators, a fraction with at most one decimal.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e30 {
        thousands(v as i128)
    } else if v.abs() >= 100.0 {
        thousands(v.round() as i128)
    } else {
        format!("{v:.1}")
    }
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A number shown in `unit`.
pub fn with_unit(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => number(v),
        Unit::Rate => format!("{}/s", number(v)),
        Unit::Bytes => bytes(v),
        Unit::ByteRate => format!("{}/s", bytes(v)),
        Unit::Seconds => format!("{} s", number(v)),
        Unit::Millis => format!("{} ms", number(v)),
        Unit::Percent => format!("{v:.1} %"),
        Unit::Ratio => format!("{:.1} %", v * 100.0),
        Unit::Time if v > 0.0 && v < 1e11 => utc(v as i64),
        Unit::Time => number(v),
    }
}

/// One value of `key`, as a table cell.
pub fn cell(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => match n.as_f64() {
            Some(f) => with_unit(f, unit_of(key)),
            None => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let parts: Vec<String> = a.iter().map(|x| cell(key, x)).collect();
            if parts.is_empty() {
                "-".to_owned()
            } else {
                parts.join(",")
            }
        }
        other => other.to_string(),
    }
}

/// Whether a value is right-aligned in a table.
fn numeric(v: &Value) -> bool {
    v.is_number()
}

/// The columns of rows: identity keys first, then the rest in first-seen
/// order.
pub fn columns(rows: &[&Map<String, Value>]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !seen.iter().any(|s| s == k) {
                seen.push(k.clone());
            }
        }
    }
    let (mut ids, rest): (Vec<String>, Vec<String>) =
        seen.into_iter().partition(|k| is_identity(k));
    // Stable: equal ranks keep their order.
    ids.sort_by_key(|k| identity_rank(k));
    ids.extend(rest);
    ids
}

/// An aligned table: a header line, then one line per row.
pub fn table(headers: &[String], rows: &[Vec<(String, bool)>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, (c, _)) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = (&str, bool)>| {
        let mut l = String::new();
        for (i, (c, right)) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                l.push_str("  ");
            }
            let pad = w.saturating_sub(c.chars().count());
            if right {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    let right: Vec<bool> = (0..headers.len())
        .map(|i| rows.iter().any(|r| r.get(i).is_some_and(|c| c.1)))
        .collect();
    line(
        &mut out,
        &mut headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), right[i])),
    );
    for r in rows {
        line(&mut out, &mut r.iter().map(|(c, a)| (c.as_str(), *a)));
    }
    out
}

/// Rows of objects as a table (keys as headers).
pub fn objects_table(rows: &[&Map<String, Value>]) -> String {
    let cols = columns(rows);
    let headers: Vec<String> = cols.iter().map(|c| header(c)).collect();
    let cells: Vec<Vec<(String, bool)>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match r.get(c) {
                    Some(v) => (cell(c, v), numeric(v)),
                    None => ("-".to_owned(), false),
                })
                .collect()
        })
        .collect();
    table(&headers, &cells)
}

/// A section title: `flow_logs` → `Flow logs`.
pub fn title(key: &str) -> String {
    let t = key.replace(['_', '-', '.'], " ");
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => t,
    }
}

/// Renders any result: scalars as `key: value` lines, arrays of objects and
/// objects of objects as tables, nested objects as indented sections.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    render_into(&mut out, None, v, 0);
    out
}

fn render_into(out: &mut String, key: Option<&str>, v: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match v {
        Value::Object(m) if m.is_empty() => {
            if let Some(k) = key {
                let _ = writeln!(out, "{indent}{}: -", title(k));
            }
        }
        Value::Object(m) => {
            let title_line = |out: &mut String| {
                if let Some(k) = key {
                    let _ = writeln!(out, "{indent}{}", title(k));
                }
            };
            // An object of objects, keyed by id: a table with the key first.
            if m.len() > 1 && m.values().all(Value::is_object) && all_flat(m.values()) {
                title_line(out);
                let name = key.map_or("id".to_owned(), singular_id);
                let rows: Vec<Map<String, Value>> = m
                    .iter()
                    .map(|(k, r)| {
                        let mut row = Map::new();
                        row.insert(name.clone(), Value::String(k.clone()));
                        if let Value::Object(o) = r {
                            row.extend(o.iter().map(|(a, b)| (a.clone(), b.clone())));
                        }
                        row
                    })
                    .collect();
                let refs: Vec<&Map<String, Value>> = rows.iter().collect();
                push_indented(
                    out,
                    &objects_table(&refs),
                    depth + usize::from(key.is_some()),
                );
                return;
            }
            title_line(out);
            let inner = depth + usize::from(key.is_some());
            let pad = "  ".repeat(inner);
            let scalars: Vec<(&String, &Value)> = m.iter().filter(|(_, x)| is_flat(x)).collect();
            let width = scalars
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0);
            for (k, x) in &scalars {
                let _ = writeln!(
                    out,
                    "{pad}{:<width$}  {}",
                    format!("{k}:"),
                    cell(k, x),
                    width = width + 1
                );
            }
            for (k, x) in m.iter().filter(|(_, x)| !is_flat(x)) {
                if !out.is_empty() && !out.ends_with("\n\n") {
                    out.push('\n');
                }
                render_into(out, Some(k), x, inner);
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
            if let Some(k) = key {
                let _ = writeln!(out, "{indent}{} ({})", title(k), a.len());
            }
            let rows: Vec<&Map<String, Value>> = a.iter().filter_map(Value::as_object).collect();
            push_indented(
                out,
                &objects_table(&rows),
                depth + usize::from(key.is_some()),
            );
        }
        Value::Array(a) if a.is_empty() => {
            if let Some(k) = key {
                let _ = writeln!(out, "{indent}{}: none", title(k));
            }
        }
        other => match key {
            Some(k) => {
                let _ = writeln!(out, "{indent}{k}: {}", cell(k, other));
            }
            None => {
                let _ = writeln!(out, "{indent}{}", cell("", other));
            }
        },
    }
}

/// A value that fits in a table cell.
fn is_flat(v: &Value) -> bool {
    match v {
        Value::Object(_) => false,
        Value::Array(a) => a.iter().all(|x| !x.is_object() && !x.is_array()),
        _ => true,
    }
}

/// Objects of flat values, all with the same keys: rows of one table (an
/// object keyed by id), not different things side by side.
fn all_flat<'a>(rows: impl Iterator<Item = &'a Value>) -> bool {
    let mut first: Option<Vec<&String>> = None;
    for r in rows {
        let Some(o) = r.as_object() else {
            return false;
        };
        if !o.values().all(is_flat) {
            return false;
        }
        let keys: Vec<&String> = o.keys().collect();
        match &first {
            None => first = Some(keys),
            Some(f) if *f != keys => return false,
            Some(_) => {}
        }
    }
    true
}

/// The id column of a keyed object: `enis` → `eni_id`, `workers` → `worker`.
fn singular_id(key: &str) -> String {
    match key.strip_suffix('s') {
        Some("worker") => "worker".to_owned(),
        Some(s) if !s.is_empty() => format!("{s}_id"),
        _ => "id".to_owned(),
    }
}

fn push_indented(out: &mut String, text: &str, depth: usize) {
    let pad = "  ".repeat(depth);
    for l in text.lines() {
        out.push_str(&pad);
        out.push_str(l);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(cell("rx_per_s", &json!(12345)), "12,345/s");
        assert_eq!(cell("rx_bytes_per_s", &json!(2097152)), "2.0 MiB/s");
        assert_eq!(cell("bytes", &json!(10)), "10 B");
        assert_eq!(cell("exporter_lag_s", &json!(3)), "3 s");
        assert_eq!(cell("occupancy_pct", &json!(42)), "42.0 %");
        assert_eq!(cell("occupancy_ratio", &json!(0.5)), "50.0 %");
        assert_eq!(
            cell("last_window", &json!(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(cell("error", &Value::Null), "-");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(header("packets_in_per_s"), "PACKETS IN/S");
        assert_eq!(header("exporter_lag_s"), "EXPORTER LAG");
        assert_eq!(header("_s"), " S");
        assert_eq!(cell("bytes_in_per_s", &json!(3072)), "3.0 KiB/s");
    }

    #[test]
    fn tables() {
        let v = json!({
            "uptime_s": 12,
            "workers": [
                {"packets_in": 1000, "worker": 0},
                {"packets_in": 20, "worker": 1, "extra": "x"}
            ],
            "enis": {"eni-a": {"packets": 1}, "eni-b": {"packets": 2}},
            "describe": {"flow_log": {"status": "Active"}, "delivery": {"state": "ok"}},
            "empty": [],
        });
        let text = render(&v);
        assert!(text.contains("uptime_s:  12 s"), "{text}");
        assert!(text.contains("Workers (2)"), "{text}");
        assert!(text.contains("WORKER  PACKETS IN  EXTRA"), "{text}");
        let t = objects_table(&[json!({"lcore": 1, "worker": 0, "eni_id": "e"})
            .as_object()
            .unwrap()]);
        assert!(t.starts_with("ENI ID  WORKER  LCORE"), "{t}");
        assert!(text.contains("     0       1,000  -"), "{text}");
        assert!(text.contains("ENI ID"), "{text}");
        assert!(text.contains("empty:     -"), "{text}");
        assert!(text.contains("  Flow log\n    status:  Active"), "{text}");
    }
}
