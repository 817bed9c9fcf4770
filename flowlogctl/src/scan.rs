//! Reading a local log store: which files a time range needs (partition
//! pruning by the `dt=`/`hour=` folders and the window start in file
//! names), and each file's records as [`Row`]s — JSON Lines (plain or
//! zstd) through the in-place reader of [`crate::json`], the text form
//! through the exporter's parser, Parquet through Arrow with only the
//! columns the query needs.

use crate::json::{parse_at, parse_line_slow, Parsed};
use crate::model::{Field, FieldSet, OwnedRow, Row, V};
use crate::time::days_from_civil;
use crate::UsageError;
use anyhow::{anyhow, Context as _, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use serde::Serialize;
use std::fs::{self, File};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The longest aggregation interval (CONFIG.md): a record's `start` is
/// within this many seconds after its window's start.
pub const MAX_INTERVAL: u64 = 600;

/// What a scan read and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScanStats {
    /// Files read.
    pub files_read: u64,
    /// Files not read: their partition or window lies outside the time range.
    pub files_skipped: u64,
    /// Records read from those files (before the filter).
    pub records_read: u64,
    /// Bytes of the files read (on disk).
    pub file_bytes: u64,
}

/// The kind of a store file, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `.jsonl`, `.jsonl.zst`.
    Jsonl {
        /// zstd-compressed.
        zst: bool,
    },
    /// `.txt`, `.txt.zst`.
    Text {
        /// zstd-compressed.
        zst: bool,
    },
    /// `.parquet`.
    Parquet,
}

/// The kind of a file name, if the store writes such files (names
/// starting with a dot are temporary files, never read).
pub fn file_kind(name: &str) -> Option<FileKind> {
    if name.starts_with('.') {
        return None;
    }
    let (stem, zst) = match name.strip_suffix(".zst") {
        Some(s) => (s, true),
        None => (name, false),
    };
    if stem.ends_with(".jsonl") {
        Some(FileKind::Jsonl { zst })
    } else if stem.ends_with(".txt") {
        Some(FileKind::Text { zst })
    } else if !zst && stem.ends_with(".parquet") {
        Some(FileKind::Parquet)
    } else {
        None
    }
}

/// `(flow_log_id, window_start)` from `<host>_<flow_log_id>_<window_start>.<ext>`.
pub fn name_parts(name: &str) -> Option<(&str, u64)> {
    // The last `_` ends the flow log id (a host may hold dots, an id `_`s
    // only after the host's end).
    let (rest, tail) = name.rsplit_once('_')?;
    let w = tail.split('.').next()?;
    let fl = rest.split_once('_').map_or(rest, |(_, fl)| fl);
    Some((fl, w.parse().ok()?))
}

/// The Unix second a partition folder starts at and how long it spans:
/// `dt=YYYY-MM-DD` (a day), `hour=HH` inside a day (an hour).
fn partition_span(name: &str, day: Option<u64>) -> Option<(u64, u64)> {
    if let Some(d) = name.strip_prefix("dt=") {
        let b = d.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let y: i64 = d[0..4].parse().ok()?;
        let m: u32 = d[5..7].parse().ok()?;
        let dd: u32 = d[8..10].parse().ok()?;
        let days = days_from_civil(y, m, dd);
        return Some((u64::try_from(days).ok()? * 86_400, 86_400));
    }
    if let Some(h) = name.strip_prefix("hour=") {
        let h: u64 = h.parse().ok()?;
        let day = day?;
        return (h < 24).then_some((day + h * 3_600, 3_600));
    }
    None
}

/// Whether windows starting in `[start, start+len)` can hold a record with
/// `start` in `[from, to)`.
fn overlaps(start: u64, len: u64, from: Option<u64>, to: Option<u64>) -> bool {
    if to.is_some_and(|t| start >= t) {
        return false;
    }
    // The latest record start in these windows is below start+len+MAX_INTERVAL.
    from.is_none_or(|f| start.saturating_add(len + MAX_INTERVAL) > f)
}

