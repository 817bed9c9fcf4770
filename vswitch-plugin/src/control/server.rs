//! The operator socket's server: a Unix stream socket, one thread accepting,
//! one thread per client (at most [`MAX_CLIENTS`]), newline-delimited JSON
//! (docs/control-protocol.md).
//!
//! Who may talk to it is decided twice: by the socket file's mode and group
//! (what the file system lets connect), and by the peer's credentials
//! (`SO_PEERCRED`), which the kernel records at `connect` and cannot be
//! forged: root, the server's own user and members of the configured group
//! are served; anyone else gets one `forbidden` reply and is disconnected.
//! The second check also covers the moment between `bind` and `chmod`, when
//! the file still has the umask's mode.
//!
//! Nothing a client sends reaches the [`Handler`] unless it parsed as a
//! request ([`parse_request`]); reads are bounded by [`MAX_LINE`], so a
//! client cannot make the server hold more than about 64 KiB for it.

use super::proto::{error_line, parse_request, reply_line, MAX_LINE};
use super::{CtlError, Handler, PROTOCOL_VERSION};
use nix::errno::Errno;
use nix::sys::socket::{getsockopt, send, sockopt, MsgFlags, Shutdown};
use nix::unistd::{Gid, Group, Uid, User};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where `flowlogd` listens unless told otherwise (`--socket`).
pub const DEFAULT_SOCKET: &str = "/run/flowlogd/flowlogd.sock";

/// Most clients served at once; one more gets a `busy` reply and is closed.
pub const MAX_CLIENTS: usize = 64;

/// A reply that a client does not read within this time closes its
/// connection (its thread would otherwise wait forever).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How to set up the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// The socket file ([`DEFAULT_SOCKET`]); its parent folder is created.
    pub path: PathBuf,
    /// A group whose members may use the socket besides root and the
    /// server's own user; the socket file is given to this group.
    pub group: Option<String>,
    /// The socket file's permission bits (default `0o660`).
    pub mode: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            path: PathBuf::from(DEFAULT_SOCKET),
            group: None,
            mode: 0o660,
        }
    }
}

/// A running server. [`Server::stop`] (or dropping it) closes the socket,
/// ends every client's connection and thread, and removes the socket file.
pub struct Server {
    path: PathBuf,
    /// Device and inode of the socket file this server created: the file is
    /// removed at the end only if it is still that one.
    file_id: Option<(u64, u64)>,
    shared: Arc<Shared>,
    /// A second descriptor of the listening socket, to shut it down (which
    /// wakes the accepting thread) from [`Server::stop`].
    listener: Option<UnixListener>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("path", &self.path).finish()
    }
}

/// Who may connect, besides root.
#[derive(Clone, Debug)]
struct Access {
    own_uid: u32,
    /// The configured group: its name (for messages) and id.
    group: Option<(String, u32)>,
}

struct Shared {
    handler: Arc<dyn Handler>,
    access: Access,
    path: PathBuf,
    stop: AtomicBool,
    /// The connected clients, by serial number: a second descriptor of each
    /// connection, to shut it down at stop.
    clients: Mutex<HashMap<u64, UnixStream>>,
}

/// Binds the socket described by `opts` and serves `handler` on it from
/// background threads until the returned [`Server`] is stopped or dropped.
///
/// Refuses to start if a server already answers on the path, or if the path
/// is something other than a socket; a socket file nobody listens on (left
/// by a crash) is replaced.
pub fn serve(opts: ServerOptions, handler: Arc<dyn Handler>) -> Result<Server, String> {
    let path = opts.path.clone();
    let shown = path.display().to_string();
    let group = match &opts.group {
        None => None,
        Some(name) => match Group::from_name(name) {
            Ok(Some(g)) => Some((name.clone(), g.gid.as_raw())),
            Ok(None) => {
                return Err(format!(
                    "operator socket {shown}: there is no group {name:?} \
                     (create it, or pass another socket group)"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "operator socket {shown}: looking up group {name:?}: {e}"
                ))
            }
        },
    };
    if opts.mode & !0o7777 != 0 {
        return Err(format!(
            "operator socket {shown}: mode {:o} is not a permission mode (e.g. 660)",
            opts.mode
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            format!(
                "operator socket {shown}: creating {}: {e}",
                parent.display()
            )
        })?;
    }
    remove_stale(&path)?;
    let listener = UnixListener::bind(&path)
        .map_err(|e| format!("operator socket {shown}: cannot listen: {e}"))?;
    let file_id = std::fs::symlink_metadata(&path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let setup = || -> Result<(), String> {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(opts.mode))
            .map_err(|e| format!("operator socket {shown}: setting mode {:o}: {e}", opts.mode))?;
        if let Some((name, gid)) = &group {
            nix::unistd::chown(&path, None, Some(Gid::from_raw(*gid))).map_err(|e| {
                format!("operator socket {shown}: giving it to group {name:?}: {e}")
            })?;
        }
        Ok(())
    };
    if let Err(e) = setup() {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    // From here on, a failure leaves no socket file behind.
    let fail = |e: String| {
        let _ = std::fs::remove_file(&path);
        e
    };
    let waker = listener
        .try_clone()
        .map_err(|e| fail(format!("operator socket {shown}: {e}")))?;
    let shared = Arc::new(Shared {
        handler,
        access: Access {
            own_uid: Uid::effective().as_raw(),
            group,
        },
        path: path.clone(),
        stop: AtomicBool::new(false),
        clients: Mutex::new(HashMap::new()),
    });
    let acceptor = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("flowlog-ctl".into())
            .spawn(move || accept_loop(listener, &shared))
            .map_err(|e| fail(format!("operator socket {shown}: starting its thread: {e}")))?
    };
    tracing::info!(path = %shown, mode = format!("{:o}", opts.mode), group = ?opts.group,
        "operator socket listening");
    Ok(Server {
        path,
        file_id,
        shared,
        listener: Some(waker),
        acceptor: Some(acceptor),
    })
}

