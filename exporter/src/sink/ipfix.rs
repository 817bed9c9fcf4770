//! IPFIX (RFC 7011) export over UDP or TCP.

use super::{Deliver, Window};
use crate::config;
use std::time::Instant;

/// An IPFIX exporter to one collector.
#[derive(Debug)]
pub struct IpfixSink {}

impl IpfixSink {
    /// Connects (TCP) or binds (UDP) to the collector of `opts`.
    pub fn open(opts: &config::IpfixSink, _host: &str) -> Result<Self, String> {
        Err(format!(
            "ipfix sink to {}: not available in this build",
            opts.address
        ))
    }
}

impl Deliver for IpfixSink {
    fn deliver(&mut self, _w: &Window) -> Result<(), String> {
        Err("ipfix: not available".into())
    }
    fn tick(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn close(&mut self, _deadline: Instant) -> Result<(), String> {
        Ok(())
    }
}
