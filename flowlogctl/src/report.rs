//! The traffic report: one self-contained HTML file (inline SVG drawn with
//! plotters, inline CSS, no script, no font, no link out) with, for each
//! question, a chart and beside it the figures as a table whose cells
//! carry `data-key` (a stable name) and `data-value` (the exact number),
//! so that a program can read the page back and compare it with a query.
//!
//! Keys: `summary/{records,packets,bytes}`,
//! `bytes-over-time/<eni>/<window-start>/bytes`,
//! `top-talkers/<src>-><dst>/{bytes,packets,records}`,
//! `rejected/<eni>/<direction>/<peer>/<protocol>/<dstport>/{packets,bytes,records}`,
//! `egress/<eni>-><dst>/{bytes,packets,records}`,
//! `health/<eni>/<window-start>/<log-status>/{records,packets,bytes}`.

use crate::filter::{protocol_name, Filter};
use crate::output::{human_bytes, thousands};
use crate::presets;
use crate::query::{run_queries, Answer, Group};
use crate::scan::ScanStats;
use crate::time::rfc3339;
use anyhow::{anyhow, Result};
use exporter::config::Config;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// What the report shows.
#[derive(Clone, Debug)]
pub struct Options {
    /// Page title.
    pub title: String,
    /// Rows of each ranking.
    pub top: usize,
    /// ENIs drawn in the line chart (the rest summed as `other`).
    pub series: usize,
    /// How the store is named on the page.
    pub store_label: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            title: "Flow-log traffic report".into(),
            top: 10,
            series: 8,
            store_label: String::new(),
        }
    }
}

/// A written report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The page.
    pub html: String,
    /// What the scan read.
    pub scan: ScanStats,
    /// Every figure of the page: `data-key` to exact value.
    pub figures: BTreeMap<String, u64>,
}

