//! Inserts into ClickHouse over its HTTP interface, with an on-disk spool.
//!
//! - Records are encoded as `RowBinary` rows ([`COLUMNS`], the table of
//!   `scripts/clickhouse/records.sql`) into the batch being built. A batch is
//!   sealed when it holds `batch_records` rows, when its first row is
//!   `batch_ms` old (checked in [`Deliver::tick`]), or before a row of
//!   another UTC day (the table's partition) would join it, so that one
//!   INSERT is one block and one part: all or nothing.
//! - A sealed batch is written to `spool_dir` as `<seq>.rowbinary` (written
//!   to a temporary name, one fsync, renamed, the folder fsynced) and handed
//!   at once to one of `senders` threads (default 2), each with its own
//!   connection, so that the next batch is encoded while earlier ones are
//!   inserted and ClickHouse (one thread per INSERT) inserts several at a
//!   time. Batches *start* in sequence order, oldest first, and none starts
//!   while an older one must wait (backoff, a pending check). Only the `k`
//!   oldest batches (`k` senders) since the oldest one still in the spool
//!   may be in flight, counting those that have landed since, so batch
//!   `n + k` starts only once batch `n` is in, and a batch
//!   lands at most `k - 1` places from its place in the spool (`senders: 1`
//!   keeps arrival order strict). A batch is deleted once ClickHouse
//!   answered 200 (possibly before an older one still in flight). A failed
//!   send leaves it there and retries with exponential backoff (per
//!   endpoint, 200 ms to 30 s). The senders only read the spool; the sink's
//!   thread keeps every decision and file change. Memory: the batch being
//!   built plus one batch per sender.
//! - Every batch carries a `batch_id` (a random salt drawn per process plus
//!   the spool's sequence number) in every row. Before a send, the endpoint is
//!   written to `<seq>.maybe`; when an attempt ends without a certain answer
//!   (a timeout, a connection lost after the request went out, a crash), the
//!   batch is not sent again before that endpoint has said whether it holds
//!   the batch (`SELECT count() … WHERE batch_id = …`, once the INSERT's
//!   `query_id` no longer runs). So a retry never duplicates.
//! - `open` finds the batches a previous process left and sends them first.
//!
//! docs/DESIGN.md, "ClickHouse sink", tells the whole story.

use super::{Deliver, Window};
use crate::config::{self, ClickhouseMode};
use crate::record::{Action, Direction, LogStatus, Record};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

/// The table's columns, in the order of every `RowBinary` row: RECORDS.md's
/// keys with `-` written `_` (`flow_log_id` and `window_start` first), then
/// `batch_id`.
pub const COLUMNS: [&str; 22] = [
    "flow_log_id",
    "window_start",
    "version",
    "account_id",
    "vpc_id",
    "vswitch_id",
    "vm_id",
    "eni_id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "direction",
    "packets",
    "bytes",
    "start",
    "end",
    "tcp_flags",
    "log_status",
    "action",
    "batch_id",
];

/// The table's DDL (`scripts/clickhouse/records.sql`), for database
/// `flowlogs` and table `records`.
pub const RECORDS_SQL: &str = include_str!("../../../scripts/clickhouse/records.sql");

/// First token of a spool file's header line.
const MAGIC: &str = "flowlogd-clickhouse-spool";
/// Spool format version.
const SPOOL_VERSION: u32 = 1;
/// A sealed batch.
const BATCH_EXT: &str = "rowbinary";
/// The endpoints a batch may have reached.
const MAYBE_EXT: &str = "maybe";
/// Longest header line read back.
const MAX_HEADER: usize = 4096;
/// Most records per batch (ClickHouse's `max_insert_block_size` is 1048576:
/// one INSERT below it is one block).
pub const MAX_BATCH_RECORDS: u32 = 1_000_000;
/// First retry delay of an endpoint that failed.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long `deliver` and `tick` send spooled batches at most.
const PUMP_BUDGET: Duration = Duration::from_millis(800);
/// Connection setup limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Seconds in a day (the table is partitioned by UTC day of `window_start`).
const DAY: u64 = 86_400;
/// Most sender threads (`senders`).
pub const MAX_SENDERS: u32 = 16;

/// A ClickHouse table behind one or more endpoints.
#[derive(Debug)]
pub struct ClickhouseSink {
    endpoints: Vec<Endpoint>,
    mode: ClickhouseMode,
    /// Endpoint that took the last batch (`replicas` starts there).
    last_good: usize,
    /// `db`.`table`, quoted.
    table: String,
    /// `INSERT INTO … (COLUMNS) FORMAT RowBinary`.
    insert: String,
    dir: PathBuf,
    salt: u64,
    next_seq: u64,
    batch_records: u64,
    batch_age: Duration,
    max_spool_bytes: u64,
    building: Option<Building>,
    /// The spool's batches in sequence order, those in flight included.
    spooled: VecDeque<Spooled>,
    /// Sequence numbers of batches that landed while an older one was
    /// still in the spool (fewer than `senders`): they keep their places
    /// in the window of batches that may be in flight.
    landed_ahead: Vec<u64>,
    /// Bytes of the files in `spooled`.
    spool_bytes: u64,
    /// For the batch checks (the INSERTs go out from the senders).
    agent: ureq::Agent,
    /// One job queue per sender thread.
    senders: Vec<Sender<Job>>,
    /// Senders without a job.
    idle: Vec<usize>,
    /// The senders' answers.
    done: Receiver<Done>,
    /// Why the head batch waits (`None`: nothing waits for a failure).
    stalled: Option<String>,
    /// A problem that does not stop delivery but should be seen once.
    notice: Option<String>,
    /// Reused text buffer for IPv6 addresses.
    text: String,
}

