//! The local log store, the default sink: one file per flow log per window,
//! under `<root>/<project_name>/<log_store_name>/dt=YYYY-MM-DD/hour=HH/`
//! (UTC date and hour of the window start), named
//! `<host>_<flow_log_id>_<window_start>.jsonl` (`.txt` for the text form,
//! then `.zst` when compressed; `.parquet` for Parquet, never `.zst`: its
//! column chunks are compressed inside the file, Snappy by default and zstd
//! with [`Compress::Zstd`], see [`crate::parquet`]).
//!
//! A file appears whole or not at all: it is written as `.<name>.tmp` in the
//! same folder, synced, renamed, and the folder synced. Readers skip names
//! that start with a dot. Writing the same window again replaces the file.

use crate::config::{LogStoreCompress, LogStoreFormat};
use crate::record::{Action, Direction, LogStatus, Record};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

/// zstd level: fast, and far smaller than plain JSON already.
const ZSTD_LEVEL: i32 = 3;

/// File format of the store's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreFormat {
    /// JSON Lines via [`Record::write_json`] (`.jsonl`).
    Jsonl,
    /// The text form via [`Record::write_text`] (`.txt`).
    Text,
    /// Apache Parquet via [`crate::parquet::write_records_as`] (`.parquet`):
    /// column chunks compressed inside the file (Snappy, or zstd with
    /// [`Compress::Zstd`]), so the name never gets `.zst`.
    Parquet,
}

impl StoreFormat {
    /// File name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            StoreFormat::Jsonl => "jsonl",
            StoreFormat::Text => "txt",
            StoreFormat::Parquet => crate::parquet::EXTENSION,
        }
    }
}

impl TryFrom<LogStoreFormat> for StoreFormat {
    type Error = io::Error;
    fn try_from(f: LogStoreFormat) -> io::Result<Self> {
        match f {
            LogStoreFormat::Jsonl => Ok(StoreFormat::Jsonl),
            LogStoreFormat::Text => Ok(StoreFormat::Text),
            LogStoreFormat::Parquet => Ok(StoreFormat::Parquet),
        }
    }
}

/// Compression of the store's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compress {
    /// Plain files.
    None,
    /// One zstd frame per file (`.zst`).
    Zstd,
}

impl From<LogStoreCompress> for Compress {
    fn from(c: LogStoreCompress) -> Self {
        match c {
            LogStoreCompress::None => Compress::None,
            LogStoreCompress::Zstd => Compress::Zstd,
        }
    }
}

/// Why `name` cannot be one folder directly under another (a project or log
/// store name), if it cannot: it would be empty or escape its parent.
pub fn folder_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." {
        Some("names no folder of its own")
    } else if name == ".." {
        Some("would escape its parent folder")
    } else if name.contains('/') {
        Some("contains \"/\"")
    } else if name.contains('\0') {
        Some("contains a NUL character")
    } else {
        None
    }
}

/// Why `part` (a host name or flow log id) cannot be part of a file name.
pub(crate) fn file_part_problem(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        Some("is empty")
    } else if part.contains('/') {
        Some("contains \"/\"")
    } else if part.contains('\0') {
        Some("contains a NUL character")
    } else {
        None
    }
}

fn invalid(what: &str, name: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "local log store: {what} {name:?} {why}; it must be a plain name inside the store root"
        ),
    )
}

/// The civil UTC date and hour of Unix second `secs`: `(year, month, day,
/// hour)` (Howard Hinnant's days-to-civil algorithm).
pub fn civil_utc(secs: u64) -> (i64, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let hour = ((secs % 86_400) / 3_600) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, hour)
}

/// The partition folders of a window starting at `window_start_unix`:
/// `dt=YYYY-MM-DD/hour=HH` (UTC).
pub fn partition(window_start_unix: u64) -> String {
    let (y, m, d, h) = civil_utc(window_start_unix);
    format!("dt={y:04}-{m:02}-{d:02}/hour={h:02}")
}

/// The local log store under one root folder.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
    format: StoreFormat,
    compress: Compress,
    host: String,
}