impl Report {
    /// A JSON summary: where it went, what was read, the figures.
    pub fn summary(&self, out: &Path) -> Value {
        json!({
            "out": out.display().to_string(),
            "bytes": self.html.len(),
            "scan": self.scan,
            "figures": self.figures,
        })
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The unit that shows `max` bytes with a readable number.
fn byte_unit(max: u64) -> (f64, &'static str) {
    const U: [(f64, &str); 5] = [
        (1.0, "B"),
        (1024.0, "KiB"),
        (1048576.0, "MiB"),
        (1073741824.0, "GiB"),
        (1099511627776.0, "TiB"),
    ];
    let mut best = U[0];
    for u in U {
        if max as f64 >= u.0 {
            best = u;
        }
    }
    best
}

/// The unit that shows `max` packets or records: plain, thousands, millions.
fn count_unit(max: u64) -> (f64, &'static str) {
    if max >= 10_000_000 {
        (1e6, "millions")
    } else if max >= 10_000 {
        (1e3, "thousands")
    } else {
        (1.0, "")
    }
}

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

const W: u32 = 760;

/// A line chart of bytes per window, one series per ENI.
fn line_chart(title: &str, series: &[(String, Vec<(u64, u64)>)]) -> Result<String> {
    let mut svg = String::new();
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
    let (x0, x1) = (xs.clone().min().unwrap_or(0), xs.max().unwrap_or(0));
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .max()
        .unwrap_or(0);
    let (div, unit) = byte_unit(ymax);
    let (x0, x1) = if x0 == x1 {
        (x0.saturating_sub(300), x1 + 300)
    } else {
        (x0, x1)
    };
    let span = x1 - x0;
    let day = rfc3339(x0)[..10].to_owned();
    let fmt_x = move |x: &u64| -> String {
        let t = rfc3339(*x);
        // Ticks of a short span fall inside one minute: show seconds, so no
        // two labels read the same.
        if span < 3_600 {
            t[11..19].to_owned()
        } else if span <= 86_400 {
            t[11..16].to_owned()
        } else {
            format!("{} {}", &t[5..10], &t[11..16])
        }
    };
    {
        let root = SVGBackend::with_string(&mut svg, (W, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x0..x1, 0f64..(ymax as f64 / div * 1.1).max(1.0))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&fmt_x)
            .y_labels(8)
            .x_desc(format!("window start (UTC, from {day})"))
            .y_desc(format!("bytes per window ({unit})"))
            .draw()
            .map_err(draw_err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let data: Vec<(u64, f64)> = pts.iter().map(|(x, y)| (*x, *y as f64 / div)).collect();
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(data.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Horizontal bars, largest at the top.
fn bar_chart(
    title: &str,
    labels: &[String],
    values: &[u64],
    bytes: bool,
    axis: &str,
    legend: &str,
) -> Result<String> {
    let n = labels.len() as u32;
    let max = values.iter().copied().max().unwrap_or(0);
    let (div, unit) = if bytes {
        byte_unit(max)
    } else {
        count_unit(max)
    };
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32;
    let label_px = (longest * 7 + 16).clamp(60, 380);
    let h = 120 + 28 * n.max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(label_px)
            .build_cartesian_2d(
                0f64..(max as f64 / div * 1.1).max(1.0),
                (0..n.max(1)).into_segmented(),
            )
            .map_err(draw_err)?;
        let fmt_y = |v: &SegmentValue<u32>| -> String {
            match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
                    labels[(n - 1 - i) as usize].clone()
                }
                _ => String::new(),
            }
        };
        let x_desc = if unit.is_empty() {
            axis.to_owned()
        } else {
            format!("{axis} ({unit})")
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1) as usize)
            .y_label_formatter(&fmt_y)
            .x_labels(6)
            .x_desc(x_desc)
            .draw()
            .map_err(draw_err)?;
        let color = Palette99::pick(0).to_rgba();
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let seg = n - 1 - i as u32;
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(seg)),
                        (*v as f64 / div, SegmentValue::Exact(seg + 1)),
                    ],
                    color.filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(draw_err)?
            .label(legend)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// One table of figures.
struct FigTable {
    id: &'static str,
    head: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

enum Cell {
    Text(String),
    Num {
        key: String,
        value: u64,
        bytes: bool,
    },
}

impl FigTable {
    fn html(&self, figures: &mut BTreeMap<String, u64>) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<table class=\"figures\" id=\"{}-table\"><thead><tr>",
            self.id
        );
        for c in &self.head {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            h.push_str("<tr>");
            for c in r {
                match c {
                    Cell::Text(t) => {
                        let _ = write!(h, "<td>{}</td>", esc(t));
                    }
                    Cell::Num { key, value, bytes } => {
                        let human = if *bytes {
                            human_bytes(*value)
                        } else {
                            thousands(*value)
                        };
                        let _ = write!(
                            h,
                            "<td class=\"num\" id=\"{k}\" data-key=\"{k}\" data-value=\"{value}\" title=\"{}\">{value}</td>",
                            esc(&human),
                            k = esc(key),
                        );
                        figures.insert(key.clone(), *value);
                    }
                }
            }
            h.push_str("</tr>");
        }
        if self.rows.is_empty() {
            let _ = write!(
                h,
                "<tr><td colspan=\"{}\" class=\"empty\">no matching records</td></tr>",
                self.head.len()
            );
        }
        h.push_str("</tbody></table>");
        h
    }
}

fn num(key: String, value: u64, bytes: bool) -> Cell {
    Cell::Num { key, value, bytes }
}

/// The three sums of a group, keyed `<prefix>/<metric>`, in `order`.
fn sums(prefix: &str, g: &Group, order: [&str; 3]) -> Vec<Cell> {
    order
        .iter()
        .map(|m| {
            let v = match *m {
                "bytes" => g.bytes,
                "packets" => g.packets,
                _ => g.records,
            };
            num(format!("{prefix}/{m}"), v, *m == "bytes")
        })
        .collect()
}

fn section(id: &str, title: &str, note: &str, chart: Option<String>, table: String) -> String {
    let chart = chart
        .unwrap_or_else(|| "<p class=\"empty\">no matching records: nothing to draw</p>".into());
    format!(
        "<section id=\"{id}\"><h2>{}</h2><p class=\"note\">{}</p><div class=\"pair\"><div class=\"chart\">{chart}</div><div class=\"fig\">{table}</div></div></section>\n",
        esc(title),
        esc(note)
    )
}

const CSS: &str = "body{font-family:sans-serif;margin:24px;color:#222;background:#fafafa}\
h1{font-size:24px;margin:0 0 8px}h2{font-size:19px;margin:0 0 4px}\
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:16px;margin:16px 0}\
.pair{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}\
.chart svg{max-width:100%;height:auto}.fig{flex:1;min-width:320px;max-height:640px;overflow:auto}\
table.figures{border-collapse:collapse;font-size:13px}\
table.figures th,table.figures td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;white-space:nowrap}\
table.figures td.num{text-align:right;font-variant-numeric:tabular-nums}\
.note{color:#555;font-size:13px;margin:0 0 10px}.empty{color:#888}\
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:14px}dt{color:#555}";

/// Builds the report of the records under `store` that `filter` keeps.
pub fn build(
    store: &Path,
    filter: &Filter,
    config: Option<&Config>,
    o: &Options,
) -> Result<Report> {
    let mut over_time = presets::bytes_over_time(filter.clone());
    over_time.top = None;
    let mut talkers = presets::top_talkers(filter.clone());
    talkers.top = Some(o.top);
    let mut rejected = presets::rejected(filter.clone());
    rejected.top = Some(o.top);
    let health = presets::health(filter.clone());
    let mut queries = vec![over_time, talkers, rejected, health];
    let mut total = crate::query::Query::new(vec![]);
    total.filter = filter.clone();
    queries.push(total);
    if let Some(c) = config {
        let mut e = presets::egress(filter.clone(), c);
        e.top = Some(o.top);
        queries.push(e);
    }
    let answers = run_queries(store, filter.from, filter.to, &queries)?;
    let scan = answers[0].scan;
    let mut figures = BTreeMap::new();
    let mut body = String::new();

    // Summary.
    let tot = &answers[4].total;
    let range = match (filter.from, filter.to) {
        (None, None) => "all records".to_owned(),
        (f, t) => format!(
            "{} to {}",
            f.map_or("the first record".into(), rfc3339),
            t.map_or("the last record".into(), rfc3339)
        ),
    };
    let _ = write!(
        body,
        "<section id=\"summary\"><h2>Summary</h2><dl class=\"summary\">\
         <dt>log store</dt><dd>{}</dd><dt>time range (record start)</dt><dd>{}</dd>\
         <dt>files read</dt><dd>{} ({}), {} skipped outside the range</dd>\
         <dt>records read</dt><dd>{}</dd></dl>",
        esc(&o.store_label),
        esc(&range),
        scan.files_read,
        human_bytes(scan.file_bytes),
        scan.files_skipped,
        thousands(scan.records_read)
    );
    let t = FigTable {
        id: "summary",
        head: vec!["matching records".into(), "packets".into(), "bytes".into()],
        rows: vec![vec![
            num("summary/records".into(), tot.records, false),
            num("summary/packets".into(), tot.packets, false),
            num("summary/bytes".into(), tot.bytes, true),
        ]],
    };
    body.push_str(&t.html(&mut figures));
    body.push_str("</section>\n");

    // Bytes over time per ENI.
    body.push_str(&over_time_section(&answers[0], o.series, &mut figures)?);

    // Top talkers.
    body.push_str(&pair_section(
        &answers[1],
        PairSection {
            id: "top-talkers",
            heads: ["source", "destination"],
            chart_title: &format!("Top {} talkers by bytes", o.top),
            legend: "bytes sent (OK records)",
            title: "Top talkers",
            about: "OK records summed by source and destination address. A flow between two ENIs of this host is logged at both ends (out and in) and counts twice.",
        },
        &mut figures,
    )?);

    // Rejected.
    let a = &answers[2];
    let explained = config.map(|c| presets::explain_groups(a, c)).transpose()?;
    let flow_label = |g: &Group| {
        let proto = g.key[3]
            .as_u64()
            .and_then(protocol_name)
            .map_or(text(&g.key[3]), str::to_owned);
        format!(
            "{} {} {} {}/{}",
            text(&g.key[0]),
            text(&g.key[1]),
            text(&g.key[2]),
            proto,
            text(&g.key[4])
        )
    };
    let labels: Vec<String> = a.groups.iter().map(flow_label).collect();
    let rows = a
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut r: Vec<Cell> = g.key.iter().map(|k| Cell::Text(text(k))).collect();
            r.insert(0, Cell::Text((i + 1).to_string()));
            let key: Vec<String> = g.key.iter().map(text).collect();
            r.extend(sums(
                &format!("rejected/{}", key.join("/")),
                g,
                ["packets", "bytes", "records"],
            ));
            if let Some(ex) = &explained {
                r.push(Cell::Text(ex[i].clone()));
            }
            r
        })
        .collect();
    let mut head: Vec<String> = [
        "#",
        "eni-id",
        "direction",
        "peer",
        "protocol",
        "dstport",
        "packets",
        "bytes",
        "records",
    ]
    .map(String::from)
    .to_vec();
    if explained.is_some() {
        head.push("rule (current configuration)".into());
    }
    let t = FigTable {
        id: "rejected",
        head,
        rows,
    };
    let chart = (!a.groups.is_empty())
        .then(|| {
            let v: Vec<u64> = a.groups.iter().map(|g| g.packets).collect();
            bar_chart(
                "Rejected flows by packets",
                &labels,
                &v,
                false,
                "packets",
                "packets rejected",
            )
        })
        .transpose()?;
    let note = if config.is_some() {
        "REJECT records by ENI, direction, peer, protocol and destination port; the last column names the rule of the given configuration that rejects the flow, judged by the rules alone."
    } else {
        "REJECT records by ENI, direction, peer, protocol and destination port. Give --config to name the rule that rejects each flow."
    };
    body.push_str(&section(
        "rejected",
        "Rejected flows",
        note,
        chart,
        t.html(&mut figures),
    ));

    // Egress.
    if let Some(a) = answers.get(5) {
        body.push_str(&pair_section(
            a,
            PairSection {
                id: "egress",
                heads: ["eni-id", "destination"],
                chart_title: "Traffic leaving the VPC by bytes",
                legend: "bytes to outside the VPC",
                title: "Traffic leaving the VPC",
                about: "Accepted out records whose destination lies outside every CIDR of the ENI's VPC (the vSwitches' cidr and ipv6_cidr in the configuration), by ENI and destination.",
            },
            &mut figures,
        )?);
    } else {
        body.push_str(&section(
            "egress",
            "Traffic leaving the VPC",
            "Give --config: the VPCs' CIDRs come from the configuration.",
            None,
            String::new(),
        ));
    }

    // Health.
    let a = &answers[3];
    let rows = a
        .groups
        .iter()
        .map(|g| {
            let w = g.key[1].as_u64().unwrap_or(0);
            let mut r = vec![
                Cell::Text(text(&g.key[0])),
                Cell::Text(rfc3339(w)),
                Cell::Text(text(&g.key[2])),
            ];
            r.extend(sums(
                &format!("health/{}/{}/{}", text(&g.key[0]), w, text(&g.key[2])),
                g,
                ["records", "packets", "bytes"],
            ));
            r
        })
        .collect();
    let t = FigTable {
        id: "health",
        head: [
            "eni-id",
            "window start",
            "log-status",
            "records",
            "packets skipped",
            "bytes skipped",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    };
    body.push_str(&section(
        "health",
        "Missing data",
        "NODATA: the ENI logged no packet in the window. SKIPDATA: packets the ENI could not record (their number and bytes).",
        Some(String::new()),
        t.html(&mut figures),
    ));

    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{CSS}</style></head>\n<body><h1>{t}</h1><p class=\"note\">Generated by flowlogctl {v}. Times are UTC. Bytes are IP-level (RECORDS.md).</p>\n{body}</body></html>\n",
        t = esc(&o.title),
        v = env!("CARGO_PKG_VERSION"),
    );
    Ok(Report {
        html,
        scan,
        figures,
    })
}

