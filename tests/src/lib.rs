//! Helpers for the end-to-end tests in `tests/`: they run the real
//! `flowlogd` binary on captures and read what it wrote.
//!
//! - [`flowlogd`] finds the binary (building it once when it is missing or
//!   older than the sources);
//! - [`peek`] / [`senders`] read a capture with a small parser of their own
//!   (independent of the product's, so that a parser bug in the product
//!   cannot hide behind the same bug here) to build the replay configuration
//!   that `shared/testdata/README.md` asks for: every unicast source MAC (or,
//!   without Ethernet addresses, every source address) is an ENI;
//! - [`replay`] / [`replay_ok`] run `flowlogd replay --quiet --json`;
//! - [`read_store`] reads the local log store back (plain or zstd), and
//!   [`check_store`] checks the contract of RECORDS.md that holds for any
//!   replay: file layout, key set, value ranges, one record per key and
//!   window, status records.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

pub use flowlog::capture::Capture;

/// The flow log [`config_for`] creates.
pub const FLOW_LOG: &str = "fl-vpc";
/// Its project.
pub const PROJECT: &str = "proj";
/// Its log store.
pub const LOG_STORE: &str = "store";
/// The host name of every configuration built here (first part of file names).
pub const HOST: &str = "hv-test";
/// The VPC every ENI is in.
pub const VPC: &str = "vpc-1";
/// The vSwitch every ENI is in.
pub const VSWITCH: &str = "vsw-1";
/// The account of every ENI and flow log.
pub const ACCOUNT: &str = "1234567890";

/// The keys RECORDS.md requires in every record (the table, then
/// `flow-log-id`); the product adds `window-start`.
pub const RECORD_KEYS: [&str; 20] = [
    "version",
    "account-id",
    "vpc-id",
    "vswitch-id",
    "vm-id",
    "eni-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "direction",
    "packets",
    "bytes",
    "start",
    "end",
    "tcp-flags",
    "log-status",
    "action",
    "flow-log-id",
];

// ---------------------------------------------------------------------------
// Where things are

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// `shared/testdata`, next to the workspace.
pub fn testdata() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata"
    ))
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the workspace
/// root when relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The profile folder the tests were built into (`debug`, `release`, …),
/// read from the test binary's own path (`target/<profile>/deps/<test>`).
fn profile_dir_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            if deps.file_name()? != "deps" {
                return None;
            }
            Some(deps.parent()?.file_name()?.to_str()?.to_owned())
        })
        .unwrap_or_else(|| "debug".to_owned())
}

/// The `flowlogd` binary, built from the current sources.
///
/// `env!("CARGO_BIN_EXE_flowlogd")` exists only in the binary's own package,
/// so this looks for `<target>/<profile>/flowlogd` and, the first time it is
/// called in a process, runs `cargo build -p vswitch-plugin --bin flowlogd`
/// if the binary is missing or older than any source it is built from.
pub fn flowlogd() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(locate_or_build)
}

fn locate_or_build() -> PathBuf {
    let name = format!("flowlogd{}", std::env::consts::EXE_SUFFIX);
    build_if_stale(&name, &["--bin", "flowlogd"])
}

/// `<target>/<profile>/<file>`, rebuilt with `cargo build -p vswitch-plugin
/// <what>` first if it is missing or older than any source it comes from.
fn build_if_stale(file: &str, what: &[&str]) -> PathBuf {
    let profile = profile_dir_name();
    let out_file = target_dir().join(&profile).join(file);
    let built = std::fs::metadata(&out_file).and_then(|m| m.modified()).ok();
    if built.is_none_or(|t| newest_source().is_some_and(|s| s > t)) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "vswitch-plugin"])
            .args(what)
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target_dir());
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running cargo to build {file}: {e}"));
        assert!(
            out.status.success(),
            "`cargo build -p vswitch-plugin {}` failed ({}):\n{}",
            what.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        out_file.is_file(),
        "{} does not exist after building it",
        out_file.display()
    );
    out_file
}

/// Modification time of the newest file `flowlogd` is built from.
fn newest_source() -> Option<SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(&p, newest);
            } else if matches!(
                p.extension().and_then(OsStr::to_str),
                Some("rs" | "toml" | "c" | "h")
            ) {
                bump(&p, newest);
            }
        }
    }
    fn bump(p: &Path, newest: &mut Option<SystemTime>) {
        if let Ok(t) = std::fs::metadata(p).and_then(|m| m.modified()) {
            match newest {
                Some(n) if *n >= t => {}
                _ => *newest = Some(t),
            }
        }
    }
    let root = workspace_root();
    let mut newest = None;
    for krate in ["vswitch-plugin", "exporter", "dpdk-sys"] {
        walk(&root.join(krate), &mut newest);
    }
    bump(&root.join("Cargo.toml"), &mut newest);
    bump(&root.join("Cargo.lock"), &mut newest);
    newest
}

// ---------------------------------------------------------------------------
// Reading captures (our own small parser)

/// An oriented 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiveTuple {
    /// Source address.
    pub src: IpAddr,
    /// Source port (0 where RECORDS.md says so).
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (ICMP: `type * 256 + code`).
    pub dport: u16,
    /// IANA protocol number.
    pub proto: u8,
}

impl fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} {} proto {}",
            self.src, self.sport, self.dst, self.dport, self.proto
        )
    }
}

