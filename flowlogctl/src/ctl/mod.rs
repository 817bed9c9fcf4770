//! The operator's commands over `flowlogd`'s operator socket
//! (docs/control-protocol.md): `stats`, `top`, `flow-logs`, `enis`,
//! `security-groups`, `network-acls` and the raw `call`.
//!
//! [`CtlCommand`] is a clap `Subcommand` that the binary flattens into its
//! own; [`run_ctl`] runs one and returns the exit status: 0 done, 1 the
//! server refused (`flowlogctl: <code>: <message>`), 2 wrong usage or input
//! file, 3 no server (or the connection broke), 4 not allowed to use the
//! socket.

pub mod client;
pub mod render;
pub mod top;

use clap::{Args, Subcommand};
use client::{Client, Failure, DEFAULT_SOCKET};
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to reach the server and how to print its answer.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The operator socket of flowlogd
    #[arg(long, global = true, value_name = "PATH", env = "FLOWLOGD_SOCKET",
          default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the server's result as JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands that talk to a running `flowlogd`.
#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Counters of the running flowlogd: per worker, per ENI, per flow log, the exporter
    Stats(StatsArgs),
    /// Live view of flowlogd's counters as per-second rates (polls `stats`)
    Top(TopArgs),
    /// Flow logs of the running flowlogd: list, describe, create, modify, start, stop, delete
    FlowLogs(FlowLogsArgs),
    /// Attach or detach ENIs of the running flowlogd
    Enis(EnisArgs),
    /// Replace the rules of a security group of the running flowlogd
    SecurityGroups(SecurityGroupsArgs),
    /// Replace the rules of a network ACL of the running flowlogd
    NetworkAcls(NetworkAclsArgs),
    /// Send any command of the operator protocol and print its result
    Call(CallArgs),
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The Prometheus text exposition instead (`stats.prometheus`)
    #[arg(long)]
    pub prometheus: bool,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Seconds between samples
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_interval_s)]
    pub interval: f64,
    /// Print one frame (after two samples) and exit, without clearing the screen
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
    /// Print N frames and exit, without clearing the screen
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Args, Debug)]
pub struct FlowLogsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: FlowLogsCommand,
}

#[derive(Subcommand, Debug)]
pub enum FlowLogsCommand {
    /// Every flow log with its status
    List,
    /// One flow log in full, with its delivery status
    Describe {
        /// Flow log id
        flow_log_id: String,
    },
    /// Add a flow log (a CONFIG.md flow-log object)
    Create(InputArgs),
    /// Change a flow log's name, description or aggregation interval
    Modify {
        /// Flow log id
        flow_log_id: String,
        /// New name
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// New description
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// New aggregation interval in seconds: 60, 300 or 600
        #[arg(long, value_name = "SECONDS", value_parser = parse_aggregation)]
        interval: Option<u64>,
    },
    /// Make a flow log Active (it produces records from the next window)
    Start {
        /// Flow log id
        flow_log_id: String,
    },
    /// Make a flow log Inactive (its open window is still delivered)
    Stop {
        /// Flow log id
        flow_log_id: String,
    },
    /// Remove a flow log
    Delete {
        /// Flow log id
        flow_log_id: String,
    },
}

#[derive(Args, Debug)]
pub struct EnisArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: EnisCommand,
}

#[derive(Subcommand, Debug)]
pub enum EnisCommand {
    /// Attach an ENI (a CONFIG.md ENI object)
    Attach(InputArgs),
    /// Detach an ENI (its flows are still logged for the current window)
    Detach {
        /// ENI id
        eni_id: String,
    },
}

#[derive(Args, Debug)]
pub struct SecurityGroupsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: SecurityGroupsCommand,
}

#[derive(Subcommand, Debug)]
pub enum SecurityGroupsCommand {
    /// Replace every rule of a security group (a JSON list of CONFIG.md rules, or {"rules": [...]})
    ReplaceRules {
        /// Security group id
        security_group_id: String,
        #[command(flatten)]
        input: InputArgs,
    },
}

