//! The same questions against the ClickHouse sink's table, as SQL over
//! ClickHouse's HTTP interface.
//!
//! The table is `scripts/clickhouse/records.sql`: RECORDS.md's keys with
//! `-` written `_` (`account-id` is `account_id`, `window-start` is
//! `window_start`), addresses as text (`Nullable(String)`), `direction`,
//! `log_status` and `action` as `Enum8` of the record's spellings, and
//! `start`, `end`, `window_start` as `DateTime('UTC')` — so times are
//! compared with `toDateTime(N)` and read back with `toUInt32(…)`. The
//! enums are compared with their names and read back as they are
//! (`toString` of a `Nullable(Enum8)` fails on 18.16 where the value is
//! null).
//!
//! The SQL keeps to functions ClickHouse 18.16 (Debian 12's) has: a CIDR
//! becomes a range of `IPv4StringToNum(addr)` for IPv4 text, or of
//! `hex(IPv6StringToNum(addr))` (32 hex digits compare like the numbers)
//! for IPv6 text; text with a `:` is IPv6, as the local reader decides.
//! The time range also bounds `window_start` (the partition key), as the
//! local reader skips partitions.

use crate::filter::{Filter, PortSpan};
use crate::model::Field;
use crate::query::{sort_groups, Answer, Group, Metric, Order, Query};
use crate::scan::{ScanStats, MAX_INTERVAL};
use anyhow::{anyhow, bail, Context as _, Result};
use exporter::config::Cidr;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// Where the table is.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:8123`.
    pub url: String,
    /// Database.
    pub database: String,
    /// Table.
    pub table: String,
    /// `X-ClickHouse-User`, if any.
    pub user: Option<String>,
    /// `X-ClickHouse-Key`, if any.
    pub password: Option<String>,
}

/// The table's column of a field.
pub fn column(f: Field) -> &'static str {
    match f {
        Field::Version => "version",
        Field::AccountId => "account_id",
        Field::VpcId => "vpc_id",
        Field::VswitchId => "vswitch_id",
        Field::VmId => "vm_id",
        Field::EniId => "eni_id",
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
        Field::TcpFlags => "tcp_flags",
        Field::LogStatus => "log_status",
        Field::Action => "action",
        Field::FlowLogId => "flow_log_id",
        Field::WindowStart => "window_start",
        Field::Peer => "peer",
    }
}

/// The SQL expression that yields a field's value as the records have it.
fn expr(f: Field) -> String {
    match f {
        Field::Start | Field::End | Field::WindowStart => format!("toUInt32(`{}`)", column(f)),
        Field::Peer => {
            "multiIf(direction = 'in', srcaddr, direction = 'out', dstaddr, NULL)".to_owned()
        }
        _ => format!("`{}`", column(f)),
    }
}

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for c in s.chars() {
        match c {
            '\'' => o.push_str("\\'"),
            '\\' => o.push_str("\\\\"),
            _ => o.push(c),
        }
    }
    o.push('\'');
    o
}

/// The condition "`e` (address text) lies in `c`".
fn cidr_cond(e: &str, c: &Cidr) -> String {
    match c.network() {
        IpAddr::V4(n) => {
            let lo = u32::from(n);
            let hi = lo | u32::MAX.checked_shr(u32::from(c.prefix())).unwrap_or(0);
            format!("(position({e}, ':') = 0 AND IPv4StringToNum({e}) BETWEEN {lo} AND {hi})")
        }
        IpAddr::V6(n) => {
            let lo = u128::from(n);
            let hi = lo | u128::MAX.checked_shr(u32::from(c.prefix())).unwrap_or(0);
            format!(
                "(position({e}, ':') > 0 AND hex(IPv6StringToNum({e})) BETWEEN '{lo:032X}' AND '{hi:032X}')"
            )
        }
    }
}

fn any_cidr(e: &str, nets: &[Cidr]) -> String {
    let parts: Vec<String> = nets.iter().map(|c| cidr_cond(e, c)).collect();
    format!("({})", parts.join(" OR "))
}

