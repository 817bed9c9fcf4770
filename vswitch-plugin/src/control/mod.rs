//! The operator socket: newline-delimited JSON requests and replies over a
//! Unix domain socket (docs/control-protocol.md), and the [`Handler`] that
//! answers them (stats, flow-log lifecycle, ENI and rule changes).

pub mod proto;
pub mod server;

use serde_json::Value;

/// Version of the control protocol (`"v"` in every request and reply).
pub const PROTOCOL_VERSION: u32 = 1;

/// An error reply: a stable `code` and a message that says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlError {
    /// `bad-request`, `too-large`, `unsupported-version`, `unknown-command`,
    /// `invalid`, `not-found`, `quota-exceeded`, `unsupported-family`,
    /// `forbidden`, `internal`.
    pub code: &'static str,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl CtlError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CtlError {
            code,
            message: message.into(),
        }
    }
}

/// Answers the commands of the protocol. The server calls it from its client
/// threads, so it must never block the datapath.
pub trait Handler: Send + Sync {
    /// Runs command `cmd` with its `args` (a JSON object, `{}` when absent).
    fn handle(&self, cmd: &str, args: &Value) -> Result<Value, CtlError>;
}
