//! Flow-log records as Apache Parquet: one file per flow log per window in
//! the local log store (`log_store_format: "parquet"`, `--format parquet`),
//! beside JSON Lines and the text form.
//!
//! The columns are the keys of the JSON Lines form, in RECORDS.md's order
//! and with its spelling (`version`, `account-id`, …, `action`, then
//! `flow-log-id` and `window-start`), so a query reads the same names in
//! either format. A key that RECORDS.md allows to be `null` is a nullable
//! column; every other column is required. Types:
//!
//! | column | Arrow type | Parquet | nullable |
//! |---|---|---|---|
//! | `version` | UInt32 | INT32 (UINT_32) | no |
//! | `account-id`, `vpc-id`, `vswitch-id`, `eni-id`, `flow-log-id` | Dictionary(Int32, Utf8) | BYTE_ARRAY (STRING), dictionary | no |
//! | `vm-id` | Dictionary(Int32, Utf8) | BYTE_ARRAY (STRING), dictionary | yes (detached ENI) |
//! | `srcaddr`, `dstaddr` | Utf8, the record's text form (RFC 5952) | BYTE_ARRAY (STRING), plain | yes |
//! | `srcport`, `dstport` | UInt16 | INT32 (UINT_16) | yes |
//! | `protocol` | UInt8 | INT32 (UINT_8) | yes |
//! | `direction` | Dictionary(Int8, Utf8): `in`/`out` | BYTE_ARRAY (STRING), dictionary | yes |
//! | `packets`, `bytes` | UInt64 | INT64 (UINT_64), plain | no |
//! | `start`, `end` | UInt64 | INT64 (UINT_64) | no |
//! | `tcp-flags` | UInt8 | INT32 (UINT_8) | no |
//! | `log-status` | Dictionary(Int8, Utf8): `OK`/`NODATA`/`SKIPDATA` | BYTE_ARRAY (STRING), dictionary | no |
//! | `action` | Dictionary(Int8, Utf8): `ACCEPT`/`REJECT` | BYTE_ARRAY (STRING), dictionary | yes |
//! | `window-start` | UInt64 | INT64 (UINT_64) | no |
//!
//! The dictionary types are an Arrow matter: a Parquet reader sees plain
//! UTF-8 string columns (dictionary-encoded pages), and [`read_records`]
//! takes either form. Unsigned integers keep the record's own ranges;
//! DuckDB (UTINYINT … UBIGINT) and ClickHouse (UInt8 … UInt64) read them as
//! such, Spark (3.2+) as the next wider signed type (UInt64 as
//! `decimal(20,0)`). `start`, `end` and `window-start` are Unix seconds, as
//! in JSON Lines, not a timestamp type.
//!
//! Column chunks are Snappy-compressed by default (Parquet's usual codec:
//! the store writes a 1M-record window at about 2.2M records/s, 32.5 bytes a
//! record, on the development VM); `log_store_compress: zstd` makes them
//! zstd (level 1: 23.7 bytes a record, about 12% slower to write). Either
//! way the file is compressed inside, so a Parquet file never gets a `.zst`
//! suffix. Columns
//! with few distinct values in a window (ids, enums, ports, protocol,
//! flags, times) are dictionary-encoded; the addresses and the counters are
//! plain-encoded (a dictionary costs time there and saves little after
//! zstd). One window is one row group (up to 1 Mi records); the numeric
//! columns carry min/max statistics so that readers can skip row groups by
//! time, port or protocol (string columns carry none: comparing every value
//! costs more than it saves with one file per flow log and window).
//!
//! The arrays are built straight from the records with builders whose
//! capacity is set up front: no JSON on the way.