fn over_time_section(
    a: &Answer,
    series: usize,
    figures: &mut BTreeMap<String, u64>,
) -> Result<String> {
    // Per ENI: points (window, bytes); the largest ENIs drawn, the rest as "other".
    let mut per_eni: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for g in &a.groups {
        let w = g.key[0].as_u64().unwrap_or(0);
        per_eni
            .entry(text(&g.key[1]))
            .or_default()
            .push((w, g.bytes));
    }
    let mut ranked: Vec<(String, u64)> = per_eni
        .iter()
        .map(|(e, p)| (e.clone(), p.iter().map(|(_, b)| *b).sum()))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let windows: std::collections::BTreeSet<u64> =
        a.groups.iter().filter_map(|g| g.key[0].as_u64()).collect();
    let mut drawn: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
    let mut other: BTreeMap<u64, u64> = BTreeMap::new();
    for (i, (eni, _)) in ranked.iter().enumerate() {
        let pts = &per_eni[eni];
        if i < series {
            // Windows where the ENI sent nothing are 0 on its line.
            let m: BTreeMap<u64, u64> = pts.iter().copied().collect();
            drawn.push((
                eni.clone(),
                windows
                    .iter()
                    .map(|w| (*w, m.get(w).copied().unwrap_or(0)))
                    .collect(),
            ));
        } else {
            for (w, b) in pts {
                *other.entry(*w).or_default() += b;
            }
        }
    }
    if !other.is_empty() {
        drawn.push((
            format!("other ({} ENIs)", ranked.len() - series),
            windows
                .iter()
                .map(|w| (*w, other.get(w).copied().unwrap_or(0)))
                .collect(),
        ));
    }
    let rows = a
        .groups
        .iter()
        .map(|g| {
            let w = g.key[0].as_u64().unwrap_or(0);
            let eni = text(&g.key[1]);
            let mut r = vec![Cell::Text(rfc3339(w)), Cell::Text(eni.clone())];
            r.extend(sums(
                &format!("bytes-over-time/{eni}/{w}"),
                g,
                ["bytes", "packets", "records"],
            ));
            r
        })
        .collect();
    let t = FigTable {
        id: "bytes-over-time",
        head: ["window start", "eni-id", "bytes", "packets", "records"]
            .map(String::from)
            .to_vec(),
        rows,
    };
    let chart = (!drawn.is_empty())
        .then(|| line_chart("Bytes over time per ENI", &drawn))
        .transpose()?;
    Ok(section(
        "bytes-over-time",
        "Bytes over time per ENI",
        "OK records' bytes per aggregation window and ENI, both directions (the largest ENIs drawn, the rest summed as other).",
        chart,
        t.html(figures),
    ))
}

