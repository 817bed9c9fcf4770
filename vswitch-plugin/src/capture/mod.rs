//! Reading and writing packet captures, fast.
//!
//! [`Capture::open`] memory-maps a classic pcap or a pcapng file
//! (`capture/mmap.rs` holds the only `unsafe` of this module) and [`Frames`]
//! walks its records in place: every [`Frame`] borrows its bytes from the
//! mapping, nothing is copied. With the cache lines ahead of the cursor
//! touched early (see `Frames::warm_ahead`), that makes a replay's read
//! faster than `cat FILE > /dev/null`, which copies every byte once.
//!
//! Iteration yields `Result<Frame, CaptureError>`:
//! - `Ok(frame)` for each packet, in file order;
//! - `Err(CaptureError::Corrupt { .. })` once, if the file is damaged (a record
//!   longer than any sane capture, a pcapng block whose lengths disagree, ...),
//!   after which the iterator is finished;
//! - the end of the file simply ends the iteration. A file that ends in the
//!   middle of a record (a capture killed while writing) is not an error: the
//!   frames before the cut are yielded and [`Frames::truncated`] then says
//!   where the cut is, so the caller can warn and carry on.
//!
//! [`PcapWriter`] writes classic pcap (µs or ns, little-endian) to any
//! [`std::io::Write`].
//!
//! Formats read: classic pcap (magics `a1b2c3d4` µs and `a1b23c4d` ns, either
//! byte order, version 2.x with x ≤ 4) and pcapng (any number of sections,
//! each with its own byte order; interfaces with their own link type,
//! `if_tsresol` and `if_tsoffset`; Enhanced, Simple and obsolete Packet
//! blocks; other blocks are skipped).

mod mmap;
mod pcap;
mod pcapng;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::io;
use std::iter::FusedIterator;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::wire::LinkType;

pub use writer::{PcapWriter, WriterOptions, LINKTYPE_ETHERNET};

/// The largest captured length of one record we accept when the file's snap
/// length is smaller: 256 KiB, libpcap's own maximum snap length. A larger
/// record length means the file is damaged, and trusting it would make us
/// skip over (or misread) the rest of the file.
pub const MAX_CAPLEN: u32 = 256 * 1024;

/// One packet of a capture, borrowed from the mapped file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch (pcapng `if_tsoffset`
    /// applied). In file order, which is not always time order.
    pub ts_nanos: u64,
    /// The link layer, or `None` for a link type we do not parse (the replay
    /// counts such frames as "not IP").
    pub link: Option<LinkType>,
    /// The LINKTYPE_ value (low 16 bits of the pcap header's field: the FCS
    /// bits above them are masked off; pcapng's link types are 16 bits).
    pub linktype_raw: u32,
    /// The captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// The packet's length on the wire; can be more than `data.len()`.
    pub orig_len: u32,
}

/// Where a capture ends in the middle of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruncatedAt {
    /// Byte offset in the file of the record that is cut.
    pub offset: u64,
    /// Number, counting from 1, of the frame that is cut: the frames before
    /// it (`frame - 1` of them) were yielded whole.
    pub frame: u64,
}

impl fmt::Display for TruncatedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capture cut short at byte {} (frame {}); replayed up to the cut",
            self.offset, self.frame
        )
    }
}

/// What is wrong inside a damaged capture (see [`CaptureError::Corrupt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// A record claims more captured bytes than any sane capture holds.
    CaplenTooLarge {
        /// The record's captured length.
        caplen: u32,
        /// The largest we accept: max([`MAX_CAPLEN`], the snap length).
        max: u32,
    },
    /// A pcapng block length below 12 or not a multiple of 4.
    BadBlockLength(u32),
    /// A pcapng block whose trailing length differs from its leading one.
    BlockLengthMismatch {
        /// Length at the start of the block.
        leading: u32,
        /// Length at its end.
        trailing: u32,
    },
    /// A pcapng block too short for its own fixed fields or packet data.
    BlockTooShort {
        /// The block type.
        block_type: u32,
        /// Its total length.
        len: u32,
    },
    /// A pcapng Section Header Block with an unknown byte-order magic.
    BadByteOrderMagic(u32),
    /// A pcapng section of a version other than 1.x.
    SectionVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A pcapng packet names an interface no IDB of its section described.
    UnknownInterface(u32),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::CaplenTooLarge { caplen, max } => {
                write!(f, "a record claims {caplen} captured bytes (at most {max} are sane)")
            }
            Corruption::BadBlockLength(len) => {
                write!(f, "a pcapng block length of {len} (must be ≥ 12 and a multiple of 4)")
            }
            Corruption::BlockLengthMismatch { leading, trailing } => write!(
                f,
                "a pcapng block says {leading} bytes at its start and {trailing} at its end"
            ),
            Corruption::BlockTooShort { block_type, len } => write!(
                f,
                "a pcapng block of type 0x{block_type:08x} is too short ({len} bytes) for its fields"
            ),
            Corruption::BadByteOrderMagic(m) => {
                write!(f, "a pcapng section header with byte-order magic 0x{m:08x}")
            }
            Corruption::SectionVersion { major, minor } => {
                write!(f, "a pcapng section of unsupported version {major}.{minor}")
            }
            Corruption::UnknownInterface(id) => {
                write!(f, "a packet on interface {id}, which no interface block describes")
            }
        }
    }
}