use crate::record::{Action, Direction, LogStatus, Record};
use arrow_array::builder::{
    Int32Builder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, DictionaryArray, Int8Array, PrimitiveArray, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// File name extension of the store's Parquet files, without the dot.
pub const EXTENSION: &str = "parquet";

/// zstd level of the column chunks (1: the fastest positive level; higher
/// levels gain a few percent of size here for much more time).
pub const ZSTD_LEVEL: i32 = 1;

/// The column names, in order: the JSON Lines keys.
pub const COLUMNS: [&str; 21] = [
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
    "window-start",
];

/// Columns written without dictionary encoding (nearly unique per record).
const PLAIN_COLUMNS: [&str; 4] = ["srcaddr", "dstaddr", "packets", "bytes"];

/// The values of the `direction` dictionary, by `Direction as usize`.
const DIRECTIONS: [&str; 2] = ["in", "out"];
/// The values of the `log-status` dictionary.
const STATUSES: [&str; 3] = ["OK", "NODATA", "SKIPDATA"];
/// The values of the `action` dictionary.
const ACTIONS: [&str; 2] = ["ACCEPT", "REJECT"];

/// The Arrow schema of the store's Parquet files (see the module docs).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use DataType::{UInt16, UInt32, UInt64, UInt8, Utf8};
            let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
            let id = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(Utf8));
            let enu = || DataType::Dictionary(Box::new(DataType::Int8), Box::new(Utf8));
            Arc::new(Schema::new(vec![
                f("version", UInt32, false),
                f("account-id", id(), false),
                f("vpc-id", id(), false),
                f("vswitch-id", id(), false),
                f("vm-id", id(), true),
                f("eni-id", id(), false),
                f("srcaddr", Utf8, true),
                f("dstaddr", Utf8, true),
                f("srcport", UInt16, true),
                f("dstport", UInt16, true),
                f("protocol", UInt8, true),
                f("direction", enu(), true),
                f("packets", UInt64, false),
                f("bytes", UInt64, false),
                f("start", UInt64, false),
                f("end", UInt64, false),
                f("tcp-flags", UInt8, false),
                f("log-status", enu(), false),
                f("action", enu(), true),
                f("flow-log-id", id(), false),
                f("window-start", UInt64, false),
            ]))
        })
        .clone()
}

/// How the column chunks are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// Snappy (the default: fast).
    #[default]
    Snappy,
    /// zstd at [`ZSTD_LEVEL`] (smaller files).
    Zstd,
}

/// The writer settings: Snappy column chunks, dictionary encoding except for
/// [`PLAIN_COLUMNS`], chunk-level min/max for the numeric columns only, one
/// row group per window (up to 1 Mi records; a larger window gets more row
/// groups).
pub fn writer_properties() -> WriterProperties {
    writer_properties_for(Codec::Snappy)
}

/// [`writer_properties`] with the column chunks compressed by `codec`.
pub fn writer_properties_for(codec: Codec) -> WriterProperties {
    let compression = match codec {
        Codec::Snappy => Compression::SNAPPY,
        Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).expect("valid zstd level")),
    };
    let mut b = WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(concat!("flowlogd ", env!("CARGO_PKG_VERSION")).to_owned());
    for c in PLAIN_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for f in schema().fields() {
        if !f.data_type().is_numeric() {
            b = b.set_column_statistics_enabled(
                ColumnPath::from(f.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    b.build()
}

fn parquet_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("parquet: {e}"))
}

/// Writes `o` in decimal at `buf[n..]`; returns the new end.
fn put_octet(buf: &mut [u8], mut n: usize, o: u8) -> usize {
    if o >= 100 {
        buf[n] = b'0' + o / 100;
        n += 1;
    }
    if o >= 10 {
        buf[n] = b'0' + o / 10 % 10;
        n += 1;
    }
    buf[n] = b'0' + o % 10;
    n + 1
}

/// Writes `a` in dotted-quad form at `buf[n..]`; returns the new end.
fn put_ipv4(buf: &mut [u8], mut n: usize, a: Ipv4Addr) -> usize {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        n = put_octet(buf, n, o);
    }
    n
}

/// Writes `v` in lower-case hex without leading zeros at `buf[n..]`.
fn put_hex16(buf: &mut [u8], mut n: usize, v: u16) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (4 - v.leading_zeros() as usize / 4).max(1);
    for i in (0..digits).rev() {
        buf[n] = HEX[usize::from((v >> (4 * i)) & 0xf)];
        n += 1;
    }
    n
}

/// Writes `a` in RFC 5952 form at `buf[n..]`, exactly as `Display` does:
/// IPv4-mapped as `::ffff:a.b.c.d`; otherwise lower-case hex groups, the
/// first longest run of two or more zero groups as `::`.
fn put_ipv6(buf: &mut [u8], mut n: usize, a: Ipv6Addr) -> usize {
    if let Some(v4) = a.to_ipv4_mapped() {
        buf[n..n + 7].copy_from_slice(b"::ffff:");
        return put_ipv4(buf, n + 7, v4);
    }
    let seg = a.segments();
    // The first longest run of zero groups.
    let (mut best_start, mut best_len, mut cur_start, mut cur_len) = (0, 0, 0, 0);
    for (i, &g) in seg.iter().enumerate() {
        if g == 0 {
            if cur_len == 0 {
                cur_start = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                (best_start, best_len) = (cur_start, cur_len);
            }
        } else {
            cur_len = 0;
        }
    }
    let groups = |buf: &mut [u8], mut n: usize, gs: &[u16]| {
        for (i, &g) in gs.iter().enumerate() {
            if i > 0 {
                buf[n] = b':';
                n += 1;
            }
            n = put_hex16(buf, n, g);
        }
        n
    };
    if best_len > 1 {
        n = groups(buf, n, &seg[..best_start]);
        buf[n..n + 2].copy_from_slice(b"::");
        groups(buf, n + 2, &seg[best_start + best_len..])
    } else {
        groups(buf, n, &seg)
    }
}

