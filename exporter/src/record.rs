//! One flow-log record, exactly as RECORDS.md spells it.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Record format version (RECORDS.md: `1`).
pub const VERSION: u32 = 1;

/// `in` (delivered to the ENI) or `out` (sent by the ENI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// Delivered to the ENI.
    #[serde(rename = "in")]
    In,
    /// Sent by the ENI.
    #[serde(rename = "out")]
    Out,
}

impl Direction {
    /// The record spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// The security-group / network-ACL verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Let through.
    #[serde(rename = "ACCEPT")]
    Accept,
    /// Dropped.
    #[serde(rename = "REJECT")]
    Reject,
}

impl Action {
    /// The record spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        }
    }
}

/// `OK`, `NODATA` or `SKIPDATA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogStatus {
    /// An aggregated record.
    #[serde(rename = "OK")]
    Ok,
    /// The ENI had no logged packet in the window.
    #[serde(rename = "NODATA")]
    NoData,
    /// Some packets of the ENI could not be recorded; `packets`/`bytes` say how many.
    #[serde(rename = "SKIPDATA")]
    SkipData,
}

impl LogStatus {
    /// The record spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
}

/// One flow-log record. Field order is the order of RECORDS.md's table, which
/// is also the column order of the text form (which stops there); `flow-log-id` and
/// `window-start` follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`VERSION`].
    pub version: u32,
    /// Owner account of the ENI.
    #[serde(rename = "account-id")]
    pub account_id: String,
    /// VPC of the ENI.
    #[serde(rename = "vpc-id")]
    pub vpc_id: String,
    /// vSwitch of the ENI.
    #[serde(rename = "vswitch-id")]
    pub vswitch_id: String,
    /// Instance the ENI is attached to; `null` if detached.
    #[serde(rename = "vm-id")]
    pub vm_id: Option<String>,
    /// The ENI.
    #[serde(rename = "eni-id")]
    pub eni_id: String,
    /// Source address (RFC 5952 for IPv6); `null` for status records.
    pub srcaddr: Option<IpAddr>,
    /// Destination address; `null` for status records.
    pub dstaddr: Option<IpAddr>,
    /// Source port (RECORDS.md "Ports"); `null` for status records.
    pub srcport: Option<u16>,
    /// Destination port, or `type*256+code` for ICMP; `null` for status records.
    pub dstport: Option<u16>,
    /// IANA protocol number; `null` for status records.
    pub protocol: Option<u8>,
    /// `in` or `out`; `null` for status records.
    pub direction: Option<Direction>,
    /// Packets in this record (skipped packets for SKIPDATA).
    pub packets: u64,
    /// IP-level bytes (skipped bytes for SKIPDATA).
    pub bytes: u64,
    /// Unix seconds of the first packet (window start for status records).
    pub start: u64,
    /// Unix seconds of the last packet (window end - 1 for status records).
    pub end: u64,
    /// OR of the TCP flags; 0 if not TCP and for status records.
    #[serde(rename = "tcp-flags")]
    pub tcp_flags: u8,
    /// `OK`, `NODATA` or `SKIPDATA`.
    #[serde(rename = "log-status")]
    pub log_status: LogStatus,
    /// `ACCEPT` or `REJECT`; `null` for status records.
    pub action: Option<Action>,
    /// The flow log this record was delivered to.
    #[serde(rename = "flow-log-id")]
    pub flow_log_id: String,
    /// Unix seconds at which the record's window starts (extra key).
    #[serde(rename = "window-start")]
    pub window_start: u64,
}

impl Record {
    /// Appends the JSON Lines form (one object, then `\n`) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising plain data to a Vec cannot fail.
        serde_json::to_writer(&mut *out, self).expect("record serialises");
        out.push(b'\n');
    }

    /// Appends the text form: the values of RECORDS.md's table in its order,
    /// space-separated, `-` for null, then `\n` — exactly the 19 columns of
    /// the table (RECORDS.md, "Text form"). The flow log is in the file's
    /// name.
    pub fn write_text(&self, out: &mut String) {
        fn opt<T: std::fmt::Display>(out: &mut String, v: &Option<T>) {
            match v {
                Some(v) => {
                    let _ = write!(out, "{v} ");
                }
                None => out.push_str("- "),
            }
        }
        let _ = write!(
            out,
            "{} {} {} {} ",
            self.version, self.account_id, self.vpc_id, self.vswitch_id
        );
        opt(out, &self.vm_id);
        let _ = write!(out, "{} ", self.eni_id);
        opt(out, &self.srcaddr);
        opt(out, &self.dstaddr);
        opt(out, &self.srcport);
        opt(out, &self.dstport);
        opt(out, &self.protocol);
        opt(out, &self.direction.map(Direction::as_str));
        let _ = write!(
            out,
            "{} {} {} {} {} {} ",
            self.packets,
            self.bytes,
            self.start,
            self.end,
            self.tcp_flags,
            self.log_status.as_str()
        );
        match self.action {
            Some(a) => out.push_str(a.as_str()),
            None => out.push('-'),
        }
        out.push('\n');
    }
}