/// Why a capture cannot be read. Each message names the file and says what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The path does not exist.
    #[error("capture file {} does not exist; check the path", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be opened or mapped.
    #[error("cannot read capture file {}: {source}; check its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// Not a regular file (a pipe, a directory, a device): it cannot be mapped.
    #[error(
        "{} is not a regular file; save the capture to a file first (a pipe or a device cannot be replayed)",
        path.display()
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Zero bytes.
    #[error(
        "capture file {} is empty (0 bytes); was the capture stopped before it wrote its header?",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Shorter than the file header of its format.
    #[error(
        "capture file {} is only {len} bytes, too short for a {format} file header ({need} bytes); the file is cut short",
        path.display()
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The format its magic announced.
        format: &'static str,
        /// Bytes the header needs.
        need: u64,
    },
    /// The first four bytes are no pcap or pcapng magic.
    #[error("{} is not a pcap or pcapng file (magic 0x{magic:08x}); {hint}", path.display())]
    NotACapture {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        magic: u32,
        /// What the file probably is and what to do.
        hint: &'static str,
    },
    /// A pcap or pcapng version we do not read.
    #[error(
        "{} is {format} version {major}.{minor}, which is not supported (pcap 2.0-2.4 and pcapng 1.x are); rewrite it with `editcap -F pcap IN OUT`",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// `"pcap"` or `"pcapng"`.
        format: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The file is damaged at `offset`; frames before it were read.
    #[error(
        "capture file {} is corrupt at byte {offset} (frame {frame}): {what}; {}",
        path.display(), keep_hint(*frame)
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged record or block.
        offset: u64,
        /// Number (from 1) of the frame that would have come next.
        frame: u64,
        /// What is wrong.
        what: Corruption,
    },
}

fn keep_hint(frame: u64) -> String {
    match frame {
        0 | 1 => "no frame before it is whole: recapture".to_owned(),
        n => format!(
            "the {} frames before it were read; recapture, or keep them with `editcap -r IN OUT 1-{}`",
            n - 1,
            n - 1
        ),
    }
}

/// The byte source behind a [`Capture`].
#[derive(Debug)]
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// The file header of a classic pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapHeader {
    /// Written big-endian (magic read as `d4c3b2a1`).
    pub big_endian: bool,
    /// Nanosecond timestamps (magic `a1b23c4d`) rather than microseconds.
    pub nanos: bool,
    /// Version, e.g. `(2, 4)`.
    pub version: (u16, u16),
    /// Snap length: the most bytes of a packet the capture kept.
    pub snaplen: u32,
    /// The LINKTYPE_ value (low 16 bits of the field).
    pub linktype: u32,
    /// Bytes of FCS at the end of every packet, when the header says so (the
    /// P bit, bit 26 of the link-type field, with the length in 16-bit words in
    /// bits 28-31).
    pub fcs_len: Option<u8>,
}

/// Which format a capture is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap, with its file header.
    Pcap(PcapHeader),
    /// pcapng; link types and time resolutions are per interface.
    Pcapng {
        /// The first section's byte order (later sections may differ).
        big_endian: bool,
    },
}

/// A capture file, mapped into memory. Cheap to iterate many times.
///
/// The file must not be truncated or rewritten while the `Capture` lives (as
/// for any memory-mapped reader; doing so kills the process with SIGBUS).
#[derive(Debug)]
pub struct Capture {
    path: PathBuf,
    bytes: Bytes,
    format: CaptureFormat,
}

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;

