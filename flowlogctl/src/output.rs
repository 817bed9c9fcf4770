//! Answers as an aligned table (units for people), JSON or CSV (exact
//! values for programs).

use crate::filter::protocol_name;
use crate::model::Field;
use crate::query::Answer;
use crate::scan::ScanStats;
use crate::time::rfc3339;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// How a column's values are shown in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text as it is.
    Text,
    /// A byte count: `1.5 MiB` in the table.
    Bytes,
    /// A count: `12,345` in the table.
    Count,
    /// Unix seconds: RFC 3339 in the table.
    Time,
    /// A protocol number: its name in the table.
    Protocol,
    /// A plain number.
    Number,
}

impl Kind {
    /// The kind of a record field's column.
    pub fn of(f: Field) -> Kind {
        match f {
            Field::Bytes => Kind::Bytes,
            Field::Packets => Kind::Count,
            Field::Start | Field::End | Field::WindowStart => Kind::Time,
            Field::Protocol => Kind::Protocol,
            f if f.is_numeric() => Kind::Number,
            _ => Kind::Text,
        }
    }

    fn right_aligned(self) -> bool {
        matches!(self, Kind::Bytes | Kind::Count | Kind::Number)
    }
}

/// Rows of exact values with named, typed columns.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column names and kinds.
    pub columns: Vec<(String, Kind)>,
    /// Rows, one exact value per column.
    pub rows: Vec<Vec<Value>>,
    /// Extra facts for the JSON form and the table's footer.
    pub meta: Map<String, Value>,
    /// The footer line under the table.
    pub footer: String,
}

/// Output forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns with units.
    Table,
    /// One JSON object: `columns`, `rows` (objects), and facts.
    Json,
    /// A header line, then one line per row; exact values.
    Csv,
}

impl Format {
    /// Parses `table`, `json`, `csv`.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "text" => Some(Format::Table),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// IEC units: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value as the table shows it.
pub fn show(v: &Value, kind: Kind) -> String {
    match (v, kind) {
        (Value::Null, _) => "-".to_owned(),
        (Value::Number(n), Kind::Bytes) => n.as_u64().map_or(n.to_string(), human_bytes),
        (Value::Number(n), Kind::Count) => n.as_u64().map_or(n.to_string(), thousands),
        (Value::Number(n), Kind::Time) => n.as_u64().map_or(n.to_string(), rfc3339),
        (Value::Number(n), Kind::Protocol) => match n.as_u64().and_then(protocol_name) {
            Some(name) => name.to_owned(),
            None => n.to_string(),
        },
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    }
}

/// A value as CSV writes it: exact, null empty.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn scan_line(s: &ScanStats) -> String {
    format!(
        "read {} files ({}), {} records; skipped {} files outside the time range",
        s.files_read,
        human_bytes(s.file_bytes),
        thousands(s.records_read),
        s.files_skipped
    )
}

impl Table {
    /// The table of an answer: the group-by fields, then records, packets
    /// and bytes.
    pub fn of_answer(a: &Answer) -> Table {
        let mut columns: Vec<(String, Kind)> = a
            .group_by
            .iter()
            .map(|f| (f.name().to_owned(), Kind::of(*f)))
            .collect();
        columns.push(("records".to_owned(), Kind::Count));
        columns.push(("packets".to_owned(), Kind::Count));
        columns.push(("bytes".to_owned(), Kind::Bytes));
        let rows = a
            .groups
            .iter()
            .map(|g| {
                let mut r = g.key.clone();
                r.extend([json!(g.records), json!(g.packets), json!(g.bytes)]);
                r
            })
            .collect();
        let mut meta = Map::new();
        meta.insert("groups_total".into(), json!(a.groups_total));
        meta.insert(
            "total".into(),
            json!({"records": a.total.records, "packets": a.total.packets, "bytes": a.total.bytes}),
        );
        meta.insert(
            "scan".into(),
            serde_json::to_value(a.scan).unwrap_or_default(),
        );
        let shown = if a.groups.len() < a.groups_total {
            format!("top {} of {} groups", a.groups.len(), a.groups_total)
        } else {
            format!("{} groups", a.groups_total)
        };
        let footer = format!(
            "{shown}; matched {} records, {} packets, {}; {}",
            thousands(a.total.records),
            thousands(a.total.packets),
            human_bytes(a.total.bytes),
            scan_line(&a.scan)
        );
        Table {
            columns,
            rows,
            meta,
            footer,
        }
    }