/// What [`peek`] sees in one frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peek {
    /// Ethernet source address (Ethernet link type only).
    pub src_mac: Option<[u8; 6]>,
    /// Ethernet destination address.
    pub dst_mac: Option<[u8; 6]>,
    /// The IP packet sits inside MPLS or PPPoE, which the product does not
    /// open (RECORDS.md: such frames are counted, not logged).
    pub encapsulated: bool,
    /// The IP packet's 5-tuple, if there is one. Ports are 0 for a non-first
    /// fragment or a missing L4 header, as RECORDS.md says.
    pub ip: Option<FiveTuple>,
}

/// Reads the link header and the IP header of one frame. `linktype` is the
/// pcap LINKTYPE_ value.
pub fn peek(linktype: u32, data: &[u8]) -> Peek {
    let mut p = Peek::default();
    let ip = match linktype {
        1 => {
            if data.len() < 14 {
                if data.len() >= 12 {
                    p.src_mac = Some(data[6..12].try_into().expect("6 bytes"));
                }
                return p;
            }
            p.dst_mac = Some(data[0..6].try_into().expect("6 bytes"));
            p.src_mac = Some(data[6..12].try_into().expect("6 bytes"));
            let mut et = be16(data, 12);
            let mut off = 14;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) && data.len() >= off + 4 {
                et = be16(data, off + 2);
                off += 4;
            }
            match et {
                0x0800 | 0x86dd => data.get(off..),
                0x8847 | 0x8848 => {
                    // MPLS: labels until the bottom-of-stack bit.
                    p.encapsulated = true;
                    let mut at = off;
                    loop {
                        match data.get(at..at + 4) {
                            Some(l) => {
                                at += 4;
                                if l[2] & 1 == 1 {
                                    break data.get(at..);
                                }
                            }
                            None => break None,
                        }
                    }
                }
                0x8864 => {
                    // PPPoE session: 6 bytes, then the 2-byte PPP protocol.
                    p.encapsulated = true;
                    data.get(off + 8..)
                }
                _ => None,
            }
        }
        101 | 12 | 14 | 228 | 229 => Some(data),
        113 => data.get(16..),
        276 => data.get(20..),
        0 | 108 => data.get(4..),
        _ => None,
    };
    p.ip = ip.and_then(parse_ip);
    p
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// The 5-tuple of an IP packet (version from its first nibble).
pub fn parse_ip(d: &[u8]) -> Option<FiveTuple> {
    match d.first()? >> 4 {
        4 => {
            if d.len() < 20 {
                return None;
            }
            let ihl = usize::from(d[0] & 0x0f) * 4;
            let proto = d[9];
            let src = IpAddr::V4(Ipv4Addr::new(d[12], d[13], d[14], d[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(d[16], d[17], d[18], d[19]));
            let frag = be16(d, 6) & 0x1fff;
            let total = usize::from(be16(d, 2));
            // The L4 header must lie within the capture and the IP packet
            // (Total Length 0 means TSO: take the capture).
            let end = if total == 0 {
                d.len()
            } else {
                total.min(d.len())
            };
            let l4 = if frag == 0 && ihl >= 20 {
                d.get(ihl..end)
            } else {
                None
            };
            let (sport, dport) = ports(proto, l4.unwrap_or(&[]), false);
            Some(FiveTuple {
                src,
                sport,
                dst,
                dport,
                proto,
            })
        }
        6 => {
            if d.len() < 40 {
                return None;
            }
            let a: [u8; 16] = d[8..24].try_into().expect("16 bytes");
            let b: [u8; 16] = d[24..40].try_into().expect("16 bytes");
            let (src, dst) = (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)));
            let plen = usize::from(be16(d, 4));
            let end = if plen == 0 {
                d.len()
            } else {
                (40 + plen).min(d.len())
            };
            let mut nh = d[6];
            let mut at = 40;
            let mut first_fragment = true;
            for _ in 0..8 {
                match nh {
                    0 | 43 | 60 => {
                        let h = d.get(at..at + 2)?;
                        nh = h[0];
                        at += (usize::from(h[1]) + 1) * 8;
                    }
                    51 => {
                        let h = d.get(at..at + 2)?;
                        nh = h[0];
                        at += (usize::from(h[1]) + 2) * 4;
                    }
                    44 => {
                        let h = d.get(at..at + 8)?;
                        nh = h[0];
                        first_fragment = be16(h, 2) >> 3 == 0;
                        at += 8;
                    }
                    _ => break,
                }
            }
            let l4 = if first_fragment {
                d.get(at..end.max(at))
            } else {
                None
            };
            let (sport, dport) = ports(nh, l4.unwrap_or(&[]), true);
            Some(FiveTuple {
                src,
                sport,
                dst,
                dport,
                proto: nh,
            })
        }
        _ => None,
    }
}

/// Ports by RECORDS.md "Ports"; `(0, 0)` when the fixed L4 header is not
/// wholly there.
fn ports(proto: u8, l4: &[u8], v6: bool) -> (u16, u16) {
    let need = match proto {
        6 => 20,
        17 => 8,
        132 => 12,
        1 if !v6 => 8,
        58 if v6 => 4,
        _ => return (0, 0),
    };
    if l4.len() < need {
        return (0, 0);
    }
    match proto {
        1 | 58 => (0, u16::from(l4[0]) * 256 + u16::from(l4[1])),
        _ => (be16(l4, 0), be16(l4, 2)),
    }
}