impl Capture {
    /// Maps the file at `path` and checks its header.
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let file = File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => CaptureError::NotFound {
                path: path.to_owned(),
            },
            _ => CaptureError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        let meta = file.metadata().map_err(|source| CaptureError::Io {
            path: path.to_owned(),
            source,
        })?;
        if !meta.is_file() {
            return Err(CaptureError::NotAFile {
                path: path.to_owned(),
            });
        }
        if meta.len() == 0 {
            return Err(CaptureError::Empty {
                path: path.to_owned(),
            });
        }
        let map = mmap::map_readonly(&file).map_err(|source| CaptureError::Io {
            path: path.to_owned(),
            source,
        })?;
        Capture::new(path.to_owned(), Bytes::Mapped(map))
    }

    /// A capture held in memory (a test, or a file read from a pipe). `name`
    /// only appears in error messages.
    pub fn from_vec(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Capture, CaptureError> {
        let path = name.into();
        if bytes.is_empty() {
            return Err(CaptureError::Empty { path });
        }
        Capture::new(path, Bytes::Owned(bytes))
    }

    fn new(path: PathBuf, bytes: Bytes) -> Result<Capture, CaptureError> {
        let format = detect(&path, bytes.as_slice())?;
        Ok(Capture {
            path,
            bytes,
            format,
        })
    }

    /// The file's path (or the name given to [`Capture::from_vec`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format and, for classic pcap, the file header.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Size of the file in bytes (the total for a progress bar; see
    /// [`Frames::position`]).
    pub fn len_bytes(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// The file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Iterates the frames in file order (see the module documentation for
    /// what the items and the end mean).
    pub fn frames(&self) -> Frames<'_> {
        let data = self.bytes.as_slice();
        let (walk, pos) = match self.format {
            CaptureFormat::Pcap(h) => (Walk::Pcap(pcap::PcapWalk::new(&h)), pcap::FILE_HEADER_LEN),
            CaptureFormat::Pcapng { .. } => (Walk::Pcapng(pcapng::NgWalk::new()), 0),
        };
        Frames {
            cap: self,
            data,
            pos,
            yielded: 0,
            warmed: 0,
            walk,
            done: false,
            truncated: None,
        }
    }
}