    /// The table of listed records (every field).
    pub fn of_records(records: &[Map<String, Value>], matched: usize, scan: &ScanStats) -> Table {
        let columns: Vec<(String, Kind)> = Field::ALL_STORED
            .iter()
            .map(|f| (f.name().to_owned(), Kind::of(*f)))
            .collect();
        let rows = records
            .iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|(c, _)| r.get(c).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        let mut meta = Map::new();
        meta.insert("matched".into(), json!(matched));
        meta.insert(
            "scan".into(),
            serde_json::to_value(scan).unwrap_or_default(),
        );
        Table {
            columns,
            rows,
            meta,
            footer: format!(
                "{} of {} matching records; {}",
                records.len(),
                thousands(matched as u64),
                scan_line(scan)
            ),
        }
    }

    /// Adds a column (one value per row).
    pub fn push_column(&mut self, name: &str, kind: Kind, values: Vec<Value>) {
        self.columns.push((name.to_owned(), kind));
        for (r, v) in self.rows.iter_mut().zip(values) {
            r.push(v);
        }
    }

    /// The rows as JSON objects keyed by column name.
    pub fn json_rows(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|r| {
                Value::Object(
                    self.columns
                        .iter()
                        .zip(r)
                        .map(|((c, _), v)| (c.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }

    /// Renders in a format.
    pub fn render(&self, format: Format) -> anyhow::Result<String> {
        Ok(match format {
            Format::Table => self.render_table(),
            Format::Json => {
                let mut o = Map::new();
                o.insert(
                    "columns".into(),
                    Value::Array(self.columns.iter().map(|(c, _)| json!(c)).collect()),
                );
                o.insert("rows".into(), Value::Array(self.json_rows()));
                for (k, v) in &self.meta {
                    o.insert(k.clone(), v.clone());
                }
                let mut s = serde_json::to_string_pretty(&Value::Object(o))?;
                s.push('\n');
                s
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(self.columns.iter().map(|(c, _)| c.as_str()))?;
                for r in &self.rows {
                    w.write_record(r.iter().map(csv_cell))?;
                }
                String::from_utf8(w.into_inner()?)?
            }
        })
    }

    fn render_table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&self.columns)
                    .map(|(v, (_, k))| show(v, *k))
                    .collect()
            })
            .collect();
        let width: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (c, _))| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, vals: &[String]| {
            let mut l = String::new();
            for (i, v) in vals.iter().enumerate() {
                if i > 0 {
                    l.push_str("  ");
                }
                let pad = width[i] - v.chars().count();
                if self.columns[i].1.right_aligned() {
                    l.extend(std::iter::repeat_n(' ', pad));
                    l.push_str(v);
                } else {
                    l.push_str(v);
                    l.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        let header: Vec<String> = self.columns.iter().map(|(c, _)| c.clone()).collect();
        line(&mut out, &header);
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule);
        for r in &cells {
            line(&mut out, r);
        }
        if self.rows.is_empty() {
            out.push_str("(no matching records)\n");
        }
        let _ = writeln!(out, "{}", self.footer);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(123), "123");
        assert_eq!(show(&json!(6), Kind::Protocol), "tcp");
        assert_eq!(
            show(&json!(1_704_067_200), Kind::Time),
            "2024-01-01T00:00:00Z"
        );
    }

    #[test]
    fn formats() {
        let t = Table {
            columns: vec![("eni-id".into(), Kind::Text), ("bytes".into(), Kind::Bytes)],
            rows: vec![
                vec![json!("eni,\"1\""), json!(2048)],
                vec![Value::Null, json!(5)],
            ],
            meta: Map::new(),
            footer: "f".into(),
        };
        let csv = t.render(Format::Csv).unwrap();
        assert_eq!(csv, "eni-id,bytes\n\"eni,\"\"1\"\"\",2048\n,5\n");
        let table = t.render(Format::Table).unwrap();
        assert!(table.contains("2.00 KiB"), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0].len(), lines[2].len(), "{table}");
        let j: Value = serde_json::from_str(&t.render(Format::Json).unwrap()).unwrap();
        assert_eq!(j["rows"][0]["bytes"], json!(2048));
    }
}