/// The store files under `dir` (any folder of a store: the root, a log
/// store, a partition) that can hold records with `start` in `[from, to)`,
/// in name order; the others are counted in `stats.files_skipped`.
///
/// A partition folder is skipped when none of its windows can hold such a
/// record, taking the longest interval (600 s). A file is skipped by its
/// window `[w, w + I)`, where `I` is the gap to the next window file of
/// the same host and flow log in the same log store (at most 600 s): the
/// next window starts at or after this one ends, whatever the interval
/// was, so the gap never cuts a window short.
pub fn list_files(
    dir: &Path,
    from: Option<u64>,
    to: Option<u64>,
    stats: &mut ScanStats,
) -> Result<Vec<PathBuf>> {
    let meta = fs::metadata(dir).map_err(|e| {
        anyhow!(UsageError(format!(
            "cannot read the log store {}: {e}; pass --store the folder given to `flowlogd --out` \
             (or any folder below it)",
            dir.display()
        )))
    })?;
    if meta.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = Vec::new();
    walk(dir, dir, None, from, to, stats, &mut found)?;
    if from.is_none() && to.is_none() {
        return Ok(found.into_iter().map(|f| f.path).collect());
    }
    // Each file's window length: the gap to the next window of its series.
    let mut series: std::collections::HashMap<(&Path, &str), Vec<(u64, usize)>> =
        std::collections::HashMap::new();
    for (i, f) in found.iter().enumerate() {
        if let Some(w) = f.window {
            series
                .entry((f.store.as_path(), f.series.as_str()))
                .or_default()
                .push((w, i));
        }
    }
    let mut len = vec![MAX_INTERVAL; found.len()];
    for v in series.values_mut() {
        v.sort_unstable();
        for pair in v.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            if gap > 0 {
                len[pair[0].1] = gap.min(MAX_INTERVAL);
            }
        }
    }
    let mut out = Vec::with_capacity(found.len());
    for (i, f) in found.into_iter().enumerate() {
        if let Some(w) = f.window {
            let after = to.is_some_and(|t| w >= t);
            let before = from.is_some_and(|fr| w.saturating_add(len[i]) <= fr);
            if after || before {
                stats.files_skipped += 1;
                continue;
            }
        }
        out.push(f.path);
    }
    Ok(out)
}

/// A store file found by [`walk`].
struct Found {
    path: PathBuf,
    /// The folder above its partition folders (its log store).
    store: PathBuf,
    /// `<host>_<flow_log_id>`: the files of one series.
    series: String,
    window: Option<u64>,
}

fn walk(
    dir: &Path,
    store: &Path,
    day: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
    stats: &mut ScanStats,
    out: &mut Vec<Found>,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading the folder {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading the folder {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = e.path();
        let ft = e
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if ft.is_dir() {
            let span = partition_span(name, day);
            if let Some((start, len)) = span {
                if !overlaps(start, len, from, to) {
                    stats.files_skipped += count_files(&path);
                    continue;
                }
            }
            let (day, store) = match span {
                Some((start, 86_400)) => (Some(start), store),
                Some(_) => (day, store),
                None => (day, path.as_path()),
            };
            walk(&path, store, day, from, to, stats, out)?;
        } else if file_kind(name).is_some() {
            let window = name_parts(name).map(|(_, w)| w);
            let series = name.rsplit_once('_').map_or(name, |(s, _)| s).to_owned();
            out.push(Found {
                path,
                store: store.to_path_buf(),
                series,
                window,
            });
        }
    }
    Ok(())
}

fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                u64::from(e.file_name().to_str().and_then(file_kind).is_some())
            }
        })
        .sum()
}

/// Reads the records of every file under `dir` whose window can hold a
/// record with `start` in `[from, to)`, handing each to `visit`. `needs`
/// names the fields `visit` reads; a Parquet file is read for those
/// columns only (the others are null in the rows), the other formats
/// fill every field.
pub fn scan<F: FnMut(&Row<'_>)>(
    dir: &Path,
    from: Option<u64>,
    to: Option<u64>,
    needs: FieldSet,
    mut visit: F,
) -> Result<ScanStats> {
    let mut stats = ScanStats::default();
    let files = list_files(dir, from, to, &mut stats)?;
    let mut reader = FileReader::default();
    for path in files {
        reader.read(&path, needs, &mut stats, &mut visit)?;
    }
    Ok(stats)
}

/// Reads store files with buffers kept between files.
#[derive(Default)]
pub struct FileReader {
    raw: Vec<u8>,
    text: Vec<u8>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileReader")
    }
}