/// Reads the magic and the file header; everything `frames()` relies on.
fn detect(path: &Path, data: &[u8]) -> Result<CaptureFormat, CaptureError> {
    let len = data.len() as u64;
    let too_short = |format, need| CaptureError::TooShort {
        path: path.to_owned(),
        len,
        format,
        need,
    };
    if data.len() < 4 {
        return Err(too_short("pcap", pcap::FILE_HEADER_LEN as u64));
    }
    let magic_be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let magic_le = magic_be.swap_bytes();
    let pcap = match (magic_le, magic_be) {
        (PCAP_MAGIC_US, _) => Some((false, false)),
        (PCAP_MAGIC_NS, _) => Some((false, true)),
        (_, PCAP_MAGIC_US) => Some((true, false)),
        (_, PCAP_MAGIC_NS) => Some((true, true)),
        _ => None,
    };
    if let Some((big_endian, nanos)) = pcap {
        if data.len() < pcap::FILE_HEADER_LEN {
            return Err(too_short("pcap", pcap::FILE_HEADER_LEN as u64));
        }
        let h = pcap::read_file_header(data, big_endian, nanos);
        if h.version.0 != 2 || h.version.1 > 4 {
            return Err(CaptureError::UnsupportedVersion {
                path: path.to_owned(),
                format: "pcap",
                major: h.version.0,
                minor: h.version.1,
            });
        }
        return Ok(CaptureFormat::Pcap(h));
    }
    if magic_be == PCAPNG_SHB {
        // Block type, length, byte-order magic, major and minor version.
        if data.len() < 16 {
            return Err(too_short("pcapng", 28));
        }
        let bom = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let big_endian = match bom {
            PCAPNG_BYTE_ORDER => true,
            m if m.swap_bytes() == PCAPNG_BYTE_ORDER => false,
            m => return Err(CaptureError::NotACapture {
                path: path.to_owned(),
                magic: m,
                hint:
                    "it starts like pcapng but its byte-order magic is wrong: the file is damaged",
            }),
        };
        let rd16 = |i: usize| {
            let b = [data[i], data[i + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let (major, minor) = (rd16(12), rd16(14));
        if major != 1 {
            return Err(CaptureError::UnsupportedVersion {
                path: path.to_owned(),
                format: "pcapng",
                major,
                minor,
            });
        }
        return Ok(CaptureFormat::Pcapng { big_endian });
    }
    Err(CaptureError::NotACapture {
        path: path.to_owned(),
        magic: magic_be,
        hint: hint(magic_be),
    })
}

/// A guess at what a non-capture file is, with the way out.
fn hint(magic_be: u32) -> &'static str {
    match magic_be {
        m if m >> 16 == 0x1f8b => "it is gzip-compressed: gunzip it first",
        0x28b5_2ffd => "it is zstd-compressed: unzstd it first",
        0xfd37_7a58 => "it is xz-compressed: unxz it first",
        0x425a_6831..=0x425a_6839 => "it is bzip2-compressed: bunzip2 it first",
        m if m == 0xa1b2_cd34 || m.swap_bytes() == 0xa1b2_cd34 => {
            "it is a modified (Kuznetzov) pcap: rewrite it with `editcap -F pcap IN OUT`"
        }
        m if m
            .to_be_bytes()
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ') =>
        {
            "it looks like text (a tcpdump decode?); pass the capture file itself"
        }
        _ => "pass a .pcap or .pcapng capture (convert others with `editcap -F pcap IN OUT`)",
    }
}

/// Format-specific iteration state.
#[derive(Debug)]
enum Walk {
    Pcap(pcap::PcapWalk),
    Pcapng(pcapng::NgWalk),
}

/// What one step of a walker found.
pub(crate) enum Step<'a> {
    Frame(Frame<'a>),
    /// Clean end of file.
    End,
    /// The record at the current position runs past the end of the file.
    Truncated,
    /// The record at the current position is damaged.
    Corrupt(Corruption),
}

/// The frames of a [`Capture`], in file order. Yields
/// `Result<Frame, CaptureError>`; see the module documentation.
#[derive(Debug)]
pub struct Frames<'a> {
    cap: &'a Capture,
    data: &'a [u8],
    /// Offset of the next record (or block) to read.
    pos: usize,
    yielded: u64,
    /// Bytes before this were touched by `warm_ahead`.
    warmed: usize,
    walk: Walk,
    done: bool,
    truncated: Option<TruncatedAt>,
}

/// How far ahead of the record being read [`Frames`] touches the file.
const WARM_AHEAD: usize = 16 * 1024;
/// A cache line.
const LINE: usize = 64;

impl<'a> Frames<'a> {
    /// Prefetches every cache line up to [`WARM_AHEAD`] bytes past the
    /// cursor. Finding the next record needs the length in the current one,
    /// so a plain walk waits for one memory miss per record, one after the
    /// other (about twice as slow as `cat`). These prefetches depend on
    /// nothing, so the lines come in parallel and the walk then beats `cat`
    /// (see `capture::tests::reader_throughput`). An earlier version loaded
    /// one byte of each line instead (safe code without `mem::prefetch`):
    /// a load that misses holds its place in the reorder buffer until the
    /// line comes, so the worker's own work stalled behind the file's
    /// misses; the prefetch retires at once (replay 17–25% faster,
    /// docs/BENCHMARKS.md).
    #[inline(always)]
    fn warm_ahead(&mut self) {
        let limit = (self.pos + WARM_AHEAD).min(self.data.len());
        while self.warmed < limit {
            crate::mem::prefetch(self.data[self.warmed..].as_ptr());
            self.warmed += LINE;
        }
    }

    /// Set once iteration has stopped at a record cut by the end of the file.
    pub fn truncated(&self) -> Option<TruncatedAt> {
        self.truncated
    }

    /// Bytes of the file consumed so far (for a progress bar against
    /// [`Capture::len_bytes`]).
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Frames yielded so far.
    pub fn frames_read(&self) -> u64 {
        self.yielded
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.warm_ahead();
        // A walker leaves `pos` at the record it could not read.
        let step = match &mut self.walk {
            Walk::Pcap(w) => w.step(self.data, &mut self.pos),
            Walk::Pcapng(w) => w.step(self.data, &mut self.pos),
        };
        match step {
            Step::Frame(f) => {
                self.yielded += 1;
                Some(Ok(f))
            }
            Step::End => {
                self.done = true;
                None
            }
            Step::Truncated => {
                self.done = true;
                self.truncated = Some(TruncatedAt {
                    offset: self.pos as u64,
                    frame: self.yielded + 1,
                });
                None
            }
            Step::Corrupt(what) => {
                self.done = true;
                Some(Err(CaptureError::Corrupt {
                    path: self.cap.path.clone(),
                    offset: self.pos as u64,
                    frame: self.yielded + 1,
                    what,
                }))
            }
        }
    }
}

impl FusedIterator for Frames<'_> {}