/// A section of groups keyed by two values (top talkers, egress).
struct PairSection<'a> {
    /// Its id, which also starts each figure's key.
    id: &'static str,
    /// Headers of the two key columns.
    heads: [&'static str; 2],
    chart_title: &'a str,
    /// The bars' legend.
    legend: &'static str,
    title: &'static str,
    /// The sentence under the title.
    about: &'static str,
}

/// A bar chart of bytes per key pair beside the table of its figures.
fn pair_section(
    a: &Answer,
    p: PairSection<'_>,
    figures: &mut BTreeMap<String, u64>,
) -> Result<String> {
    let key = |g: &Group| (text(&g.key[0]), text(&g.key[1]));
    let labels: Vec<String> = a
        .groups
        .iter()
        .map(|g| {
            let (x, y) = key(g);
            format!("{x} → {y}")
        })
        .collect();
    let rows = a
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (x, y) = key(g);
            let mut r = vec![
                Cell::Text((i + 1).to_string()),
                Cell::Text(x.clone()),
                Cell::Text(y.clone()),
            ];
            r.extend(sums(
                &format!("{}/{x}->{y}", p.id),
                g,
                ["bytes", "packets", "records"],
            ));
            r
        })
        .collect();
    let t = FigTable {
        id: p.id,
        head: ["#", p.heads[0], p.heads[1], "bytes", "packets", "records"]
            .map(String::from)
            .to_vec(),
        rows,
    };
    let chart = (!a.groups.is_empty())
        .then(|| {
            let v: Vec<u64> = a.groups.iter().map(|g| g.bytes).collect();
            bar_chart(p.chart_title, &labels, &v, true, "bytes", p.legend)
        })
        .transpose()?;
    Ok(section(p.id, p.title, p.about, chart, t.html(figures)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg() {
        let s = line_chart("t", &[("eni-1".into(), vec![(600, 10), (1200, 5000)])]).unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..50]);
        assert!(s.contains("eni-1"));
        let s = line_chart("t", &[("eni-1".into(), vec![(600, 10)])]).unwrap();
        assert!(s.contains("<svg"));
        let s = bar_chart(
            "b",
            &["a → b".into(), "c → d".into()],
            &[2048, 10],
            true,
            "bytes",
            "l",
        )
        .unwrap();
        assert!(s.contains("a → b") && s.contains("KiB"), "{s}");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