impl LocalStore {
    /// A store under `root` (created on first write) whose files start with
    /// `host`.
    pub fn new(
        root: impl Into<PathBuf>,
        format: StoreFormat,
        compress: Compress,
        host: &str,
    ) -> Self {
        LocalStore {
            root: root.into(),
            format,
            compress,
            host: host.to_owned(),
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one log store: `<root>/<project_name>/<log_store_name>`.
    pub fn log_store_dir(&self, project_name: &str, log_store_name: &str) -> io::Result<PathBuf> {
        if let Some(why) = folder_name_problem(project_name) {
            return Err(invalid("project name", project_name, why));
        }
        if let Some(why) = folder_name_problem(log_store_name) {
            return Err(invalid("log store name", log_store_name, why));
        }
        Ok(self.root.join(project_name).join(log_store_name))
    }

    /// The file name of one flow log's window.
    pub fn file_name(&self, flow_log_id: &str, window_start_unix: u64) -> io::Result<String> {
        if let Some(why) = file_part_problem(&self.host) {
            return Err(invalid("host", &self.host, why));
        }
        if let Some(why) = file_part_problem(flow_log_id) {
            return Err(invalid("flow log id", flow_log_id, why));
        }
        let zst = match (self.format, self.compress) {
            (StoreFormat::Parquet, _) | (_, Compress::None) => "",
            (_, Compress::Zstd) => ".zst",
        };
        Ok(format!(
            "{}_{flow_log_id}_{window_start_unix}.{}{zst}",
            self.host,
            self.format.extension()
        ))
    }

    /// Writes the records of one flow log's one window as one file, atomically
    /// and durably, and returns its path. Writing the same window again
    /// replaces the file.
    pub fn write_window(
        &self,
        project_name: &str,
        log_store_name: &str,
        flow_log_id: &str,
        window_start_unix: u64,
        records: &[Record],
    ) -> io::Result<PathBuf> {
        let store_dir = self.log_store_dir(project_name, log_store_name)?;
        let name = self.file_name(flow_log_id, window_start_unix)?;

        let mut body = Vec::new();
        match self.format {
            StoreFormat::Jsonl => {
                body.reserve(records.len() * 320);
                records.iter().for_each(|r| r.write_json(&mut body));
            }
            StoreFormat::Text => {
                let mut text = String::with_capacity(records.len() * 160);
                records.iter().for_each(|r| r.write_text(&mut text));
                body = text.into_bytes();
            }
            StoreFormat::Parquet => {
                let codec = match self.compress {
                    Compress::Zstd => crate::parquet::Codec::Zstd,
                    Compress::None => crate::parquet::Codec::Snappy,
                };
                body = crate::parquet::write_records_as(records, codec).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("local log store: encoding {name} as Parquet: {e}"),
                    )
                })?;
            }
        }
        if self.compress == Compress::Zstd && self.format != StoreFormat::Parquet {
            body = zstd::stream::encode_all(&body[..], ZSTD_LEVEL)?;
        }

        let dir = make_dirs(&self.root, &store_dir, &partition(window_start_unix))?;
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io::Error::new(
                e.kind(),
                format!("local log store: writing {}: {e}", path.display()),
            ));
        }
        Ok(path)
    }
}

/// Creates `store_dir/partition` (and the root), syncing the parent of every
/// folder it creates so that the new file's path survives a crash too.
fn make_dirs(root: &Path, store_dir: &Path, partition: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(root)?;
    let rel = store_dir
        .strip_prefix(root)
        .expect("store dir is under root");
    let mut dir = root.to_path_buf();
    for part in rel.iter().chain(Path::new(partition).iter()) {
        let parent = dir.clone();
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => sync_dir(&parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads every record under `dir` (a log store folder, or any folder above
/// or below one), recursively, in file name order: `.jsonl` and `.txt`
/// files, plain or `.zst`, and `.parquet` files. Names starting with a dot (temporary files) and
/// other files are skipped (folders are all walked). The text form has no `window-start`; it comes
/// from the file name.
pub fn read_dir_records(dir: &Path) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    read_into(dir, &mut out)?;
    Ok(out)
}

fn read_into(dir: &Path, out: &mut Vec<Record>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            read_into(&path, out)?;
            continue;
        }
        if name.starts_with('.') {
            continue;
        }
        if name
            .strip_suffix(crate::parquet::EXTENSION)
            .is_some_and(|s| s.ends_with('.'))
        {
            out.extend(crate::parquet::read_records(&path)?);
            continue;
        }
        let (stem, zst) = match name.strip_suffix(".zst") {
            Some(s) => (s, true),
            None => (name, false),
        };
        let text_form = if stem.ends_with(".jsonl") {
            false
        } else if stem.ends_with(".txt") {
            true
        } else {
            continue;
        };
        let mut raw = Vec::new();
        File::open(&path)?.read_to_end(&mut raw)?;
        if zst {
            raw = zstd::stream::decode_all(&raw[..])
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        let text = String::from_utf8(raw).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        let window_start = if text_form {
            Some(window_start_of(stem, &path)?)
        } else {
            None
        };
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec = match &window_start {
                None => serde_json::from_str(line).map_err(|e| e.to_string()),
                Some((fl, w)) => parse_text_line(line, fl, *w),
            };
            out.push(rec.map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), n + 1),
                )
            })?);
        }
    }
    Ok(())
}