impl Server {
    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of clients connected now.
    pub fn clients(&self) -> usize {
        self.shared.clients.lock().len()
    }

    /// Stops accepting, disconnects every client, waits for their threads
    /// (a command being handled finishes first) and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(l) = self.listener.take() {
            // On Linux, shutting a listening socket down wakes `accept`.
            if nix::sys::socket::shutdown(l.as_raw_fd(), Shutdown::Both).is_err() {
                // Elsewhere, a connection of our own wakes it.
                let _ = UnixStream::connect(&self.path);
            }
        }
        let threads = acceptor.join().unwrap_or_default();
        for stream in self.shared.clients.lock().values() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        for t in threads {
            let _ = t.join();
        }
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file_id {
            let _ = std::fs::remove_file(&self.path);
        }
        tracing::info!(path = %self.path.display(), "operator socket closed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Removes a socket file that no server answers on; refuses a live one and
/// anything that is not a socket.
fn remove_stale(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("operator socket {shown}: {e}")),
        Ok(m) if !m.file_type().is_socket() => Err(format!(
            "operator socket {shown}: the path exists and is not a socket; \
             remove it or choose another path"
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(format!(
                "operator socket {shown}: another server is listening on it; \
                 stop it first or choose another path"
            )),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                tracing::info!(path = %shown, "removing a stale operator socket");
                std::fs::remove_file(path)
                    .map_err(|e| format!("operator socket {shown}: removing the stale socket: {e}"))
            }
            Err(e) => Err(format!(
                "operator socket {shown}: cannot tell whether a server is listening on it: {e}"
            )),
        },
    }
}

fn accept_loop(listener: UnixListener, shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut serial = 0u64;
    let mut failures = 0u32;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match accepted {
            Ok((s, _)) => {
                failures = 0;
                s
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning.
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %e, "operator socket: accept failed");
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        threads.retain(|t| !t.is_finished());
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let Some(peer) = admit(&stream, &shared.access) else {
            continue;
        };
        let mut clients = shared.clients.lock();
        if clients.len() >= MAX_CLIENTS {
            drop(clients);
            tracing::warn!(
                uid = peer.uid,
                pid = peer.pid,
                "operator socket: too many clients"
            );
            refuse(
                stream,
                CtlError::new(
                    "busy",
                    format!("{MAX_CLIENTS} clients are connected already; try again later"),
                ),
            );
            continue;
        }
        let Ok(second) = stream.try_clone() else {
            continue;
        };
        serial += 1;
        clients.insert(serial, second);
        drop(clients);
        let id = serial;
        let sh = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("flowlog-ctl-{id}"))
            .spawn(move || {
                serve_client(&stream, &sh, peer);
                sh.clients.lock().remove(&id);
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::warn!(error = %e, "operator socket: cannot start a client thread");
                if let Some(s) = shared.clients.lock().remove(&id) {
                    refuse(s, CtlError::new("busy", "the server cannot start a thread"));
                }
            }
        }
    }
    threads
}

/// The peer of a connection, from its credentials.
#[derive(Clone, Copy, Debug)]
struct Peer {
    uid: u32,
    pid: i32,
}

/// Checks the peer's credentials; refuses (replies `forbidden` and closes)
/// anyone who is not root, the server's user or a member of the group.
fn admit(stream: &UnixStream, access: &Access) -> Option<Peer> {
    let creds = match getsockopt(stream, sockopt::PeerCredentials) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "operator socket: cannot read a client's credentials; refused");
            refuse(
                stream.try_clone().ok()?,
                CtlError::new("forbidden", "the server cannot tell who you are"),
            );
            return None;
        }
    };
    let peer = Peer {
        uid: creds.uid(),
        pid: creds.pid(),
    };
    if allowed(access, creds.uid(), creds.gid()) {
        return Some(peer);
    }
    tracing::warn!(
        uid = peer.uid,
        pid = peer.pid,
        "operator socket: refused a client that is not root, the server's user or in its group"
    );
    let mut who = vec!["root".to_owned()];
    if access.own_uid != 0 {
        who.push(format!("uid {}", access.own_uid));
    }
    if let Some((name, _)) = &access.group {
        who.push(format!("members of group {name:?}"));
    }
    refuse(
        stream.try_clone().ok()?,
        CtlError::new(
            "forbidden",
            format!(
                "uid {} may not use this socket (allowed: {})",
                peer.uid,
                who.join(", ")
            ),
        ),
    );
    None
}