#[derive(Args, Debug)]
pub struct NetworkAclsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub cmd: NetworkAclsCommand,
}

#[derive(Subcommand, Debug)]
pub enum NetworkAclsCommand {
    /// Replace a network ACL's rules ({"ingress": [...], "egress": [...]})
    Replace {
        /// Network ACL id
        network_acl_id: String,
        #[command(flatten)]
        input: InputArgs,
    },
}

#[derive(Args, Debug)]
pub struct CallArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Command name, e.g. hello, stats, flow-logs.list
    pub cmd: String,
    /// Its arguments as a JSON object
    #[arg(value_name = "ARGS_JSON")]
    pub args: Option<String>,
}

/// A JSON document given in a file (`-`: standard input) or on the line.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct InputArgs {
    /// JSON file (- reads standard input)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The JSON document itself
    #[arg(long = "json-arg", value_name = "JSON")]
    pub json_arg: Option<String>,
}

fn parse_interval_s(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: give seconds between 0.01 and 3600")),
    }
}

fn parse_aggregation(s: &str) -> Result<u64, String> {
    match s {
        "60" | "300" | "600" => s.parse().map_err(|_| String::new()),
        _ => Err(format!(
            "{s:?}: the aggregation interval is 60, 300 or 600 seconds"
        )),
    }
}

/// Runs one command; returns the process exit status.
pub fn run_ctl(cmd: CtlCommand) -> i32 {
    match run(cmd) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("flowlogctl: {f}");
            f.exit_code()
        }
    }
}