/// What a capture's senders are, and its time span.
#[derive(Clone, Debug, Default)]
pub struct Senders {
    /// Unicast source MACs of Ethernet frames.
    pub macs: BTreeSet<[u8; 6]>,
    /// Source addresses of frames without Ethernet addresses that a VM could
    /// own (not unspecified, multicast or broadcast).
    pub ips: BTreeSet<IpAddr>,
    /// Frames read.
    pub frames: u64,
    /// Time of the first frame, ns.
    pub first_ns: u64,
    /// The latest time of any frame, ns (the replay clock at the end).
    pub max_ns: u64,
}

impl Senders {
    /// The windows `[first, last]` (their start, in seconds) a replay with
    /// this interval covers (RECORDS.md "Replay clock and boundaries").
    pub fn windows(&self, interval: u64) -> Vec<u64> {
        let first = self.first_ns / 1_000_000_000 / interval;
        let last = self.max_ns / 1_000_000_000 / interval;
        (first..=last).map(|w| w * interval).collect()
    }
}

/// Whether `ip` can be an ENI's address.
pub fn ownable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// Every frame of a capture, with its LINKTYPE_ value, time and a copy of its
/// bytes (stops at a cut or damaged record).
pub fn frames(pcap: &Path) -> Vec<(u32, u64, Vec<u8>)> {
    let cap = Capture::open(pcap).unwrap_or_else(|e| panic!("{}: {e}", pcap.display()));
    cap.frames()
        .map_while(Result::ok)
        .map(|f| (f.linktype_raw, f.ts_nanos, f.data.to_vec()))
        .collect()
}

/// The senders of a capture (see [`Senders`]).
pub fn senders(pcap: &Path) -> Senders {
    let mut s = Senders::default();
    for (i, (linktype, ts, data)) in frames(pcap).into_iter().enumerate() {
        if i == 0 {
            s.first_ns = ts;
        }
        s.max_ns = s.max_ns.max(ts);
        s.frames += 1;
        let p = peek(linktype, &data);
        if linktype == 1 {
            if let Some(mac) = p.src_mac.filter(|m| m[0] & 1 == 0) {
                s.macs.insert(mac);
            }
        } else if let Some(ip) = p.ip.map(|t| t.src).filter(ownable) {
            s.ips.insert(ip);
        }
    }
    s
}

/// The 5-tuples of Ethernet frames whose source MAC is a group (multicast)
/// address. No ENI has such a MAC (CONFIG.md), so these packets have no
/// `out` record; they are seen only as `in` where the destination is an ENI.
pub fn sent_from_group_macs(pcap: &Path) -> BTreeSet<FiveTuple> {
    frames(pcap)
        .into_iter()
        .filter(|(linktype, _, _)| *linktype == 1)
        .map(|(linktype, _, data)| peek(linktype, &data))
        .filter(|p| p.src_mac.is_some_and(|m| m[0] & 1 == 1))
        .filter_map(|p| p.ip.filter(|_| !p.encapsulated))
        .collect()
}

/// The 5-tuples a capture carries only inside MPLS or PPPoE (never as plain
/// IP over Ethernet or another link).
pub fn encapsulated_only(pcap: &Path) -> BTreeSet<FiveTuple> {
    let (mut inside, mut plain) = (BTreeSet::new(), BTreeSet::new());
    for (linktype, _, data) in frames(pcap) {
        let p = peek(linktype, &data);
        if let Some(t) = p.ip {
            if p.encapsulated {
                inside.insert(t);
            } else {
                plain.insert(t);
            }
        }
    }
    inside.difference(&plain).copied().collect()
}

/// Copies a classic pcap to `dst` with every gap between consecutive frames
/// longer than `max_gap_ns` shortened to `max_gap_ns` (order, bytes and
/// shorter gaps unchanged; a backward step is kept as it is). For captures
/// merged from recordings years apart: a faithful replay covers every window
/// in between (one NODATA record per ENI and window), which a test that is
/// about packet counts does not need.
pub fn retime(src: &Path, dst: &Path, max_gap_ns: u64) {
    let mut b = std::fs::read(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    assert!(
        b.len() >= 24,
        "{}: too short for a pcap header",
        src.display()
    );
    let magic = [b[0], b[1], b[2], b[3]];
    let (le, unit) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, 1_000),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, 1),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, 1_000),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, 1),
        _ => panic!("{}: retime reads classic pcap only", src.display()),
    };
    let rd = |b: &[u8], at: usize| -> u64 {
        let w: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
        u64::from(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    };
    let wr = |b: &mut [u8], at: usize, v: u64| {
        let v = u32::try_from(v).expect("timestamp fits the pcap field");
        b[at..at + 4].copy_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
    };
    let (mut at, mut prev_old, mut prev_new) = (24, None::<u64>, 0u64);
    while at + 16 <= b.len() {
        let old = rd(&b, at) * 1_000_000_000 + rd(&b, at + 4) * unit;
        let new = match prev_old {
            None => old,
            Some(p) if old > p => prev_new + (old - p).min(max_gap_ns),
            Some(p) => prev_new.saturating_sub(p - old),
        };
        wr(&mut b, at, new / 1_000_000_000);
        wr(&mut b, at + 4, new % 1_000_000_000 / unit);
        (prev_old, prev_new) = (Some(old), new);
        at += 16 + usize::try_from(rd(&b, at + 8)).expect("caplen");
    }
    std::fs::write(dst, b).unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
}