/// Appends an address in the record's text form (IPv6: RFC 5952), the same
/// text as `Display` and so as the JSON Lines form, without going through
/// `fmt`.
fn append_addr(b: &mut StringBuilder, a: Option<IpAddr>) {
    // "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" is the longest: 39 bytes.
    let mut buf = [0u8; 40];
    let n = match a {
        None => return b.append_null(),
        Some(IpAddr::V4(v4)) => put_ipv4(&mut buf, 0, v4),
        Some(IpAddr::V6(v6)) => put_ipv6(&mut buf, 0, v6),
    };
    b.append_value(std::str::from_utf8(&buf[..n]).expect("ASCII"));
}

/// Builds a `Dictionary(Int32, Utf8)` column from strings that repeat a
/// lot (ids): each distinct value is stored once; a value equal to the
/// previous row's costs one comparison, another one a hash lookup.
struct IdColumn {
    keys: Int32Builder,
    /// The distinct values, by key.
    values: Vec<Box<str>>,
    index: FxHashMap<Box<str>, i32>,
    /// The key of the previous non-null row.
    last: Option<i32>,
}

impl IdColumn {
    fn with_capacity(rows: usize) -> Self {
        IdColumn {
            keys: Int32Builder::with_capacity(rows),
            values: Vec::new(),
            index: FxHashMap::default(),
            last: None,
        }
    }

    /// Appends `v`; returns its key (`None` for null).
    fn append(&mut self, v: Option<&str>) -> io::Result<Option<i32>> {
        let Some(v) = v else {
            self.keys.append_null();
            return Ok(None);
        };
        if let Some(k) = self.last {
            if *self.values[k as usize] == *v {
                self.keys.append_value(k);
                return Ok(Some(k));
            }
        }
        let k = match self.index.get(v) {
            Some(k) => *k,
            None => {
                let k = i32::try_from(self.values.len())
                    .map_err(|_| parquet_err("more than 2^31 distinct values in a column"))?;
                self.values.push(v.into());
                self.index.insert(v.into(), k);
                k
            }
        };
        self.keys.append_value(k);
        self.last = Some(k);
        Ok(Some(k))
    }

    /// Whether key `k` (`None`: null) stands for `v`.
    fn is(&self, k: Option<i32>, v: Option<&str>) -> bool {
        match (k, v) {
            (Some(k), Some(v)) => *self.values[k as usize] == *v,
            (None, None) => true,
            _ => false,
        }
    }

    /// Appends the value of key `k`, known to be `v`.
    fn push_key(&mut self, k: Option<i32>) {
        self.keys.append_option(k);
        if k.is_some() {
            self.last = k;
        }
    }

    fn finish(mut self) -> io::Result<ArrayRef> {
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(self.values.iter()));
        let dict = DictionaryArray::<Int32Type>::try_new(self.keys.finish(), values)
            .map_err(parquet_err)?;
        Ok(Arc::new(dict))
    }
}

/// A `Dictionary(Int8, Utf8)` column of an enum whose spellings are
/// `values`, from its keys (`None` for null).
fn enum_column(keys: Vec<Option<i8>>, values: &[&str]) -> io::Result<ArrayRef> {
    let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
    let dict =
        DictionaryArray::<Int8Type>::try_new(Int8Array::from(keys), values).map_err(parquet_err)?;
    Ok(Arc::new(dict))
}