impl FileReader {
    /// Reads one file, handing each record to `visit`.
    pub fn read<F: FnMut(&Row<'_>)>(
        &mut self,
        path: &Path,
        needs: FieldSet,
        stats: &mut ScanStats,
        visit: &mut F,
    ) -> Result<()> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(kind) = file_kind(name) else {
            return Ok(());
        };
        stats.files_read += 1;
        if kind == FileKind::Parquet {
            stats.file_bytes += fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            return read_parquet(path, needs, stats, visit);
        }
        self.raw.clear();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.raw))
            .with_context(|| format!("reading {}", path.display()))?;
        stats.file_bytes += self.raw.len() as u64;
        let zst = matches!(
            kind,
            FileKind::Jsonl { zst: true } | FileKind::Text { zst: true }
        );
        let body: &[u8] = if zst {
            // Decoded into a buffer that stays initialised between files
            // (`read_to_end` would zero its spare capacity on every call).
            let mut d = zstd::stream::read::Decoder::with_buffer(&self.raw[..])
                .with_context(|| format!("{}: not a zstd stream", path.display()))?;
            if self.text.len() < 1 << 20 {
                self.text.resize(1 << 20, 0);
            }
            let mut n = 0;
            loop {
                if n == self.text.len() {
                    self.text.resize(self.text.len() * 2, 0);
                }
                match d.read(&mut self.text[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(anyhow!("{}: not a zstd stream: {e}", path.display())),
                }
            }
            &self.text[..n]
        } else {
            &self.raw
        };
        match kind {
            FileKind::Jsonl { .. } => {
                let mut row = Row::default();
                let (mut pos, mut n) = (0, 0);
                while pos < body.len() {
                    n += 1;
                    match parse_at(body, pos, &mut row) {
                        (Parsed::Fast, next) => {
                            stats.records_read += 1;
                            visit(&row);
                            pos = next;
                        }
                        (Parsed::Blank, next) => pos = next,
                        (Parsed::Slow, _) => {
                            let end = body[pos..]
                                .iter()
                                .position(|c| *c == b'\n')
                                .map_or(body.len(), |e| pos + e);
                            let line = &body[pos..end];
                            pos = end + 1;
                            if line.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            let owned = parse_line_slow(line).map_err(|e| {
                                anyhow!("{}:{n}: not a flow-log record: {e}", path.display())
                            })?;
                            stats.records_read += 1;
                            visit(&owned.row());
                        }
                    }
                }
            }
            FileKind::Text { .. } => {
                let stem = name.strip_suffix(".zst").unwrap_or(name);
                let (fl, w) = name_parts(stem).ok_or_else(|| {
                    anyhow!(
                        "{}: the name does not end in _<flow_log_id>_<window_start>.txt",
                        path.display()
                    )
                })?;
                let text = std::str::from_utf8(body)
                    .with_context(|| format!("{}: not UTF-8", path.display()))?;
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let rec = exporter::store::parse_text_line(line, fl, w).map_err(|e| {
                        anyhow!("{}:{}: not a flow-log record: {e}", path.display(), n + 1)
                    })?;
                    stats.records_read += 1;
                    visit(&OwnedRow::from_record(&rec).row());
                }
            }
            FileKind::Parquet => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// One column of a batch, ready for per-row reads.
struct Col<'a> {
    data: ColData<'a>,
    /// Validity per row, when the column has nulls in this batch.
    valid: Option<Vec<bool>>,
}

