//! A client of `flowlogd`'s operator socket (docs/control-protocol.md): one
//! request at a time on one connection, ids counting up from 1.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socket `flowlogd` listens on unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/flowlogd/flowlogd.sock";

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Longest reply line read (stats of a big host stay far below it).
const MAX_REPLY: u64 = 256 * 1024 * 1024;

/// Why a command did not produce a result, with its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server replied with an error (exit 1; `forbidden`: exit 4).
    Server { code: String, message: String },
    /// Nothing listens on the socket (exit 3).
    NoServer { path: PathBuf, reason: String },
    /// The socket file refuses us (exit 4).
    Denied { path: PathBuf },
    /// The connection broke or the server spoke nonsense (exit 3).
    Io(String),
    /// The command line or an input file is wrong (exit 2).
    Usage(String),
}

impl Failure {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Server { code, .. } if code == "forbidden" => 4,
            Failure::Server { .. } => 1,
            Failure::NoServer { .. } | Failure::Io(_) => 3,
            Failure::Denied { .. } => 4,
            Failure::Usage(_) => 2,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Server { code, message } if code == "forbidden" => write!(
                f,
                "{code}: {message}: run as root or as a member of the socket's group"
            ),
            Failure::Server { code, message } => write!(f, "{code}: {message}"),
            Failure::NoServer { path, reason } => write!(
                f,
                "no flowlogd is listening on {p} ({reason}): start `flowlogd run` or \
                 `flowlogd replay --socket {p}`, or pass --socket",
                p = path.display()
            ),
            Failure::Denied { path } => write!(
                f,
                "forbidden: permission denied on {}: run as root or as a member of the \
                 socket's group",
                path.display()
            ),
            Failure::Io(m) => f.write_str(m),
            Failure::Usage(m) => f.write_str(m),
        }
    }
}

/// A connection to the operator socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, Failure> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::PermissionDenied => Failure::Denied {
                path: path.to_path_buf(),
            },
            _ => Failure::NoServer {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
        let writer = stream
            .try_clone()
            .map_err(|e| Failure::Io(format!("{}: {e}", path.display())))?;
        // A server that never answers should not hang a script forever.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        Ok(Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// Sends `cmd` with `args` and waits for its reply: the result, or the
    /// server's error as [`Failure::Server`].
    pub fn call(&mut self, cmd: &str, args: Value) -> Result<Value, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&json!({
            "v": PROTOCOL_VERSION, "id": id, "cmd": cmd, "args": args,
        }))
        .map_err(|e| Failure::Usage(format!("the request is not JSON: {e}")))?;
        line.push(b'\n');
        // A refused client is sent its error and disconnected before it
        // writes; a failed write still leaves that reply to read.
        let sent = self
            .writer
            .write_all(&line)
            .and_then(|_| self.writer.flush());
        let reply = match self.read_reply() {
            Ok(r) => r,
            Err(e) => {
                return Err(match sent {
                    Err(w) => Failure::Io(format!(
                        "flowlogd on {} closed the connection: {w}",
                        self.path.display()
                    )),
                    Ok(()) => e,
                })
            }
        };
        let rid = reply.get("id").cloned().unwrap_or(Value::Null);
        if rid != json!(id) && !rid.is_null() {
            return Err(Failure::Io(format!(
                "flowlogd replied to request {rid} while request {id} was waiting"
            )));
        }
        match reply.get("ok") {
            Some(Value::Bool(true)) => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
            Some(Value::Bool(false)) => {
                let err = reply.get("error");
                let text = |k: &str| {
                    err.and_then(|e| e.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                Err(Failure::Server {
                    code: text("code"),
                    message: text("message"),
                })
            }
            _ => Err(Failure::Io(format!(
                "flowlogd sent a reply without \"ok\": {}",
                clip(&reply.to_string())
            ))),
        }
    }

    fn read_reply(&mut self) -> Result<Value, Failure> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_REPLY)
            .read_until(b'\n', &mut buf)
            .map_err(|e| match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Failure::Io(format!(
                    "flowlogd on {} did not answer within 60 s",
                    self.path.display()
                )),
                _ => Failure::Io(format!("reading from {}: {e}", self.path.display())),
            })?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Err(Failure::Io(format!(
                "flowlogd on {} closed the connection without answering",
                self.path.display()
            )));
        }
        serde_json::from_slice(&buf).map_err(|e| {
            Failure::Io(format!(
                "flowlogd sent a reply that is not JSON ({e}): {}",
                clip(&String::from_utf8_lossy(&buf))
            ))
        })
    }
}

fn clip(s: &str) -> String {
    let s = s.trim_end();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