// ---------------------------------------------------------------------------
// Configurations

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One ENI in [`VPC`] / [`VSWITCH`], with no security group (accept all).
pub fn eni_json(eni_id: &str, mac: &str, ips: &[IpAddr]) -> Value {
    json!({
        "eni_id": eni_id, "mac": mac, "ips": ips,
        "vm_id": format!("i-{eni_id}"), "instance_type": "ecs.g7.large",
        "vswitch_id": VSWITCH, "vpc_id": VPC, "account_id": ACCOUNT, "port": null,
    })
}

/// A flow log on the VPC.
pub fn vpc_flow_log(id: &str, traffic_type: &str, interval: u64, store: &str) -> Value {
    json!({
        "flow_log_id": id, "account_id": ACCOUNT,
        "resource_type": "VPC", "resource_id": VPC,
        "traffic_type": traffic_type, "aggregation_interval": interval,
        "project_name": PROJECT, "log_store_name": store, "status": "Active",
    })
}

/// The configuration the testdata README asks for: every sender an ENI
/// (`eni-m<i>` by MAC, `eni-i<i>` by address, with a made-up MAC), all in one
/// VPC and vSwitch, no security groups or ACLs (everything ACCEPT), one VPC
/// flow log [`FLOW_LOG`] with traffic type `All` and a 600 s interval.
pub fn config_for(s: &Senders) -> Value {
    let mut enis = Vec::new();
    for (i, mac) in s.macs.iter().enumerate() {
        enis.push(eni_json(&format!("eni-m{i}"), &mac_str(mac), &[]));
    }
    let mut n: u32 = 0;
    for (i, ip) in s.ips.iter().enumerate() {
        let mac = loop {
            let [_, _, hi, lo] = n.to_be_bytes();
            n += 1;
            let m = [0x02, 0xfe, 0, 0, hi, lo];
            if !s.macs.contains(&m) {
                break m;
            }
        };
        enis.push(eni_json(&format!("eni-i{i}"), &mac_str(&mac), &[*ip]));
    }
    json!({
        "host": HOST,
        "enis": enis,
        "vswitches": [ { "vswitch_id": VSWITCH, "vpc_id": VPC } ],
        "security_groups": [],
        "network_acls": [],
        "flow_logs": [ vpc_flow_log(FLOW_LOG, "All", 600, LOG_STORE) ],
    })
}

// ---------------------------------------------------------------------------
// Running flowlogd

/// One finished `flowlogd` run.
#[derive(Debug)]
pub struct Run {
    /// Exit status (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The `--json` summary: the last line of stdout, parsed.
    pub fn summary(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("flowlogd printed no summary; {self}"));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the summary is not JSON ({e}): {line}; {self}"))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `flowlogd` with these arguments.
pub fn run_flowlogd<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(flowlogd())
        .args(args)
        .env("FLOWLOGD_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", flowlogd().display()));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `flowlogd replay --config C --pcap P --out O --quiet --json EXTRA…`.
pub fn replay(config: &Path, pcap: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("replay"),
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--pcap"),
        pcap.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--quiet"),
        OsStr::new("--json"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    run_flowlogd(args)
}

/// Writes a configuration to `dir/config.json` and returns its path.
pub fn write_config(dir: &Path, config: &Value) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(config).expect("serialise config"),
    )
    .expect("write config");
    path
}

/// A successful replay and what it wrote.
#[derive(Debug)]
pub struct Replayed {
    /// Holds the configuration and the log store.
    pub dir: tempfile::TempDir,
    /// The log store root (`--out`).
    pub out: PathBuf,
    /// The run.
    pub run: Run,
    /// The `--json` summary.
    pub summary: Value,
    /// Every record of the store, all flow logs, in file order.
    pub records: Vec<Value>,
}

/// Replays `pcap` with `config` into a fresh folder, asserts that it
/// succeeded with counters that add up, reads the store back (JSON Lines,
/// plain or zstd) and checks it with [`check_store`].
pub fn replay_ok(config: &Value, pcap: &Path, extra: &[&str]) -> Replayed {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = write_config(dir.path(), config);
    let out = dir.path().join("out");
    let run = replay(&cfg, pcap, &out, extra);
    assert_eq!(
        run.code,
        Some(0),
        "replay of {} failed: {run}",
        pcap.display()
    );
    let summary = run.summary();
    check_counters(&summary);
    assert_eq!(
        summary["errors"],
        json!([]),
        "replay of {} reported errors",
        pcap.display()
    );
    for fl in summary["flow_logs"].as_array().expect("flow_logs") {
        assert!(
            fl["error"].is_null(),
            "flow log error in replay of {}: {fl}",
            pcap.display()
        );
    }
    let files = read_store(&out);
    check_store(&files, config);
    let records: Vec<Value> = files.iter().flat_map(|f| f.records.clone()).collect();
    if files
        .iter()
        .all(|f| f.rel.to_string_lossy().contains(".jsonl"))
    {
        check_flow_log_counts(&summary, &records);
    }
    Replayed {
        dir,
        out,
        run,
        summary,
        records,
    }
}

/// Integer field of a summary or record.
pub fn int(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an unsigned integer in {v}"))
}

/// Asserts that the summary's counters add up:
/// `read == logged + malformed + unmatched + not_ip`.
pub fn check_counters(s: &Value) {
    let (read, logged, malformed, unmatched, not_ip) = (
        int(s, "read"),
        int(s, "logged"),
        int(s, "malformed"),
        int(s, "unmatched"),
        int(s, "not_ip"),
    );
    assert_eq!(
        read,
        logged + malformed + unmatched + not_ip,
        "read != logged + malformed + unmatched + not_ip in {s}"
    );
    for key in ["observations", "rejected", "evictions", "skipped"] {
        int(s, key);
    }
}