/// The `<window_start>` of `<host>_<flow_log_id>_<window_start>.txt`.
/// The flow log id and window start of a text file, from its name
/// `<host>_<flow_log_id>_<window_start>.txt` (a host name with `_` in it
/// would shift the split; the JSON Lines form carries both in each record).
fn window_start_of(stem: &str, path: &Path) -> io::Result<(String, u64)> {
    stem.strip_suffix(".txt")
        .and_then(|s| s.rsplit_once('_'))
        .and_then(|(rest, w)| {
            let fl = rest.split_once('_').map_or(rest, |(_, fl)| fl);
            Some((fl.to_owned(), w.parse().ok()?))
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: the name does not end in _<window_start>.txt",
                    path.display()
                ),
            )
        })
}

/// Parses one line of [`Record::write_text`]'s form.
/// The text form has no `flow-log-id` or `window-start`: they come from the
/// file name.
pub fn parse_text_line(line: &str, flow_log_id: &str, window_start: u64) -> Result<Record, String> {
    let cols: Vec<&str> = line.split(' ').collect();
    if cols.len() != 19 {
        return Err(format!("{} columns, the text form has 19", cols.len()));
    }
    fn num<T: std::str::FromStr>(c: &str, what: &str) -> Result<T, String> {
        c.parse()
            .map_err(|_| format!("{what} {c:?} is not a number"))
    }
    fn opt<T: std::str::FromStr>(c: &str, what: &str) -> Result<Option<T>, String> {
        if c == "-" {
            Ok(None)
        } else {
            c.parse()
                .map(Some)
                .map_err(|_| format!("{what} {c:?} does not parse"))
        }
    }
    let direction = match cols[11] {
        "-" => None,
        "in" => Some(Direction::In),
        "out" => Some(Direction::Out),
        c => return Err(format!("direction {c:?} is not in or out")),
    };
    let log_status = match cols[17] {
        "OK" => LogStatus::Ok,
        "NODATA" => LogStatus::NoData,
        "SKIPDATA" => LogStatus::SkipData,
        c => return Err(format!("log-status {c:?} is not OK, NODATA or SKIPDATA")),
    };
    let action = match cols[18] {
        "-" => None,
        "ACCEPT" => Some(Action::Accept),
        "REJECT" => Some(Action::Reject),
        c => return Err(format!("action {c:?} is not ACCEPT or REJECT")),
    };
    Ok(Record {
        version: num(cols[0], "version")?,
        account_id: cols[1].to_owned(),
        vpc_id: cols[2].to_owned(),
        vswitch_id: cols[3].to_owned(),
        vm_id: (cols[4] != "-").then(|| cols[4].to_owned()),
        eni_id: cols[5].to_owned(),
        srcaddr: opt(cols[6], "srcaddr")?,
        dstaddr: opt(cols[7], "dstaddr")?,
        srcport: opt(cols[8], "srcport")?,
        dstport: opt(cols[9], "dstport")?,
        protocol: opt(cols[10], "protocol")?,
        direction,
        packets: num(cols[12], "packets")?,
        bytes: num(cols[13], "bytes")?,
        start: num(cols[14], "start")?,
        end: num(cols[15], "end")?,
        tcp_flags: num(cols[16], "tcp-flags")?,
        log_status,
        action,
        flow_log_id: flow_log_id.to_owned(),
        window_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::VERSION;

    fn ok_record(i: u16) -> Record {
        Record {
            version: VERSION,
            account_id: "1234567890".into(),
            vpc_id: "vpc-1".into(),
            vswitch_id: "vsw-1".into(),
            vm_id: Some("i-a1".into()),
            eni_id: "eni-a1".into(),
            srcaddr: Some("10.0.1.5".parse().unwrap()),
            dstaddr: Some("fd00::1:5".parse().unwrap()),
            srcport: Some(40_000 + i),
            dstport: Some(443),
            protocol: Some(6),
            direction: Some(Direction::Out),
            packets: 3,
            bytes: 180,
            start: 1_764_248_401,
            end: 1_764_248_460,
            tcp_flags: 0x12,
            log_status: LogStatus::Ok,
            action: Some(Action::Accept),
            flow_log_id: "fl-1".into(),
            window_start: 1_764_248_400,
        }
    }

    fn nodata_record() -> Record {
        Record {
            vm_id: None,
            srcaddr: None,
            dstaddr: None,
            srcport: None,
            dstport: None,
            protocol: None,
            direction: None,
            packets: 0,
            bytes: 0,
            start: 1_764_248_400,
            end: 1_764_248_999,
            tcp_flags: 0,
            log_status: LogStatus::NoData,
            action: None,
            ..ok_record(0)
        }
    }

    fn records() -> Vec<Record> {
        vec![ok_record(1), ok_record(2), nodata_record()]
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_utc(0), (1970, 1, 1, 0));
        assert_eq!(civil_utc(1_764_248_400), (2025, 11, 27, 13));
        assert_eq!(civil_utc(951_782_400), (2000, 2, 29, 0)); // leap day of a century year
        assert_eq!(civil_utc(4_107_542_399), (2100, 2, 28, 23)); // 2100 is not leap
        assert_eq!(civil_utc(1_735_689_599), (2024, 12, 31, 23));
        assert_eq!(partition(1_764_248_400), "dt=2025-11-27/hour=13");
        assert_eq!(partition(1_764_248_400 + 3_599), "dt=2025-11-27/hour=13");
        assert_eq!(partition(1_764_248_400 + 3_600), "dt=2025-11-27/hour=14");
    }

    #[test]
    fn jsonl_round_trip_and_path() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path(), StoreFormat::Jsonl, Compress::None, "hv-0001");
        let path = store
            .write_window("net-audit", "vpc1-flows", "fl-1", 1_764_248_400, &records())
            .unwrap();
        assert_eq!(
            path,
            root.path()
                .join("net-audit/vpc1-flows/dt=2025-11-27/hour=13/hv-0001_fl-1_1764248400.jsonl")
        );
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains("\"vm-id\":null"));
        let back = read_dir_records(&root.path().join("net-audit/vpc1-flows")).unwrap();
        assert_eq!(back, records());
    }

    #[test]
    fn zstd_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path(), StoreFormat::Jsonl, Compress::Zstd, "hv-0001");
        let path = store
            .write_window("p", "s", "fl-1", 1_764_248_400, &records())
            .unwrap();
        assert!(path
            .to_str()
            .unwrap()
            .ends_with("hv-0001_fl-1_1764248400.jsonl.zst"));
        let raw = fs::read(&path).unwrap();
        assert_eq!(&raw[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
        assert_eq!(read_dir_records(root.path()).unwrap(), records());
    }

    #[test]
    fn text_round_trip_and_columns() {
        let root = tempfile::tempdir().unwrap();
        for compress in [Compress::None, Compress::Zstd] {
            let store = LocalStore::new(root.path(), StoreFormat::Text, compress, "hv-0001");
            let dir = if compress == Compress::None {
                "plain"
            } else {
                "zst"
            };
            let path = store
                .write_window("p", dir, "fl-1", 1_764_248_400, &records())
                .unwrap();
            let ext = if compress == Compress::None {
                ".txt"
            } else {
                ".txt.zst"
            };
            assert!(path.to_str().unwrap().ends_with(ext), "{path:?}");
            assert_eq!(
                read_dir_records(&root.path().join("p").join(dir)).unwrap(),
                records()
            );
        }
        let text = fs::read_to_string(
            root.path()
                .join("p/plain/dt=2025-11-27/hour=13/hv-0001_fl-1_1764248400.txt"),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "1 1234567890 vpc-1 vsw-1 i-a1 eni-a1 10.0.1.5 fd00::1:5 40001 443 6 out 3 180 \
             1764248401 1764248460 18 OK ACCEPT"
        );
        assert_eq!(
            lines[2],
            "1 1234567890 vpc-1 vsw-1 - eni-a1 - - - - - - 0 0 1764248400 1764248999 0 NODATA -"
        );
    }

    #[test]
    fn parquet_store_round_trip_and_path() {
        let root = tempfile::tempdir().unwrap();
        // No `.zst` either way: Snappy inside, or zstd with log_store_compress.
        for (dir, compress) in [("plain", Compress::None), ("zst", Compress::Zstd)] {
            let store = LocalStore::new(root.path(), StoreFormat::Parquet, compress, "hv-0001");
            let path = store
                .write_window("p", dir, "fl-1", 1_764_248_400, &records())
                .unwrap();
            assert_eq!(
                path,
                root.path().join(format!(
                    "p/{dir}/dt=2025-11-27/hour=13/hv-0001_fl-1_1764248400.parquet"
                ))
            );
            assert_eq!(&fs::read(&path).unwrap()[..4], b"PAR1");
            assert_eq!(
                read_dir_records(&root.path().join("p").join(dir)).unwrap(),
                records()
            );
        }
        // An empty window is a valid file with no rows; rewriting replaces.
        let store = LocalStore::new(root.path(), StoreFormat::Parquet, Compress::None, "hv-0001");
        store
            .write_window("p", "plain", "fl-1", 1_764_248_400, &[])
            .unwrap();
        assert_eq!(
            read_dir_records(&root.path().join("p/plain")).unwrap(),
            Vec::<Record>::new()
        );
        // Formats mixed in one store are all read, in file name order.
        let jsonl = LocalStore::new(root.path(), StoreFormat::Jsonl, Compress::None, "hv-0001");
        jsonl
            .write_window("p", "plain", "fl-0", 1_764_248_400, &records()[..1])
            .unwrap();
        store
            .write_window("p", "plain", "fl-2", 1_764_248_400, &records()[1..])
            .unwrap();
        assert_eq!(
            read_dir_records(&root.path().join("p/plain")).unwrap(),
            records()
        );
        let files = files_under(root.path());
        assert!(files
            .iter()
            .all(|f| !f.file_name().unwrap().to_str().unwrap().starts_with('.')));
    }

    #[test]
    fn no_temp_file_left_and_rewrite_replaces() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path(), StoreFormat::Jsonl, Compress::None, "hv-0001");
        store
            .write_window("p", "s", "fl-1", 1_764_248_400, &records())
            .unwrap();
        let path = store
            .write_window("p", "s", "fl-1", 1_764_248_400, &records()[..1])
            .unwrap();
        store
            .write_window("p", "s", "fl-2", 1_764_248_400, &[])
            .unwrap();
        let files = files_under(root.path());
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files
            .iter()
            .all(|f| !f.file_name().unwrap().to_str().unwrap().starts_with('.')));
        assert_eq!(fs::read_to_string(path).unwrap().lines().count(), 1);
        // A stale temp file from a crash is not read back.
        let part = root.path().join("p/s/dt=2025-11-27/hour=13");
        fs::write(part.join(".hv-0001_fl-3_1764248400.jsonl.tmp"), "garbage").unwrap();
        assert_eq!(read_dir_records(root.path()).unwrap().len(), 1);
    }

    #[test]
    fn escaping_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(
            root.path().join("out"),
            StoreFormat::Jsonl,
            Compress::None,
            "hv",
        );
        for (project, log_store, flow_log) in [
            ("..", "s", "fl-1"),
            (".", "s", "fl-1"),
            ("", "s", "fl-1"),
            ("a/b", "s", "fl-1"),
            ("/etc", "s", "fl-1"),
            ("p", "..", "fl-1"),
            ("p", "../../x", "fl-1"),
            ("p", "", "fl-1"),
            ("p", "s\0", "fl-1"),
            ("p", "s", "../fl"),
            ("p", "s", ""),
        ] {
            let err = store
                .write_window(project, log_store, flow_log, 0, &records())
                .unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{project:?} {log_store:?} {flow_log:?}"
            );
            assert!(err.to_string().contains("local log store:"), "{err}");
        }
        assert!(!root.path().join("out").exists(), "nothing was written");
        let bad_host = LocalStore::new(root.path(), StoreFormat::Jsonl, Compress::None, "a/b");
        assert!(bad_host.write_window("p", "s", "fl-1", 0, &[]).is_err());
        // Dots inside a name are fine.
        assert!(store.write_window("p..q", ".s", "fl.1", 0, &[]).is_ok());
    }

    #[test]
    fn config_enums_convert() {
        assert_eq!(
            StoreFormat::try_from(LogStoreFormat::Jsonl).unwrap(),
            StoreFormat::Jsonl
        );
        assert_eq!(
            StoreFormat::try_from(LogStoreFormat::Text).unwrap(),
            StoreFormat::Text
        );
        assert_eq!(
            StoreFormat::try_from(LogStoreFormat::Parquet).unwrap(),
            StoreFormat::Parquet
        );
        assert_eq!(Compress::from(LogStoreCompress::Zstd), Compress::Zstd);
        assert_eq!(Compress::from(LogStoreCompress::None), Compress::None);
    }

    #[test]
    fn bad_text_lines_are_errors() {
        assert!(parse_text_line("1 2 3", "fl", 0).is_err());
        let line = "1 a v s - e - - - - - - 0 0 0 599 0 MAYBE -";
        assert!(parse_text_line(line, "fl", 0)
            .unwrap_err()
            .contains("MAYBE"));
    }
}
