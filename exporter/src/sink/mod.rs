//! Sinks beyond the local log store (CONFIG.md, "Sinks"): IPFIX collectors
//! and ClickHouse. Each declared sink that an active flow log names runs on
//! its own thread behind a bounded queue ([`SinkSet`]), so a sink that is
//! slow or down never stalls the exporter, the datapath or the other sinks;
//! what cannot be queued is counted per flow log and shown in its delivery
//! status.

pub mod clickhouse;
mod fanout;
pub mod ipfix;

pub use fanout::{DeliveryStatus, SinkSet, QUEUE_RECORDS};

use crate::config;
use crate::record::Record;
use std::time::Instant;

/// One closed window of one flow log, as the merger emits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The flow log (`flow_log_id`).
    pub flow_log_id: String,
    /// Window start, Unix seconds.
    pub start: u64,
    /// The flow log's aggregation interval, seconds.
    pub interval: u64,
    /// The window's records (OK, NODATA, SKIPDATA), in the order the local
    /// log store writes them.
    pub records: Vec<Record>,
}

/// A sink, driven by its own thread.
pub trait Deliver: Send {
    /// Takes one closed window. It may block (it runs on the sink's own
    /// thread), but should come back within about a second so the sink keeps
    /// ticking. `Ok` means the records are accepted: sent, batched or
    /// spooled. `Err(reason)` means this window's records are lost; they are
    /// counted against the flow log and the reason shown in its status.
    fn deliver(&mut self, w: &Window) -> Result<(), String>;

    /// Called at least every 100 ms, also when idle: flush batches by time,
    /// retry with backoff, refresh templates. Returns the sink's health: `Ok`
    /// when the last attempt succeeded (or nothing was due), `Err(reason)`
    /// while it fails (e.g. "127.0.0.1:8123: connection refused; 3 batches
    /// (12000 records) wait in the spool").
    fn tick(&mut self) -> Result<(), String>;

    /// Flushes what it holds, trying until `deadline`. What cannot be sent
    /// stays where a restart finds it (the spool); `Err` says what is left.
    fn close(&mut self, deadline: Instant) -> Result<(), String>;
}

/// Opens the sink a configuration declares. `host` is the configuration's
/// `host` (the hypervisor's name).
pub fn open(sink: &config::Sink, host: &str) -> Result<Box<dyn Deliver>, String> {
    match &sink.kind {
        config::SinkKind::Ipfix(o) => Ok(Box::new(ipfix::IpfixSink::open(o, host)?)),
        config::SinkKind::Clickhouse(o) => Ok(Box::new(clickhouse::ClickhouseSink::open(o, host)?)),
    }
}
