//! Serves the operator socket with a mock handler: canned, growing stats and
//! an in-memory list of flow logs, ENIs, one security group and one network
//! ACL. For `flowlogctl`'s tests (flowlogctl/tests/ctl.rs) and for trying
//! the client without DPDK or a capture:
//!
//! ```sh
//! cargo run -p vswitch-plugin --example mock_control -- /tmp/fl.sock
//! flowlogctl --socket /tmp/fl.sock stats      # in another terminal
//! ```
//!
//! Usage: `mock_control PATH [--mode OCTAL] [--group NAME]`. Prints
//! `listening on PATH` once the socket is up; stops on SIGINT or SIGTERM
//! (removing the socket). Besides the protocol's commands it answers `echo`
//! (its args), `panic` (the handler panics) and `sleep {"ms": N}`.

use flowlog::control::server::{serve, ServerOptions};
use flowlog::control::{CtlError, Handler};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many flow logs per account (CONFIG.md's quota).
const QUOTA: usize = 3;

struct Mock {
    started: Instant,
    polls: AtomicU64,
    flow_logs: Mutex<BTreeMap<String, Value>>,
    enis: Mutex<BTreeMap<String, Value>>,
}

fn invalid(m: impl Into<String>) -> CtlError {
    CtlError::new("invalid", m)
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, CtlError> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("missing \"{key}\" (a string)")))
}

fn obj_arg<'a>(args: &'a Value, key: &str) -> Result<&'a Map<String, Value>, CtlError> {
    args.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("missing \"{key}\" (an object)")))
}

fn not_found(what: &str, id: &str) -> CtlError {
    CtlError::new("not-found", format!("there is no {what} {id:?}"))
}

impl Mock {
    fn new() -> Self {
        let mut fl = BTreeMap::new();
        fl.insert(
            "fl-1".to_owned(),
            json!({"flow_log_id": "fl-1", "account_id": "1234567890",
                   "resource_type": "VPC", "resource_id": "vpc-1", "traffic_type": "All",
                   "aggregation_interval": 600, "project_name": "net-audit",
                   "log_store_name": "vpc1-flows", "status": "Active"}),
        );
        let mut enis = BTreeMap::new();
        enis.insert(
            "eni-a1".to_owned(),
            json!({"eni_id": "eni-a1", "mac": "02:00:00:00:00:01", "ips": ["10.0.1.5"],
                   "vm_id": "i-a1", "instance_type": "ecs.g7.large", "vswitch_id": "vsw-1",
                   "vpc_id": "vpc-1", "account_id": "1234567890",
                   "security_group_ids": ["sg-web"], "port": 0}),
        );
        Mock {
            started: Instant::now(),
            polls: AtomicU64::new(0),
            flow_logs: Mutex::new(fl),
            enis: Mutex::new(enis),
        }
    }

    fn stats(&self) -> Value {
        // Counters grow by a fixed step per poll, so `top` shows rates.
        let n = self.polls.fetch_add(1, Ordering::Relaxed) + 1;
        let workers: Vec<Value> = (0..2u64)
            .map(|w| {
                json!({
                    "worker": w, "lcore": w + 2,
                    "packets_in": n * 1_000_000 * (w + 1), "packets_out": n * 990_000 * (w + 1),
                    "bytes_in": n * 1_500_000_000 * (w + 1),
                    "logged": n * 900_000, "malformed": n * 3, "unmatched": n * 20,
                    "flows": 12_345 + w, "flow_capacity": 1_048_576,
                    "flows_high_water": 20_000, "evictions": n * 7, "skipped": 0,
                    "ring_depth": 3, "conns": 4_000, "conn_capacity": 262_144,
                })
            })
            .collect();
        let enis: Vec<Value> = self
            .enis
            .lock()
            .keys()
            .map(|id| {
                json!({"eni_id": id, "packets": n * 5_000, "bytes": n * 7_500_000,
                             "skipped_packets": 0, "flow_logs": ["fl-1"]})
            })
            .collect();
        let flow_logs: Vec<Value> = self
            .flow_logs
            .lock()
            .values()
            .map(|f| {
                json!({"flow_log_id": f["flow_log_id"], "status": f["status"],
                       "records_exported": n * 4_200, "last_window": 1_700_000_000u64,
                       "delivery": "ok", "error": null, "exporter_lag_s": 1})
            })
            .collect();
        json!({
            "uptime_s": self.started.elapsed().as_secs(),
            "workers": workers,
            "enis": enis,
            "flow_logs": flow_logs,
            "exporter": {"lag_s": 1, "windows_pending": 0},
        })
    }

    fn flow_log_mut<R>(
        &self,
        args: &Value,
        f: impl FnOnce(&mut Map<String, Value>) -> R,
    ) -> Result<R, CtlError> {
        let id = str_arg(args, "flow_log_id")?;
        let mut all = self.flow_logs.lock();
        match all.get_mut(id).and_then(Value::as_object_mut) {
            Some(fl) => Ok(f(fl)),
            None => Err(not_found("flow log", id)),
        }
    }
}