fn port_cond(e: &str, spans: &[PortSpan]) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|(a, b)| {
            if a == b {
                format!("{e} = {a}")
            } else {
                format!("{e} BETWEEN {a} AND {b}")
            }
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

/// The `WHERE` conditions of a filter (empty: none).
pub fn where_clause(f: &Filter) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(from) = f.from {
        w.push(format!("`start` >= toDateTime({from})"));
        w.push(format!(
            "`window_start` > toDateTime({})",
            from.saturating_sub(MAX_INTERVAL)
        ));
    }
    if let Some(to) = f.to {
        w.push(format!("`start` < toDateTime({to})"));
        w.push(format!("`window_start` < toDateTime({to})"));
    }
    for (field, values) in &f.equals {
        let e = expr(*field);
        let mut alts = Vec::new();
        let lits: Vec<String> = values
            .iter()
            .filter(|v| *v != "-")
            .map(|v| quote(v))
            .collect();
        if !lits.is_empty() {
            alts.push(format!("{e} IN ({})", lits.join(", ")));
        }
        if values.iter().any(|v| v == "-") {
            alts.push(format!("`{}` IS NULL", column(*field)));
        }
        w.push(format!("({})", alts.join(" OR ")));
    }
    if !f.protocol.is_empty() {
        let ps: Vec<String> = f.protocol.iter().map(u8::to_string).collect();
        w.push(format!("`protocol` IN ({})", ps.join(", ")));
    }
    if !f.srcport.is_empty() {
        w.push(port_cond("`srcport`", &f.srcport));
    }
    if !f.dstport.is_empty() {
        w.push(port_cond("`dstport`", &f.dstport));
    }
    if !f.port.is_empty() {
        w.push(format!(
            "({} OR {})",
            port_cond("`srcport`", &f.port),
            port_cond("`dstport`", &f.port)
        ));
    }
    if let Some(m) = f.tcp_flags {
        w.push(format!("bitAnd(`tcp_flags`, {m}) = {m}"));
    }
    if let Some(m) = f.min_bytes {
        w.push(format!("`bytes` >= {m}"));
    }
    if let Some(m) = f.min_packets {
        w.push(format!("`packets` >= {m}"));
    }
    if !f.src.is_empty() {
        w.push(any_cidr("`srcaddr`", &f.src));
    }
    if !f.dst.is_empty() {
        w.push(any_cidr("`dstaddr`", &f.dst));
    }
    if !f.addr.is_empty() {
        w.push(format!(
            "({} OR {})",
            any_cidr("`srcaddr`", &f.addr),
            any_cidr("`dstaddr`", &f.addr)
        ));
    }
    if !f.peer.is_empty() {
        w.push(any_cidr(&expr(Field::Peer), &f.peer));
    }
    if let Some(vpcs) = &f.outside_vpc {
        let mut inside = Vec::new();
        let mut keys: Vec<&String> = vpcs.keys().collect();
        keys.sort();
        for vpc in keys {
            let nets = &vpcs[vpc];
            if !nets.is_empty() {
                inside.push(format!(
                    "(`vpc_id` = {} AND {})",
                    quote(vpc),
                    any_cidr("`dstaddr`", nets)
                ));
            }
        }
        w.push("`dstaddr` IS NOT NULL".to_owned());
        if !inside.is_empty() {
            w.push(format!("NOT ({})", inside.join(" OR ")));
        }
    }
    w
}

