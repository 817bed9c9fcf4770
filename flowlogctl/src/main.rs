//! `flowlogctl`: reads flow logs. Queries over a local log store or the
//! ClickHouse sink's table, ready-made questions, and an HTML report.
//! Exit status: 0 done, 2 the request was wrong (flags, files named), 1
//! something failed while answering.

use anyhow::{anyhow, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use flowlogctl::clickhouse::{self, Target};
use flowlogctl::filter::{
    parse_cidrs, parse_enum, parse_list, parse_ports, parse_protocols, parse_tcp_flags, Filter,
};
use flowlogctl::model::Field;
use flowlogctl::output::{Format, Kind, Table};
use flowlogctl::query::{self, Answer, Metric, Order, Query};
use flowlogctl::time::parse_time;
use flowlogctl::{presets, report, UsageError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "flowlogctl",
    version,
    about = "Read flow logs: query a local log store or ClickHouse, ready-made questions, an HTML report",
    after_help = "Exit status: 0 done, 2 wrong request (the message says what to change), 1 failure while answering.\n\
                  See docs/flowlogctl.md."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Filter records, group them, sum records/packets/bytes, rank them
    Query(QueryArgs),
    /// Who sends the most: OK records by srcaddr and dstaddr (top 10 by bytes)
    TopTalkers(PresetArgs),
    /// Rejected traffic by ENI, direction, peer, protocol and port (top 20 by packets)
    Rejected(RejectedArgs),
    /// Traffic leaving the VPC: accepted out records to destinations outside the VPC's CIDRs
    Egress(EgressArgs),
    /// Missing data: NODATA and SKIPDATA records by ENI and window
    Health(PresetArgs),
    /// One self-contained HTML file with charts and their figures
    Report(ReportArgs),
    /// Operator commands over flowlogd's socket (stats, top, flow-logs, enis, ...)
    #[command(flatten)]
    Ctl(flowlogctl::ctl::CtlCommand),
}

/// Where the records are.
#[derive(Args, Debug)]
struct SourceArgs {
    /// Local log store: the folder given to `flowlogd --out`, or any folder below it
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// ClickHouse HTTP interface instead of a local store, e.g. http://127.0.0.1:8123
    #[arg(long, value_name = "URL")]
    clickhouse: Option<String>,
    /// ClickHouse database
    #[arg(long, default_value = "flowlogs")]
    database: String,
    /// ClickHouse table (scripts/clickhouse/records.sql)
    #[arg(long, default_value = "records")]
    table: String,
    /// ClickHouse user (X-ClickHouse-User)
    #[arg(long, value_name = "USER", env = "CLICKHOUSE_USER")]
    clickhouse_user: Option<String>,
    /// ClickHouse password (X-ClickHouse-Key)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "CLICKHOUSE_PASSWORD",
        hide_env_values = true
    )]
    clickhouse_password: Option<String>,
    /// Print the ClickHouse SQL of the question and stop
    #[arg(long)]
    print_sql: bool,
}

