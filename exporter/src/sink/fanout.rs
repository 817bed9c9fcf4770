//! The fan-out: one thread per declared sink, a bounded queue in front of
//! each, and a delivery status per flow log and sink.

use super::{Deliver, Window};
use crate::config::{Config, LOCAL_SINK};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records a sink's queue holds at most (beyond one window when it is empty).
pub const QUEUE_RECORDS: u64 = 4_000_000;

/// Windows a sink's queue holds at most.
const QUEUE_WINDOWS: usize = 4096;

/// How often a sink's thread ticks.
const TICK: Duration = Duration::from_millis(100);

/// Where one flow log's records stand at one sink, as the provider's
/// DescribeFlowLogs reports it: `SUCCESS`, or `FAILED` with the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStatus {
    /// The flow log.
    pub flow_log_id: String,
    /// The sink (`sink_id`).
    pub sink_id: String,
    /// `SUCCESS` or `FAILED`.
    pub status: String,
    /// Why it failed (the latest reason); absent on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Windows the sink accepted.
    pub windows: u64,
    /// Records the sink accepted.
    pub records: u64,
    /// Records lost: the queue was full, or the sink refused them.
    pub lost_records: u64,
    /// Start of the last window the sink accepted, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_window: Option<u64>,
}

impl DeliveryStatus {
    fn new(flow_log_id: &str, sink_id: &str) -> Self {
        DeliveryStatus {
            flow_log_id: flow_log_id.to_owned(),
            sink_id: sink_id.to_owned(),
            status: "SUCCESS".into(),
            ..Default::default()
        }
    }

    /// Recomputes `status` from the loss count and the sink's health.
    fn settle(&mut self, health: &Result<(), String>) {
        match (health, self.lost_records) {
            (Ok(()), 0) => {
                self.status = "SUCCESS".into();
                self.reason = None;
            }
            (Err(e), _) => {
                self.status = "FAILED".into();
                self.reason = Some(e.clone());
            }
            (Ok(()), _) => {
                self.status = "FAILED".into();
                if self.reason.is_none() {
                    self.reason = Some(format!("{} records lost", self.lost_records));
                }
            }
        }
    }
}

/// What a sink's thread and the exporter share.
struct Shared {
    /// Records queued and not yet taken by the sink's thread.
    queued: AtomicU64,
    /// Per flow log using this sink.
    status: Mutex<HashMap<String, DeliveryStatus>>,
    /// The sink's latest health.
    health: Mutex<Result<(), String>>,
}

impl Shared {
    fn lose(&self, flow_log_id: &str, records: u64, reason: String) {
        let mut st = self.status.lock();
        if let Some(s) = st.get_mut(flow_log_id) {
            s.lost_records += records;
            s.reason = Some(reason);
            s.status = "FAILED".into();
        }
    }
}

struct Handle {
    sink_id: String,
    tx: Option<Sender<Arc<Window>>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The deadline `close` gives the sink; sent once, when closing.
    close_at: Arc<Mutex<Option<Instant>>>,
}

/// Every declared sink that an active flow log names, each on its own
/// thread. The local log store is not among them: the exporter writes it.
pub struct SinkSet {
    handles: Vec<Handle>,
    /// Flow log → indices into `handles`.
    routes: HashMap<String, Vec<usize>>,
    /// Records a queue may hold (beyond one window when it is empty).
    queue_records: u64,
}

