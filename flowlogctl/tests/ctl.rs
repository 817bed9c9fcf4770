//! `flowlogctl`'s operator commands against a mock server
//! (`vswitch-plugin/examples/mock_control.rs`, built here with cargo): the
//! output (tables with headers and units, `--json`), and the exit statuses
//! 0 done, 1 server error, 2 usage, 3 no server, 4 forbidden (that one
//! switches to uid 65534 and needs root; skipped otherwise).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The mock server binary, built (or brought up to date) once per run.
fn mock_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // <target>/<profile>/deps/ctl-<hash>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target = profile_dir.parent().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "-q",
            "-p",
            "vswitch-plugin",
            "--example",
            "mock_control",
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .env("CARGO_TARGET_DIR", target);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().expect("running cargo");
        assert!(
            out.status.success(),
            "building the mock_control example failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join("examples").join("mock_control");
        assert!(bin.is_file(), "{} is missing", bin.display());
        bin
    })
}

/// A running mock server on a socket in its own temp folder.
struct Mock {
    dir: tempfile::TempDir,
    path: PathBuf,
    child: Child,
}

impl Mock {
    fn start() -> Mock {
        Mock::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Mock {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowlogd.sock");
        let mut child = Command::new(mock_bin())
            .arg(&path)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on"),
            "mock_control did not start: {line:?}"
        );
        Mock { dir, path, child }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_flowlogctl"))
            .args(args)
            .arg("--socket")
            .arg(&self.path)
            .env_remove("FLOWLOGD_SOCKET")
            .output()
            .unwrap()
    }