/// The SQL of a question (without a `FORMAT` clause).
pub fn sql(q: &Query, t: &Target) -> String {
    let mut s = String::from("SELECT ");
    for (i, f) in q.group_by.iter().enumerate() {
        let _ = write!(s, "{} AS g{i}, ", expr(*f));
    }
    s.push_str("count() AS records, sum(`packets`) AS packets, sum(`bytes`) AS bytes");
    let _ = write!(s, "\nFROM `{}`.`{}`", t.database, t.table);
    let w = where_clause(&q.filter);
    if !w.is_empty() {
        let _ = write!(s, "\nWHERE {}", w.join("\n  AND "));
    }
    if !q.group_by.is_empty() {
        let g: Vec<String> = (0..q.group_by.len()).map(|i| format!("g{i}")).collect();
        let _ = write!(s, "\nGROUP BY {} WITH TOTALS", g.join(", "));
        let order = match q.order {
            Order::Desc(m) => {
                let m = match m {
                    Metric::Bytes => "bytes",
                    Metric::Packets => "packets",
                    Metric::Records => "records",
                };
                format!("{m} DESC, {}", g.join(", "))
            }
            Order::Key => g.join(", "),
        };
        let _ = write!(s, "\nORDER BY {order}");
        if let Some(n) = q.top {
            let _ = write!(s, "\nLIMIT {n}");
        }
    }
    s
}

fn num(v: &Value) -> Result<u64> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| anyhow!("{n} is not a count")),
        Value::String(s) => s.parse().map_err(|_| anyhow!("{s:?} is not a count")),
        other => bail!("{other} is not a count"),
    }
}

/// A group key value as the local reader has it: numbers as numbers.
fn key_value(f: Field, v: &Value) -> Value {
    match v {
        Value::String(s) if f.is_numeric() => {
            s.parse::<u64>().map(Value::from).unwrap_or(v.clone())
        }
        _ => v.clone(),
    }
}

/// Reads ClickHouse's `FORMAT JSON` answer to [`sql`].
pub fn parse_answer(q: &Query, body: &str) -> Result<Answer> {
    let v: Value = serde_json::from_str(body)
        .with_context(|| format!("ClickHouse's answer is not JSON: {}", snippet(body)))?;
    let data = v["data"]
        .as_array()
        .ok_or_else(|| anyhow!("ClickHouse's answer has no \"data\": {}", snippet(body)))?;
    let group = |row: &Value| -> Result<Group> {
        Ok(Group {
            key: q
                .group_by
                .iter()
                .enumerate()
                .map(|(i, f)| key_value(*f, &row[format!("g{i}")]))
                .collect(),
            records: num(&row["records"])?,
            packets: num(&row["packets"])?,
            bytes: num(&row["bytes"])?,
        })
    };
    let mut groups: Vec<Group> = data.iter().map(group).collect::<Result<_>>()?;
    let total = if q.group_by.is_empty() {
        groups.first().cloned().unwrap_or(Group {
            key: vec![],
            records: 0,
            packets: 0,
            bytes: 0,
        })
    } else {
        match v.get("totals") {
            Some(t) if t.is_object() => Group {
                key: vec![],
                ..group(t)?
            },
            _ => Group {
                key: vec![],
                records: groups.iter().map(|g| g.records).sum(),
                packets: groups.iter().map(|g| g.packets).sum(),
                bytes: groups.iter().map(|g| g.bytes).sum(),
            },
        }
    };
    if q.group_by.is_empty() {
        groups.clear();
        groups.push(Group {
            key: vec![],
            ..total.clone()
        });
    }
    sort_groups(&mut groups, q.order);
    let groups_total = v["rows_before_limit_at_least"]
        .as_u64()
        .map_or(groups.len(), |n| (n as usize).max(groups.len()));
    Ok(Answer {
        group_by: q.group_by.clone(),
        groups,
        groups_total,
        total,
        scan: ScanStats::default(),
    })
}

fn snippet(s: &str) -> String {
    let t: String = s.trim().chars().take(300).collect();
    if t.len() < s.trim().len() {
        format!("{t}…")
    } else {
        t
    }
}