#[derive(Debug)]
struct Endpoint {
    /// Base URL without a trailing `/`.
    url: String,
    next_try: Instant,
    backoff: Duration,
    /// The latest failure, until a success.
    error: Option<String>,
}

/// The batch being built, in memory.
#[derive(Debug)]
struct Building {
    seq: u64,
    batch_id: u64,
    /// UTC day of its rows' `window_start`.
    day: u64,
    rows: u64,
    body: Vec<u8>,
    since: Instant,
    window_min: u64,
    window_max: u64,
}

/// A sealed batch: a file in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spooled {
    seq: u64,
    batch_id: u64,
    rows: u64,
    /// Length of the header line (the body follows).
    header_len: usize,
    file_bytes: u64,
    window_min: u64,
    window_max: u64,
    /// Endpoints (indices) whose attempt with this batch had no certain
    /// outcome.
    maybe: Vec<usize>,
    /// A sender is sending it (to `maybe[0]`).
    in_flight: bool,
}

/// One INSERT, handed to a sender thread.
struct Job {
    seq: u64,
    endpoint: usize,
    /// `<endpoint>/`.
    url: String,
    insert: String,
    query_id: String,
    rows: u64,
    path: PathBuf,
    header_len: usize,
}

/// A sender's answer to a [`Job`].
struct Done {
    sender: usize,
    seq: u64,
    endpoint: usize,
    result: Result<(), Fail>,
}

/// How one request failed.
enum Fail {
    /// The request certainly had no effect (no connection; an HTTP error).
    Certain(String),
    /// It may have had one (the request went out, no answer came back).
    Uncertain(String),
}

impl Fail {
    fn text(&self) -> &str {
        match self {
            Fail::Certain(s) | Fail::Uncertain(s) => s,
        }
    }
}

/// What to do with the oldest batch not in flight.
enum Step {
    /// Delivered (found by a check): drop it.
    Done,
    /// Not now: the reason.
    Wait(String),
    /// Send it to this endpoint.
    Send(usize),
}

/// How long [`ClickhouseSink::pump`] waits for the senders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Until at most this many batches wait for a sender behind those in
    /// flight (`deliver`: the next window is encoded while they send).
    Backlog(usize),
    /// Until nothing is in flight and nothing more can be sent now.
    Drained,
}

