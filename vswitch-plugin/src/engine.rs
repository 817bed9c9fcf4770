//! The operator socket's commands (docs/control-protocol.md): stats, and
//! the flow-log, ENI and rule changes that a running replay or host puts in
//! force between bursts.
//!
//! A change is made on the JSON of the configuration, validated whole as
//! CONFIG.md says (the same code as at start: quota, instance families,
//! references), saved atomically to the configuration file, and then handed
//! to the datapath as a new [`Snapshot`]; the reply comes once the datapath
//! has it in force, with the packet time it took effect at. A refused change
//! changes nothing.
//!
//! ENIs keep their index for the life of the process: one that leaves the
//! host is no longer recognised but keeps its slot (the flows it had still
//! go out with their window), and one that comes gets the next free slot (at
//! most [`LIVE_MAX_ENIS`]).

use crate::attrib::Attribution;
use crate::control::{CtlError, Handler};
use crate::live::{Live, Snapshot, LIVE_MAX_ENIS};
use crate::policy::CompiledPolicy;
use exporter::config::{self, Config, ConfigError, Eni};
use exporter::merge::Plan;
use exporter::sink::DeliveryStatus;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a change waits for the datapath to put it in force.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration as the datapath indexes it: every ENI that was ever on
/// the host, by slot.
struct State {
    /// The host's configuration, as saved.
    config: Config,
    /// Every ENI ever on the host, by slot (its latest version).
    slots: Vec<Eni>,
    /// Slots whose ENI left the host.
    gone: Vec<bool>,
}

/// A sample of the counters, for per-second rates: per worker, packets
/// in, rejected and out; frames read.
#[derive(Clone)]
struct Sample {
    at: Instant,
    workers: Vec<[u64; 3]>,
    read: u64,
}

/// Answers the operator socket for one replay or host.
pub struct Engine {
    live: Arc<Live>,
    save_to: Option<PathBuf>,
    state: Mutex<State>,
    samples: Mutex<(Option<Sample>, Option<Sample>)>,
    apply_timeout: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("save_to", &self.save_to)
            .finish_non_exhaustive()
    }
}

fn invalid(e: ConfigError) -> CtlError {
    match &e {
        ConfigError::Invalid { problems, .. } => {
            let code = if problems
                .iter()
                .any(|p| p.message.contains("over the quota"))
            {
                "quota-exceeded"
            } else if problems
                .iter()
                .any(|p| p.message.contains("does not support flow logs"))
            {
                "unsupported-family"
            } else if problems.iter().all(|p| p.message.starts_with("no ")) {
                "not-found"
            } else {
                "invalid"
            };
            CtlError::new(code, e.to_string())
        }
        _ => CtlError::new("invalid", e.to_string()),
    }
}

fn arg<'a>(args: &'a Value, key: &str, what: &str) -> Result<&'a Value, CtlError> {
    args.get(key)
        .ok_or_else(|| CtlError::new("bad-request", format!("missing argument {key:?} ({what})")))
}

fn arg_str<'a>(args: &'a Value, key: &str, what: &str) -> Result<&'a str, CtlError> {
    arg(args, key, what)?.as_str().ok_or_else(|| {
        CtlError::new(
            "bad-request",
            format!("argument {key:?} must be a string ({what})"),
        )
    })
}

fn list<'a>(v: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !v.get(key).is_some_and(Value::is_array) {
        v[key] = json!([]);
    }
    v[key].as_array_mut().expect("just made an array")
}

/// The element of `v[key]` whose `id_key` is `id`.
fn find<'a>(
    v: &'a mut Value,
    key: &str,
    id_key: &str,
    id: &str,
    what: &str,
) -> Result<&'a mut Value, CtlError> {
    let known: Vec<String> = list(v, key)
        .iter()
        .filter_map(|e| e.get(id_key).and_then(Value::as_str).map(str::to_owned))
        .collect();
    list(v, key)
        .iter_mut()
        .find(|e| e.get(id_key).and_then(Value::as_str) == Some(id))
        .ok_or_else(|| {
            CtlError::new(
                "not-found",
                format!("no {what} {id:?}; the {what}s are: {}", known.join(", ")),
            )
        })
}