/// Runs SQL over ClickHouse's HTTP interface and returns the body.
pub fn post(t: &Target, sql: &str) -> Result<String> {
    let base = t.url.trim_end_matches('/');
    if !base.starts_with("http://") {
        bail!(crate::UsageError(format!(
            "--clickhouse {:?}: write the HTTP interface's URL, e.g. http://127.0.0.1:8123 \
             (https is not built in)",
            t.url
        )));
    }
    let url = format!(
        "{base}/?output_format_json_quote_64bit_integers=0&database={}",
        t.database
    );
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent();
    let mut req = agent.post(&url);
    if let Some(u) = &t.user {
        req = req.header("X-ClickHouse-User", u);
    }
    if let Some(p) = &t.password {
        req = req.header("X-ClickHouse-Key", p);
    }
    let mut resp = req.send(sql.as_bytes()).map_err(|e| {
        anyhow!(
            "cannot reach ClickHouse at {base}: {e}; check --clickhouse and that the server runs"
        )
    })?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .with_context(|| format!("reading ClickHouse's answer from {base}"))?;
    if !status.is_success() {
        bail!(
            "ClickHouse at {base} refused the query ({status}): {}",
            snippet(&body)
        );
    }
    Ok(body)
}

/// Answers a question from ClickHouse.
pub fn run_query(t: &Target, q: &Query) -> Result<Answer> {
    let body = post(t, &format!("{}\nFORMAT JSON", sql(q, t)))?;
    parse_answer(q, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_cidrs;

    fn target() -> Target {
        Target {
            url: "http://127.0.0.1:8123".into(),
            database: "flowlogs".into(),
            table: "records".into(),
            user: None,
            password: None,
        }
    }

    #[test]
    fn sql_text() {
        let mut q = Query::new(vec![Field::SrcAddr, Field::DstAddr]);
        q.top = Some(10);
        q.filter.from = Some(1000);
        q.filter.to = Some(2000);
        q.filter.src = parse_cidrs("10.0.0.0/8,fd00::/8").unwrap();
        q.filter.equals(Field::Action, vec!["REJECT".into()]);
        q.filter.equals(Field::VmId, vec!["-".into()]);
        let s = sql(&q, &target());
        assert!(
            s.starts_with("SELECT `srcaddr` AS g0, `dstaddr` AS g1, count() AS records"),
            "{s}"
        );
        assert!(s.contains("FROM `flowlogs`.`records`"), "{s}");
        assert!(s.contains("`start` >= toDateTime(1000)"), "{s}");
        assert!(s.contains("`window_start` > toDateTime(400)"), "{s}");
        assert!(
            s.contains("IPv4StringToNum(`srcaddr`) BETWEEN 167772160 AND 184549375"),
            "{s}"
        );
        assert!(
            s.contains(
                "BETWEEN 'FD000000000000000000000000000000' AND 'FDFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF'"
            ),
            "{s}"
        );
        assert!(s.contains("`action` IN ('REJECT')"), "{s}");
        assert!(s.contains("`vm_id` IS NULL"), "{s}");
        assert!(
            s.contains("GROUP BY g0, g1 WITH TOTALS\nORDER BY bytes DESC, g0, g1\nLIMIT 10"),
            "{s}"
        );
        assert_eq!(quote("a'b\\"), "'a\\'b\\\\'");
    }

    #[test]
    fn answers() {
        let mut q = Query::new(vec![Field::SrcAddr, Field::WindowStart]);
        q.top = Some(1);
        let body = r#"{"meta":[],"data":[{"g0":"10.0.0.1","g1":600,"records":"2","packets":"3","bytes":"100"}],
                      "totals":{"g0":"","g1":0,"records":"5","packets":"6","bytes":"700"},"rows":1,
                      "rows_before_limit_at_least":4}"#;
        let a = parse_answer(&q, body).unwrap();
        assert_eq!(a.groups.len(), 1);
        assert_eq!(
            a.groups[0].key,
            vec![Value::from("10.0.0.1"), Value::from(600)]
        );
        assert_eq!((a.groups[0].records, a.groups[0].bytes), (2, 100));
        assert_eq!(a.total.bytes, 700);
        assert_eq!(a.groups_total, 4);
        assert!(parse_answer(&q, "Code: 62. Syntax error")
            .unwrap_err()
            .to_string()
            .contains("Syntax error"));
    }
}
