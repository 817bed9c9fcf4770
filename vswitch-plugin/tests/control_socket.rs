//! The operator socket's protocol (docs/control-protocol.md), end to end
//! over a real Unix socket with a mock handler: replies and their ids,
//! every error the server itself produces, size limits, many clients at
//! once, the socket file's mode, group and life cycle, and peer
//! credentials (a client running as `nobody` is refused; that test needs
//! root and is skipped otherwise).

use flowlog::control::proto::MAX_LINE;
use flowlog::control::server::{serve, Server, ServerOptions, MAX_CLIENTS};
use flowlog::control::{CtlError, Handler};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts its calls; `echo` returns its args, `fail` a `not-found`,
/// `panic` panics, anything else is `unknown-command`.
#[derive(Default)]
struct Mock {
    calls: AtomicUsize,
}

impl Handler for Mock {
    fn handle(&self, cmd: &str, args: &Value) -> Result<Value, CtlError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match cmd {
            "echo" => Ok(args.clone()),
            "fail" => Err(CtlError::new("not-found", "there is no flow log \"fl-9\"")),
            "panic" => panic!("mock handler panics on purpose"),
            other => Err(CtlError::new(
                "unknown-command",
                format!("no command {other:?}"),
            )),
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    mock: Arc<Mock>,
    /// Serves until the fixture is dropped.
    _server: Server,
}

fn start_with(opts: impl FnOnce(&Path) -> ServerOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    let path = o.path.clone();
    let mock = Arc::new(Mock::default());
    let server = serve(o, mock.clone() as Arc<dyn Handler>).unwrap();
    Fixture {
        _dir: dir,
        path,
        mock,
        _server: server,
    }
}

fn start() -> Fixture {
    start_with(|d| ServerOptions {
        path: d.join("flowlogd.sock"),
        ..ServerOptions::default()
    })
}

impl Fixture {
    fn connect(&self) -> Conn {
        Conn::new(&self.path)
    }
    fn calls(&self) -> usize {
        self.mock.calls.load(Ordering::SeqCst)
    }
}

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn new(path: &Path) -> Conn {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }
    fn send(&mut self, line: &[u8]) {
        self.writer.write_all(line).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }
    fn recv(&mut self) -> Value {
        let mut l = String::new();
        let n = self.reader.read_line(&mut l).unwrap();
        assert!(n > 0, "the server closed the connection");
        assert!(l.ends_with('\n'));
        assert_eq!(l.trim_end().lines().count(), 1, "one line per reply: {l:?}");
        serde_json::from_str(&l).unwrap()
    }
    fn call(&mut self, req: Value) -> Value {
        self.send(req.to_string().as_bytes());
        self.recv()
    }
    /// [`Conn::call`] for a server that may have closed already.
    fn try_call(&mut self, req: Value) -> Value {
        let _ = self.writer.write_all(format!("{req}\n").as_bytes());
        self.recv()
    }
    fn raw(&mut self, line: &str) -> Value {
        self.send(line.as_bytes());
        self.recv()
    }
    /// True when the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            // Unread request bytes at the server's close: ECONNRESET.
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn error_of(reply: &Value) -> (&Value, &str) {
    assert_eq!(reply["v"], json!(1), "{reply}");
    assert_eq!(reply["ok"], json!(false), "{reply}");
    assert!(reply["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    (&reply["id"], reply["error"]["code"].as_str().unwrap())
}

#[test]
fn hello_is_answered_by_the_server() {
    let f = start();
    let mut c = f.connect();
    let r = c.call(json!({"v": 1, "id": 1, "cmd": "hello"}));
    assert_eq!(
        r,
        json!({"v": 1, "id": 1, "ok": true, "result": {
            "protocol": 1, "product": "flowlogd",
            "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id()}})
    );
    assert_eq!(f.calls(), 0);
}

#[test]
fn commands_go_to_the_handler() {
    let f = start();
    let mut c = f.connect();
    let r = c.call(json!({"v": 1, "id": "a-1", "cmd": "echo", "args": {"flow_log_id": "fl-1"}}));
    assert_eq!(
        r,
        json!({"v": 1, "id": "a-1", "ok": true, "result": {"flow_log_id": "fl-1"}})
    );
    // `args` absent or null: {}.
    let r = c.call(json!({"v": 1, "id": 2, "cmd": "echo"}));
    assert_eq!(r["result"], json!({}));
    let r = c.call(json!({"v": 1, "id": -35, "cmd": "echo", "args": null}));
    assert_eq!((&r["id"], &r["result"]), (&json!(-35), &json!({})));
    assert_eq!(f.calls(), 3);
}

#[test]
fn handler_errors_pass_through() {
    let f = start();
    let mut c = f.connect();
    let r = c.call(json!({"v": 1, "id": 7, "cmd": "fail"}));
    assert_eq!(
        r,
        json!({"v": 1, "id": 7, "ok": false,
               "error": {"code": "not-found", "message": "there is no flow log \"fl-9\""}})
    );
    let r = c.call(json!({"v": 1, "id": 8, "cmd": "no-such-thing"}));
    assert_eq!(error_of(&r), (&json!(8), "unknown-command"));
    // A panicking handler is an `internal` error; the connection lives on.
    let r = c.call(json!({"v": 1, "id": 9, "cmd": "panic"}));
    assert_eq!(error_of(&r), (&json!(9), "internal"));
    let r = c.call(json!({"v": 1, "id": 10, "cmd": "hello"}));
    assert_eq!(r["ok"], json!(true));
}

#[test]
fn malformed_requests_never_reach_the_handler() {
    let f = start();
    let mut c = f.connect();
    let cases: &[(&str, Value, &str)] = &[
        ("not json at all", json!(null), "bad-request"),
        ("{\"v\":1,\"id\":1,\"cmd\":", json!(null), "bad-request"),
        ("[1,2,3]", json!(null), "bad-request"),
        ("\"hello\"", json!(null), "bad-request"),
        ("42", json!(null), "bad-request"),
        ("null", json!(null), "bad-request"),
        (r#"{"v":1,"id":5}"#, json!(5), "bad-request"),
        (r#"{"v":1,"id":"x","cmd":7}"#, json!("x"), "bad-request"),
        (r#"{"v":1,"id":"x","cmd":""}"#, json!("x"), "bad-request"),
        (
            r#"{"v":1,"id":6,"cmd":"echo","args":[1]}"#,
            json!(6),
            "bad-request",
        ),
        (
            r#"{"v":1,"id":6,"cmd":"echo","args":"a"}"#,
            json!(6),
            "bad-request",
        ),
        (r#"{"v":1,"cmd":"echo"}"#, json!(null), "bad-request"),
        (
            r#"{"v":1,"id":{"a":1},"cmd":"echo"}"#,
            json!(null),
            "bad-request",
        ),
        (
            r#"{"v":1,"id":true,"cmd":"echo"}"#,
            json!(null),
            "bad-request",
        ),
        (r#"{"id":4,"cmd":"echo"}"#, json!(4), "bad-request"),
        (r#"{"v":"1","id":4,"cmd":"echo"}"#, json!(4), "bad-request"),
        (
            r#"{"v":2,"id":4,"cmd":"echo"}"#,
            json!(4),
            "unsupported-version",
        ),
        (
            r#"{"v":0,"id":"z","cmd":"hello"}"#,
            json!("z"),
            "unsupported-version",
        ),
        ("\u{1}\u{2}\u{ff}", json!(null), "bad-request"),
    ];
    for (line, id, code) in cases {
        let r = c.raw(line);
        assert_eq!(error_of(&r), (id, *code), "for {line:?}: {r}");
    }
    // Invalid UTF-8.
    c.send(b"{\"v\":1,\"id\":1,\"cmd\":\"\xff\xfe\"}");
    assert_eq!(error_of(&c.recv()).1, "bad-request");
    // Blank lines are skipped; the connection still works.
    c.send(b"");
    c.send(b"   \r");
    let r = c.call(json!({"v": 1, "id": "after", "cmd": "echo", "args": {"k": 1}}));
    assert_eq!(
        (&r["id"], &r["result"]),
        (&json!("after"), &json!({"k": 1}))
    );
    assert_eq!(f.calls(), 1);
}

#[test]
fn a_line_of_64_kib_is_served_and_a_longer_one_closes_the_connection() {
    let f = start();
    let mut c = f.connect();
    let mut line = br#"{"v":1,"id":"big","cmd":"echo","args":{}}"#.to_vec();
    line.resize(MAX_LINE, b' ');
    c.send(&line);
    assert_eq!(c.recv()["id"], json!("big"));

    line.push(b' ');
    // The server may close before the whole line is written.
    let _ = c.writer.write_all(&line);
    let _ = c.writer.write_all(b"\n");
    let r = c.recv();
    assert_eq!(error_of(&r), (&json!(null), "too-large"));
    assert!(c.closed(), "the connection stays open after too-large");

    // Also without any newline: the server does not wait for one.
    let mut c = f.connect();
    let _ = c.writer.write_all(&vec![b'x'; MAX_LINE + 10_000]);
    assert_eq!(error_of(&c.recv()).1, "too-large");
    assert!(c.closed());
    assert_eq!(f.calls(), 1);
    // The server is unharmed.
    let r = f.connect().call(json!({"v": 1, "id": 1, "cmd": "hello"}));
    assert_eq!(r["ok"], json!(true));
}

#[test]
fn a_last_request_without_newline_is_answered() {
    let f = start();
    let mut c = f.connect();
    c.writer
        .write_all(br#"{"v":1,"id":1,"cmd":"echo","args":{"x":1}}"#)
        .unwrap();
    c.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.recv()["result"], json!({"x": 1}));
    assert!(c.closed());
}

#[test]
fn many_clients_at_once() {
    let f = start();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let path = f.path.clone();
            std::thread::spawn(move || {
                let mut c = Conn::new(&path);
                // Half one at a time, half pipelined.
                for i in 0..25 {
                    let id = format!("{t}-{i}");
                    let r =
                        c.call(json!({"v": 1, "id": id, "cmd": "echo", "args": {"t": t, "i": i}}));
                    assert_eq!(r["id"], json!(id));
                    assert_eq!(r["result"], json!({"t": t, "i": i}));
                }
                let mut batch = Vec::new();
                for i in 25..50 {
                    let req = json!({"v": 1, "id": t * 1000 + i, "cmd": "echo", "args": {"i": i}});
                    batch.extend_from_slice(req.to_string().as_bytes());
                    batch.push(b'\n');
                }
                c.writer.write_all(&batch).unwrap();
                for i in 25..50 {
                    let r = c.recv();
                    assert_eq!(r["id"], json!(t * 1000 + i));
                    assert_eq!(r["result"], json!({"i": i}));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(f.calls(), 20 * 50);
}

#[test]
fn clients_beyond_the_limit_are_refused_busy() {
    let f = start();
    let mut held: Vec<Conn> = (0..MAX_CLIENTS)
        .map(|i| {
            let mut c = f.connect();
            assert_eq!(
                c.call(json!({"v": 1, "id": i, "cmd": "hello"}))["ok"],
                json!(true)
            );
            c
        })
        .collect();
    let mut extra = f.connect();
    assert_eq!(error_of(&extra.recv()), (&json!(null), "busy"));
    assert!(extra.closed());
    // One leaves: a new one is served (its slot frees when its thread ends).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = f.connect();
        let r = c.try_call(json!({"v": 1, "id": "late", "cmd": "hello"}));
        if r["ok"] == json!(true) {
            break;
        }
        assert_eq!(error_of(&r).1, "busy");
        assert!(Instant::now() < deadline, "the slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn socket_file_mode_group_and_parent() {
    let f = start();
    let m = std::fs::metadata(&f.path).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o660);

    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("run/flowlogd/ctl.sock");
    let s = serve(
        ServerOptions {
            path: nested.clone(),
            group: None,
            mode: 0o600,
        },
        Arc::new(Mock::default()),
    )
    .unwrap();
    assert_eq!(s.path(), nested);
    let m = std::fs::metadata(&nested).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    s.stop();
    assert!(!nested.exists(), "stop removes the socket file");

    let e = serve(
        ServerOptions {
            path: dir.path().join("g.sock"),
            group: Some("no-such-group-flowlog".into()),
            mode: 0o660,
        },
        Arc::new(Mock::default()),
    )
    .unwrap_err();
    assert!(e.contains("no-such-group-flowlog"), "{e}");

    // Giving the file to a group needs root (or membership).
    if nix::unistd::geteuid().is_root() {
        if let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534)) {
            let p = dir.path().join("grp.sock");
            let s = serve(
                ServerOptions {
                    path: p.clone(),
                    group: Some(g.name.clone()),
                    mode: 0o660,
                },
                Arc::new(Mock::default()),
            )
            .unwrap();
            assert_eq!(std::fs::metadata(&p).unwrap().gid(), 65534);
            drop(s);
            assert!(!p.exists(), "drop removes the socket file");
        }
    }
}

#[test]
fn stale_socket_is_replaced_live_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // A socket file nobody listens on (a crashed server).
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let opts = ServerOptions {
        path: path.clone(),
        ..ServerOptions::default()
    };
    let s = serve(opts.clone(), Arc::new(Mock::default())).unwrap();
    let r = Conn::new(&path).call(json!({"v": 1, "id": 1, "cmd": "hello"}));
    assert_eq!(r["ok"], json!(true));

    // A second server on the same path is refused; the first keeps serving.
    let e = serve(opts.clone(), Arc::new(Mock::default())).unwrap_err();
    assert!(e.contains("another server"), "{e}");
    let r = Conn::new(&path).call(json!({"v": 1, "id": 2, "cmd": "hello"}));
    assert_eq!(r["ok"], json!(true));

    // Stopping ends connected clients too.
    let mut c = Conn::new(&path);
    assert_eq!(
        c.call(json!({"v": 1, "id": 3, "cmd": "hello"}))["ok"],
        json!(true)
    );
    s.stop();
    assert!(c.closed());
    assert!(!path.exists());

    // Not a socket: refused, left alone.
    std::fs::write(&path, "data").unwrap();
    let e = serve(opts, Arc::new(Mock::default())).unwrap_err();
    assert!(e.contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

const CHILD_ENV: &str = "FLOWLOG_TEST_CONNECT_AS_CHILD";

/// Not a test of its own: the body of the child process that
/// `peer_credentials_*` start as another user. It connects to the socket in
/// `$FLOWLOG_TEST_CONNECT_AS_CHILD`, sends `hello` and prints each reply
/// line it gets until the connection ends.
#[test]
fn child_connect() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            println!("CONNECT-ERROR {e}");
            return;
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = (&s).write_all(b"{\"v\":1,\"id\":\"child\",\"cmd\":\"hello\"}\n");
    let _ = s.shutdown(std::net::Shutdown::Write);
    for line in BufReader::new(&s).lines() {
        match line {
            Ok(l) => println!("REPLY {l}"),
            Err(_) => break,
        }
    }
}

/// Runs [`child_connect`] as uid/gid 65534 (`nobody`) against `path`;
/// returns its reply lines. `None` when not root (cannot switch user).
fn connect_as_nobody(dir: &Path, path: &Path) -> Option<Vec<Value>> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching to uid 65534 needs root");
        return None;
    }
    // A copy of this test binary that nobody can reach and execute.
    let exe = dir.join("child-test-bin");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&exe)
        .args([
            "--exact",
            "child_connect",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        // std drops the supplementary groups when root switches user.
        .uid(65534)
        .gid(65534)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("CONNECT-ERROR"), "{stdout}");
    assert!(
        stdout.contains("REPLY "),
        "no reply:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        stdout
            .lines()
            // libtest prints `test child_connect ... ` before the output.
            .filter_map(|l| l.find("REPLY ").map(|i| &l[i + 6..]))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

/// A temp folder and socket that anybody may reach, so that only the peer
/// credentials decide.
fn open_fixture(group: Option<String>) -> Fixture {
    start_with(|d| {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        ServerOptions {
            path: d.join("open.sock"),
            group,
            mode: 0o666,
        }
    })
}

#[test]
fn peer_credentials_refuse_another_user() {
    let f = open_fixture(None);
    let dir = f.path.parent().unwrap().to_path_buf();
    let Some(replies) = connect_as_nobody(&dir, &f.path) else {
        return;
    };
    assert_eq!(replies.len(), 1, "{replies:?}");
    let (id, code) = error_of(&replies[0]);
    assert_eq!((id, code), (&json!(null), "forbidden"));
    assert!(replies[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("65534"));
    assert_eq!(f.calls(), 0);
    // Root still gets in.
    let r = f.connect().call(json!({"v": 1, "id": 1, "cmd": "hello"}));
    assert_eq!(r["ok"], json!(true));
}

#[test]
fn peer_credentials_admit_the_configured_group() {
    let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534)) else {
        eprintln!("skipped: no group 65534");
        return;
    };
    let f = open_fixture(Some(g.name.clone()));
    let dir = f.path.parent().unwrap().to_path_buf();
    let Some(replies) = connect_as_nobody(&dir, &f.path) else {
        return;
    };
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0]["id"], json!("child"));
    assert_eq!(replies[0]["result"]["product"], json!("flowlogd"));
}