fn run(cmd: CtlCommand) -> Result<(), Failure> {
    match cmd {
        CtlCommand::Stats(a) => {
            let cmd = if a.prometheus {
                "stats.prometheus"
            } else {
                "stats"
            };
            let result = connect(&a.conn)?.call(cmd, json!({}))?;
            if a.conn.json {
                return print_json(&result);
            }
            if a.prometheus {
                let text = result.get("text").and_then(Value::as_str).unwrap_or("");
                return emit(text);
            }
            emit(&render::render(&result))
        }
        CtlCommand::Top(a) => run_top(&a),
        CtlCommand::FlowLogs(a) => {
            let (cmd, args, done) = match a.cmd {
                FlowLogsCommand::List => ("flow-logs.list", json!({}), None),
                FlowLogsCommand::Describe { flow_log_id } => (
                    "flow-logs.describe",
                    json!({ "flow_log_id": flow_log_id }),
                    None,
                ),
                FlowLogsCommand::Create(input) => {
                    let fl = unwrap_key(read_input(&input)?, "flow_log");
                    let id = fl
                        .get("flow_log_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let what = match id {
                        Some(id) => format!("flow log {id} created"),
                        None => "flow log created".to_owned(),
                    };
                    ("flow-logs.create", json!({ "flow_log": fl }), Some(what))
                }
                FlowLogsCommand::Modify {
                    flow_log_id,
                    name,
                    description,
                    interval,
                } => {
                    let mut args = Map::new();
                    if let Some(n) = name {
                        args.insert("flow_log_name".into(), n.into());
                    }
                    if let Some(d) = description {
                        args.insert("description".into(), d.into());
                    }
                    if let Some(i) = interval {
                        args.insert("aggregation_interval".into(), i.into());
                    }
                    if args.is_empty() {
                        return Err(Failure::Usage(
                            "flow-logs modify: say what to change: --name, --description or \
                             --interval"
                                .into(),
                        ));
                    }
                    let what = format!("flow log {flow_log_id} modified");
                    args.insert("flow_log_id".into(), flow_log_id.into());
                    ("flow-logs.modify", Value::Object(args), Some(what))
                }
                FlowLogsCommand::Start { flow_log_id } => (
                    "flow-logs.start",
                    json!({ "flow_log_id": flow_log_id }),
                    Some(format!("flow log {flow_log_id} started")),
                ),
                FlowLogsCommand::Stop { flow_log_id } => (
                    "flow-logs.stop",
                    json!({ "flow_log_id": flow_log_id }),
                    Some(format!("flow log {flow_log_id} stopped")),
                ),
                FlowLogsCommand::Delete { flow_log_id } => (
                    "flow-logs.delete",
                    json!({ "flow_log_id": flow_log_id }),
                    Some(format!("flow log {flow_log_id} deleted")),
                ),
            };
            call_and_show(&a.conn, cmd, args, done)
        }
        CtlCommand::Enis(a) => {
            let (cmd, args, done) = match a.cmd {
                EnisCommand::Attach(input) => {
                    let eni = unwrap_key(read_input(&input)?, "eni");
                    let what = match eni.get("eni_id").and_then(Value::as_str) {
                        Some(id) => format!("ENI {id} attached"),
                        None => "ENI attached".to_owned(),
                    };
                    ("enis.attach", json!({ "eni": eni }), what)
                }
                EnisCommand::Detach { eni_id } => (
                    "enis.detach",
                    json!({ "eni_id": eni_id }),
                    format!("ENI {eni_id} detached"),
                ),
            };
            call_and_show(&a.conn, cmd, args, Some(done))
        }
        CtlCommand::SecurityGroups(a) => {
            let SecurityGroupsCommand::ReplaceRules {
                security_group_id,
                input,
            } = a.cmd;
            let doc = read_input(&input)?;
            let rules = match doc {
                Value::Array(_) => doc,
                Value::Object(mut m) => {
                    check_id(&m, "security_group_id", &security_group_id, &input)?;
                    match m.remove("rules") {
                        Some(r @ Value::Array(_)) => r,
                        _ => {
                            return Err(Failure::Usage(format!(
                                "{}: give a list of rules, or an object with \"rules\": [...]",
                                source_name(&input)
                            )))
                        }
                    }
                }
                _ => {
                    return Err(Failure::Usage(format!(
                        "{}: give a list of rules, or an object with \"rules\": [...]",
                        source_name(&input)
                    )))
                }
            };
            let n = rules.as_array().map_or(0, Vec::len);
            call_and_show(
                &a.conn,
                "security-groups.replace-rules",
                json!({ "security_group_id": security_group_id, "rules": rules }),
                Some(format!(
                    "security group {security_group_id}: {n} rules in force"
                )),
            )
        }
        CtlCommand::NetworkAcls(a) => {
            let NetworkAclsCommand::Replace {
                network_acl_id,
                input,
            } = a.cmd;
            let doc = read_input(&input)?;
            let bad = || {
                Failure::Usage(format!(
                    "{}: give an object with \"ingress\" and \"egress\" lists of rules \
                     ([] for none)",
                    source_name(&input)
                ))
            };
            let Value::Object(m) = doc else {
                return Err(bad());
            };
            check_id(&m, "network_acl_id", &network_acl_id, &input)?;
            let (Some(ingress @ Value::Array(_)), Some(egress @ Value::Array(_))) =
                (m.get("ingress"), m.get("egress"))
            else {
                return Err(bad());
            };
            call_and_show(
                &a.conn,
                "network-acls.replace",
                json!({ "network_acl_id": network_acl_id, "ingress": ingress, "egress": egress }),
                Some(format!("network ACL {network_acl_id} replaced")),
            )
        }
        CtlCommand::Call(a) => {
            let args = match &a.args {
                None => json!({}),
                Some(s) => match serde_json::from_str::<Value>(s) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(_) => return Err(Failure::Usage("ARGS_JSON must be a JSON object".into())),
                    Err(e) => return Err(Failure::Usage(format!("ARGS_JSON is not JSON: {e}"))),
                },
            };
            let result = connect(&a.conn)?.call(&a.cmd, args)?;
            if a.conn.json {
                print_json(&result)
            } else {
                emit(&render::render(&result))
            }
        }
    }
}

fn connect(conn: &Conn) -> Result<Client, Failure> {
    Client::connect(&conn.socket)
}