/// Which records count. Lists are comma-separated alternatives.
#[derive(Args, Debug, Default)]
struct FilterArgs {
    /// Records whose start is at or after this time (Unix seconds or RFC 3339)
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Records whose start is before this time (Unix seconds or RFC 3339)
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// srcaddr in these networks (10.0.0.0/8,fd00::/8; an address is a host)
    #[arg(long, value_name = "CIDRS")]
    src: Option<String>,
    /// dstaddr in these networks
    #[arg(long, value_name = "CIDRS")]
    dst: Option<String>,
    /// srcaddr or dstaddr in these networks
    #[arg(long, value_name = "CIDRS")]
    addr: Option<String>,
    /// The peer (srcaddr of in, dstaddr of out) in these networks
    #[arg(long, value_name = "CIDRS")]
    peer: Option<String>,
    /// srcport in these ports or ranges (80,443,1024-65535)
    #[arg(long, value_name = "PORTS")]
    srcport: Option<String>,
    /// dstport in these ports or ranges (ICMP: type*256+code)
    #[arg(long, value_name = "PORTS")]
    dstport: Option<String>,
    /// srcport or dstport in these ports or ranges
    #[arg(long, value_name = "PORTS")]
    port: Option<String>,
    /// Protocols by name or number (tcp,udp,icmp,icmpv6,sctp,47)
    #[arg(long, value_name = "PROTOS")]
    protocol: Option<String>,
    /// in or out
    #[arg(long)]
    direction: Option<String>,
    /// ACCEPT or REJECT
    #[arg(long)]
    action: Option<String>,
    /// OK, NODATA, SKIPDATA
    #[arg(long, value_name = "STATUS")]
    log_status: Option<String>,
    /// Account ids
    #[arg(long, value_name = "IDS")]
    account_id: Option<String>,
    /// VPC ids
    #[arg(long, value_name = "IDS")]
    vpc_id: Option<String>,
    /// vSwitch ids
    #[arg(long, value_name = "IDS")]
    vswitch_id: Option<String>,
    /// Instance ids (- for a detached ENI)
    #[arg(long, value_name = "IDS")]
    vm_id: Option<String>,
    /// ENI ids
    #[arg(long, value_name = "IDS")]
    eni_id: Option<String>,
    /// Flow log ids
    #[arg(long, value_name = "IDS")]
    flow_log_id: Option<String>,
    /// tcp-flags has all these flags (SYN,ACK or 0x12 or 18)
    #[arg(long, value_name = "FLAGS")]
    tcp_flags: Option<String>,
    /// bytes at least this
    #[arg(long, value_name = "N")]
    min_bytes: Option<u64>,
    /// packets at least this
    #[arg(long, value_name = "N")]
    min_packets: Option<u64>,
}

/// How the answer is shaped and shown.
#[derive(Args, Debug)]
struct ShapeArgs {
    /// Group by these fields (any record key, or peer), e.g. srcaddr,dstaddr
    #[arg(long, value_name = "FIELDS")]
    group_by: Option<String>,
    /// Keep the first N groups
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Rank by bytes, packets or records (largest first), or key (group order)
    #[arg(long, value_name = "METRIC")]
    by: Option<String>,
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// table (aligned, units), json or csv (exact values)
    #[arg(long, short = 'o', default_value = "table")]
    output: String,
    /// Same as --output json
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct QueryArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// List the matching records themselves instead of sums
    #[arg(long, conflicts_with_all = ["group_by", "by", "top"])]
    list: bool,
    /// With --list: at most N records
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
}

#[derive(Args, Debug)]
struct PresetArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Args, Debug)]
struct RejectedArgs {
    #[command(flatten)]
    common: PresetArgs,
    /// Name the rule of the configuration that rejects each flow (needs --config)
    #[arg(long, requires = "config")]
    explain: bool,
    /// Host configuration (CONFIG.md)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct EgressArgs {
    #[command(flatten)]
    common: PresetArgs,
    /// Host configuration (CONFIG.md): the VPCs' CIDRs
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Local log store
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Host configuration: explains rejections and finds traffic leaving the VPC
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The HTML file to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Rows in each ranking (top talkers, rejected, egress)
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// ENIs drawn in the bytes-over-time chart (the largest; the rest summed as "other")
    #[arg(long, value_name = "N", default_value_t = 8)]
    series: usize,
    /// Title of the page
    #[arg(long, default_value = "Flow-log traffic report")]
    title: String,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print a JSON summary of what was written
    #[arg(long)]
    json: bool,
}

fn usage(msg: String) -> anyhow::Error {
    anyhow!(UsageError(msg))
}

/// A flag's parse error as a usage error that names the flag.
fn u<T>(flag: &str, r: std::result::Result<T, String>) -> Result<T> {
    r.map_err(|e| usage(format!("--{flag}: {e}")))
}