impl Handler for Mock {
    fn handle(&self, cmd: &str, args: &Value) -> Result<Value, CtlError> {
        match cmd {
            "stats" => Ok(self.stats()),
            "stats.prometheus" => Ok(json!({"text":
                "# HELP flowlog_packets_total Packets received.\n\
                 # TYPE flowlog_packets_total counter\n\
                 flowlog_packets_total{worker=\"0\"} 1000\n"})),
            "flow-logs.list" => Ok(json!({
                "flow_logs": self.flow_logs.lock().values().cloned().collect::<Vec<_>>()
            })),
            "flow-logs.describe" => {
                let id = str_arg(args, "flow_log_id")?;
                match self.flow_logs.lock().get(id) {
                    Some(fl) => Ok(json!({"flow_log": fl, "delivery": {"status": "ok"}})),
                    None => Err(not_found("flow log", id)),
                }
            }
            "flow-logs.create" => {
                let fl = obj_arg(args, "flow_log")?;
                let id = str_arg(&args["flow_log"], "flow_log_id")?.to_owned();
                let account = str_arg(&args["flow_log"], "account_id")?.to_owned();
                let mut all = self.flow_logs.lock();
                if all.contains_key(&id) {
                    return Err(invalid(format!("flow log {id:?} exists already")));
                }
                let used = all
                    .values()
                    .filter(|f| f["account_id"] == json!(account))
                    .count();
                if used >= QUOTA {
                    return Err(CtlError::new(
                        "quota-exceeded",
                        format!("account {account} has {used} flow logs; the quota is {QUOTA}"),
                    ));
                }
                let mut fl = fl.clone();
                fl.entry("status").or_insert(json!("Active"));
                fl.entry("aggregation_interval").or_insert(json!(600));
                all.insert(id, Value::Object(fl.clone()));
                Ok(json!({"flow_log": fl}))
            }
            "flow-logs.modify" => self.flow_log_mut(args, |fl| {
                for k in ["flow_log_name", "description", "aggregation_interval"] {
                    if let Some(v) = args.get(k) {
                        fl.insert(k.to_owned(), v.clone());
                    }
                }
                json!({"flow_log": fl})
            }),
            "flow-logs.start" | "flow-logs.stop" => {
                let status = if cmd.ends_with("start") {
                    "Active"
                } else {
                    "Inactive"
                };
                self.flow_log_mut(args, |fl| {
                    fl.insert("status".into(), json!(status));
                    json!({"flow_log_id": fl["flow_log_id"], "status": status})
                })
            }
            "flow-logs.delete" => {
                let id = str_arg(args, "flow_log_id")?;
                match self.flow_logs.lock().remove(id) {
                    Some(_) => Ok(json!({})),
                    None => Err(not_found("flow log", id)),
                }
            }
            "enis.attach" => {
                let eni = obj_arg(args, "eni")?;
                let id = str_arg(&args["eni"], "eni_id")?.to_owned();
                let family = eni
                    .get("instance_type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .splitn(3, '.')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(".");
                if family == "ecs.t1" {
                    return Err(CtlError::new(
                        "unsupported-family",
                        format!("ENI {id}: instances of family {family} do not support flow logs"),
                    ));
                }
                self.enis
                    .lock()
                    .insert(id.clone(), Value::Object(eni.clone()));
                Ok(json!({"eni_id": id, "flow_logs": ["fl-1"]}))
            }
            "enis.detach" => {
                let id = str_arg(args, "eni_id")?;
                match self.enis.lock().remove(id) {
                    Some(_) => Ok(json!({})),
                    None => Err(not_found("ENI", id)),
                }
            }
            "security-groups.replace-rules" => {
                let id = str_arg(args, "security_group_id")?;
                if id != "sg-web" {
                    return Err(not_found("security group", id));
                }
                let rules = args
                    .get("rules")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("missing \"rules\" (a list)"))?;
                Ok(json!({"security_group_id": id, "rules": rules.len()}))
            }
            "network-acls.replace" => {
                let id = str_arg(args, "network_acl_id")?;
                if id != "nacl-1" {
                    return Err(not_found("network ACL", id));
                }
                let n = |k: &str| args.get(k).and_then(Value::as_array).map(Vec::len);
                match (n("ingress"), n("egress")) {
                    (Some(i), Some(e)) => {
                        Ok(json!({"network_acl_id": id, "ingress": i, "egress": e}))
                    }
                    _ => Err(invalid("\"ingress\" and \"egress\" must be lists")),
                }
            }
            "echo" => Ok(args.clone()),
            "panic" => panic!("the mock handler panics on purpose"),
            "sleep" => {
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(100);
                std::thread::sleep(Duration::from_millis(ms.min(10_000)));
                Ok(json!({"slept_ms": ms}))
            }
            other => Err(CtlError::new(
                "unknown-command",
                format!("no command {other:?}"),
            )),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = ServerOptions::default();
    let mut path = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mode" => {
                let m = args.next().unwrap_or_default();
                opts.mode =
                    u32::from_str_radix(m.trim_start_matches("0o"), 8).unwrap_or_else(|_| {
                        eprintln!("mock_control: --mode {m:?}: give octal bits, e.g. 660");
                        std::process::exit(2)
                    });
            }
            "--group" => opts.group = args.next(),
            p if !p.starts_with('-') && path.is_none() => path = Some(p.to_owned()),
            other => {
                eprintln!("mock_control: unknown argument {other:?}");
                eprintln!("usage: mock_control PATH [--mode OCTAL] [--group NAME]");
                std::process::exit(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("usage: mock_control PATH [--mode OCTAL] [--group NAME]");
        std::process::exit(2);
    };
    opts.path = path.into();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("mock_control: {e}");
            std::process::exit(1);
        }
    }
    let server = match serve(opts.clone(), Arc::new(Mock::new())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mock_control: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", opts.path.display());
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}
