//! Inserts into ClickHouse over its HTTP interface, with an on-disk spool.

use super::{Deliver, Window};
use crate::config;
use std::time::Instant;

/// A ClickHouse table behind one or more endpoints.
#[derive(Debug)]
pub struct ClickhouseSink {}

impl ClickhouseSink {
    /// Opens the spool and the endpoints of `opts`.
    pub fn open(opts: &config::ClickhouseSink, _host: &str) -> Result<Self, String> {
        Err(format!(
            "clickhouse sink {}: not available in this build",
            opts.table
        ))
    }
}

impl Deliver for ClickhouseSink {
    fn deliver(&mut self, _w: &Window) -> Result<(), String> {
        Err("clickhouse: not available".into())
    }
    fn tick(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn close(&mut self, _deadline: Instant) -> Result<(), String> {
        Ok(())
    }
}