impl ClickhouseSink {
    /// Opens the spool and the endpoints of `opts`: creates `spool_dir` if
    /// need be, removes half-written files, and queues the batches a previous
    /// process left, to be sent first. Does not contact ClickHouse (a server
    /// that is down only delays delivery).
    pub fn open(opts: &config::ClickhouseSink, host: &str) -> Result<Self, String> {
        if opts.endpoints.is_empty() {
            return Err(
                "clickhouse sink: no endpoints; give at least one, e.g. \"http://127.0.0.1:8123\""
                    .into(),
            );
        }
        if opts.senders == 0 || opts.senders > MAX_SENDERS {
            return Err(format!(
                "clickhouse sink: senders {} is out of range; give 1 to {MAX_SENDERS}",
                opts.senders
            ));
        }
        if opts.batch_records == 0 || opts.batch_records > MAX_BATCH_RECORDS {
            return Err(format!(
                "clickhouse sink: batch_records {} is out of range; give 1 to {MAX_BATCH_RECORDS}",
                opts.batch_records
            ));
        }
        for e in &opts.endpoints {
            if !e.starts_with("http://") {
                return Err(format!(
                    "clickhouse sink: endpoint {e:?}: only http:// is built in; use ClickHouse's plain HTTP port (8123) or a local TLS proxy"
                ));
            }
        }
        let dir = opts.spool_dir.clone();
        fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "clickhouse sink: cannot create spool_dir {}: {e}; make it writable or choose another",
                dir.display()
            )
        })?;
        let now = Instant::now();
        let endpoints: Vec<Endpoint> = opts
            .endpoints
            .iter()
            .map(|u| Endpoint {
                url: u.trim_end_matches('/').to_owned(),
                next_try: now,
                backoff: BACKOFF_MIN,
                error: None,
            })
            .collect();
        let urls: Vec<&str> = endpoints.iter().map(|e| e.url.as_str()).collect();
        let found = recover(&dir, &urls)?;
        let next_seq = found.batches.last().map_or(0, |b| b.seq + 1);
        let spool_bytes = found.batches.iter().map(|b| b.file_bytes).sum();
        let table = format!("{}.{}", quote(&opts.database), quote(&opts.table));
        let insert = format!(
            "INSERT INTO {table} ({}) FORMAT RowBinary",
            COLUMNS.join(", ")
        );
        let timeout = Duration::from_millis(opts.timeout_ms.max(1000));
        let (done_tx, done) = mpsc::channel();
        let mut senders = Vec::new();
        for k in 0..opts.senders as usize {
            let (tx, jobs) = mpsc::channel();
            let (agent, done_tx) = (agent(timeout), done_tx.clone());
            std::thread::Builder::new()
                .name(format!("clickhouse-send-{k}"))
                .spawn(move || sender(k, &agent, &jobs, &done_tx))
                .map_err(|e| format!("clickhouse sink: cannot start a sender thread: {e}"))?;
            senders.push(tx);
        }
        Ok(ClickhouseSink {
            endpoints,
            mode: opts.mode,
            last_good: 0,
            table,
            insert,
            dir,
            salt: salt(host, &opts.spool_dir),
            next_seq,
            batch_records: u64::from(opts.batch_records),
            batch_age: Duration::from_millis(opts.batch_ms),
            max_spool_bytes: opts.max_spool_bytes,
            building: None,
            spooled: found.batches.into(),
            landed_ahead: Vec::new(),
            spool_bytes,
            agent: agent(timeout),
            idle: (0..senders.len()).rev().collect(),
            senders,
            done,
            stalled: None,
            notice: found.notice,
            text: String::new(),
        })
    }

    /// Batches waiting in the spool, and their records.
    pub fn spooled(&self) -> (usize, u64) {
        (
            self.spooled.len(),
            self.spooled.iter().map(|b| b.rows).sum(),
        )
    }

    fn path(&self, seq: u64, ext: &str) -> PathBuf {
        self.dir.join(file_name(seq, ext))
    }

    /// Starts a new batch for rows of UTC day `day`.
    fn start_batch(&mut self, day: u64) -> Building {
        let seq = self.next_seq;
        self.next_seq += 1;
        Building {
            seq,
            batch_id: self.salt.wrapping_add(seq),
            day,
            rows: 0,
            body: Vec::with_capacity((self.batch_records.min(100_000) * 160) as usize),
            since: Instant::now(),
            window_min: u64::MAX,
            window_max: 0,
        }
    }

    /// Writes the batch being built to the spool.
    fn seal(&mut self) -> Result<(), String> {
        let Some(b) = self.building.take() else {
            return Ok(());
        };
        if b.rows == 0 {
            return Ok(());
        }
        let header = header_line(&b);
        let path = self.path(b.seq, BATCH_EXT);
        let tmp = self
            .dir
            .join(format!(".{}.tmp", file_name(b.seq, BATCH_EXT)));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(header.as_bytes())?;
            f.write_all(&b.body)?;
            f.sync_data()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // The rename itself lasts once the folder is synced.
            File::open(&self.dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(format!(
                "cannot write {}: {e}; {} records of batch {} lost; free space in spool_dir or fix its permissions",
                path.display(),
                b.rows,
                b.seq
            ));
        }
        let file_bytes = (header.len() + b.body.len()) as u64;
        self.spool_bytes += file_bytes;
        self.spooled.push_back(Spooled {
            seq: b.seq,
            batch_id: b.batch_id,
            rows: b.rows,
            header_len: header.len(),
            file_bytes,
            window_min: b.window_min,
            window_max: b.window_max,
            maybe: Vec::new(),
            in_flight: false,
        });
        Ok(())
    }

    /// Sends spooled batches, oldest first, on up to `senders` connections,
    /// until `until` or `enough`. Batches start in sequence order, and none
    /// starts while an older one must wait (for an endpoint's backoff or
    /// its check); INSERTs in flight when it returns are collected by the
    /// next call.
    fn pump(&mut self, until: Instant, enough: Until) {
        loop {
            while let Ok(d) = self.done.try_recv() {
                self.finish(d);
            }
            self.dispatch();
            let busy = self.spooled.iter().filter(|b| b.in_flight).count();
            let queued = self.spooled.len() - busy;
            let now = Instant::now();
            let done = match enough {
                Until::Backlog(k) => queued <= k,
                Until::Drained => false,
            };
            if busy == 0 || done || now >= until {
                return;
            }
            match self.done.recv_timeout(until - now) {
                Ok(d) => self.finish(d),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Waits for every INSERT in flight to end (each is bounded by
    /// `timeout_ms`), so that its `.maybe` marker tells the truth.
    fn settle(&mut self) {
        while self.spooled.iter().any(|b| b.in_flight) {
            match self.done.recv() {
                Ok(d) => self.finish(d),
                Err(_) => return,
            }
        }
    }

    /// Hands the oldest batches not in flight to idle senders, in sequence
    /// order, up to the first that must wait (its reason is kept in
    /// `stalled`). Only the `senders` oldest batches since the oldest one
    /// left in the spool may be in flight, those that have landed since
    /// included: batch `n + senders` starts only once batch `n` is in, so a
    /// slow batch is never overtaken by more than `senders - 1` younger
    /// ones, however quickly those land.
    fn dispatch(&mut self) {
        let mut k = 0;
        while k < self.spooled.len() && !self.idle.is_empty() {
            let seq = self.spooled[k].seq;
            let place = k + self.landed_ahead.iter().filter(|&&s| s < seq).count();
            if place >= self.senders.len() {
                break;
            }
            if self.spooled[k].in_flight {
                k += 1;
                continue;
            }
            let b = self.spooled[k].clone();
            match self.step(&b) {
                Step::Done => {
                    self.drop_batch(k);
                    self.stalled = None;
                }
                Step::Wait(why) => {
                    self.stalled = Some(why);
                    return;
                }
                Step::Send(i) => {
                    self.set_maybe(b.seq, &[i]);
                    let job = Job {
                        seq: b.seq,
                        endpoint: i,
                        url: format!("{}/", self.endpoints[i].url),
                        insert: self.insert.clone(),
                        query_id: query_id(b.batch_id),
                        rows: b.rows,
                        path: self.path(b.seq, BATCH_EXT),
                        header_len: b.header_len,
                    };
                    let Some(w) = self.idle.pop() else { return };
                    if self.senders[w].send(job).is_err() {
                        // A sender that died (it cannot, short of a panic).
                        self.stalled = Some("a sender thread is gone".into());
                        return;
                    }
                    self.spooled[k].in_flight = true;
                    k += 1;
                }
            }
        }
        if self.spooled.is_empty() {
            self.stalled = None;
        }
    }

    /// Takes a sender's answer.
    fn finish(&mut self, d: Done) {
        self.idle.push(d.sender);
        let Some(k) = self.spooled.iter().position(|b| b.seq == d.seq) else {
            return;
        };
        self.spooled[k].in_flight = false;
        let i = d.endpoint;
        match d.result {
            Ok(()) => {
                self.succeeded(i);
                self.last_good = i;
                self.drop_batch(k);
                self.stalled = None;
            }
            Err(Fail::Certain(why)) => {
                self.set_maybe(d.seq, &[]);
                self.failed(i, why);
                let b = self.spooled[k].clone();
                self.stalled = Some(self.waiting_on(i, &b, false));
            }
            Err(Fail::Uncertain(why)) => {
                self.failed(i, why);
                let b = self.spooled[k].clone();
                self.stalled = Some(self.waiting_on(i, &b, true));
            }
        }
        if self.spooled.is_empty() {
            self.stalled = None;
        }
    }

    /// Removes delivered batch `spooled[k]` and its files.
    fn drop_batch(&mut self, k: usize) {
        if let Some(b) = self.spooled.remove(k) {
            self.spool_bytes -= b.file_bytes;
            let _ = fs::remove_file(self.path(b.seq, BATCH_EXT));
            let _ = fs::remove_file(self.path(b.seq, MAYBE_EXT));
            if k > 0 {
                self.landed_ahead.push(b.seq);
            }
        }
        // Only batches younger than the oldest one left keep a place.
        let oldest = self.spooled.front().map(|b| b.seq);
        self.landed_ahead.retain(|&s| oldest.is_some_and(|o| s > o));
    }

    /// What to do with batch `b`, not in flight.
    fn step(&mut self, b: &Spooled) -> Step {
        // An earlier attempt may have landed: ask where it went first.
        let mut maybe = b.maybe.clone();
        while let Some(&i) = maybe.first() {
            if !self.due(i) {
                return Step::Wait(self.waiting_on(i, b, true));
            }
            match self.check(i, b) {
                Ok(Some(n)) => {
                    if n != b.rows {
                        self.notice = Some(format!(
                            "{}: batch {} (batch_id {}) holds {n} rows, not {}; check the table's partition key (one UTC day of window_start per INSERT)",
                            self.endpoints[i].url, b.seq, b.batch_id, b.rows
                        ));
                    }
                    self.succeeded(i);
                    return Step::Done;
                }
                Ok(None) => {
                    self.succeeded(i);
                    maybe.remove(0);
                    self.set_maybe(b.seq, &maybe);
                }
                Err(why) => {
                    self.failed(i, why);
                    return Step::Wait(self.waiting_on(i, b, true));
                }
            }
        }
        let n = self.endpoints.len();
        let first = match self.mode {
            ClickhouseMode::Shards => (b.seq % n as u64) as usize,
            ClickhouseMode::Replicas => self.last_good,
        };
        // A certain failure made its endpoint wait: the next one due takes
        // the batch.
        match (0..n).map(|k| (first + k) % n).find(|&i| self.due(i)) {
            Some(i) => Step::Send(i),
            None => {
                let i = (0..n)
                    .map(|k| (first + k) % n)
                    .min_by_key(|&i| self.endpoints[i].next_try)
                    .unwrap_or(first);
                Step::Wait(self.waiting_on(i, b, false))
            }
        }
    }

    fn due(&self, i: usize) -> bool {
        Instant::now() >= self.endpoints[i].next_try
    }

    fn succeeded(&mut self, i: usize) {
        let e = &mut self.endpoints[i];
        e.error = None;
        e.backoff = BACKOFF_MIN;
        e.next_try = Instant::now();
    }

    fn failed(&mut self, i: usize, why: String) {
        let e = &mut self.endpoints[i];
        e.error = Some(why);
        e.next_try = Instant::now() + e.backoff;
        e.backoff = (e.backoff * 2).min(BACKOFF_MAX);
    }

    /// The reason the head batch waits, naming endpoint `i`.
    fn waiting_on(&self, i: usize, b: &Spooled, pinned: bool) -> String {
        let e = &self.endpoints[i];
        let mut s = format!(
            "{}: {}",
            e.url,
            e.error.as_deref().unwrap_or("waiting to retry")
        );
        if pinned {
            let _ = write!(
                s,
                "; batch {} may have reached it, so it waits for its answer before sending again",
                b.seq
            );
        }
        s
    }

    /// Records that batch `seq` may be at endpoints `at` (before a send), or
    /// nowhere (empty).
    fn set_maybe(&mut self, seq: u64, at: &[usize]) {
        let path = self.path(seq, MAYBE_EXT);
        if at.is_empty() {
            let _ = fs::remove_file(&path);
        } else {
            let mut text = String::new();
            for &i in at {
                text.push_str(&self.endpoints[i].url);
                text.push('\n');
            }
            // Without fsync: it guards against a process that dies, not
            // against a machine that loses power.
            let _ = fs::write(&path, text);
        }
        if let Some(s) = self.spooled.iter_mut().find(|s| s.seq == seq) {
            s.maybe = at.to_vec();
        }
    }

    /// Asks endpoint `i` whether it holds batch `b`: `Some(rows)` if it
    /// does, `None` if not. An INSERT of it that still runs is an error (ask
    /// again later).
    fn check(&mut self, i: usize, b: &Spooled) -> Result<Option<u64>, String> {
        let q = format!(
            "SELECT (SELECT count() FROM system.processes WHERE query_id = '{}'), \
             (SELECT count() FROM {} WHERE window_start >= toDateTime({}) AND window_start <= toDateTime({}) AND batch_id = {}) \
             FORMAT TabSeparated",
            query_id(b.batch_id),
            self.table,
            b.window_min,
            b.window_max,
            b.batch_id
        );
        let url = format!("{}/", self.endpoints[i].url);
        let resp = self
            .agent
            .post(&url)
            .send(q.as_bytes())
            .map_err(|e| classify(&e).text().to_owned())?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        if status != 200 {
            return Err(server_error(status, &text));
        }
        let mut it = text.trim().split('\t').map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(0)), Some(Ok(0))) => Ok(None),
            (Some(Ok(0)), Some(Ok(n))) => Ok(Some(n)),
            (Some(Ok(_)), Some(Ok(_))) => Err(format!(
                "the INSERT of batch {} still runs (query_id {}); asking again later",
                b.seq,
                query_id(b.batch_id)
            )),
            _ => Err(format!("unexpected answer {text:?} to the batch check")),
        }
    }

    /// The sink's health after a step: the head batch's reason, and what
    /// waits.
    fn health(&mut self) -> Result<(), String> {
        let notice = self.notice.take();
        match (&self.stalled, notice) {
            (None, None) => Ok(()),
            (None, Some(n)) => Err(n),
            (Some(why), _) => {
                let (n, rows) = self.spooled();
                Err(format!(
                    "{why}; {n} batches ({rows} records) wait in the spool {}",
                    self.dir.display()
                ))
            }
        }
    }

    /// Encodes `w`'s records into batches, sealing as they fill.
    fn take(&mut self, w: &Window) -> Result<(), String> {
        for r in &w.records {
            let day = r.window_start / DAY;
            let fits = self
                .building
                .as_ref()
                .is_some_and(|b| b.day == day && b.rows < self.batch_records);
            if !fits {
                self.seal_and_send()?;
                let b = self.start_batch(day);
                self.building = Some(b);
            }
            let Some(b) = self.building.as_mut() else {
                continue;
            };
            encode_row(r, b.batch_id, &mut b.body, &mut self.text);
            b.rows += 1;
            b.window_min = b.window_min.min(r.window_start);
            b.window_max = b.window_max.max(r.window_start);
            if b.rows >= self.batch_records {
                self.seal_and_send()?;
            }
        }
        Ok(())
    }

    /// Seals the batch being built and hands it to an idle sender, if any,
    /// without waiting: the senders send while the next batch is encoded.
    fn seal_and_send(&mut self) -> Result<(), String> {
        self.seal()?;
        self.pump(Instant::now(), Until::Drained);
        Ok(())
    }
}