/// Asserts that the summary's per-flow-log counts match the store:
/// `records == ok + nodata + skipdata`, each count equal to the records of
/// that status in the store, and no more windows with records than windows
/// delivered.
pub fn check_flow_log_counts(s: &Value, records: &[Value]) {
    for fl in s["flow_logs"].as_array().expect("flow_logs") {
        let id = fl["flow-log-id"].as_str().expect("flow-log-id");
        let mine: Vec<&Value> = records.iter().filter(|r| r["flow-log-id"] == id).collect();
        let count = |st: &str| mine.iter().filter(|r| r["log-status"] == st).count() as u64;
        assert_eq!(
            int(fl, "records"),
            int(fl, "ok") + int(fl, "nodata") + int(fl, "skipdata"),
            "{fl}"
        );
        assert_eq!(
            int(fl, "records"),
            mine.len() as u64,
            "records of {id}: {fl}"
        );
        assert_eq!(int(fl, "ok"), count("OK"), "OK records of {id}: {fl}");
        assert_eq!(
            int(fl, "nodata"),
            count("NODATA"),
            "NODATA records of {id}: {fl}"
        );
        assert_eq!(
            int(fl, "skipdata"),
            count("SKIPDATA"),
            "SKIPDATA records of {id}: {fl}"
        );
        let windows: BTreeSet<u64> = mine.iter().map(|r| int(r, "window-start")).collect();
        assert!(
            windows.len() as u64 <= int(fl, "windows"),
            "windows of {id}: {fl}"
        );
    }
}

// ---------------------------------------------------------------------------
// Reading the log store

/// One file of the local log store, decoded.
#[derive(Clone, Debug)]
pub struct StoreFile {
    /// Path relative to the store root.
    pub rel: PathBuf,
    /// Decoded content (zstd undone).
    pub text: String,
    /// The records, when the file is JSON Lines (empty for the text form).
    pub records: Vec<Value>,
}

/// Every file under `root`, recursively, sorted (none if `root` is missing).
pub fn list_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// Reads every file of a local log store: `.jsonl` and `.txt`, each
/// optionally `.zst`. Any other file (a leftover temporary file, say) fails.
pub fn read_store(root: &Path) -> Vec<StoreFile> {
    list_files(root)
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let name = rel.file_name().and_then(OsStr::to_str).expect("file name");
            assert!(
                !name.starts_with('.'),
                "a temporary file was left in the log store: {}",
                rel.display()
            );
            let raw = std::fs::read(&path).expect("read store file");
            let (bytes, name) = match name.strip_suffix(".zst") {
                Some(inner) => (
                    zstd::stream::decode_all(&raw[..])
                        .unwrap_or_else(|e| panic!("{} is not a zstd stream: {e}", rel.display())),
                    inner,
                ),
                None => (raw, name),
            };
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|_| panic!("{} is not UTF-8", rel.display()));
            let records = if name.ends_with(".jsonl") {
                text.lines()
                    .map(|l| {
                        serde_json::from_str(l).unwrap_or_else(|e| {
                            panic!("{}: a line is not JSON ({e}): {l}", rel.display())
                        })
                    })
                    .collect()
            } else if name.ends_with(".txt") {
                Vec::new()
            } else {
                panic!("unexpected file in the log store: {}", rel.display())
            };
            StoreFile { rel, text, records }
        })
        .collect()
}

/// UTC `(year, month, day, hour)` of Unix second `secs`.
pub fn civil(secs: u64) -> (u64, u64, u64, u64) {
    let days = secs / 86_400;
    let hour = secs % 86_400 / 3_600;
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d, hour)
}

/// The identity of a record within its flow log and window (RECORDS.md "The
/// key", plus the log status so that status records have one too).
pub fn record_key(r: &Value) -> String {
    [
        "flow-log-id",
        "window-start",
        "log-status",
        "eni-id",
        "direction",
        "action",
        "srcaddr",
        "dstaddr",
        "protocol",
        "srcport",
        "dstport",
    ]
    .iter()
    .map(|k| r[*k].to_string())
    .collect::<Vec<_>>()
    .join(" ")
}