    /// Runs flowlogctl, asserts its exit status, returns stdout and stderr.
    fn expect(&self, args: &[&str], code: i32) -> (String, String) {
        check(self.ctl(args), code, args)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check(out: Output, code: i32, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "flowlogctl {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn stats_as_tables_with_units() {
    let m = Mock::start();
    let (out, _) = m.expect(&["stats"], 0);
    for want in [
        "Workers (2)",
        "WORKER",
        "PACKETS IN",
        "RING DEPTH",
        "FLOWS HIGH WATER",
        "1,000,000",
        "GiB",
        "Enis (1)",
        "ENI ID",
        "eni-a1",
        "Flow logs (1)",
        "FLOW LOG ID",
        "RECORDS EXPORTED",
        "2023-11-14T22:13:20Z",
        "uptime_s:",
        "Exporter",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // The id column comes first.
    let header = out.lines().find(|l| l.contains("FLOW LOG ID")).unwrap();
    assert!(header.trim_start().starts_with("FLOW LOG ID"), "{header}");

    let (out, _) = m.expect(&["stats", "--json"], 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["workers"].as_array().unwrap().len(), 2);
    assert_eq!(v["flow_logs"][0]["flow_log_id"], json!("fl-1"));

    let (out, _) = m.expect(&["stats", "--prometheus"], 0);
    assert!(
        out.contains("flowlog_packets_total{worker=\"0\"} 1000"),
        "{out}"
    );
}

#[test]
fn socket_from_the_environment() {
    let m = Mock::start();
    let out = Command::new(env!("CARGO_BIN_EXE_flowlogctl"))
        .args(["call", "hello", "--json"])
        .env("FLOWLOGD_SOCKET", &m.path)
        .output()
        .unwrap();
    let (out, _) = check(out, 0, &["call", "hello"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["product"], json!("flowlogd"));
    assert_eq!(v["protocol"], json!(1));
}

#[test]
fn flow_log_lifecycle() {
    let m = Mock::start();
    let (out, _) = m.expect(&["flow-logs", "list"], 0);
    assert!(out.contains("FLOW LOG ID") && out.contains("fl-1"), "{out}");

    let fl2 = json!({"flow_log_id": "fl-2", "account_id": "1234567890",
        "resource_type": "VSwitch", "resource_id": "vsw-1",
        "project_name": "p", "log_store_name": "s"});
    let (out, _) = m.expect(&["flow-logs", "create", "--json-arg", &fl2.to_string()], 0);
    assert!(out.starts_with("flow log fl-2 created"), "{out}");
    let file = m.dir.path().join("fl3.json");
    let fl3 = json!({"flow_log": {"flow_log_id": "fl-3", "account_id": "1234567890",
        "resource_type": "VPC", "resource_id": "vpc-1",
        "project_name": "p", "log_store_name": "s"}});
    std::fs::write(&file, fl3.to_string()).unwrap();
    let f = file.to_str().unwrap();
    m.expect(&["flow-logs", "create", "--file", f], 0);
    // Quota (3 per account in the mock): the server's error, exit 1.
    let fl4 = json!({"flow_log_id": "fl-4", "account_id": "1234567890"});
    let (_, err) = m.expect(&["flow-logs", "create", "--json-arg", &fl4.to_string()], 1);
    assert!(
        err.starts_with("flowlogctl: quota-exceeded: account 1234567890"),
        "{err}"
    );

    let (out, _) = m.expect(&["flow-logs", "describe", "fl-2", "--json"], 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flow_log"]["resource_id"], json!("vsw-1"));
    let (out, _) = m.expect(&["flow-logs", "describe", "fl-2"], 0);
    assert!(
        out.contains("resource_type:") && out.contains("VSwitch"),
        "{out}"
    );

    let (out, _) = m.expect(
        &[
            "flow-logs",
            "modify",
            "fl-2",
            "--interval",
            "60",
            "--name",
            "web",
        ],
        0,
    );
    assert!(out.contains("flow log fl-2 modified"), "{out}");
    let (out, _) = m.expect(&["flow-logs", "describe", "fl-2", "--json"], 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flow_log"]["aggregation_interval"], json!(60));
    assert_eq!(v["flow_log"]["flow_log_name"], json!("web"));
    // Usage errors: exit 2, nothing sent.
    m.expect(&["flow-logs", "modify", "fl-2"], 2);
    m.expect(&["flow-logs", "modify", "fl-2", "--interval", "61"], 2);
    m.expect(&["flow-logs", "create"], 2);
    m.expect(&["flow-logs", "create", "--json-arg", "{nope"], 2);
    m.expect(&["flow-logs", "create", "--file", "/nonexistent/x.json"], 2);
    m.expect(&["flow-logs"], 2);

    let (out, _) = m.expect(&["flow-logs", "stop", "fl-2"], 0);
    assert!(
        out.contains("flow log fl-2 stopped") && out.contains("Inactive"),
        "{out}"
    );
    let (out, _) = m.expect(&["flow-logs", "start", "fl-2", "--json"], 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"flow_log_id": "fl-2", "status": "Active"})
    );
    let (out, _) = m.expect(&["flow-logs", "delete", "fl-2"], 0);
    assert_eq!(out, "flow log fl-2 deleted\n");
    let (out, err) = m.expect(&["flow-logs", "describe", "fl-2"], 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "flowlogctl: not-found: there is no flow log \"fl-2\"\n"
    );
}

#[test]
fn enis_and_rules() {
    let m = Mock::start();
    let eni = |id: &str, ty: &str| {
        json!({"eni_id": id, "mac": "02:00:00:00:00:09", "ips": ["10.0.1.9"], "vm_id": "i-9",
               "instance_type": ty, "vswitch_id": "vsw-1", "vpc_id": "vpc-1",
               "account_id": "1234567890", "port": 0})
        .to_string()
    };
    let file = m.dir.path().join("eni.json");
    std::fs::write(&file, eni("eni-b2", "ecs.g7.large")).unwrap();
    let (out, _) = m.expect(&["enis", "attach", "--file", file.to_str().unwrap()], 0);
    assert!(out.starts_with("ENI eni-b2 attached"), "{out}");
    let (_, err) = m.expect(
        &[
            "enis",
            "attach",
            "--json-arg",
            &eni("eni-t", "ecs.t1.small"),
        ],
        1,
    );
    assert!(err.starts_with("flowlogctl: unsupported-family: "), "{err}");
    m.expect(&["enis", "detach", "eni-b2"], 0);
    m.expect(&["enis", "detach", "eni-b2"], 1);

    let rules = json!([
        {"direction": "ingress", "policy": "accept", "priority": 1, "ip_protocol": "tcp",
         "port_range": "443/443", "cidr": "0.0.0.0/0"},
        {"direction": "egress", "policy": "accept", "priority": 1, "ip_protocol": "all",
         "port_range": "-1/-1", "cidr": "0.0.0.0/0"}]);
    let (out, _) = m.expect(
        &[
            "security-groups",
            "replace-rules",
            "sg-web",
            "--json-arg",
            &rules.to_string(),
        ],
        0,
    );
    assert!(
        out.starts_with("security group sg-web: 2 rules in force"),
        "{out}"
    );
    let wrapped = json!({"security_group_id": "sg-other", "rules": rules});
    m.expect(
        &[
            "security-groups",
            "replace-rules",
            "sg-web",
            "--json-arg",
            &wrapped.to_string(),
        ],
        2,
    );
    m.expect(
        &[
            "security-groups",
            "replace-rules",
            "sg-none",
            "--json-arg",
            "[]",
        ],
        1,
    );

    let acl = json!({"ingress": [{"policy": "drop", "ip_protocol": "tcp",
                                  "port_range": "23/23", "cidr": "0.0.0.0/0"}], "egress": []});
    let file = m.dir.path().join("acl.json");
    std::fs::write(&file, acl.to_string()).unwrap();
    let (out, _) = m.expect(
        &[
            "network-acls",
            "replace",
            "nacl-1",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"network_acl_id": "nacl-1", "ingress": 1, "egress": 0})
    );
    m.expect(
        &[
            "network-acls",
            "replace",
            "nacl-1",
            "--json-arg",
            r#"{"ingress": []}"#,
        ],
        2,
    );
}

#[test]
fn top_shows_rates() {
    let m = Mock::start();
    let (out, _) = m.expect(&["top", "--count", "2", "--interval", "0.1"], 0);
    assert_eq!(out.matches("rates over the last").count(), 2, "{out}");
    assert!(out.contains("PACKETS IN/S") && out.contains("/s"), "{out}");
    assert!(!out.contains('\x1b'), "no screen control when not live");
    let (out, _) = m.expect(&["top", "--once", "--interval", "0.1", "--json"], 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    // The mock's counters grow by 1,000,000 per poll on worker 0.
    let rate = v["workers"][0]["packets_in_per_s"].as_f64().unwrap();
    assert!(rate > 1_000_000.0, "{rate}");
    assert_eq!(v["workers"][0]["ring_depth"], json!(3));
}

#[test]
fn raw_calls_and_server_errors() {
    let m = Mock::start();
    let (out, _) = m.expect(&["call", "echo", r#"{"a": [1, 2]}"#, "--json"], 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"a": [1, 2]})
    );
    let (_, err) = m.expect(&["call", "no-such-command"], 1);
    assert!(err.starts_with("flowlogctl: unknown-command: "), "{err}");
    let (_, err) = m.expect(&["call", "panic"], 1);
    assert!(err.starts_with("flowlogctl: internal: "), "{err}");
    m.expect(&["call", "echo", "[1]"], 2);
    m.expect(&["call", "echo", "{"], 2);
}

#[test]
fn no_server_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_flowlogctl"))
        .args(["stats", "--socket"])
        .arg(&path)
        .output()
        .unwrap();
    let (_, err) = check(out, 3, &["stats"]);
    assert!(
        err.contains(&format!("no flowlogd is listening on {}", path.display())),
        "{err}"
    );
    assert!(
        err.contains("flowlogd replay --socket") && err.contains("--socket"),
        "{err}"
    );
    // A stale socket file: nobody listens either.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_flowlogctl"))
        .args(["flow-logs", "list", "--socket"])
        .arg(&path)
        .output()
        .unwrap();
    check(out, 3, &["flow-logs", "list"]);
}

/// flowlogctl run as uid/gid 65534 against `m`; `None` when not root.
fn as_nobody(m: &Mock, args: &[&str]) -> Option<Output> {
    if !nix_is_root() {
        eprintln!("skipped: switching to uid 65534 needs root");
        return None;
    }
    let exe = m.dir.path().join("flowlogctl");
    if !exe.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_flowlogctl"), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(
        Command::new(&exe)
            .args(args)
            .arg("--socket")
            .arg(&m.path)
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .output()
            .unwrap(),
    )
}

fn nix_is_root() -> bool {
    // Without a libc dependency: /proc/self/status's effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn forbidden_is_exit_4() {
    // Anybody may reach the socket file: the peer credentials refuse.
    let m = Mock::start_with(&["--mode", "666"]);
    std::fs::set_permissions(m.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(out) = as_nobody(&m, &["stats"]) else {
        return;
    };
    let (out, err) = check(out, 4, &["stats (as nobody)"]);
    assert_eq!(out, "");
    assert!(err.starts_with("flowlogctl: forbidden: uid 65534"), "{err}");
    assert!(
        err.contains("run as root or as a member of the socket's group"),
        "{err}"
    );

    // The file's mode refuses (EACCES): the same exit status and advice.
    std::fs::set_permissions(&m.path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = as_nobody(&m, &["flow-logs", "list"]).unwrap();
    let (_, err) = check(out, 4, &["flow-logs list (as nobody, mode 600)"]);
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("member of the socket's group"), "{err}");
    // Root is still served.
    m.expect(&["flow-logs", "list"], 0);
}
