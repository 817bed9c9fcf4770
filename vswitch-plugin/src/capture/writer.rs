//! Writing classic pcap.

use std::io::{self, BufWriter, Write};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// How a [`PcapWriter`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// The LINKTYPE_ value of the file header. Default: Ethernet (1).
    pub linktype: u32,
    /// Snap length: frames longer than this are cut to it (their original
    /// length is kept). Default: 262144, libpcap's maximum.
    pub snaplen: u32,
    /// Nanosecond timestamps (magic `a1b23c4d`) rather than microseconds
    /// (`a1b2c3d4`). Default: microseconds, which every tool reads.
    pub nanos: bool,
    /// Size of the write buffer in bytes. Default: 1 MiB.
    pub buffer: usize,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            linktype: LINKTYPE_ETHERNET,
            snaplen: 262_144,
            nanos: false,
            buffer: 1 << 20,
        }
    }
}

/// Writes a little-endian classic pcap file, version 2.4, through a large
/// buffer. Call [`PcapWriter::finish`] at the end: dropping the writer also
/// flushes, but swallows the error.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: BufWriter<W>,
    snaplen: u32,
    nanos: bool,
    frames: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    pub fn new(out: W, opts: WriterOptions) -> io::Result<PcapWriter<W>> {
        let mut out = BufWriter::with_capacity(opts.buffer.max(64 * 1024), out);
        let magic: u32 = if opts.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs (8..16) stay 0.
        hdr[16..20].copy_from_slice(&opts.snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&opts.linktype.to_le_bytes());
        out.write_all(&hdr)?;
        Ok(PcapWriter {
            out,
            snaplen: opts.snaplen,
            nanos: opts.nanos,
            frames: 0,
        })
    }

    /// Appends one frame captured at `ts_nanos` (ns since the Unix epoch).
    /// `data` is cut to the snap length; the recorded original length is
    /// `orig_len`, or `data.len()` if that is larger (a record never claims
    /// fewer bytes on the wire than it captured). Times past 2106 (when the
    /// 32-bit seconds field ends) are an `InvalidInput` error.
    #[inline]
    pub fn write_frame(&mut self, ts_nanos: u64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let secs = u32::try_from(ts_nanos / 1_000_000_000).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("timestamp {ts_nanos} ns is past 2106, beyond pcap's 32-bit seconds"),
            )
        })?;
        let sub = (ts_nanos % 1_000_000_000) as u32;
        let frac = if self.nanos { sub } else { sub / 1000 };
        let caplen = u32::try_from(data.len())
            .unwrap_or(u32::MAX)
            .min(self.snaplen);
        let wire = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&secs.to_le_bytes());
        hdr[4..8].copy_from_slice(&frac.to_le_bytes());
        hdr[8..12].copy_from_slice(&caplen.to_le_bytes());
        hdr[12..16].copy_from_slice(&wire.to_le_bytes());
        self.out.write_all(&hdr)?;
        self.out.write_all(&data[..caplen as usize])?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// Flushes the buffer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}