enum ColData<'a> {
    Str(&'a StringArray),
    LargeStr(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    Dict(Vec<usize>, &'a StringArray),
    Num(Vec<u64>),
    Unknown,
}

fn widen<T: Copy>(v: &[T], f: impl Fn(T) -> u64) -> ColData<'static> {
    ColData::Num(v.iter().map(|x| f(*x)).collect())
}

impl<'a> Col<'a> {
    fn of(a: &'a ArrayRef) -> Col<'a> {
        let data = match a.data_type() {
            DataType::Utf8 => ColData::Str(a.as_string::<i32>()),
            DataType::LargeUtf8 => ColData::LargeStr(a.as_string::<i64>()),
            DataType::Utf8View => ColData::View(a.as_string_view()),
            DataType::Dictionary(_, v) if **v == DataType::Utf8 => {
                let d = a.as_any_dictionary();
                match d.values().as_string_opt::<i32>() {
                    Some(values) => ColData::Dict(d.normalized_keys(), values),
                    None => ColData::Unknown,
                }
            }
            DataType::UInt8 => widen(a.as_primitive::<UInt8Type>().values(), u64::from),
            DataType::UInt16 => widen(a.as_primitive::<UInt16Type>().values(), u64::from),
            DataType::UInt32 => widen(a.as_primitive::<UInt32Type>().values(), u64::from),
            DataType::UInt64 => ColData::Num(a.as_primitive::<UInt64Type>().values().to_vec()),
            DataType::Int8 => widen(a.as_primitive::<Int8Type>().values(), |x| x as u64),
            DataType::Int16 => widen(a.as_primitive::<Int16Type>().values(), |x| x as u64),
            DataType::Int32 => widen(a.as_primitive::<Int32Type>().values(), |x| x as u64),
            DataType::Int64 => widen(a.as_primitive::<Int64Type>().values(), |x| x as u64),
            _ => ColData::Unknown,
        };
        let valid = (a.null_count() > 0)
            .then(|| a.logical_nulls().map(|n| n.iter().collect::<Vec<bool>>()))
            .flatten();
        Col { data, valid }
    }

    #[inline]
    fn get(&self, i: usize) -> V<'a> {
        if let Some(v) = &self.valid {
            if !v[i] {
                return V::Null;
            }
        }
        match &self.data {
            ColData::Str(a) => V::Str(a.value(i).as_bytes()),
            ColData::LargeStr(a) => V::Str(a.value(i).as_bytes()),
            ColData::View(a) => V::Str(a.value(i).as_bytes()),
            ColData::Dict(keys, values) => V::Str(values.value(keys[i]).as_bytes()),
            ColData::Num(v) => V::Num(v[i]),
            ColData::Unknown => V::Null,
        }
    }
}

/// Rows a Parquet batch holds.
const PARQUET_BATCH: usize = 64 * 1024;

fn read_parquet<F: FnMut(&Row<'_>)>(
    path: &Path,
    needs: FieldSet,
    stats: &mut ScanStats,
    visit: &mut F,
) -> Result<()> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.try_clone()?)
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    // Text columns are read as string views: a short value (most addresses
    // and ids) sits in its view, with no copy into a values buffer.
    let schema = builder.schema().clone();
    let views: Vec<arrow_schema::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                std::sync::Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View))
            }
            _ => f.clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(std::sync::Arc::new(
        arrow_schema::Schema::new_with_metadata(views, schema.metadata().clone()),
    ));
    let builder = match ArrowReaderMetadata::try_new(builder.metadata().clone(), options) {
        Ok(meta) => ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta),
        Err(_) => builder,
    };
    // Columns by the record's key (or the same name with `_`).
    let mut wanted: Vec<(Field, usize)> = Vec::new();
    for f in needs.fields() {
        let alt = f.name().replace('-', "_");
        if let Some(i) = schema
            .fields()
            .iter()
            .position(|c| c.name() == f.name() || *c.name() == alt)
        {
            wanted.push((f, i));
        }
    }
    let mut roots: Vec<usize> = wanted.iter().map(|(_, i)| *i).collect();
    roots.sort_unstable();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(PARQUET_BATCH)
        .build()
        .with_context(|| format!("{}: reading Parquet", path.display()))?;
    for batch in reader {
        let batch: RecordBatch =
            batch.with_context(|| format!("{}: reading Parquet", path.display()))?;
        let bschema = batch.schema();
        let cols: Vec<(usize, ArrayRef)> = wanted
            .iter()
            .filter_map(|(f, i)| {
                let name = schema.field(*i).name();
                let j = bschema.index_of(name).ok()?;
                Some((f.index(), batch.column(j).clone()))
            })
            .collect();
        let readers: Vec<(usize, Col<'_>)> = cols.iter().map(|(f, a)| (*f, Col::of(a))).collect();
        let mut row = Row::default();
        for (f, _) in &readers {
            row.set |= 1 << *f;
        }
        for i in 0..batch.num_rows() {
            for (f, c) in &readers {
                row.vals[*f] = c.get(i);
            }
            stats.records_read += 1;
            visit(&row);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_spans() {
        assert_eq!(
            name_parts("hv-0001_fl-1_1764248400.jsonl.zst"),
            Some(("fl-1", 1_764_248_400))
        );
        assert_eq!(name_parts("hv_fl_x_1.txt"), Some(("fl_x", 1)));
        assert_eq!(
            file_kind("a_b_1.jsonl.zst"),
            Some(FileKind::Jsonl { zst: true })
        );
        assert_eq!(file_kind("a_b_1.parquet"), Some(FileKind::Parquet));
        assert_eq!(file_kind(".a_b_1.jsonl.tmp"), None);
        assert_eq!(file_kind("notes.md"), None);
        let day = partition_span("dt=2025-11-27", None).unwrap();
        assert_eq!(day, (1_764_201_600, 86_400));
        assert_eq!(
            partition_span("hour=13", Some(day.0)),
            Some((1_764_248_400, 3_600))
        );
        assert_eq!(partition_span("hour=13", None), None);
        assert!(overlaps(1000, 60, Some(1000), Some(1001)));
        assert!(!overlaps(1000, 60, None, Some(1000)));
        assert!(overlaps(1000, 60, Some(1659), None));
        assert!(!overlaps(1000, 60, Some(1660), None));
    }
}