/// The records as one Arrow record batch of [`schema`].
pub fn to_record_batch(records: &[Record]) -> io::Result<RecordBatch> {
    let n = records.len();
    let mut version = UInt32Builder::with_capacity(n);
    let mut account = IdColumn::with_capacity(n);
    let mut vpc = IdColumn::with_capacity(n);
    let mut vswitch = IdColumn::with_capacity(n);
    let mut vm = IdColumn::with_capacity(n);
    let mut eni = IdColumn::with_capacity(n);
    let mut src = StringBuilder::with_capacity(n, n * 12);
    let mut dst = StringBuilder::with_capacity(n, n * 12);
    let mut srcport = UInt16Builder::with_capacity(n);
    let mut dstport = UInt16Builder::with_capacity(n);
    let mut protocol = UInt8Builder::with_capacity(n);
    let mut direction = Vec::with_capacity(n);
    let mut packets = UInt64Builder::with_capacity(n);
    let mut bytes = UInt64Builder::with_capacity(n);
    let mut start = UInt64Builder::with_capacity(n);
    let mut end = UInt64Builder::with_capacity(n);
    let mut flags = UInt8Builder::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut flow_log = IdColumn::with_capacity(n);
    let mut window = UInt64Builder::with_capacity(n);
    // The keys of account, VPC, vSwitch and VM that each ENI (by key) had in
    // its last record: they are the ENI's own attributes, so they repeat
    // with it, and one comparison each replaces a hash lookup.
    let mut eni_attrs: Vec<Option<[Option<i32>; 4]>> = Vec::new();
    for r in records {
        version.append_value(r.version);
        let e = eni.append(Some(&r.eni_id))?.expect("not null") as usize;
        if eni_attrs.len() <= e {
            eni_attrs.resize(e + 1, None);
        }
        let vm_id = r.vm_id.as_deref();
        match eni_attrs[e] {
            Some([a, v, s, m])
                if account.is(a, Some(&r.account_id))
                    && vpc.is(v, Some(&r.vpc_id))
                    && vswitch.is(s, Some(&r.vswitch_id))
                    && vm.is(m, vm_id) =>
            {
                account.push_key(a);
                vpc.push_key(v);
                vswitch.push_key(s);
                vm.push_key(m);
            }
            _ => {
                eni_attrs[e] = Some([
                    account.append(Some(&r.account_id))?,
                    vpc.append(Some(&r.vpc_id))?,
                    vswitch.append(Some(&r.vswitch_id))?,
                    vm.append(vm_id)?,
                ]);
            }
        }
        append_addr(&mut src, r.srcaddr);
        append_addr(&mut dst, r.dstaddr);
        srcport.append_option(r.srcport);
        dstport.append_option(r.dstport);
        protocol.append_option(r.protocol);
        direction.push(r.direction.map(|d| match d {
            Direction::In => 0,
            Direction::Out => 1,
        }));
        packets.append_value(r.packets);
        bytes.append_value(r.bytes);
        start.append_value(r.start);
        end.append_value(r.end);
        flags.append_value(r.tcp_flags);
        status.push(Some(match r.log_status {
            LogStatus::Ok => 0,
            LogStatus::NoData => 1,
            LogStatus::SkipData => 2,
        }));
        action.push(r.action.map(|a| match a {
            Action::Accept => 0,
            Action::Reject => 1,
        }));
        flow_log.append(Some(&r.flow_log_id))?;
        window.append_value(r.window_start);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(version.finish()),
        account.finish()?,
        vpc.finish()?,
        vswitch.finish()?,
        vm.finish()?,
        eni.finish()?,
        Arc::new(src.finish()),
        Arc::new(dst.finish()),
        Arc::new(srcport.finish()),
        Arc::new(dstport.finish()),
        Arc::new(protocol.finish()),
        enum_column(direction, &DIRECTIONS)?,
        Arc::new(packets.finish()),
        Arc::new(bytes.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(flags.finish()),
        enum_column(status, &STATUSES)?,
        enum_column(action, &ACTIONS)?,
        flow_log.finish()?,
        Arc::new(window.finish()),
    ];
    RecordBatch::try_new(schema(), columns).map_err(parquet_err)
}

/// Writes the records as one Parquet file to `w` and returns `w`. With no
/// records the file still holds the schema (and no row group).
pub fn write_records_to<W: Write + Send>(w: W, records: &[Record]) -> io::Result<W> {
    write_records_with(w, records, writer_properties())
}

/// [`write_records_to`] with other writer settings (the schema stays).
pub fn write_records_with<W: Write + Send>(
    w: W,
    records: &[Record],
    props: WriterProperties,
) -> io::Result<W> {
    let mut writer = ArrowWriter::try_new(w, schema(), Some(props)).map_err(parquet_err)?;
    if !records.is_empty() {
        writer
            .write(&to_record_batch(records)?)
            .map_err(parquet_err)?;
    }
    writer.into_inner().map_err(parquet_err)
}

/// The records as the bytes of one Parquet file (Snappy column chunks).
pub fn write_records(records: &[Record]) -> io::Result<Vec<u8>> {
    write_records_as(records, Codec::Snappy)
}

/// The records as the bytes of one Parquet file, column chunks compressed
/// by `codec`.
pub fn write_records_as(records: &[Record], codec: Codec) -> io::Result<Vec<u8>> {
    // Some 15–35 bytes per record once compressed.
    write_records_with(
        Vec::with_capacity(4096 + records.len() * 36),
        records,
        writer_properties_for(codec),
    )
}

/// Reads every record of a Parquet file of [`schema`]. Columns are found by
/// name (extra columns are ignored); strings may be plain or dictionary
/// arrays. A missing column, a column of another type, a null in a required
/// column or a value outside RECORDS.md is an error naming the file.
pub fn read_records(path: &Path) -> io::Result<Vec<Record>> {
    let on = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(on)?;
    read_records_from(file).map_err(on)
}

/// [`read_records`] from an open file.
pub fn read_records_from(file: File) -> io::Result<Vec<Record>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(parquet_err)?;
    let mut out = Vec::with_capacity(rows);
    for batch in reader {
        let batch = batch.map_err(parquet_err)?;
        batch_records(&batch, &mut out)?;
    }
    Ok(out)
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> io::Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| bad(format!("no column {name:?}")))
}