/// Writes `text` to `path` atomically: a temporary file beside it, synced,
/// then renamed over it.
fn save_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Engine {
    /// An engine for a datapath started with `config` (its ENIs in their
    /// order are slots 0, 1, …). Changes are saved to `save_to` when given.
    pub fn new(config: Config, save_to: Option<PathBuf>, live: Arc<Live>) -> Engine {
        let slots = config.enis.clone();
        let gone = vec![false; slots.len()];
        Engine {
            live,
            save_to,
            state: Mutex::new(State {
                config,
                slots,
                gone,
            }),
            samples: Mutex::new((None, None)),
            apply_timeout: APPLY_TIMEOUT,
        }
    }

    /// The host's configuration now.
    pub fn config(&self) -> Config {
        self.state.lock().config.clone()
    }

    /// Builds what the datapath needs of `engine` (the configuration with
    /// every slot's ENI) where the ENIs of `gone` slots left the host.
    fn snapshot(engine: &Config, gone: &[bool]) -> Snapshot {
        let mut plan = Plan::from_config(engine);
        for (i, e) in plan.enis.iter_mut().enumerate() {
            if gone[i] {
                e.flow_logs.clear();
            }
        }
        for f in &mut plan.flow_logs {
            f.enis.retain(|&e| !gone[usize::from(e)]);
        }
        Snapshot {
            plan,
            compiled: Arc::new(CompiledPolicy::from_config(engine)),
            attribution: Arc::new(Attribution::from_config_except(engine, gone)),
            ports: engine.enis.iter().map(|e| e.port).collect(),
        }
    }

    /// Makes a change: `edit` changes the configuration's JSON and says what
    /// to reply; the result is validated whole, saved, and put in force.
    fn change(
        &self,
        edit: impl FnOnce(&mut Value) -> Result<Value, CtlError>,
    ) -> Result<Value, CtlError> {
        let mut st = self.state.lock();
        let mut v = serde_json::to_value(&st.config)
            .map_err(|e| CtlError::new("internal", format!("the configuration: {e}")))?;
        let mut reply = edit(&mut v)?;
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| CtlError::new("internal", format!("the configuration: {e}")))?;
        let new = config::from_json(&text, "the changed configuration").map_err(invalid)?;
        // Slots: ENIs keep theirs; new ones take the next.
        let mut slots = st.slots.clone();
        let mut present = vec![false; slots.len()];
        for e in &new.enis {
            match slots.iter().position(|s| s.eni_id == e.eni_id) {
                Some(i) => {
                    slots[i] = e.clone();
                    present[i] = true;
                }
                None => {
                    if slots.len() >= LIVE_MAX_ENIS {
                        return Err(CtlError::new(
                            "quota-exceeded",
                            format!(
                                "this host has room for {LIVE_MAX_ENIS} ENIs since its start; restart flowlogd to attach ENI {:?}",
                                e.eni_id
                            ),
                        ));
                    }
                    slots.push(e.clone());
                    present.push(true);
                }
            }
        }
        let gone: Vec<bool> = present.iter().map(|p| !p).collect();
        let engine = Config {
            enis: slots.clone(),
            ..new.clone()
        };
        let snapshot = Arc::new(Self::snapshot(&engine, &gone));
        if let Some(path) = &self.save_to {
            save_atomically(path, &text).map_err(|e| {
                CtlError::new(
                    "internal",
                    format!(
                        "{}: cannot save the configuration ({e}); nothing was changed",
                        path.display()
                    ),
                )
            })?;
        }
        st.config = new;
        st.slots = slots;
        st.gone = gone;
        match self.live.propose(snapshot, self.apply_timeout) {
            Ok(a) => {
                if let Some(o) = reply.as_object_mut() {
                    o.insert("generation".into(), json!(a.gen));
                    o.insert("applied_at".into(), json!(a.from));
                    o.insert("applied_at_frame".into(), json!(a.frame));
                    o.insert("saved".into(), json!(self.save_to.is_some()));
                }
                Ok(reply)
            }
            Err(e) => Err(CtlError::new("internal", e)),
        }
    }

    /// A flow log as CONFIG.md spells it, with what it delivered, its
    /// delivery status and the ENIs it covers (`coverage`:
    /// [`Config::coverage`] of the configuration, computed once by the
    /// caller).
    fn flow_log_json(&self, st: &State, f: &config::FlowLog, coverage: &[Vec<usize>]) -> Value {
        let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
        let ex = self.live.exporter.lock();
        let delivered = ex
            .flow_logs
            .iter()
            .find(|(id, _)| id == &f.flow_log_id)
            .map(|(_, s)| s);
        let d = delivered.cloned().unwrap_or_default();
        v["records"] = json!(d.records);
        v["records_ok"] = json!(d.ok);
        v["records_nodata"] = json!(d.nodata);
        v["records_skipdata"] = json!(d.skipdata);
        v["windows"] = json!(d.windows);
        v["last_window"] = json!(d.last_window);
        let sinks: Vec<&DeliveryStatus> = ex
            .sinks
            .iter()
            .filter(|s| s.flow_log_id == f.flow_log_id)
            .collect();
        let reason = match (&d.error, sinks.iter().find(|s| s.status != "SUCCESS")) {
            (Some(e), _) => Some(format!("local log store: {e}")),
            (None, Some(s)) => Some(format!(
                "sink {}: {}",
                s.sink_id,
                s.reason.as_deref().unwrap_or_default()
            )),
            (None, None) => None,
        };
        v["delivery_status"] = json!(if reason.is_some() {
            "FAILED"
        } else {
            "SUCCESS"
        });
        v["delivery_error"] = json!(reason);
        v["sinks"] = json!(sinks);
        let covered: Vec<&str> = coverage
            .iter()
            .enumerate()
            .filter(|(_, fls)| {
                fls.iter()
                    .any(|&i| st.config.flow_logs[i].flow_log_id == f.flow_log_id)
            })
            .map(|(e, _)| st.config.enis[e].eni_id.as_str())
            .collect();
        v["enis"] = json!(covered);
        v
    }

    /// Per worker (in, rejected, out) packets per second, and frames read
    /// per second, against a sample at least 0.2 s old (zero until there is
    /// one); the newest sample becomes the base once it is a second old.
    fn rates(&self, workers: &[crate::live::WorkerView], read: u64) -> (Vec<[f64; 3]>, f64) {
        let now = Sample {
            at: Instant::now(),
            workers: workers
                .iter()
                .map(|w| [w.counters.packets, w.counters.rejected, w.packets_out])
                .collect(),
            read,
        };
        let mut s = self.samples.lock();
        let base = [s.1.as_ref(), s.0.as_ref()]
            .into_iter()
            .flatten()
            .find(|b| now.at.duration_since(b.at) >= Duration::from_millis(200));
        let out = match base {
            Some(b) => {
                let dt = now.at.duration_since(b.at).as_secs_f64();
                let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
                let workers = now
                    .workers
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let was = b.workers.get(i).copied().unwrap_or_default();
                        [per(w[0], was[0]), per(w[1], was[1]), per(w[2], was[2])]
                    })
                    .collect();
                (workers, per(now.read, b.read))
            }
            None => (vec![[0.0; 3]; workers.len()], 0.0),
        };
        if s.1
            .as_ref()
            .is_none_or(|l| now.at.duration_since(l.at) >= Duration::from_secs(1))
        {
            s.0 = s.1.take();
            s.1 = Some(now);
        }
        out
    }

    /// The `stats` result.
    pub fn stats(&self) -> Value {
        let st = self.state.lock();
        let workers = self.live.workers.lock().clone();
        let d = *self.live.dispatch.lock();
        let ex = self.live.exporter.lock().clone();
        let (rates, read_rate) = self.rates(&workers, d.read);
        let uptime = self
            .live
            .started
            .lock()
            .map_or(0.0, |s| s.elapsed().as_secs_f64());
        let ws: Vec<Value> = workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let [pps, rps, ops] = rates[i];
                json!({
                    "worker": i,
                    "packets_in_per_s": pps,
                    "packets_rejected_per_s": rps,
                    "packets_out_per_s": ops,
                    "packets": w.counters.packets,
                    "packets_out": w.packets_out,
                    "logged": w.counters.observations,
                    "rejected": w.counters.rejected,
                    "evictions": w.counters.evictions,
                    "skipped": w.counters.skipped,
                    "rotations": w.counters.rotations,
                    "no_free_table": w.counters.no_free_table,
                    "late_writebacks": w.counters.late_writebacks,
                    "table_flows": w.table_len,
                    "table_capacity": w.table_capacity,
                    "table_high_water": w.counters.high_water.max(w.table_len),
                    "ring_depth": w.ring_depth,
                    "ring_capacity": w.ring_capacity,
                    "conns": w.conns,
                    "conns_capacity": w.conns_capacity,
                    "conn_table_full": w.policy.conn_table_full,
                    "sg_drops": w.policy.sg_drops,
                    "nacl_drops": w.policy.nacl_drops,
                })
            })
            .collect();
        let enis: Vec<Value> = st
            .slots
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (p, b) = ex.per_eni.get(i).copied().unwrap_or((0, 0));
                json!({
                    "eni_id": e.eni_id, "vpc_id": e.vpc_id, "vswitch_id": e.vswitch_id,
                    "attached": !st.gone[i], "packets": p, "bytes": b,
                })
            })
            .collect();
        let coverage = st.config.coverage();
        let fls: Vec<Value> = st
            .config
            .flow_logs
            .iter()
            .map(|f| {
                let v = self.flow_log_json(&st, f, &coverage);
                json!({
                    "flow_log_id": f.flow_log_id,
                    "status": v["status"],
                    "records": v["records"],
                    "windows": v["windows"],
                    "last_window": v["last_window"],
                    "delivery_status": v["delivery_status"],
                    "delivery_error": v["delivery_error"],
                })
            })
            .collect();
        let lag = d.now.saturating_sub(ex.watermark);
        json!({
            "uptime_s": uptime,
            "packet_clock": d.now,
            "datapath_running": !self.live.is_closed(),
            "dispatch": {
                "read": d.read, "read_per_s": read_rate, "logged": d.logged,
                "malformed": d.malformed, "unmatched": d.unmatched, "not_ip": d.not_ip,
            },
            "workers": ws,
            "enis": enis,
            "flow_logs": fls,
            "exporter": {
                "watermark": ex.watermark,
                "lag_s": if ex.watermark == 0 { 0 } else { lag },
                "late": ex.late,
            },
        })
    }

    /// The same figures in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let s = self.stats();
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP flowlogd_{name} {help}");
            let _ = writeln!(out, "# TYPE flowlogd_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "flowlogd_{name}{labels} {v}");
            }
        };
        let num = |v: &Value| v.as_f64().unwrap_or(0.0);
        let esc = |v: &Value| {
            v.as_str()
                .unwrap_or("")
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let empty = Vec::new();
        let workers = s["workers"].as_array().unwrap_or(&empty);
        for (key, name, help, kind) in [
            (
                "packets",
                "worker_packets_total",
                "Packets handed to the worker.",
                "counter",
            ),
            (
                "logged",
                "worker_logged_total",
                "Observations recorded (a packet between two ENIs counts twice).",
                "counter",
            ),
            (
                "rejected",
                "worker_rejected_total",
                "Observations with a REJECT verdict.",
                "counter",
            ),
            (
                "evictions",
                "worker_evictions_total",
                "Flows evicted from a full table.",
                "counter",
            ),
            (
                "late_writebacks",
                "worker_late_writebacks_total",
                "Tables the exporter wrote back to the connection table later than a packet could need them.",
                "counter",
            ),
            (
                "skipped",
                "worker_skipped_total",
                "Observations skipped (SKIPDATA).",
                "counter",
            ),
            (
                "table_flows",
                "worker_table_flows",
                "Flows in the worker's table.",
                "gauge",
            ),
            (
                "table_high_water",
                "worker_table_high_water",
                "Most flows a table held.",
                "gauge",
            ),
            (
                "ring_depth",
                "worker_ring_depth",
                "Batches waiting on the worker's ring.",
                "gauge",
            ),
            ("conns", "worker_conns", "Tracked connections.", "gauge"),
            (
                "conn_table_full",
                "worker_conn_table_full_total",
                "Packets judged by rules alone: connection table full.",
                "counter",
            ),
        ] {
            metric(
                name,
                help,
                kind,
                workers
                    .iter()
                    .map(|w| (format!("{{worker=\"{}\"}}", w["worker"]), num(&w[key])))
                    .collect(),
            );
        }
        let d = &s["dispatch"];
        for key in ["read", "logged", "malformed", "unmatched", "not_ip"] {
            metric(
                &format!("frames_{key}_total"),
                &format!("Frames {key}."),
                "counter",
                vec![(String::new(), num(&d[key]))],
            );
        }
        let enis = s["enis"].as_array().unwrap_or(&empty);
        for (key, name, help) in [
            (
                "packets",
                "eni_packets_total",
                "Packets of the ENI merged by the exporter.",
            ),
            (
                "bytes",
                "eni_bytes_total",
                "IP bytes of the ENI merged by the exporter.",
            ),
        ] {
            metric(
                name,
                help,
                "counter",
                enis.iter()
                    .map(|e| {
                        (
                            format!("{{eni_id=\"{}\"}}", esc(&e["eni_id"])),
                            num(&e[key]),
                        )
                    })
                    .collect(),
            );
        }
        let fls = s["flow_logs"].as_array().unwrap_or(&empty);
        metric(
            "flow_log_records_total",
            "Records delivered.",
            "counter",
            fls.iter()
                .map(|f| {
                    (
                        format!("{{flow_log_id=\"{}\"}}", esc(&f["flow_log_id"])),
                        num(&f["records"]),
                    )
                })
                .collect(),
        );
        metric(
            "flow_log_last_window_seconds",
            "Start of the last window delivered (Unix seconds).",
            "gauge",
            fls.iter()
                .map(|f| {
                    (
                        format!("{{flow_log_id=\"{}\"}}", esc(&f["flow_log_id"])),
                        num(&f["last_window"]),
                    )
                })
                .collect(),
        );
        metric(
            "flow_log_delivery_ok",
            "1 when the delivery status is SUCCESS, 0 when FAILED.",
            "gauge",
            fls.iter()
                .map(|f| {
                    (
                        format!("{{flow_log_id=\"{}\"}}", esc(&f["flow_log_id"])),
                        if f["delivery_status"] == "SUCCESS" {
                            1.0
                        } else {
                            0.0
                        },
                    )
                })
                .collect(),
        );
        metric(
            "exporter_lag_seconds",
            "Packet clock minus the exporter's watermark.",
            "gauge",
            vec![(String::new(), num(&s["exporter"]["lag_s"]))],
        );
        out
    }
}