/// Checks what RECORDS.md and CONFIG.md say of any log store written for
/// `config`:
/// - files are `<project>/<store>/dt=YYYY-MM-DD/hour=HH/<host>_<flow log>_<window start>.<ext>`
///   with the date and hour of the window start, for a flow log of `config`
///   that names that project and store;
/// - every record of a file has that flow log id and window start, every key
///   of RECORDS.md, version 1, the ENI's identity from `config`;
/// - `OK` records: a 5-tuple, a direction, an action, packets and bytes above
///   0, `start <= end` inside the window, `tcp-flags` 0 unless TCP;
/// - `NODATA` / `SKIPDATA` records: null 5-tuple, direction and action,
///   `tcp-flags` 0, start/end the window bounds, NODATA with 0 packets/bytes;
/// - no key repeats within a window of a flow log.
pub fn check_store(files: &[StoreFile], config: &Value) {
    let flow_logs: BTreeMap<&str, &Value> = config["flow_logs"]
        .as_array()
        .expect("flow_logs")
        .iter()
        .map(|f| (f["flow_log_id"].as_str().expect("flow_log_id"), f))
        .collect();
    let enis: BTreeMap<&str, &Value> = config["enis"]
        .as_array()
        .expect("enis")
        .iter()
        .map(|e| (e["eni_id"].as_str().expect("eni_id"), e))
        .collect();
    let host = config["host"].as_str().expect("host");
    let mut seen = BTreeSet::new();
    for f in files {
        let parts: Vec<&str> = f
            .rel
            .iter()
            .map(|c| c.to_str().expect("UTF-8 path"))
            .collect();
        let [project, store, dt, hour, name] = parts[..] else {
            panic!("unexpected path in the log store: {}", f.rel.display())
        };
        let stem = name
            .strip_suffix(".zst")
            .unwrap_or(name)
            .rsplit_once('.')
            .map_or(name, |(s, _)| s);
        let (head, ws) = stem
            .rsplit_once('_')
            .unwrap_or_else(|| panic!("bad file name {name}"));
        let ws: u64 = ws
            .parse()
            .unwrap_or_else(|_| panic!("bad window start in {name}"));
        let fl_id = head
            .strip_prefix(&format!("{host}_"))
            .unwrap_or_else(|| panic!("{name} does not start with the host {host}_"));
        let fl = flow_logs
            .get(fl_id)
            .unwrap_or_else(|| panic!("{name}: no flow log {fl_id} in the configuration"));
        assert_eq!(
            (project, store),
            (
                fl["project_name"].as_str().expect("project"),
                fl["log_store_name"].as_str().expect("store")
            ),
            "{}: flow log {fl_id} writes elsewhere",
            f.rel.display()
        );
        let interval = fl["aggregation_interval"].as_u64().unwrap_or(600);
        assert_eq!(ws % interval, 0, "{name}: window start not aligned");
        let (y, m, d, h) = civil(ws);
        assert_eq!(
            (dt, hour),
            (
                format!("dt={y:04}-{m:02}-{d:02}").as_str(),
                format!("hour={h:02}").as_str()
            ),
            "{}: partition of window {ws}",
            f.rel.display()
        );
        for r in &f.records {
            let ctx = || format!("{}: {r}", f.rel.display());
            for k in RECORD_KEYS {
                assert!(r.get(k).is_some(), "missing key {k}: {}", ctx());
            }
            assert_eq!(r["version"], json!(1), "{}", ctx());
            assert_eq!(r["flow-log-id"], json!(fl_id), "{}", ctx());
            assert_eq!(r["window-start"], json!(ws), "{}", ctx());
            let eni_id = r["eni-id"].as_str().expect("eni-id");
            let eni = enis
                .get(eni_id)
                .unwrap_or_else(|| panic!("unknown ENI: {}", ctx()));
            assert_eq!(r["account-id"], eni["account_id"], "{}", ctx());
            assert_eq!(r["vpc-id"], eni["vpc_id"], "{}", ctx());
            assert_eq!(r["vswitch-id"], eni["vswitch_id"], "{}", ctx());
            assert_eq!(
                r["vm-id"],
                eni.get("vm_id").cloned().unwrap_or(Value::Null),
                "{}",
                ctx()
            );
            let (start, end) = (int(r, "start"), int(r, "end"));
            let (packets, bytes) = (int(r, "packets"), int(r, "bytes"));
            let flags = int(r, "tcp-flags");
            match r["log-status"].as_str() {
                Some("OK") => {
                    for k in ["srcaddr", "dstaddr"] {
                        let a = r[k].as_str().unwrap_or_else(|| panic!("{k}: {}", ctx()));
                        let ip: IpAddr = a.parse().unwrap_or_else(|_| panic!("{k}: {}", ctx()));
                        assert_eq!(ip.to_string(), a, "{k} not in canonical form: {}", ctx());
                    }
                    for k in ["srcport", "dstport"] {
                        assert!(r[k].as_u64().is_some_and(|p| p <= 65_535), "{k}: {}", ctx());
                    }
                    let proto = r["protocol"].as_u64().unwrap_or(256);
                    assert!(proto <= 255, "protocol: {}", ctx());
                    assert!(
                        matches!(r["direction"].as_str(), Some("in" | "out")),
                        "direction: {}",
                        ctx()
                    );
                    assert!(
                        matches!(r["action"].as_str(), Some("ACCEPT" | "REJECT")),
                        "action: {}",
                        ctx()
                    );
                    assert!(packets > 0 && bytes > 0, "empty OK record: {}", ctx());
                    assert!(
                        ws <= start && start <= end && end < ws + interval,
                        "start/end outside the window: {}",
                        ctx()
                    );
                    assert!(flags <= 255, "tcp-flags: {}", ctx());
                    if proto != 6 {
                        assert_eq!(flags, 0, "tcp-flags of a non-TCP record: {}", ctx());
                    }
                }
                Some(status @ ("NODATA" | "SKIPDATA")) => {
                    for k in [
                        "srcaddr",
                        "dstaddr",
                        "srcport",
                        "dstport",
                        "protocol",
                        "direction",
                        "action",
                    ] {
                        assert!(r[k].is_null(), "{k} of a {status} record: {}", ctx());
                    }
                    assert_eq!(flags, 0, "{}", ctx());
                    assert_eq!((start, end), (ws, ws + interval - 1), "{}", ctx());
                    if status == "NODATA" {
                        assert_eq!((packets, bytes), (0, 0), "{}", ctx());
                    } else {
                        assert!(packets > 0, "SKIPDATA without packets: {}", ctx());
                    }
                }
                _ => panic!("log-status: {}", ctx()),
            }
            assert!(
                seen.insert(record_key(r)),
                "a record key repeats within a window: {}",
                ctx()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Comparing

/// Packets, bytes and OR of TCP flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets.
    pub packets: u64,
    /// IP bytes.
    pub bytes: u64,
    /// OR of the TCP flags.
    pub flags: u64,
}

/// The 5-tuple of an `OK` record.
pub fn tuple_of(r: &Value) -> FiveTuple {
    let addr = |k: &str| -> IpAddr {
        r[k].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {r}"))
    };
    let port = |k: &str| -> u16 {
        r[k].as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("{k} in {r}"))
    };
    FiveTuple {
        src: addr("srcaddr"),
        sport: port("srcport"),
        dst: addr("dstaddr"),
        dport: port("dstport"),
        proto: r["protocol"]
            .as_u64()
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or_else(|| panic!("protocol in {r}")),
    }
}

/// The `out` OK records of one flow log, summed per oriented 5-tuple over
/// ENIs and windows.
pub fn out_totals(records: &[Value], flow_log: &str) -> BTreeMap<FiveTuple, Totals> {
    totals(records, flow_log, "out")
}

/// The OK records of one flow log and direction (`in` or `out`), summed per
/// oriented 5-tuple over ENIs and windows.
pub fn totals(records: &[Value], flow_log: &str, direction: &str) -> BTreeMap<FiveTuple, Totals> {
    let mut m: BTreeMap<FiveTuple, Totals> = BTreeMap::new();
    for r in records {
        if r["flow-log-id"] != flow_log || r["log-status"] != "OK" || r["direction"] != direction {
            continue;
        }
        let t = m.entry(tuple_of(r)).or_default();
        t.packets += int(r, "packets");
        t.bytes += int(r, "bytes");
        t.flags |= int(r, "tcp-flags");
    }
    m
}

/// Records as sorted JSON strings: a canonical form to compare two stores.
pub fn canonical(records: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(Value::to_string).collect();
    v.sort();
    v
}

/// A tab-separated file with a header line, `#` comments skipped.
pub fn read_tsv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("{} has no header", path.display()))
        .split('\t')
        .collect();
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(
                cols.len(),
                header.len(),
                "{}: row with {} columns: {l}",
                path.display(),
                cols.len()
            );
            header
                .iter()
                .zip(cols)
                .map(|(h, c)| ((*h).to_owned(), c.to_owned()))
                .collect()
        })
        .collect()
}