impl std::fmt::Debug for SinkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSet")
            .field(
                "sinks",
                &self.handles.iter().map(|h| &h.sink_id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SinkSet {
    /// Opens the sinks that the active flow logs of `cfg` name (besides
    /// `local`) with [`super::open`], each on its own thread.
    pub fn open(cfg: &Config) -> Result<SinkSet, String> {
        Self::open_with(cfg, |s| super::open(s, &cfg.host))
    }

    /// As [`SinkSet::open`], with the sinks made by `make` (tests use it to
    /// put in sinks of their own).
    pub fn open_with(
        cfg: &Config,
        mut make: impl FnMut(&crate::config::Sink) -> Result<Box<dyn Deliver>, String>,
    ) -> Result<SinkSet, String> {
        let mut handles: Vec<Handle> = Vec::new();
        let mut routes: HashMap<String, Vec<usize>> = HashMap::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for fl in cfg.flow_logs.iter().filter(|f| f.is_active()) {
            for sid in fl.sink_ids.iter().filter(|s| s.as_str() != LOCAL_SINK) {
                let i = match index.get(sid.as_str()) {
                    Some(&i) => i,
                    None => {
                        let decl = cfg
                            .sinks
                            .iter()
                            .find(|s| &s.sink_id == sid)
                            .ok_or_else(|| format!("sink {sid:?} is not declared in \"sinks\""))?;
                        let sink = make(decl).map_err(|e| format!("sink {sid:?}: {e}"))?;
                        handles.push(Handle::spawn(sid, sink)?);
                        index.insert(sid.as_str(), handles.len() - 1);
                        handles.len() - 1
                    }
                };
                handles[i].shared.status.lock().insert(
                    fl.flow_log_id.clone(),
                    DeliveryStatus::new(&fl.flow_log_id, sid),
                );
                routes.entry(fl.flow_log_id.clone()).or_default().push(i);
            }
        }
        Ok(SinkSet {
            handles,
            routes,
            queue_records: QUEUE_RECORDS,
        })
    }

    /// Sets how many records each sink's queue may hold (default
    /// [`QUEUE_RECORDS`]).
    pub fn with_queue_records(mut self, records: u64) -> SinkSet {
        self.queue_records = records.max(1);
        self
    }

    /// Whether no flow log uses a sink besides the local log store.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Whether flow log `flow_log_id` uses any sink of this set.
    pub fn routes(&self, flow_log_id: &str) -> bool {
        self.routes.contains_key(flow_log_id)
    }

    /// Queues a closed window for every sink its flow log names. Never
    /// blocks: a sink whose queue is full loses the window, counted.
    pub fn send(&self, w: Window) {
        let Some(targets) = self.routes.get(&w.flow_log_id) else {
            return;
        };
        let n = w.records.len() as u64;
        let w = Arc::new(w);
        for &i in targets {
            let h = &self.handles[i];
            let queued = h.shared.queued.load(Ordering::Acquire);
            if queued > 0 && queued + n > self.queue_records {
                h.shared.lose(
                    &w.flow_log_id,
                    n,
                    format!(
                        "sink {} cannot keep up: its queue holds {queued} records; window {} ({n} records) dropped",
                        h.sink_id, w.start
                    ),
                );
                continue;
            }
            let Some(tx) = &h.tx else { continue };
            h.shared.queued.fetch_add(n, Ordering::AcqRel);
            match tx.try_send(Arc::clone(&w)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    h.shared.queued.fetch_sub(n, Ordering::AcqRel);
                    h.shared.lose(
                        &w.flow_log_id,
                        n,
                        format!(
                            "sink {} cannot keep up: {QUEUE_WINDOWS} windows queued; window {} ({n} records) dropped",
                            h.sink_id, w.start
                        ),
                    );
                }
                Err(TrySendError::Disconnected(_)) => {
                    h.shared.queued.fetch_sub(n, Ordering::AcqRel);
                    h.shared.lose(
                        &w.flow_log_id,
                        n,
                        format!(
                            "sink {} stopped; window {} ({n} records) dropped",
                            h.sink_id, w.start
                        ),
                    );
                }
            }
        }
    }

    /// The delivery status of every flow log at every sink, now.
    pub fn status(&self) -> Vec<DeliveryStatus> {
        let mut out = Vec::new();
        for h in &self.handles {
            let health = h.shared.health.lock().clone();
            for s in h.shared.status.lock().values() {
                let mut s = s.clone();
                s.settle(&health);
                out.push(s);
            }
        }
        out.sort_by(|a, b| (&a.flow_log_id, &a.sink_id).cmp(&(&b.flow_log_id, &b.sink_id)));
        out
    }

    /// Delivers what is queued, lets every sink flush until `deadline`, stops
    /// the threads and returns the final delivery status.
    pub fn close(mut self, deadline: Instant) -> Vec<DeliveryStatus> {
        for h in &mut self.handles {
            *h.close_at.lock() = Some(deadline);
            h.tx = None;
        }
        for h in &mut self.handles {
            if let Some(t) = h.thread.take() {
                if t.join().is_err() {
                    *h.shared.health.lock() = Err(format!("sink {} crashed", h.sink_id));
                }
            }
        }
        self.status()
    }
}

impl Handle {
    fn spawn(sink_id: &str, sink: Box<dyn Deliver>) -> Result<Handle, String> {
        let (tx, rx) = channel::bounded(QUEUE_WINDOWS);
        let shared = Arc::new(Shared {
            queued: AtomicU64::new(0),
            status: Mutex::new(HashMap::new()),
            health: Mutex::new(Ok(())),
        });
        let close_at = Arc::new(Mutex::new(None));
        let thread = {
            let shared = Arc::clone(&shared);
            let close_at = Arc::clone(&close_at);
            std::thread::Builder::new()
                .name(format!("sink-{sink_id}"))
                .spawn(move || sink_thread(sink, rx, &shared, &close_at))
                .map_err(|e| format!("cannot start the thread of sink {sink_id:?}: {e}"))?
        };
        Ok(Handle {
            sink_id: sink_id.to_owned(),
            tx: Some(tx),
            shared,
            thread: Some(thread),
            close_at,
        })
    }
}

fn sink_thread(
    mut sink: Box<dyn Deliver>,
    rx: Receiver<Arc<Window>>,
    shared: &Shared,
    close_at: &Mutex<Option<Instant>>,
) {
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(TICK) {
            Ok(w) => {
                let n = w.records.len() as u64;
                shared.queued.fetch_sub(n, Ordering::AcqRel);
                match sink.deliver(&w) {
                    Ok(()) => {
                        let mut st = shared.status.lock();
                        if let Some(s) = st.get_mut(&w.flow_log_id) {
                            s.windows += 1;
                            s.records += n;
                            s.last_window = Some(s.last_window.map_or(w.start, |l| l.max(w.start)));
                        }
                    }
                    Err(e) => shared.lose(
                        &w.flow_log_id,
                        n,
                        format!("window {} ({n} records) lost: {e}", w.start),
                    ),
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            let health = sink.tick();
            *shared.health.lock() = health;
        }
    }
    let deadline = close_at
        .lock()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(10));
    let health = sink.close(deadline);
    *shared.health.lock() = health;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_json;
    use crate::record::{LogStatus, Record};

    fn cfg() -> Config {
        let text = include_str!("../../../config/example.json");
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v["sinks"] = serde_json::json!([
            { "sink_id": "a", "type": "ipfix", "address": "127.0.0.1:9", "transport": "udp" },
            { "sink_id": "b", "type": "ipfix", "address": "127.0.0.1:9", "transport": "udp" }
        ]);
        let fls = v["flow_logs"].as_array_mut().unwrap();
        fls[0]["sink_ids"] = serde_json::json!(["local", "a", "b"]);
        from_json(&v.to_string(), "test").unwrap()
    }

    fn window(fl: &str, start: u64, n: usize) -> Window {
        let r = Record {
            version: 1,
            account_id: "1".into(),
            vpc_id: "vpc".into(),
            vswitch_id: "vsw".into(),
            vm_id: None,
            eni_id: "eni".into(),
            srcaddr: None,
            dstaddr: None,
            srcport: None,
            dstport: None,
            protocol: None,
            direction: None,
            packets: 0,
            bytes: 0,
            start,
            end: start + 59,
            tcp_flags: 0,
            log_status: LogStatus::NoData,
            action: None,
            flow_log_id: fl.into(),
            window_start: start,
        };
        Window {
            flow_log_id: fl.into(),
            start,
            interval: 60,
            records: vec![r; n],
        }
    }

    type Got = Arc<Mutex<Vec<(String, u64, usize)>>>;

    /// Collects what it is given; `stall` makes `deliver` block until the
    /// test lets it go; `fail` makes every delivery fail.
    struct Probe {
        got: Got,
        stall: Option<Receiver<()>>,
        fail: bool,
    }

    impl Deliver for Probe {
        fn deliver(&mut self, w: &Window) -> Result<(), String> {
            if let Some(r) = &self.stall {
                let _ = r.recv();
            }
            if self.fail {
                return Err("collector said no".into());
            }
            self.got
                .lock()
                .push((w.flow_log_id.clone(), w.start, w.records.len()));
            Ok(())
        }
        fn tick(&mut self) -> Result<(), String> {
            if self.fail {
                Err("collector down".into())
            } else {
                Ok(())
            }
        }
        fn close(&mut self, _deadline: Instant) -> Result<(), String> {
            self.tick()
        }
    }

    #[test]
    fn every_window_reaches_every_named_sink_once_and_status_is_success() {
        let c = cfg();
        let fl = c.flow_logs[0].flow_log_id.clone();
        let got: HashMap<String, Got> = ["a", "b"]
            .iter()
            .map(|s| (s.to_string(), Arc::new(Mutex::new(Vec::new()))))
            .collect();
        let set = SinkSet::open_with(&c, |s| {
            Ok(Box::new(Probe {
                got: Arc::clone(&got[&s.sink_id]),
                stall: None,
                fail: false,
            }))
        })
        .unwrap();
        assert!(set.routes(&fl));
        for i in 0..5 {
            set.send(window(&fl, 60 * i, 3));
        }
        // A flow log that names no sink here goes nowhere.
        set.send(window("fl-none", 0, 1));
        let st = set.close(Instant::now() + Duration::from_secs(5));
        for s in ["a", "b"] {
            let g = got[s].lock();
            assert_eq!(g.len(), 5, "sink {s}");
            assert_eq!(
                g.iter().map(|x| x.1).collect::<Vec<_>>(),
                vec![0, 60, 120, 180, 240]
            );
        }
        assert_eq!(st.len(), 2);
        for s in st {
            assert_eq!(s.status, "SUCCESS", "{s:?}");
            assert_eq!((s.windows, s.records, s.lost_records), (5, 15, 0));
            assert_eq!(s.last_window, Some(240));
        }
    }

    #[test]
    fn a_stalled_sink_never_blocks_the_sender_nor_the_other_sink_and_its_loss_is_counted() {
        let c = cfg();
        let fl = c.flow_logs[0].flow_log_id.clone();
        let got_b = Arc::new(Mutex::new(Vec::new()));
        let (release, stall) = channel::unbounded();
        let set = SinkSet::open_with(&c, |s| {
            Ok(Box::new(Probe {
                got: if s.sink_id == "b" {
                    Arc::clone(&got_b)
                } else {
                    Arc::new(Mutex::new(Vec::new()))
                },
                stall: (s.sink_id == "a").then(|| stall.clone()),
                fail: false,
            }))
        })
        .unwrap()
        .with_queue_records(400);
        // Each window is a quarter of the queue: "a" takes the first and
        // stalls on it, holds four more queued, and must drop the rest.
        let n = 100;
        let windows: Vec<Window> = (0..8).map(|i| window(&fl, 60 * i, n)).collect();
        for w in windows {
            let t = Instant::now();
            set.send(w);
            assert!(t.elapsed() < Duration::from_secs(1), "send blocked");
            // Time for "b" to take it ("a" never does).
            std::thread::sleep(Duration::from_millis(30));
        }
        // "b" got all eight while "a" is stalled.
        let until = Instant::now() + Duration::from_secs(20);
        while got_b.lock().len() < 8 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got_b.lock().len(), 8);
        for _ in 0..8 {
            release.send(()).unwrap();
        }
        let st = set.close(Instant::now() + Duration::from_secs(5));
        let a = st.iter().find(|s| s.sink_id == "a").unwrap();
        let b = st.iter().find(|s| s.sink_id == "b").unwrap();
        assert_eq!(b.status, "SUCCESS");
        assert_eq!(a.status, "FAILED");
        assert!(
            a.reason.as_deref().unwrap().contains("cannot keep up"),
            "{a:?}"
        );
        assert_eq!(a.records + a.lost_records, 8 * n as u64);
        assert!(a.lost_records >= 2 * n as u64, "{a:?}");
    }

    #[test]
    fn a_failing_sink_shows_failed_with_the_reason_and_counts_the_loss() {
        let c = cfg();
        let fl = c.flow_logs[0].flow_log_id.clone();
        let set = SinkSet::open_with(&c, |s| {
            Ok(Box::new(Probe {
                got: Arc::new(Mutex::new(Vec::new())),
                stall: None,
                fail: s.sink_id == "a",
            }))
        })
        .unwrap();
        set.send(window(&fl, 0, 7));
        let st = set.close(Instant::now() + Duration::from_secs(5));
        let a = st.iter().find(|s| s.sink_id == "a").unwrap();
        assert_eq!(
            (a.status.as_str(), a.lost_records, a.records),
            ("FAILED", 7, 0)
        );
        assert_eq!(a.reason.as_deref(), Some("collector down"));
        let b = st.iter().find(|s| s.sink_id == "b").unwrap();
        assert_eq!((b.status.as_str(), b.records), ("SUCCESS", 7));
    }
}