fn flow_log_id(args: &Value) -> Result<&str, CtlError> {
    arg_str(args, "flow_log_id", "the flow log's id")
}

impl Handler for Engine {
    fn handle(&self, cmd: &str, args: &Value) -> Result<Value, CtlError> {
        match cmd {
            "stats" => Ok(self.stats()),
            "stats.prometheus" => Ok(json!({ "text": self.prometheus() })),
            "flow-logs.list" => {
                let st = self.state.lock();
                let coverage = st.config.coverage();
                let fls: Vec<Value> = st
                    .config
                    .flow_logs
                    .iter()
                    .map(|f| self.flow_log_json(&st, f, &coverage))
                    .collect();
                Ok(json!({ "flow_logs": fls }))
            }
            "flow-logs.describe" => {
                let id = flow_log_id(args)?;
                let st = self.state.lock();
                let f = st
                    .config
                    .flow_logs
                    .iter()
                    .find(|f| f.flow_log_id == id)
                    .ok_or_else(|| CtlError::new("not-found", format!("no flow log {id:?}; see flow-logs list")))?;
                Ok(json!({ "flow_log": self.flow_log_json(&st, f, &st.config.coverage()) }))
            }
            "flow-logs.create" => {
                let fl = arg(args, "flow_log", "a flow log object as CONFIG.md spells it")?.clone();
                let id = fl
                    .get("flow_log_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.change(|v| {
                    if list(v, "flow_logs")
                        .iter()
                        .any(|f| f.get("flow_log_id").and_then(Value::as_str) == Some(id.as_str()))
                    {
                        return Err(CtlError::new(
                            "invalid",
                            format!("flow log {id:?} exists already; modify it, or choose another flow_log_id"),
                        ));
                    }
                    list(v, "flow_logs").push(fl);
                    Ok(json!({ "flow_log_id": id, "created": true }))
                })
            }
            "flow-logs.modify" => {
                let id = flow_log_id(args)?.to_owned();
                for k in ["flow_log_name", "description", "name"] {
                    if args.get(k).is_some() {
                        return Err(CtlError::new(
                            "invalid",
                            format!(
                                "{k:?}: a flow log of the host configuration (CONFIG.md) has no name or description; \
                                 what can change is aggregation_interval (and start/stop)"
                            ),
                        ));
                    }
                }
                let iv = arg(args, "aggregation_interval", "60, 300 or 600")?.clone();
                self.change(|v| {
                    let f = find(v, "flow_logs", "flow_log_id", &id, "flow log")?;
                    f["aggregation_interval"] = iv;
                    Ok(json!({ "flow_log_id": id, "modified": true }))
                })
            }
            "flow-logs.start" | "flow-logs.stop" => {
                let id = flow_log_id(args)?.to_owned();
                let status = if cmd == "flow-logs.start" { "Active" } else { "Inactive" };
                self.change(|v| {
                    let f = find(v, "flow_logs", "flow_log_id", &id, "flow log")?;
                    f["status"] = json!(status);
                    Ok(json!({ "flow_log_id": id, "status": status }))
                })
            }
            "flow-logs.delete" => {
                let id = flow_log_id(args)?.to_owned();
                self.change(|v| {
                    find(v, "flow_logs", "flow_log_id", &id, "flow log")?;
                    list(v, "flow_logs")
                        .retain(|f| f.get("flow_log_id").and_then(Value::as_str) != Some(id.as_str()));
                    Ok(json!({ "flow_log_id": id, "deleted": true }))
                })
            }
            "enis.attach" => {
                let eni = arg(args, "eni", "an ENI object as CONFIG.md spells it")?.clone();
                let id = eni.get("eni_id").and_then(Value::as_str).unwrap_or("").to_owned();
                self.change(|v| {
                    if list(v, "enis")
                        .iter()
                        .any(|e| e.get("eni_id").and_then(Value::as_str) == Some(id.as_str()))
                    {
                        return Err(CtlError::new(
                            "invalid",
                            format!("ENI {id:?} is attached already; detach it first to change it"),
                        ));
                    }
                    list(v, "enis").push(eni);
                    Ok(json!({ "eni_id": id, "attached": true }))
                })
            }
            "enis.detach" => {
                let id = arg_str(args, "eni_id", "the ENI's id")?.to_owned();
                self.change(|v| {
                    find(v, "enis", "eni_id", &id, "ENI")?;
                    let on_it: Vec<String> = list(v, "flow_logs")
                        .iter()
                        .filter(|f| {
                            f.get("resource_type").and_then(Value::as_str) == Some("NetworkInterface")
                                && f.get("resource_id").and_then(Value::as_str) == Some(id.as_str())
                        })
                        .filter_map(|f| f.get("flow_log_id").and_then(Value::as_str).map(str::to_owned))
                        .collect();
                    if !on_it.is_empty() {
                        return Err(CtlError::new(
                            "invalid",
                            format!(
                                "ENI {id:?} has flow log(s) {}; delete them first",
                                on_it.join(", ")
                            ),
                        ));
                    }
                    list(v, "enis").retain(|e| e.get("eni_id").and_then(Value::as_str) != Some(id.as_str()));
                    Ok(json!({ "eni_id": id, "detached": true }))
                })
            }
            "security-groups.replace-rules" => {
                let id = arg_str(args, "security_group_id", "the security group's id")?.to_owned();
                let rules = arg(args, "rules", "a list of rules as CONFIG.md spells them")?.clone();
                if !rules.is_array() {
                    return Err(CtlError::new("bad-request", "\"rules\" must be a list of rules"));
                }
                self.change(|v| {
                    let g = find(v, "security_groups", "security_group_id", &id, "security group")?;
                    g["rules"] = rules;
                    Ok(json!({ "security_group_id": id, "replaced": true }))
                })
            }
            "network-acls.replace" => {
                let id = arg_str(args, "network_acl_id", "the network ACL's id")?.to_owned();
                let mut set = Map::new();
                for k in ["ingress", "egress"] {
                    if let Some(r) = args.get(k) {
                        if !r.is_array() {
                            return Err(CtlError::new("bad-request", format!("{k:?} must be a list of rules")));
                        }
                        set.insert(k.to_owned(), r.clone());
                    }
                }
                if set.is_empty() {
                    return Err(CtlError::new(
                        "bad-request",
                        "give \"ingress\" and/or \"egress\": lists of rules as CONFIG.md spells them",
                    ));
                }
                self.change(|v| {
                    let a = find(v, "network_acls", "network_acl_id", &id, "network ACL")?;
                    for (k, r) in set {
                        a[k.as_str()] = r;
                    }
                    Ok(json!({ "network_acl_id": id, "replaced": true }))
                })
            }
            other => Err(CtlError::new(
                "unknown-command",
                format!(
                    "unknown command {other:?}; the commands are hello, stats, stats.prometheus, flow-logs.list, \
                     flow-logs.describe, flow-logs.create, flow-logs.modify, flow-logs.start, flow-logs.stop, \
                     flow-logs.delete, enis.attach, enis.detach, security-groups.replace-rules, network-acls.replace"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An engine over the example configuration, saved to a temporary file,
    /// with a stand-in datapath that puts every change in force at once.
    struct Rig {
        engine: Engine,
        file: tempfile::NamedTempFile,
        live: Arc<Live>,
        stop: Arc<AtomicBool>,
        datapath: Option<std::thread::JoinHandle<()>>,
    }

    impl Rig {
        fn new() -> Rig {
            let text = include_str!("../../config/example.json");
            let cfg = config::from_json(text, "example").unwrap();
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), text).unwrap();
            let live = Live::new(1);
            let stop = Arc::new(AtomicBool::new(false));
            let datapath = {
                let (live, stop) = (live.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut frame = 0;
                    while !stop.load(Ordering::Acquire) {
                        if let Some((g, gen)) = live.take_pending(1_000 + frame) {
                            live.applied(g, gen.from, frame);
                        }
                        frame += 1;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            };
            Rig {
                engine: Engine::new(cfg, Some(file.path().to_path_buf()), live.clone()),
                file,
                live,
                stop,
                datapath: Some(datapath),
            }
        }

        fn ok(&self, cmd: &str, args: Value) -> Value {
            self.engine
                .handle(cmd, &args)
                .unwrap_or_else(|e| panic!("{cmd}: {} {}", e.code, e.message))
        }

        /// A refused command: its code, and nothing changed or saved.
        fn refused(&self, cmd: &str, args: Value) -> CtlError {
            let before = self.engine.config();
            let saved = std::fs::read(self.file.path()).unwrap();
            let e = self.engine.handle(cmd, &args).expect_err(cmd);
            assert_eq!(
                self.engine.config(),
                before,
                "{cmd} changed the configuration"
            );
            assert_eq!(
                std::fs::read(self.file.path()).unwrap(),
                saved,
                "{cmd} saved"
            );
            e
        }

        fn saved(&self) -> Config {
            config::load(self.file.path()).unwrap()
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Release);
            if let Some(t) = self.datapath.take() {
                let _ = t.join();
            }
        }
    }

    fn flow_log(id: &str, resource_type: &str, resource_id: &str) -> Value {
        json!({
            "flow_log_id": id, "account_id": "1234567890",
            "resource_type": resource_type, "resource_id": resource_id,
            "traffic_type": "All", "aggregation_interval": 60,
            "project_name": "p", "log_store_name": "s"
        })
    }

    #[test]
    fn flow_log_lifecycle_is_applied_saved_and_listed() {
        let r = Rig::new();
        let list = r.ok("flow-logs.list", json!({}));
        assert_eq!(list["flow_logs"].as_array().unwrap().len(), 4);
        let c = r.ok(
            "flow-logs.create",
            json!({"flow_log": flow_log("fl-new", "VSwitch", "vsw-1")}),
        );
        assert_eq!(c["generation"], 1);
        assert!(c["applied_at_frame"].is_u64());
        assert!(r
            .saved()
            .flow_logs
            .iter()
            .any(|f| f.flow_log_id == "fl-new"));
        let d = r.ok("flow-logs.describe", json!({"flow_log_id": "fl-new"}));
        assert_eq!(d["flow_log"]["status"], "Active");
        assert_eq!(d["flow_log"]["enis"], json!(["eni-a1", "eni-a2"]));
        assert_eq!(d["flow_log"]["delivery_status"], "SUCCESS");
        r.ok(
            "flow-logs.modify",
            json!({"flow_log_id": "fl-new", "aggregation_interval": 600}),
        );
        assert_eq!(
            r.saved()
                .flow_logs
                .iter()
                .find(|f| f.flow_log_id == "fl-new")
                .unwrap()
                .aggregation_interval,
            600
        );
        r.ok("flow-logs.stop", json!({"flow_log_id": "fl-new"}));
        assert!(!r
            .saved()
            .flow_logs
            .iter()
            .find(|f| f.flow_log_id == "fl-new")
            .unwrap()
            .is_active());
        r.ok("flow-logs.start", json!({"flow_log_id": "fl-new"}));
        assert!(r
            .saved()
            .flow_logs
            .iter()
            .find(|f| f.flow_log_id == "fl-new")
            .unwrap()
            .is_active());
        let del = r.ok("flow-logs.delete", json!({"flow_log_id": "fl-new"}));
        assert_eq!(del["generation"], 5);
        assert!(!r
            .saved()
            .flow_logs
            .iter()
            .any(|f| f.flow_log_id == "fl-new"));
        // Each change reached the datapath as its own generation.
        assert_eq!(r.live.generations_from(1).len(), 5);
    }

    #[test]
    fn refused_changes_say_why_and_change_nothing() {
        let r = Rig::new();
        // Over the quota: the example's account has 4 flow logs of 10.
        for i in 0..6 {
            r.ok(
                "flow-logs.create",
                json!({"flow_log": flow_log(&format!("fl-q{i}"), "VPC", "vpc-1")}),
            );
        }
        let e = r.refused(
            "flow-logs.create",
            json!({"flow_log": flow_log("fl-q6", "VPC", "vpc-1")}),
        );
        assert_eq!(e.code, "quota-exceeded", "{}", e.message);
        assert!(e.message.contains("quota of 10"), "{}", e.message);
        // An ENI flow log on an unsupported family (eni-a4 is ecs.t1.small).
        r.ok("flow-logs.delete", json!({"flow_log_id": "fl-q0"}));
        let e = r.refused(
            "flow-logs.create",
            json!({"flow_log": flow_log("fl-t1", "NetworkInterface", "eni-a4")}),
        );
        assert_eq!(e.code, "unsupported-family", "{}", e.message);
        // Unknown resources.
        let e = r.refused(
            "flow-logs.create",
            json!({"flow_log": flow_log("fl-x", "VPC", "vpc-9")}),
        );
        assert_eq!(e.code, "not-found", "{}", e.message);
        assert!(e.message.contains("no VPC \"vpc-9\""), "{}", e.message);
        for (cmd, args) in [
            ("flow-logs.describe", json!({"flow_log_id": "fl-nope"})),
            ("flow-logs.stop", json!({"flow_log_id": "fl-nope"})),
            ("flow-logs.delete", json!({"flow_log_id": "fl-nope"})),
            ("enis.detach", json!({"eni_id": "eni-nope"})),
            (
                "security-groups.replace-rules",
                json!({"security_group_id": "sg-nope", "rules": []}),
            ),
            (
                "network-acls.replace",
                json!({"network_acl_id": "nacl-nope", "ingress": []}),
            ),
        ] {
            let e = r.engine.handle(cmd, &args).expect_err(cmd);
            assert_eq!(e.code, "not-found", "{cmd}: {}", e.message);
        }
        // Bad values, missing arguments, names the contract does not have.
        let e = r.refused(
            "flow-logs.modify",
            json!({"flow_log_id": "fl-vpc1", "aggregation_interval": 61}),
        );
        assert_eq!(e.code, "invalid", "{}", e.message);
        let e = r.refused(
            "flow-logs.modify",
            json!({"flow_log_id": "fl-vpc1", "description": "x"}),
        );
        assert_eq!(e.code, "invalid");
        let e = r.refused(
            "flow-logs.create",
            json!({"flow_log": flow_log("fl-vpc1", "VPC", "vpc-1")}),
        );
        assert!(e.message.contains("exists already"), "{}", e.message);
        let e = r.refused("flow-logs.stop", json!({}));
        assert_eq!(e.code, "bad-request");
        let e = r.refused(
            "security-groups.replace-rules",
            json!({"security_group_id": "sg-web", "rules": [{"direction": "sideways"}]}),
        );
        assert_eq!(e.code, "invalid", "{}", e.message);
        // An ENI with a flow log of its own cannot leave.
        let e = r.refused("enis.detach", json!({"eni_id": "eni-a1"}));
        assert!(e.message.contains("fl-eni-a1"), "{}", e.message);
        let e = r.refused("nope", json!({}));
        assert_eq!(e.code, "unknown-command");
    }

    #[test]
    fn enis_come_and_go_keeping_their_slots_and_rules_are_replaced() {
        let r = Rig::new();
        let eni = json!({
            "eni_id": "eni-c1", "mac": "02:00:00:00:00:c1", "ips": ["10.0.1.77"],
            "vm_id": "i-c1", "instance_type": "ecs.g7.large", "vswitch_id": "vsw-1",
            "vpc_id": "vpc-1", "account_id": "1234567890", "security_group_ids": ["sg-web"], "port": null
        });
        r.ok("enis.attach", json!({ "eni": eni }));
        let e = r.refused("enis.attach", json!({ "eni": eni }));
        assert!(e.message.contains("attached already"), "{}", e.message);
        // The VPC flow log covers it from now on.
        let g = r.live.generation(1).unwrap();
        let plan = &g.snapshot.plan;
        assert_eq!(plan.enis[6].eni_id, "eni-c1");
        let vpc1 = plan
            .flow_logs
            .iter()
            .position(|f| f.flow_log_id == "fl-vpc1")
            .unwrap();
        assert!(plan.enis[6].flow_logs.contains(&vpc1));
        r.ok("enis.detach", json!({"eni_id": "eni-a2"}));
        let g = r.live.generation(2).unwrap();
        // eni-a2 keeps slot 1 but nothing covers it and no MAC finds it.
        assert_eq!(g.snapshot.plan.enis[1].eni_id, "eni-a2");
        assert!(g.snapshot.plan.enis[1].flow_logs.is_empty());
        assert_eq!(g.snapshot.attribution.eni_of_mac(&[2, 0, 0, 0, 0, 2]), None);
        assert_eq!(
            g.snapshot.attribution.eni_of_mac(&[2, 0, 0, 0, 0, 0xc1]),
            Some(6)
        );
        assert!(!r.saved().enis.iter().any(|e| e.eni_id == "eni-a2"));
        // It comes back in its old slot.
        let a2 = serde_json::to_value(
            config::from_json(include_str!("../../config/example.json"), "x")
                .unwrap()
                .enis[1]
                .clone(),
        )
        .unwrap();
        r.ok("enis.attach", json!({ "eni": a2 }));
        let g = r.live.generation(3).unwrap();
        assert_eq!(
            g.snapshot.attribution.eni_of_mac(&[2, 0, 0, 0, 0, 2]),
            Some(1)
        );
        let rules = json!([{"direction": "ingress", "policy": "drop", "priority": 1,
                            "ip_protocol": "all", "port_range": "-1/-1", "cidr": "0.0.0.0/0"}]);
        r.ok(
            "security-groups.replace-rules",
            json!({"security_group_id": "sg-web", "rules": rules}),
        );
        assert_eq!(r.saved().security_group("sg-web").unwrap().rules.len(), 1);
        r.ok("network-acls.replace", json!({"network_acl_id": "nacl-1", "egress": rules.as_array().unwrap().iter().map(|x| { let mut x = x.clone(); x.as_object_mut().unwrap().remove("direction"); x.as_object_mut().unwrap().remove("priority"); x }).collect::<Vec<_>>()}));
        assert_eq!(r.saved().network_acl("nacl-1").unwrap().egress.len(), 1);
    }

    #[test]
    fn stats_and_prometheus_carry_every_section() {
        let r = Rig::new();
        let s = r.ok("stats", json!({}));
        for k in ["dispatch", "workers", "enis", "flow_logs", "exporter"] {
            assert!(!s[k].is_null(), "{k} missing: {s}");
        }
        assert_eq!(s["enis"].as_array().unwrap().len(), 6);
        assert_eq!(s["workers"][0]["worker"], 0);
        let p = r.ok("stats.prometheus", json!({}));
        let text = p["text"].as_str().unwrap();
        assert!(text.contains("# TYPE flowlogd_worker_packets_total counter"));
        assert!(
            text.contains("flowlogd_flow_log_delivery_ok{flow_log_id=\"fl-vpc1\"} 1"),
            "{text}"
        );
        // Every sample line is `name{labels} value` or `name value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
            assert!(l.starts_with("flowlogd_"), "{l}");
        }
    }
}