/// The only file with this extension in `dir`.
pub fn only_file_with_ext(dir: &Path, ext: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(OsStr::to_str) == Some(ext))
        .collect();
    assert_eq!(found.len(), 1, "{}: want one .{ext} file", dir.display());
    found.remove(0)
}

/// The case folders (sorted names) under `testdata()/<suite>`.
pub fn case_names(suite: &str) -> Vec<String> {
    let dir = testdata().join(suite);
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// DPDK runs (flowlogd run, the C host)

/// The example configuration (`config/example.json`) without the ENIs'
/// `port` keys, written to `dir/host.json`: every ENI is then reached
/// through the uplink.
pub fn config_without_ports(dir: &Path) -> PathBuf {
    config_with_ports(dir, &[])
}

/// The example configuration with only the given ENIs on the given ports
/// (every other ENI through the uplink), written to `dir/host.json`.
pub fn config_with_ports(dir: &Path, ports: &[(&str, u16)]) -> PathBuf {
    let text = std::fs::read_to_string(workspace_root().join("config/example.json"))
        .expect("example configuration");
    let mut c: Value = serde_json::from_str(&text).expect("json");
    for e in c["enis"].as_array_mut().expect("enis") {
        let id = e["eni_id"].as_str().expect("eni_id").to_string();
        let o = e.as_object_mut().expect("eni");
        // An ENI without a port of its own is reached through the uplink.
        let port = ports
            .iter()
            .find(|(eni, _)| *eni == id)
            .map_or(Value::Null, |(_, p)| Value::from(*p));
        o.insert("port".into(), port);
    }
    let p = dir.join("host.json");
    std::fs::write(&p, serde_json::to_string_pretty(&c).expect("json")).expect("write config");
    p
}

/// An empty (header-only) capture at `dir/empty.pcap`, for a port that
/// only sends.
pub fn empty_capture(dir: &Path) -> PathBuf {
    let p = dir.join("empty.pcap");
    let w = flowlog::capture::PcapWriter::new(
        std::fs::File::create(&p).expect("create"),
        Default::default(),
    )
    .expect("pcap header");
    w.finish().expect("write");
    p
}

/// EAL arguments for a test run without hugepages: lcore list `lcores`, a
/// `--file-prefix` unique to this process, and the virtual devices `vdevs`.
pub fn eal_args(prefix: &str, lcores: &str, vdevs: &[String]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--no-huge",
        "--no-pci",
        "-m",
        "512",
        "-l",
        lcores,
        "--no-telemetry",
        "--log-level",
        "lib.eal:error",
        "--file-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("{prefix}-{}", std::process::id()));
    for v in vdevs {
        a.push(format!("--vdev={v}"));
    }
    a
}

/// Every file of a log store as (relative path, decoded text), sorted: two
/// stores are equal when these are.
pub fn store_texts(root: &Path) -> Vec<(PathBuf, String)> {
    let mut v: Vec<(PathBuf, String)> = read_store(root)
        .into_iter()
        .map(|f| (f.rel, f.text))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// The plugin ABI

/// The plugin's shared library, `<target>/<profile>/libflowlog.so` (next to
/// `flowlogd`), built from the current sources.
///
/// As [`flowlogd`]: the first time it is called in a process, it runs
/// `cargo build -p vswitch-plugin --lib` if the library is missing or older
/// than any source it is built from.
pub fn plugin_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let name = format!(
            "{}flowlog{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        build_if_stale(&name, &["--lib"])
    })
}