fn build_filter(a: &FilterArgs) -> Result<Filter> {
    let mut f = Filter {
        from: a
            .from
            .as_deref()
            .map(|s| u("from", parse_time(s)))
            .transpose()?,
        to: a
            .to
            .as_deref()
            .map(|s| u("to", parse_time(s)))
            .transpose()?,
        ..Filter::default()
    };
    if let (Some(from), Some(to)) = (f.from, f.to) {
        if from >= to {
            return Err(usage(format!(
                "--from ({from}) is not before --to ({to}); the range is [from, to)"
            )));
        }
    }
    let cidrs = |flag: &str, s: &Option<String>| -> Result<Vec<_>> {
        s.as_deref().map_or(Ok(vec![]), |s| u(flag, parse_cidrs(s)))
    };
    f.src = cidrs("src", &a.src)?;
    f.dst = cidrs("dst", &a.dst)?;
    f.addr = cidrs("addr", &a.addr)?;
    f.peer = cidrs("peer", &a.peer)?;
    let ports = |flag: &str, s: &Option<String>| -> Result<Vec<_>> {
        s.as_deref().map_or(Ok(vec![]), |s| u(flag, parse_ports(s)))
    };
    f.srcport = ports("srcport", &a.srcport)?;
    f.dstport = ports("dstport", &a.dstport)?;
    f.port = ports("port", &a.port)?;
    if let Some(p) = &a.protocol {
        f.protocol = u("protocol", parse_protocols(p))?;
    }
    for (field, flag, v) in [
        (Field::Direction, "direction", &a.direction),
        (Field::Action, "action", &a.action),
        (Field::LogStatus, "log-status", &a.log_status),
    ] {
        if let Some(v) = v {
            f.equals(field, u(flag, parse_enum(field, v))?);
        }
    }
    for (field, v) in [
        (Field::AccountId, &a.account_id),
        (Field::VpcId, &a.vpc_id),
        (Field::VswitchId, &a.vswitch_id),
        (Field::VmId, &a.vm_id),
        (Field::EniId, &a.eni_id),
        (Field::FlowLogId, &a.flow_log_id),
    ] {
        if let Some(v) = v {
            f.equals(field, parse_list(v));
        }
    }
    if let Some(t) = &a.tcp_flags {
        f.tcp_flags = Some(u("tcp-flags", parse_tcp_flags(t))?);
    }
    f.min_bytes = a.min_bytes;
    f.min_packets = a.min_packets;
    Ok(f)
}

/// Applies --group-by/--top/--by over a query's defaults.
fn shape(mut q: Query, s: &ShapeArgs) -> Result<Query> {
    if let Some(g) = &s.group_by {
        q.group_by = g
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| {
                Field::parse(x).ok_or_else(|| {
                    usage(format!(
                        "--group-by: {x:?} is not a field; use {}",
                        Field::names()
                    ))
                })
            })
            .collect::<Result<_>>()?;
    }
    if let Some(n) = s.top {
        q.top = Some(n);
    }
    if let Some(b) = &s.by {
        q.order = if b.eq_ignore_ascii_case("key") {
            Order::Key
        } else {
            Order::Desc(Metric::parse(b).ok_or_else(|| {
                usage(format!("--by {b:?}: write bytes, packets, records or key"))
            })?)
        };
    }
    Ok(q)
}

fn format_of(o: &OutputArgs) -> Result<Format> {
    if o.json {
        return Ok(Format::Json);
    }
    Format::parse(&o.output)
        .ok_or_else(|| usage(format!("--output {:?}: write table, json or csv", o.output)))
}

fn target(s: &SourceArgs) -> Option<Target> {
    s.clickhouse.as_ref().map(|url| Target {
        url: url.clone(),
        database: s.database.clone(),
        table: s.table.clone(),
        user: s.clickhouse_user.clone(),
        password: s.clickhouse_password.clone(),
    })
}

/// Where a question is answered.
enum Source<'a> {
    Local(&'a Path),
    ClickHouse(Target),
    PrintSql(Target),
}

fn source(s: &SourceArgs) -> Result<Source<'_>> {
    if s.print_sql {
        return Ok(Source::PrintSql(target(s).unwrap_or(Target {
            url: String::new(),
            database: s.database.clone(),
            table: s.table.clone(),
            user: None,
            password: None,
        })));
    }
    match (&s.store, target(s)) {
        (Some(_), Some(_)) => Err(usage(
            "give either --store or --clickhouse, not both".to_owned(),
        )),
        (Some(dir), None) => Ok(Source::Local(dir)),
        (None, Some(t)) => Ok(Source::ClickHouse(t)),
        (None, None) => Err(usage(
            "say where the records are: --store DIR (a local log store, the folder given to \
             `flowlogd --out`) or --clickhouse URL"
                .to_owned(),
        )),
    }
}