impl Deliver for ClickhouseSink {
    fn deliver(&mut self, w: &Window) -> Result<(), String> {
        let building = self.building.as_ref().map_or(0, |b| b.body.len() as u64);
        if self.spool_bytes + building >= self.max_spool_bytes {
            let (n, rows) = self.spooled();
            let why = self.stalled.clone().unwrap_or_default();
            return Err(format!(
                "the spool {} is full ({n} batches, {rows} records, {} bytes; max_spool_bytes {}): {why}; bring ClickHouse back or raise max_spool_bytes",
                self.dir.display(),
                self.spool_bytes,
                self.max_spool_bytes
            ));
        }
        if let Some(r) = w.records.iter().find(|r| {
            r.window_start > u64::from(u32::MAX)
                || r.start > u64::from(u32::MAX)
                || r.end > u64::from(u32::MAX)
        }) {
            return Err(format!(
                "record times past 2106 ({} / {} / {}) do not fit ClickHouse's DateTime",
                r.window_start, r.start, r.end
            ));
        }
        self.take(w)?;
        // Back-pressure: wait while more batches queue than the senders
        // take next.
        let backlog = self.senders.len();
        self.pump(Instant::now() + PUMP_BUDGET, Until::Backlog(backlog));
        Ok(())
    }

    fn tick(&mut self) -> Result<(), String> {
        let old = self
            .building
            .as_ref()
            .is_some_and(|b| b.since.elapsed() >= self.batch_age);
        if old {
            self.seal()?;
        }
        self.pump(Instant::now() + PUMP_BUDGET, Until::Drained);
        self.health()
    }