fn allowed(access: &Access, uid: u32, gid: u32) -> bool {
    if uid == 0 || uid == access.own_uid {
        return true;
    }
    let Some((_, group)) = access.group else {
        return false;
    };
    if gid == group {
        return true;
    }
    // Supplementary groups, from the user database (the kernel does not
    // pass them with the credentials).
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = CString::new(user.name.clone()) else {
        return false;
    };
    match nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
        Ok(groups) => groups.contains(&Gid::from_raw(group)),
        Err(_) => matches!(Group::from_gid(Gid::from_raw(group)),
            Ok(Some(g)) if g.mem.contains(&user.name)),
    }
}

/// Sends one error reply (id `null`) and closes the connection.
fn refuse(stream: UnixStream, err: CtlError) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = send_all(&stream, &error_line(None, err));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Reads requests and writes replies until the client hangs up, sends a line
/// over [`MAX_LINE`], or the server stops.
fn serve_client(stream: &UnixStream, shared: &Shared, peer: Peer) {
    let mut reader = stream;
    let writer = stream;
    // Pending bytes: at most one partial line (<= MAX_LINE) plus one chunk.
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let mut start = 0;
        while let Some(n) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + n];
            start += n + 1;
            if line.len() > MAX_LINE {
                too_large(writer, line.len());
                return;
            }
            if let Some(reply) = answer(line, shared, peer) {
                if send_all(writer, &reply).is_err() {
                    return;
                }
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            too_large(writer, buf.len());
            return;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match reader.read(&mut chunk) {
            Ok(0) => {
                // A last request without its newline is still answered.
                if let Some(reply) = answer(&buf, shared, peer) {
                    let _ = send_all(writer, &reply);
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn too_large(writer: &UnixStream, len: usize) {
    let err = CtlError::new(
        "too-large",
        format!("a request line of more than {len} bytes; at most {MAX_LINE} bytes per line"),
    );
    let _ = send_all(writer, &error_line(None, err));
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

/// Writes all of `buf` without raising SIGPIPE when the client has gone:
/// the server may run in a process that does not ignore that signal. The
/// socket's write timeout still applies.
fn send_all(stream: &UnixStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The reply to one line, `None` for a blank line.
fn answer(line: &[u8], shared: &Shared, peer: Peer) -> Option<Vec<u8>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let req = match parse_request(line) {
        Ok(r) => r,
        Err((id, e)) => {
            tracing::debug!(
                uid = peer.uid,
                code = e.code,
                "operator socket: bad request"
            );
            return Some(error_line(id.as_ref(), e));
        }
    };
    let result = if req.cmd == "hello" {
        Ok(hello())
    } else {
        let handled = catch_unwind(AssertUnwindSafe(|| {
            shared.handler.handle(&req.cmd, &req.args)
        }));
        handled.unwrap_or_else(|_| {
            tracing::error!(cmd = %req.cmd, "operator socket: the handler panicked");
            Err(CtlError::new(
                "internal",
                format!(
                    "command {:?} failed inside the server; see its log",
                    req.cmd
                ),
            ))
        })
    };
    if !is_read_only(&req.cmd) {
        match &result {
            Ok(_) => tracing::info!(uid = peer.uid, pid = peer.pid, cmd = %req.cmd,
                path = %shared.path.display(), "operator command applied"),
            Err(e) => tracing::info!(uid = peer.uid, pid = peer.pid, cmd = %req.cmd,
                code = e.code, message = %e.message, "operator command refused"),
        }
    }
    Some(reply_line(Some(&req.id), &result))
}

/// Commands that only look (not worth a log line each).
fn is_read_only(cmd: &str) -> bool {
    cmd == "hello"
        || cmd.starts_with("stats")
        || cmd.ends_with(".list")
        || cmd.ends_with(".describe")
}

/// The server's own answer to `hello`.
fn hello() -> Value {
    json!({
        "protocol": PROTOCOL_VERSION,
        "product": "flowlogd",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access() {
        let a = Access {
            own_uid: 1000,
            group: None,
        };
        assert!(allowed(&a, 0, 5));
        assert!(allowed(&a, 1000, 5));
        assert!(!allowed(&a, 1001, 5));
        let a = Access {
            own_uid: 1000,
            group: Some(("ops".into(), 4242)),
        };
        assert!(allowed(&a, 1001, 4242));
        // nobody is in no group 4242.
        assert!(!allowed(&a, 65534, 65534));
        // An unknown uid has no supplementary groups.
        assert!(!allowed(&a, 3_999_999, 7));
    }

    #[test]
    fn read_only() {
        assert!(is_read_only("stats.prometheus"));
        assert!(is_read_only("flow-logs.list"));
        assert!(!is_read_only("flow-logs.create"));
        assert!(!is_read_only("enis.detach"));
    }
}