/// Answers a question from its source; `None` when only the SQL was asked.
fn answer(src: &Source<'_>, q: &Query) -> Result<Option<Answer>> {
    match src {
        Source::Local(dir) => Ok(Some(query::run_query(dir, q)?)),
        Source::ClickHouse(t) => Ok(Some(clickhouse::run_query(t, q)?)),
        Source::PrintSql(t) => {
            println!("{};", clickhouse::sql(q, t));
            Ok(None)
        }
    }
}

fn emit(t: &Table, format: Format) -> Result<()> {
    let text = t.render(format)?;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the answer"),
    }
}

fn load_config(path: &Path) -> Result<exporter::config::Config> {
    exporter::config::load(path).map_err(|e| usage(format!("{e}")))
}

fn run_preset(args: &PresetArgs, q: Query, explain: Option<&Path>) -> Result<()> {
    let q = shape(q, &args.shape)?;
    let format = format_of(&args.out)?;
    let src = source(&args.source)?;
    let config = explain.map(load_config).transpose()?;
    let Some(a) = answer(&src, &q)? else {
        return Ok(());
    };
    let mut t = Table::of_answer(&a);
    if let Some(c) = &config {
        t.push_column("explanation", Kind::Text, presets::explain_column(&a, c)?);
    }
    emit(&t, format)
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Query(a) => {
            let filter = build_filter(&a.filter)?;
            let format = format_of(&a.out)?;
            if a.list {
                let src = source(&a.source)?;
                let Source::Local(dir) = src else {
                    return Err(usage(
                        "--list reads a local store: give --store DIR".to_owned(),
                    ));
                };
                let (recs, matched, stats) = query::list_records(dir, &filter, Some(a.limit))?;
                return emit(&Table::of_records(&recs, matched, &stats), format);
            }
            let q = shape(
                Query {
                    filter,
                    group_by: vec![],
                    top: None,
                    order: Order::Desc(Metric::Bytes),
                },
                &a.shape,
            )?;
            let src = source(&a.source)?;
            let Some(ans) = answer(&src, &q)? else {
                return Ok(());
            };
            emit(&Table::of_answer(&ans), format)
        }
        Cmd::TopTalkers(a) => {
            let q = presets::top_talkers(build_filter(&a.filter)?);
            run_preset(&a, q, None)
        }
        Cmd::Rejected(a) => {
            let q = presets::rejected(build_filter(&a.common.filter)?);
            let explain = if a.explain { a.config.as_deref() } else { None };
            run_preset(&a.common, q, explain)
        }
        Cmd::Egress(a) => {
            let c = load_config(&a.config)?;
            for vpc in presets::vpcs_without_networks(&c) {
                eprintln!(
                    "flowlogctl: warning: {vpc} has no vSwitch with a cidr in {}; every \
                     destination of its ENIs counts as outside the VPC",
                    a.config.display()
                );
            }
            let q = presets::egress(build_filter(&a.common.filter)?, &c);
            run_preset(&a.common, q, None)
        }
        Cmd::Health(a) => {
            let q = presets::health(build_filter(&a.filter)?);
            run_preset(&a, q, None)
        }
        Cmd::Ctl(c) => std::process::exit(flowlogctl::ctl::run_ctl(c)),
        Cmd::Report(a) => {
            let filter = build_filter(&a.filter)?;
            let config = a.config.as_deref().map(load_config).transpose()?;
            let opts = report::Options {
                title: a.title.clone(),
                top: a.top,
                series: a.series,
                store_label: a.store.display().to_string(),
            };
            let r = report::build(&a.store, &filter, config.as_ref(), &opts)?;
            std::fs::write(&a.out, &r.html)
                .with_context(|| format!("writing {}", a.out.display()))?;
            if a.json {
                println!("{}", serde_json::to_string(&r.summary(&a.out))?);
            } else {
                eprintln!(
                    "flowlogctl: wrote {} ({} records read from {} files)",
                    a.out.display(),
                    r.scan.records_read,
                    r.scan.files_read
                );
            }
            Ok(())
        }
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(e) = run(cli) {
        eprintln!("flowlogctl: error: {e:#}");
        std::process::exit(flowlogctl::exit_code(&e));
    }
}