    fn close(&mut self, deadline: Instant) -> Result<(), String> {
        let sealed = self.seal();
        loop {
            self.pump(deadline, Until::Drained);
            let now = Instant::now();
            if self.spooled.is_empty() || now >= deadline {
                break;
            }
            // Sleep until an endpoint is due (or the deadline).
            let next = self
                .endpoints
                .iter()
                .map(|e| e.next_try)
                .min()
                .unwrap_or(now)
                .clamp(now + Duration::from_millis(10), deadline);
            std::thread::sleep(next - now);
        }
        self.settle();
        sealed?;
        if self.spooled.is_empty() {
            return self.health();
        }
        let (n, rows) = self.spooled();
        Err(format!(
            "{}; {n} batches ({rows} records) stay in the spool {}, and the next start sends them",
            self.stalled.as_deref().unwrap_or("out of time"),
            self.dir.display()
        ))
    }
}

// ---------------------------------------------------------------------------
// Senders

/// An HTTP client with the sink's limits.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(timeout))
        // ClickHouse closes idle connections after 3 s (keep_alive_timeout).
        .max_idle_age(Duration::from_secs(2))
        .build()
        .into()
}

/// A sender thread: sends the INSERTs it is given, one at a time, on its
/// own connection, and answers each. It only reads the spool; the sink
/// removes files. Ends when the sink is dropped.
fn sender(me: usize, agent: &ureq::Agent, jobs: &Receiver<Job>, done: &Sender<Done>) {
    let mut buf = Vec::new();
    while let Ok(job) = jobs.recv() {
        let result = send_insert(agent, &job, &mut buf);
        // Do not hold a large batch's bytes while idle.
        if buf.capacity() > 64 << 20 {
            buf = Vec::new();
        }
        let answer = Done {
            sender: me,
            seq: job.seq,
            endpoint: job.endpoint,
            result,
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

/// Sends one batch's INSERT.
fn send_insert(agent: &ureq::Agent, job: &Job, buf: &mut Vec<u8>) -> Result<(), Fail> {
    buf.clear();
    let read = File::open(&job.path).and_then(|mut f| f.read_to_end(buf));
    if let Err(e) = read {
        return Err(Fail::Certain(format!(
            "cannot read {}: {e}; was the spool changed by hand?",
            job.path.display()
        )));
    }
    let body = buf.get(job.header_len..).unwrap_or_default();
    let answer = agent
        .post(&job.url)
        .query("query", &job.insert)
        .query("query_id", &job.query_id)
        // One block, so one part: all or nothing.
        .query("max_insert_block_size", (job.rows + 1).to_string())
        .send(body);
    match answer {
        Err(e) => Err(classify(&e)),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.into_body().read_to_string().unwrap_or_default();
            if status == 200 {
                if text.contains("DB::Exception") {
                    Err(Fail::Uncertain(server_error(status, &text)))
                } else {
                    Ok(())
                }
            } else {
                Err(Fail::Certain(server_error(status, &text)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Rows

/// Appends record `r` as one `RowBinary` row of [`COLUMNS`].
pub fn encode_row(r: &Record, batch_id: u64, out: &mut Vec<u8>, text: &mut String) {
    string(out, r.flow_log_id.as_bytes());
    out.extend_from_slice(&(r.window_start as u32).to_le_bytes());
    out.extend_from_slice(&r.version.to_le_bytes());
    string(out, r.account_id.as_bytes());
    string(out, r.vpc_id.as_bytes());
    string(out, r.vswitch_id.as_bytes());
    match &r.vm_id {
        Some(v) => {
            out.push(0);
            string(out, v.as_bytes());
        }
        None => out.push(1),
    }
    string(out, r.eni_id.as_bytes());
    addr(out, r.srcaddr, text);
    addr(out, r.dstaddr, text);
    nullable(out, r.srcport.map(u16::to_le_bytes));
    nullable(out, r.dstport.map(u16::to_le_bytes));
    nullable(out, r.protocol.map(|p| [p]));
    nullable(
        out,
        r.direction.map(|d| match d {
            Direction::In => [1u8],
            Direction::Out => [2u8],
        }),
    );
    out.extend_from_slice(&r.packets.to_le_bytes());
    out.extend_from_slice(&r.bytes.to_le_bytes());
    out.extend_from_slice(&(r.start as u32).to_le_bytes());
    out.extend_from_slice(&(r.end as u32).to_le_bytes());
    out.push(r.tcp_flags);
    out.push(match r.log_status {
        LogStatus::Ok => 1,
        LogStatus::NoData => 2,
        LogStatus::SkipData => 3,
    });
    nullable(
        out,
        r.action.map(|a| match a {
            Action::Accept => [1u8],
            Action::Reject => [2u8],
        }),
    );
    out.extend_from_slice(&batch_id.to_le_bytes());
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(s);
}

fn nullable<const N: usize>(out: &mut Vec<u8>, v: Option<[u8; N]>) {
    match v {
        Some(b) => {
            out.push(0);
            out.extend_from_slice(&b);
        }
        None => out.push(1),
    }
}

/// An address as RECORDS.md writes it (IPv4 dotted quad, IPv6 RFC 5952).
fn addr(out: &mut Vec<u8>, a: Option<IpAddr>, text: &mut String) {
    match a {
        None => out.push(1),
        Some(IpAddr::V4(v4)) => {
            out.push(0);
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (k, o) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    buf[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    buf[n] = b'0' + (o / 10) % 10;
                    n += 1;
                }
                buf[n] = b'0' + o % 10;
                n += 1;
            }
            string(out, &buf[..n]);
        }
        Some(v6) => {
            out.push(0);
            text.clear();
            let _ = write!(text, "{v6}");
            string(out, text.as_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// The spool

/// `<seq>.<ext>`, the sequence number zero-padded to 20 digits so that names
/// sort as numbers do.
fn file_name(seq: u64, ext: &str) -> String {
    format!("{seq:020}.{ext}")
}

/// The sequence number of a spool file name with extension `ext`.
fn seq_of(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The first line of a spool file.
fn header_line(b: &Building) -> String {
    format!(
        "{MAGIC} {SPOOL_VERSION} batch_id={} rows={} body_bytes={} window_min={} window_max={} columns={}\n",
        b.batch_id,
        b.rows,
        b.body.len(),
        b.window_min,
        b.window_max,
        COLUMNS.join(",")
    )
}

/// Reads a header line back: `(batch_id, rows, body_bytes, window_min,
/// window_max)`.
fn parse_header(line: &str) -> Result<(u64, u64, u64, u64, u64), String> {
    let mut words = line.split(' ');
    if words.next() != Some(MAGIC) {
        return Err("not a spool file of this sink".into());
    }
    if words.next() != Some(&SPOOL_VERSION.to_string()) {
        return Err(format!(
            "spool format other than {SPOOL_VERSION}; send it with the flowlogd that wrote it"
        ));
    }
    let mut get = |key: &str| -> Result<String, String> {
        let w = words.next().ok_or_else(|| format!("no {key}"))?;
        w.strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .map(str::to_owned)
            .ok_or_else(|| format!("{w:?} where {key}= belongs"))
    };
    let num = |v: String, key: &str| v.parse::<u64>().map_err(|_| format!("bad {key} {v:?}"));
    let batch_id = num(get("batch_id")?, "batch_id")?;
    let rows = num(get("rows")?, "rows")?;
    let body = num(get("body_bytes")?, "body_bytes")?;
    let wmin = num(get("window_min")?, "window_min")?;
    let wmax = num(get("window_max")?, "window_max")?;
    if get("columns")? != COLUMNS.join(",") {
        return Err("its columns differ from this version's".into());
    }
    Ok((batch_id, rows, body, wmin, wmax))
}

/// What [`recover`] found.
#[derive(Debug)]
struct Recovered {
    /// Batches in sequence order.
    batches: Vec<Spooled>,
    /// Files set aside, if any.
    notice: Option<String>,
}

/// Scans the spool: removes temporary files and stray `.maybe` files, reads
/// every batch's header (a file that does not read back is renamed `.bad`
/// and named in the notice) and its `.maybe` endpoints among `urls`.
fn recover(dir: &Path, urls: &[&str]) -> Result<Recovered, String> {
    let list = fs::read_dir(dir).map_err(|e| {
        format!(
            "clickhouse sink: cannot read spool_dir {}: {e}",
            dir.display()
        )
    })?;
    let mut batches = Vec::new();
    let mut maybes = Vec::new();
    for entry in list.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        } else if let Some(seq) = seq_of(&name, BATCH_EXT) {
            batches.push((seq, entry.path()));
        } else if let Some(seq) = seq_of(&name, MAYBE_EXT) {
            maybes.push((seq, entry.path()));
        }
    }
    batches.sort();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (seq, path) in batches {
        match read_batch(seq, &path) {
            Ok(b) => out.push(b),
            Err(e) => {
                let _ = fs::rename(&path, path.with_extension(format!("{BATCH_EXT}.bad")));
                bad.push(format!("{}: {e}", path.display()));
            }
        }
    }
    for (seq, path) in maybes {
        match out.iter_mut().find(|b| b.seq == seq) {
            Some(b) => {
                let text = fs::read_to_string(&path).unwrap_or_default();
                b.maybe = text
                    .lines()
                    .filter_map(|l| urls.iter().position(|u| *u == l.trim_end_matches('/')))
                    .collect();
            }
            None => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let notice = (!bad.is_empty()).then(|| {
        format!(
            "spool files set aside as .bad (not sent): {}",
            bad.join("; ")
        )
    });
    Ok(Recovered {
        batches: out,
        notice,
    })
}

/// Reads a spool file's header and checks its length.
fn read_batch(seq: u64, path: &Path) -> Result<Spooled, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let file_bytes = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = vec![0u8; MAX_HEADER.min(file_bytes as usize)];
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    let end = head
        .iter()
        .position(|&c| c == b'\n')
        .ok_or("no header line")?;
    let line = std::str::from_utf8(&head[..end]).map_err(|_| "header is not text")?;
    let (batch_id, rows, body, window_min, window_max) = parse_header(line)?;
    let header_len = end + 1;
    if header_len as u64 + body != file_bytes {
        return Err(format!(
            "{file_bytes} bytes, the header says {}",
            header_len as u64 + body
        ));
    }
    Ok(Spooled {
        seq,
        batch_id,
        rows,
        header_len,
        file_bytes,
        window_min,
        window_max,
        maybe: Vec::new(),
        in_flight: false,
    })
}

// ---------------------------------------------------------------------------
// Small helpers

/// A name quoted for ClickHouse SQL.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// The INSERT's `query_id` for batch `batch_id`.
fn query_id(batch_id: u64) -> String {
    format!("flowlogd-batch-{batch_id:016x}")
}

/// A random 64-bit salt: std's per-process random hash keys over the host,
/// the spool, the time and the process id.
fn salt(host: &str, dir: &Path) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(host.as_bytes());
    h.write(dir.as_os_str().as_encoded_bytes());
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(t.as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether a failed request may have had an effect.
fn classify(e: &ureq::Error) -> Fail {
    let text = match e {
        ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        other => other.to_string(),
    };
    let certain = match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotFound
        ),
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
        ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::BadUri(_)
        | ureq::Error::Http(_) => true,
        _ => false,
    };
    if certain {
        Fail::Certain(text)
    } else {
        Fail::Uncertain(text)
    }
}

/// ClickHouse's answer to a failed request, shortened, with the fix where
/// it is known.
fn server_error(status: u16, text: &str) -> String {
    let mut t: String = text.trim().chars().take(400).collect();
    if t.contains("Code: 60,") || t.contains("Code: 81,") {
        t.push_str(" (create the table with scripts/clickhouse/records.sql)");
    } else if t.contains("Code: 16,") || t.contains("Code: 53,") {
        t.push_str(" (the table's columns differ from scripts/clickhouse/records.sql)");
    }
    format!("HTTP {status}: {t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> config::ClickhouseSink {
        serde_json::from_value(serde_json::json!({
            "endpoints": ["http://127.0.0.1:9"],
            "database": "flowlogs",
            "table": "records",
            "spool_dir": dir,
            "batch_records": 3,
        }))
        .unwrap()
    }

    fn record(i: u64, window_start: u64) -> Record {
        Record {
            version: 1,
            account_id: "1234".into(),
            vpc_id: "vpc-1".into(),
            vswitch_id: "vsw-1".into(),
            vm_id: i.is_multiple_of(2).then(|| "i-1".into()),
            eni_id: format!("eni-{i}"),
            srcaddr: Some(if i.is_multiple_of(3) {
                "fd00::1".parse().unwrap()
            } else {
                "10.0.0.1".parse().unwrap()
            }),
            dstaddr: Some("192.168.100.254".parse().unwrap()),
            srcport: Some(1000),
            dstport: Some(80),
            protocol: Some(6),
            direction: Some(Direction::Out),
            packets: i,
            bytes: 60 * i,
            start: window_start + 1,
            end: window_start + 2,
            tcp_flags: 2,
            log_status: LogStatus::Ok,
            action: Some(Action::Accept),
            flow_log_id: "fl-1".into(),
            window_start,
        }
    }

    fn window(start: u64, n: u64) -> Window {
        Window {
            flow_log_id: "fl-1".into(),
            start,
            interval: 60,
            records: (0..n).map(|i| record(i, start)).collect(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn names_sort_as_numbers_and_read_back() {
        assert_eq!(file_name(7, BATCH_EXT), "00000000000000000007.rowbinary");
        assert_eq!(seq_of("00000000000000000007.rowbinary", BATCH_EXT), Some(7));
        assert_eq!(seq_of("00000000000000000007.maybe", MAYBE_EXT), Some(7));
        assert_eq!(seq_of("7.rowbinary", BATCH_EXT), None);
        assert_eq!(
            seq_of(".00000000000000000007.rowbinary.tmp", BATCH_EXT),
            None
        );
        assert!(file_name(10, BATCH_EXT) > file_name(9, BATCH_EXT));
        assert_eq!(
            seq_of(&file_name(u64::MAX, BATCH_EXT), BATCH_EXT),
            Some(u64::MAX)
        );
    }

    #[test]
    fn rows_encode_as_rowbinary() {
        let mut r = record(0, 1_700_000_000);
        r.srcaddr = Some("10.1.22.255".parse().unwrap());
        r.dstaddr = None;
        let (mut out, mut text) = (Vec::new(), String::new());
        encode_row(&r, 0x0102, &mut out, &mut text);
        // flow_log_id: length 4, "fl-1"
        assert_eq!(&out[..5], b"\x04fl-1");
        // window_start, UInt32 LE
        assert_eq!(&out[5..9], &1_700_000_000u32.to_le_bytes());
        // version, UInt32
        assert_eq!(&out[9..13], &[1, 0, 0, 0]);
        // …srcaddr: not null, then the dotted quad; dstaddr: null
        let s = b"\x00\x0b10.1.22.255\x01";
        assert!(out.windows(s.len()).any(|w| w == s));
        // batch_id last, UInt64 LE
        assert_eq!(&out[out.len() - 8..], &0x0102u64.to_le_bytes());
        // A 200-byte string has a two-byte length.
        let mut v = Vec::new();
        string(&mut v, &[b'x'; 200]);
        assert_eq!(&v[..2], &[0xc8, 0x01]);
    }

    #[test]
    fn batches_seal_by_size_and_day_and_survive_a_restart_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let o = opts(&dir);
        let mut s = ClickhouseSink::open(&o, "hv-1").unwrap();
        // Nothing listens on port 9: every batch stays.
        s.deliver(&window(0, 7)).unwrap();
        // 7 records, 3 per batch: two sealed, one building.
        assert_eq!(s.spooled(), (2, 6));
        // A window of the next day seals the building batch first.
        s.deliver(&window(DAY, 2)).unwrap();
        assert_eq!(s.spooled(), (3, 7));
        let err = s
            .close(Instant::now() + Duration::from_millis(300))
            .unwrap_err();
        assert!(
            err.contains("http://127.0.0.1:9: connection refused"),
            "{err}"
        );
        assert!(
            err.contains("4 batches (9 records) stay in the spool"),
            "{err}"
        );
        let ids: Vec<u64> = s.spooled.iter().map(|b| b.batch_id).collect();
        drop(s);
        // A half-written file and a stray marker are cleaned up.
        fs::write(dir.join(".00000000000000000009.rowbinary.tmp"), b"x").unwrap();
        fs::write(dir.join("00000000000000000042.maybe"), b"x").unwrap();
        let s = ClickhouseSink::open(&o, "hv-1").unwrap();
        assert_eq!(s.spooled(), (4, 9));
        assert_eq!(
            s.spooled.iter().map(|b| b.batch_id).collect::<Vec<_>>(),
            ids
        );
        assert_eq!(
            s.spooled.iter().map(|b| b.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(s.next_seq, 4);
        // Each batch was attempted at the one endpoint, and failed for sure.
        assert!(s.spooled.iter().all(|b| b.maybe.is_empty()));
        assert_eq!(s.spooled[2].window_min, 0);
        assert_eq!(s.spooled[3].window_min, DAY);
        let left = names(&dir);
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().all(|n| n.ends_with(".rowbinary")), "{left:?}");
        // A new process draws a new salt: batch ids stay unique.
        assert_ne!(s.salt.wrapping_add(4), ids[0]);
    }

    #[test]
    fn a_damaged_file_is_set_aside_and_a_maybe_marker_is_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let o = opts(&dir);
        let mut s = ClickhouseSink::open(&o, "hv-1").unwrap();
        s.deliver(&window(60, 6)).unwrap();
        drop(s);
        // Cut the second batch short; mark the first as maybe sent.
        let second = dir.join(file_name(1, BATCH_EXT));
        let len = fs::metadata(&second).unwrap().len();
        File::options()
            .write(true)
            .open(&second)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        fs::write(
            dir.join(file_name(0, MAYBE_EXT)),
            "http://127.0.0.1:9\nhttp://gone:8123\n",
        )
        .unwrap();
        let mut s = ClickhouseSink::open(&o, "hv-1").unwrap();
        assert_eq!(s.spooled(), (1, 3));
        assert_eq!(s.spooled[0].maybe, vec![0]);
        assert!(dir.join("00000000000000000001.rowbinary.bad").exists());
        let h = s.health().unwrap_err();
        assert!(
            h.contains("set aside") && h.contains("00000000000000000001.rowbinary"),
            "{h}"
        );
        // The uncertain batch waits for its endpoint's answer.
        let err = s.tick().unwrap_err();
        assert!(err.contains("may have reached it"), "{err}");
    }

    #[test]
    fn a_full_spool_refuses_windows() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut o = opts(&dir);
        o.max_spool_bytes = 1000;
        let mut s = ClickhouseSink::open(&o, "hv-1").unwrap();
        s.deliver(&window(0, 30)).unwrap();
        let err = s.deliver(&window(60, 1)).unwrap_err();
        assert!(
            err.contains("is full") && err.contains("max_spool_bytes"),
            "{err}"
        );
    }

    #[test]
    fn options_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = opts(tmp.path());
        o.batch_records = 2_000_000;
        assert!(ClickhouseSink::open(&o, "h")
            .unwrap_err()
            .contains("batch_records"));
        let mut o = opts(tmp.path());
        o.endpoints = vec!["https://x:8443".into()];
        assert!(ClickhouseSink::open(&o, "h")
            .unwrap_err()
            .contains("http://"));
    }
}