/// A string column as read: plain, or a dictionary (any key type) of
/// strings.
struct Strings<'a> {
    /// Nulls and length.
    array: &'a dyn Array,
    values: &'a StringArray,
    /// Row to value index, for a dictionary.
    keys: Option<Vec<usize>>,
}

impl<'a> Strings<'a> {
    fn of(batch: &'a RecordBatch, name: &'a str) -> io::Result<Self> {
        let c = column(batch, name)?;
        let not_strings = || {
            bad(format!(
                "column {name:?} is {}, not Utf8 or a dictionary of Utf8",
                c.data_type()
            ))
        };
        if let Some(values) = c.as_string_opt::<i32>() {
            return Ok(Strings {
                array: c.as_ref(),
                values,
                keys: None,
            });
        }
        let dict = c.as_any_dictionary_opt().ok_or_else(not_strings)?;
        let values = dict
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(not_strings)?;
        Ok(Strings {
            array: c.as_ref(),
            values,
            keys: Some(dict.normalized_keys()),
        })
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        if self.array.is_null(i) {
            return None;
        }
        let j = self.keys.as_ref().map_or(i, |k| k[i]);
        // A null in a dictionary's values is a null too.
        self.values.is_valid(j).then(|| self.values.value(j))
    }

    fn req(&self, i: usize, name: &str) -> io::Result<&'a str> {
        self.get(i)
            .ok_or_else(|| bad(format!("row {i}: {name} is null")))
    }
}

fn ints<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> io::Result<&'a PrimitiveArray<T>> {
    let c = column(batch, name)?;
    c.as_primitive_opt::<T>().ok_or_else(|| {
        bad(format!(
            "column {name:?} is {}, not {}",
            c.data_type(),
            T::DATA_TYPE
        ))
    })
}

fn opt_int<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    a.is_valid(i).then(|| a.value(i))
}

fn req_int<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    i: usize,
    name: &str,
) -> io::Result<T::Native> {
    opt_int(a, i).ok_or_else(|| bad(format!("row {i}: {name} is null")))
}

fn parse_addr(a: &Strings<'_>, i: usize, name: &str) -> io::Result<Option<IpAddr>> {
    a.get(i)
        .map(|s| {
            s.parse()
                .map_err(|_| bad(format!("row {i}: {name} {s:?} is not an IP address")))
        })
        .transpose()
}

