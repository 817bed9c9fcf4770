//! A throwaway `clickhouse-server` for tests: its own folder, config.xml and
//! users.xml, on free loopback ports; killed (SIGKILL) and restarted on the
//! same data at will. Also a tiny HTTP client for its queries, so the tests
//! do not share the sink's client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sink's table DDL (database `flowlogs`, table `records`).
pub const RECORDS_SQL: &str = include_str!("../../../scripts/clickhouse/records.sql");

/// A running (or killed) server.
pub struct Server {
    /// Its folder: config, data, logs.
    pub dir: PathBuf,
    /// HTTP port.
    pub http: u16,
    child: Option<Child>,
}

/// A port that was free a moment ago. Handed out from a counter below the
/// kernel's ephemeral range (32768 and up), never twice in one process: a
/// server killed by one test keeps its port, and no other test's server (or
/// outgoing connection) takes it meanwhile.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + std::process::id() % 1000 * 10;
    loop {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn binary() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("clickhouse-server");
        if p.exists() {
            return p;
        }
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in path.split(':') {
            let p = Path::new(dir).join("clickhouse-server");
            if p.exists() {
                return p;
            }
        }
    }
    panic!("clickhouse-server is not installed; run scripts/setup.sh (it installs Debian's clickhouse-server)");
}

impl Server {
    /// Writes a minimal configuration into `dir` and starts the server.
    pub fn start(dir: &Path) -> Server {
        std::fs::create_dir_all(dir).expect("server folder");
        let (http, tcp) = (free_port(), free_port());
        let d = dir.display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <mark_cache_size>5368709120</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
</yandex>
"#
        );
        let users = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#;
        std::fs::write(dir.join("config.xml"), config).expect("config.xml");
        std::fs::write(dir.join("users.xml"), users).expect("users.xml");
        let mut s = Server {
            dir: dir.to_path_buf(),
            http,
            child: None,
        };
        s.restart();
        s
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same folder and ports; waits for `/ping`.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.dir.join("stdout.log")).expect("stdout.log");
        let child = Command::new(binary())
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start clickhouse-server ({e}); run scripts/setup.sh")
            });
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = http(self.http, "GET", "/ping", b"") {
                if body.starts_with("Ok") {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let log = std::fs::read_to_string(self.dir.join("error.log"))
                        .or_else(|_| std::fs::read_to_string(self.dir.join("stdout.log")))
                        .unwrap_or_default();
                    panic!(
                        "clickhouse-server exited ({st}) in {}:\n{log}",
                        self.dir.display()
                    );
                }
            }
            assert!(
                Instant::now() < until,
                "clickhouse-server in {} did not answer /ping within 60 s",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs one statement; panics with ClickHouse's message if it fails.
    pub fn query(&self, sql: &str) -> String {
        match http(
            self.http,
            "POST",
            "/?output_format_json_quote_64bit_integers=0",
            sql.as_bytes(),
        ) {
            Ok((200, body)) => body,
            Ok((code, body)) => panic!("{sql}\n→ HTTP {code}: {body}"),
            Err(e) => panic!("{sql}\n→ {e}"),
        }
    }

    /// Creates database `db` and table `db.table` from records.sql.
    pub fn create_table(&self, db: &str, table: &str) {
        let sql = RECORDS_SQL.replace("flowlogs.records", &format!("{db}.{table}"));
        self.query(&format!("CREATE DATABASE IF NOT EXISTS {db}"));
        let create = sql
            .split(';')
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .find(|s| s.contains("CREATE TABLE"))
            .expect("records.sql has a CREATE TABLE");
        self.query(&create);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.0 exchange with 127.0.0.1:`port`: `(status, body)`.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}