/// Runs a command; prints its result (as JSON with --json), after `done`,
/// the line that says what changed.
fn call_and_show(conn: &Conn, cmd: &str, args: Value, done: Option<String>) -> Result<(), Failure> {
    let result = connect(conn)?.call(cmd, args)?;
    if conn.json {
        return print_json(&result);
    }
    let mut text = String::new();
    if let Some(d) = done {
        text.push_str(&d);
        text.push('\n');
    }
    let empty = match &result {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    if !empty {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&render::render(&result));
    }
    emit(&text)
}

fn run_top(a: &TopArgs) -> Result<(), Failure> {
    let mut client = connect(&a.conn)?;
    let frames = if a.once {
        1
    } else {
        a.count.unwrap_or(u64::MAX)
    };
    let live = !a.once && a.count.is_none() && !a.conn.json && std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(a.interval);
    let mut prev: Option<(Instant, Value)> = None;
    let mut shown = 0u64;
    loop {
        let cur = client.call("stats", json!({}))?;
        let now = Instant::now();
        if let Some((then, before)) = &prev {
            let dt = now.duration_since(*then).as_secs_f64();
            let frame = top::rates(Some(before), &cur, dt);
            if a.conn.json {
                let line = serde_json::to_string(&frame).unwrap_or_default();
                if !emit_open(&format!("{line}\n"))? {
                    return Ok(());
                }
            } else {
                let mut text = String::new();
                if live {
                    // Home, clear screen.
                    text.push_str("\x1b[H\x1b[2J");
                }
                text.push_str(&format!(
                    "flowlogd on {}: rates over the last {dt:.1} s{}\n\n",
                    a.conn.socket.display(),
                    if live { " (Ctrl-C to quit)" } else { "" }
                ));
                text.push_str(&render::render(&frame));
                if !live && shown + 1 < frames {
                    text.push('\n');
                }
                if !emit_open(&text)? {
                    return Ok(());
                }
            }
            shown += 1;
            if shown >= frames {
                return Ok(());
            }
        } else if live {
            emit("\x1b[H\x1b[2Jflowlogd top: waiting for the second sample…\n")?;
        }
        prev = Some((now, cur));
        std::thread::sleep(interval);
    }
}

/// The JSON of `--file` or `--json-arg`.
fn read_input(input: &InputArgs) -> Result<Value, Failure> {
    let name = source_name(input);
    let text = match (&input.file, &input.json_arg) {
        (_, Some(s)) => s.clone(),
        (Some(p), None) if p == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::Usage(format!("reading standard input: {e}")))?;
            s
        }
        (Some(p), None) => std::fs::read_to_string(p)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", p.display())))?,
        (None, None) => {
            return Err(Failure::Usage(
                "give the JSON document with --file FILE or --json-arg JSON".into(),
            ))
        }
    };
    serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{name}: not JSON: {e}")))
}

fn source_name(input: &InputArgs) -> String {
    match &input.file {
        Some(p) if input.json_arg.is_none() => p.display().to_string(),
        _ => "--json-arg".to_owned(),
    }
}

/// `{"flow_log": {...}}` → `{...}`; anything else as it is.
fn unwrap_key(v: Value, key: &str) -> Value {
    match v {
        Value::Object(mut m) if m.len() == 1 && m.contains_key(key) => {
            m.remove(key).unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// A document that names an id must name the one on the command line.
fn check_id(m: &Map<String, Value>, key: &str, id: &str, input: &InputArgs) -> Result<(), Failure> {
    match m.get(key).and_then(Value::as_str) {
        Some(other) if other != id => Err(Failure::Usage(format!(
            "{} is for {key} {other:?}, not {id:?}",
            source_name(input)
        ))),
        _ => Ok(()),
    }
}

fn print_json(v: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    emit(&format!("{text}\n"))
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<(), Failure> {
    emit_open(text).map(drop)
}

/// [`emit`], saying whether standard output is still open.
fn emit_open(text: &str) -> Result<bool, Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Failure::Io(format!("writing the output: {e}"))),
        Ok(()) => Ok(true),
    }
}