/// Appends the records of one batch of [`schema`] to `out`.
pub fn batch_records(batch: &RecordBatch, out: &mut Vec<Record>) -> io::Result<()> {
    let version = ints::<UInt32Type>(batch, "version")?;
    let account = Strings::of(batch, "account-id")?;
    let vpc = Strings::of(batch, "vpc-id")?;
    let vswitch = Strings::of(batch, "vswitch-id")?;
    let vm = Strings::of(batch, "vm-id")?;
    let eni = Strings::of(batch, "eni-id")?;
    let src = Strings::of(batch, "srcaddr")?;
    let dst = Strings::of(batch, "dstaddr")?;
    let srcport = ints::<UInt16Type>(batch, "srcport")?;
    let dstport = ints::<UInt16Type>(batch, "dstport")?;
    let protocol = ints::<UInt8Type>(batch, "protocol")?;
    let direction = Strings::of(batch, "direction")?;
    let packets = ints::<UInt64Type>(batch, "packets")?;
    let bytes = ints::<UInt64Type>(batch, "bytes")?;
    let start = ints::<UInt64Type>(batch, "start")?;
    let end = ints::<UInt64Type>(batch, "end")?;
    let flags = ints::<UInt8Type>(batch, "tcp-flags")?;
    let status = Strings::of(batch, "log-status")?;
    let action = Strings::of(batch, "action")?;
    let flow_log = Strings::of(batch, "flow-log-id")?;
    let window = ints::<UInt64Type>(batch, "window-start")?;
    out.reserve(batch.num_rows());
    for i in 0..batch.num_rows() {
        let direction = match direction.get(i) {
            None => None,
            Some("in") => Some(Direction::In),
            Some("out") => Some(Direction::Out),
            Some(s) => return Err(bad(format!("row {i}: direction {s:?} is not in or out"))),
        };
        let log_status = match status.req(i, "log-status")? {
            "OK" => LogStatus::Ok,
            "NODATA" => LogStatus::NoData,
            "SKIPDATA" => LogStatus::SkipData,
            s => {
                return Err(bad(format!(
                    "row {i}: log-status {s:?} is not OK, NODATA or SKIPDATA"
                )))
            }
        };
        let action = match action.get(i) {
            None => None,
            Some("ACCEPT") => Some(Action::Accept),
            Some("REJECT") => Some(Action::Reject),
            Some(s) => {
                return Err(bad(format!(
                    "row {i}: action {s:?} is not ACCEPT or REJECT"
                )))
            }
        };
        out.push(Record {
            version: req_int(version, i, "version")?,
            account_id: account.req(i, "account-id")?.to_owned(),
            vpc_id: vpc.req(i, "vpc-id")?.to_owned(),
            vswitch_id: vswitch.req(i, "vswitch-id")?.to_owned(),
            vm_id: vm.get(i).map(str::to_owned),
            eni_id: eni.req(i, "eni-id")?.to_owned(),
            srcaddr: parse_addr(&src, i, "srcaddr")?,
            dstaddr: parse_addr(&dst, i, "dstaddr")?,
            srcport: opt_int(srcport, i),
            dstport: opt_int(dstport, i),
            protocol: opt_int(protocol, i),
            direction,
            packets: req_int(packets, i, "packets")?,
            bytes: req_int(bytes, i, "bytes")?,
            start: req_int(start, i, "start")?,
            end: req_int(end, i, "end")?,
            tcp_flags: req_int(flags, i, "tcp-flags")?,
            log_status,
            action,
            flow_log_id: flow_log.req(i, "flow-log-id")?.to_owned(),
            window_start: req_int(window, i, "window-start")?,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::VERSION;

    const W: u64 = 1_764_248_400;

    fn base() -> Record {
        Record {
            version: VERSION,
            account_id: "1234567890".into(),
            vpc_id: "vpc-1".into(),
            vswitch_id: "vsw-1".into(),
            vm_id: Some("i-a1".into()),
            eni_id: "eni-a1".into(),
            srcaddr: Some("10.0.1.5".parse().unwrap()),
            dstaddr: Some("203.0.113.200".parse().unwrap()),
            srcport: Some(40_001),
            dstport: Some(443),
            protocol: Some(6),
            direction: Some(Direction::Out),
            packets: 3,
            bytes: 180,
            start: W + 1,
            end: W + 60,
            tcp_flags: 0x12,
            log_status: LogStatus::Ok,
            action: Some(Action::Accept),
            flow_log_id: "fl-1".into(),
            window_start: W,
        }
    }

    fn status(log_status: LogStatus, packets: u64, bytes: u64) -> Record {
        Record {
            vm_id: None,
            srcaddr: None,
            dstaddr: None,
            srcport: None,
            dstport: None,
            protocol: None,
            direction: None,
            packets,
            bytes,
            start: W,
            end: W + 599,
            tcp_flags: 0,
            log_status,
            action: None,
            ..base()
        }
    }

    /// One record of every kind RECORDS.md has.
    fn every_kind() -> Vec<Record> {
        vec![
            base(),
            Record {
                direction: Some(Direction::In),
                action: Some(Action::Reject),
                srcaddr: Some("0.0.0.0".parse().unwrap()),
                dstaddr: Some("255.255.255.255".parse().unwrap()),
                srcport: Some(0),
                dstport: Some(u16::MAX),
                packets: u64::MAX,
                bytes: u64::MAX - 1,
                tcp_flags: 0xff,
                ..base()
            },
            // UDP over IPv6, with the RFC 5952 forms.
            Record {
                srcaddr: Some("fd00::1:5".parse().unwrap()),
                dstaddr: Some("2001:db8:0:0:1:0:0:1".parse().unwrap()),
                protocol: Some(17),
                srcport: Some(53),
                dstport: Some(5353),
                tcp_flags: 0,
                ..base()
            },
            // IPv4-mapped IPv6.
            Record {
                srcaddr: Some(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped())),
                dstaddr: Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                ..base()
            },
            // ICMP echo request and ICMPv6 port unreachable: type*256+code.
            Record {
                protocol: Some(1),
                srcport: Some(0),
                dstport: Some(8 * 256),
                tcp_flags: 0,
                ..base()
            },
            Record {
                srcaddr: Some("fe80::1".parse().unwrap()),
                dstaddr: Some("ff02::1".parse().unwrap()),
                protocol: Some(58),
                srcport: Some(0),
                dstport: Some(256 + 4),
                tcp_flags: 0,
                ..base()
            },
            // A detached ENI; another flow log and window.
            Record {
                vm_id: None,
                flow_log_id: "fl-2".into(),
                window_start: W + 600,
                start: W + 600,
                end: W + 601,
                protocol: Some(132),
                ..base()
            },
            status(LogStatus::NoData, 0, 0),
            status(LogStatus::SkipData, 12_345, 6_789_000),
        ]
    }

    fn round_trip(records: &[Record]) -> Vec<Record> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.parquet");
        std::fs::write(&path, write_records(records).unwrap()).unwrap();
        read_records(&path).unwrap()
    }

    #[test]
    fn parquet_round_trip_every_kind() {
        let recs = every_kind();
        assert_eq!(round_trip(&recs), recs);
    }

    /// An ENI's attributes are looked up by the ENI; a change of them in a
    /// window (a configuration change) still comes through per record.
    #[test]
    fn parquet_round_trip_eni_attributes_that_change() {
        let mut recs = Vec::new();
        for i in 0..40u64 {
            let mut r = base();
            r.eni_id = format!("eni-{}", i % 3);
            r.vswitch_id = format!("vsw-{}", i % 5);
            r.account_id = if i % 7 == 0 {
                "other".into()
            } else {
                "1234567890".into()
            };
            r.vm_id = (i % 4 != 0).then(|| format!("i-{}", i % 2));
            r.vpc_id = format!("vpc-{}", i / 20);
            r.packets = i;
            recs.push(r);
        }
        assert_eq!(round_trip(&recs), recs);
    }

    #[test]
    fn parquet_round_trip_empty_and_many() {
        assert_eq!(round_trip(&[]), Vec::<Record>::new());
        // More rows than one read batch, many distinct addresses.
        let recs: Vec<Record> = (0..150_000u32)
            .map(|i| {
                let mut r = every_kind()[(i % 9) as usize].clone();
                if r.srcaddr.is_some() {
                    r.srcaddr = Some(IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(2_654_435_761))));
                    r.srcport = Some(i as u16);
                }
                r
            })
            .collect();
        assert_eq!(round_trip(&recs), recs);
    }

    #[test]
    fn parquet_address_text_form_matches_display() {
        let mut addrs: Vec<IpAddr> = [
            0u32,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0a00_0105,
            0xc0a8_6464,
            u32::MAX,
        ]
        .into_iter()
        .chain((0..2000u32).map(|i| i.wrapping_mul(2_246_822_519)))
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
        .collect();
        // Every pattern of zero groups, with small and large other groups,
        // IPv4-mapped and -compatible forms.
        for pattern in 0u32..256 {
            for (k, fill) in [(0u16, 1u16), (1, 0xffff), (2, 0x0a0b), (3, 0x10)] {
                let seg: Vec<u16> = (0..8)
                    .map(|i| {
                        if pattern >> i & 1 == 1 {
                            0
                        } else {
                            fill.wrapping_mul(i as u16 + 1).wrapping_add(k).max(1)
                        }
                    })
                    .collect();
                let a = Ipv6Addr::new(
                    seg[0], seg[1], seg[2], seg[3], seg[4], seg[5], seg[6], seg[7],
                );
                addrs.push(IpAddr::V6(a));
            }
        }
        for v4 in [0u32, 1, 0x0a00_0105, u32::MAX] {
            addrs.push(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()));
            addrs.push(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_compatible()));
        }
        addrs.push("fd00::1:5".parse().unwrap());
        addrs.push("2001:db8::".parse().unwrap());
        let mut b = StringBuilder::new();
        for a in &addrs {
            append_addr(&mut b, Some(*a));
        }
        append_addr(&mut b, None);
        let arr = b.finish();
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(arr.value(i), a.to_string());
            // And it parses back to the same address.
            assert_eq!(arr.value(i).parse::<IpAddr>().unwrap(), *a);
        }
        assert!(arr.is_null(addrs.len()));
    }

    #[test]
    fn parquet_schema_names_types_and_nulls() {
        let s = schema();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, COLUMNS);
        // The JSON keys of a record, in the same order.
        let json = serde_json::to_value(base()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted_cols = COLUMNS.to_vec();
        sorted_cols.sort_unstable();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        assert_eq!(sorted_cols, sorted_keys);
        // Nullable exactly where a status record has null.
        let nulls = serde_json::to_value(status(LogStatus::NoData, 0, 0)).unwrap();
        let mut nullable_keys: Vec<&str> = nulls
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.as_str())
            .collect();
        nullable_keys.sort_unstable();
        let mut nullable: Vec<&str> = s
            .fields()
            .iter()
            .filter(|f| f.is_nullable())
            .map(|f| f.name().as_str())
            .collect();
        nullable.sort_unstable();
        assert_eq!(nullable, nullable_keys);
        let ty = |n: &str| s.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(ty("srcport"), DataType::UInt16);
        assert_eq!(ty("protocol"), DataType::UInt8);
        assert_eq!(ty("tcp-flags"), DataType::UInt8);
        assert_eq!(ty("bytes"), DataType::UInt64);
        assert_eq!(ty("srcaddr"), DataType::Utf8);
        assert!(matches!(ty("eni-id"), DataType::Dictionary(_, v) if *v == DataType::Utf8));
    }

    /// Other writers' files: every string column plain Utf8.
    #[test]
    fn parquet_reads_plain_string_columns() {
        let recs = every_kind();
        let batch = to_record_batch(&recs).unwrap();
        let mut fields = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            if let DataType::Dictionary(_, _) = f.data_type() {
                let s = Strings::of(&batch, f.name()).unwrap();
                let plain: StringArray = (0..c.len()).map(|i| s.get(i)).collect();
                fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
                cols.push(Arc::new(plain));
            } else {
                fields.push(f.as_ref().clone());
                cols.push(c.clone());
            }
        }
        let plain = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let mut back = Vec::new();
        batch_records(&plain, &mut back).unwrap();
        assert_eq!(back, recs);
        // And through a file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.parquet");
        let mut w =
            ArrowWriter::try_new(File::create(&path).unwrap(), plain.schema(), None).unwrap();
        w.write(&plain).unwrap();
        w.close().unwrap();
        assert_eq!(read_records(&path).unwrap(), recs);
    }

    #[test]
    fn parquet_file_is_snappy_or_zstd_parquet() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        for codec in [Codec::Snappy, Codec::Zstd] {
            let path = dir.path().join("w.parquet");
            let bytes = write_records_as(&every_kind(), codec).unwrap();
            assert_eq!(&bytes[..4], b"PAR1");
            assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(read_records(&path).unwrap(), every_kind());
            let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let md = r.metadata();
            assert_eq!(md.num_row_groups(), 1);
            assert_eq!(md.file_metadata().num_rows(), 9);
            for c in md.row_group(0).columns() {
                let ok = match codec {
                    Codec::Snappy => c.compression() == Compression::SNAPPY,
                    Codec::Zstd => matches!(c.compression(), Compression::ZSTD(_)),
                };
                assert!(ok, "{codec:?}: {:?} {:?}", c.column_path(), c.compression());
            }
        }
    }

    #[test]
    fn parquet_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, b"not parquet").unwrap();
        let e = read_records(&path).unwrap_err();
        assert!(e.to_string().contains("x.parquet"), "{e}");
        // A bad enum value.
        let mut batch = to_record_batch(&[base()]).unwrap();
        let mut cols = batch.columns().to_vec();
        cols[17] = Arc::new(
            DictionaryArray::<Int8Type>::try_new(
                Int8Array::from(vec![0]),
                Arc::new(StringArray::from(vec!["MAYBE"])),
            )
            .unwrap(),
        );
        batch = RecordBatch::try_new(schema(), cols).unwrap();
        let e = batch_records(&batch, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("MAYBE"), "{e}");
        // A missing column.
        let e = batch_records(&batch.project(&[0, 1]).unwrap(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("vpc-id"), "{e}");
        assert!(read_records(&dir.path().join("missing.parquet")).is_err());
    }
}