// ---------------------------------------------------------------------------
// The operator socket

/// A client of the operator socket.
pub struct OpClient {
    w: std::os::unix::net::UnixStream,
    r: std::io::BufReader<std::os::unix::net::UnixStream>,
    id: u64,
}

impl OpClient {
    /// Connects, waiting up to 30 s for the socket to appear.
    pub fn connect(path: &Path) -> OpClient {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(s) => {
                    let r = std::io::BufReader::new(s.try_clone().expect("clone"));
                    return OpClient { w: s, r, id: 0 };
                }
                Err(e) if std::time::Instant::now() > until => panic!("{}: {e}", path.display()),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    /// Sends one request and reads its reply.
    pub fn call(&mut self, cmd: &str, args: serde_json::Value) -> serde_json::Value {
        use std::io::{BufRead, Write};
        self.id += 1;
        let req = serde_json::json!({"v": 1, "id": self.id, "cmd": cmd, "args": args});
        writeln!(self.w, "{req}").expect("send");
        let mut line = String::new();
        self.r.read_line(&mut line).expect("reply");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["id"], serde_json::json!(self.id), "{v}");
        v
    }

    /// A change that must succeed: returns the first frame under it and
    /// the packet time it took effect at.
    pub fn change(&mut self, cmd: &str, args: serde_json::Value) -> (u64, u64) {
        let v = self.call(cmd, args);
        assert_eq!(v["ok"], serde_json::json!(true), "{cmd}: {v}");
        let r = &v["result"];
        (
            r["applied_at_frame"].as_u64().expect("frame"),
            r["applied_at"].as_u64().expect("time"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0)); // leap day
        assert_eq!(civil(1_329_843_161), (2012, 2, 21, 16));
        assert_eq!(civil(4_102_444_799), (2099, 12, 31, 23));
    }

    fn eth_ipv4_udp(src_mac: u8, vlan: bool) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0xaa, src_mac, 0, 0, 0, 0, 0xbb];
        if vlan {
            f.extend([0x81, 0x00, 0x00, 0x07]);
        }
        f.extend([0x08, 0x00]);
        f.extend([
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend([0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn peek_reads_macs_vlans_mpls_and_ports() {
        let want = FiveTuple {
            src: "10.0.0.1".parse().unwrap(),
            sport: 12345,
            dst: "10.0.0.2".parse().unwrap(),
            dport: 53,
            proto: 17,
        };
        let p = peek(1, &eth_ipv4_udp(0x02, true));
        assert_eq!(p.src_mac, Some([0x02, 0, 0, 0, 0, 0xbb]));
        assert_eq!(p.ip, Some(want));
        assert!(!p.encapsulated);

        let mut mpls = eth_ipv4_udp(0x02, false);
        mpls.splice(12..14, [0x88, 0x47, 0x00, 0x01, 0x01, 0x40]);
        let p = peek(1, &mpls);
        assert!(p.encapsulated);
        assert_eq!(p.ip, Some(want));

        // Raw IP, and a non-first fragment (no ports).
        let mut raw = eth_ipv4_udp(0x02, false)[14..].to_vec();
        assert_eq!(peek(101, &raw).ip, Some(want));
        raw[7] = 1;
        let frag = peek(101, &raw).ip.unwrap();
        assert_eq!((frag.sport, frag.dport), (0, 0));

        // ICMPv6 echo request: dstport 128*256.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
        v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend([128, 0, 0, 0, 0, 0, 0, 0]);
        let t = peek(229, &v6).ip.unwrap();
        assert_eq!((t.proto, t.sport, t.dport), (58, 0, 128 * 256));
    }

    #[test]
    fn retime_shortens_long_gaps_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pcap.extend([0, 0, 4, 0, 1, 0, 0, 0]);
        let frame = eth_ipv4_udp(0x02, false);
        for (sec, usec) in [(1_000u32, 5u32), (1_000, 7), (900_000, 0), (900_002, 1)] {
            pcap.extend(sec.to_le_bytes());
            pcap.extend(usec.to_le_bytes());
            pcap.extend((frame.len() as u32).to_le_bytes());
            pcap.extend((frame.len() as u32).to_le_bytes());
            pcap.extend(&frame);
        }
        let (a, b) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
        std::fs::write(&a, &pcap).unwrap();
        retime(&a, &b, 1_000_000_000);
        let ts: Vec<u64> = frames(&b).into_iter().map(|(_, t, _)| t).collect();
        let s = 1_000_000_000u64;
        assert_eq!(
            ts,
            [
                1_000 * s + 5_000,
                1_000 * s + 7_000,
                1_001 * s + 7_000,
                1_002 * s + 7_000
            ]
        );
        let (x, y) = (frames(&a), frames(&b));
        assert!(x.iter().zip(&y).all(|(p, q)| p.2 == q.2 && p.0 == q.0));
    }
}
