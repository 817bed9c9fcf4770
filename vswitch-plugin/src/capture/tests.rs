//! Tests of the capture reader and writer.

use std::path::{Path, PathBuf};

use super::*;

fn write_pcap(opts: WriterOptions, frames: &[(u64, &[u8], u32)]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), opts).unwrap();
    for &(ts, data, orig) in frames {
        w.write_frame(ts, data, orig).unwrap();
    }
    assert_eq!(w.frames_written(), frames.len() as u64);
    w.finish().unwrap()
}

fn read_all(cap: &Capture) -> (Vec<Frame<'_>>, Option<TruncatedAt>) {
    let mut it = cap.frames();
    let frames = it.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(it.frames_read(), frames.len() as u64);
    (frames, it.truncated())
}

const A: &[u8] = &[0xaa; 60];
const B: &[u8] = &[0xbb; 1514];

#[test]
fn round_trip_micro() {
    let ts = 1_700_000_000_123_456_789u64;
    let bytes = write_pcap(
        WriterOptions::default(),
        &[(ts, A, 60), (ts + 1_000, B, 1514)],
    );
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let cap = Capture::from_vec("rt.pcap", bytes).unwrap();
    let CaptureFormat::Pcap(h) = cap.format() else {
        panic!("not pcap")
    };
    assert_eq!(
        (h.big_endian, h.nanos, h.version, h.snaplen, h.linktype),
        (false, false, (2, 4), 262_144, 1)
    );
    let (frames, trunc) = read_all(&cap);
    assert_eq!(trunc, None);
    assert_eq!(frames.len(), 2);
    // Microseconds keep the first six digits of the fraction.
    assert_eq!(frames[0].ts_nanos, 1_700_000_000_123_456_000);
    assert_eq!(frames[1].ts_nanos, 1_700_000_000_123_457_000);
    assert_eq!(frames[0].data, A);
    assert_eq!(frames[1].data, B);
    assert_eq!(frames[1].orig_len, 1514);
    assert_eq!(frames[0].link, Some(LinkType::Ethernet));
    assert_eq!(frames[0].linktype_raw, 1);
}

#[test]
fn round_trip_nano_snaplen_and_linktype() {
    let opts = WriterOptions {
        nanos: true,
        snaplen: 64,
        linktype: 101,
        ..Default::default()
    };
    let ts = 1_700_000_000_123_456_789u64;
    let bytes = write_pcap(opts, &[(ts, A, 60), (ts + 1, B, 9000), (ts + 2, A, 10)]);
    assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
    let cap = Capture::from_vec("rt-ns.pcap", bytes).unwrap();
    let (frames, trunc) = read_all(&cap);
    assert_eq!(trunc, None);
    assert_eq!(
        frames.iter().map(|f| f.ts_nanos).collect::<Vec<_>>(),
        [ts, ts + 1, ts + 2]
    );
    // Cut to the snap length, original length kept.
    assert_eq!((frames[1].data, frames[1].orig_len), (&B[..64], 9000));
    // An original length below the captured one is raised to it.
    assert_eq!(frames[2].orig_len, 60);
    assert_eq!(frames[0].link, Some(LinkType::RawIp));
}

#[test]
fn writer_rejects_times_past_2106() {
    let mut w = PcapWriter::new(Vec::new(), WriterOptions::default()).unwrap();
    let err = w
        .write_frame((u64::from(u32::MAX) + 1) * 1_000_000_000, A, 60)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// A big-endian pcap built by hand, field by field.
fn big_endian_pcap(magic: u32, linktype: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&magic.to_be_bytes());
    f.extend_from_slice(&2u16.to_be_bytes()); // major
    f.extend_from_slice(&4u16.to_be_bytes()); // minor
    f.extend_from_slice(&0i32.to_be_bytes()); // thiszone
    f.extend_from_slice(&0u32.to_be_bytes()); // sigfigs
    f.extend_from_slice(&65_535u32.to_be_bytes()); // snaplen
    f.extend_from_slice(&linktype.to_be_bytes());
    for (i, len) in [(0u32, 42u32), (1, 70)] {
        f.extend_from_slice(&(1_000 + i).to_be_bytes()); // seconds
        f.extend_from_slice(&(500 + i).to_be_bytes()); // µs or ns
        f.extend_from_slice(&len.to_be_bytes()); // caplen
        f.extend_from_slice(&(len + 100).to_be_bytes()); // orig len
        f.extend_from_slice(&vec![i as u8 + 1; len as usize]);
    }
    f
}

#[test]
fn byte_swapped_headers() {
    let cap = Capture::from_vec("be-us.pcap", big_endian_pcap(0xa1b2_c3d4, 1)).unwrap();
    let CaptureFormat::Pcap(h) = cap.format() else {
        panic!("not pcap")
    };
    assert!(h.big_endian && !h.nanos && h.version == (2, 4) && h.snaplen == 65_535);
    let (frames, trunc) = read_all(&cap);
    assert_eq!(trunc, None);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].ts_nanos, 1_000 * 1_000_000_000 + 500_000);
    assert_eq!(frames[1].ts_nanos, 1_001 * 1_000_000_000 + 501_000);
    assert_eq!((frames[0].data.len(), frames[0].orig_len), (42, 142));
    assert_eq!((frames[1].data, frames[1].orig_len), (&[2u8; 70][..], 170));

    let cap = Capture::from_vec("be-ns.pcap", big_endian_pcap(0xa1b2_3c4d, 113)).unwrap();
    let (frames, _) = read_all(&cap);
    assert_eq!(frames[1].ts_nanos, 1_001 * 1_000_000_000 + 501);
    assert_eq!(frames[1].link, Some(LinkType::LinuxSll));
}

#[test]
fn fcs_bits_of_the_linktype_are_masked() {
    // P bit set, FCS of 2 × 16 bits, Ethernet.
    let bytes = write_pcap(
        WriterOptions {
            linktype: 0x2400_0001,
            ..Default::default()
        },
        &[(0, A, 60)],
    );
    let cap = Capture::from_vec("fcs.pcap", bytes).unwrap();
    let CaptureFormat::Pcap(h) = cap.format() else {
        panic!("not pcap")
    };
    assert_eq!((h.linktype, h.fcs_len), (1, Some(4)));
    let (frames, _) = read_all(&cap);
    assert_eq!(
        (frames[0].link, frames[0].linktype_raw),
        (Some(LinkType::Ethernet), 1)
    );
    // An unsupported link type still yields frames, with `link` None.
    let bytes = write_pcap(
        WriterOptions {
            linktype: 147,
            ..Default::default()
        },
        &[(0, A, 60)],
    );
    let cap = Capture::from_vec("user0.pcap", bytes).unwrap();
    let (frames, _) = read_all(&cap);
    assert_eq!((frames[0].link, frames[0].linktype_raw), (None, 147));
}

/// pcapng building blocks.
struct Ng {
    be: bool,
    out: Vec<u8>,
}

impl Ng {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() & 3 != 0 {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let (t, l) = (self.u32(btype), self.u32(len));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }
    fn shb(&mut self, be: bool) {
        self.be = be;
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32(0x1a2b_3c4d));
        b.extend_from_slice(&self.u16(1));
        b.extend_from_slice(&self.u16(0));
        b.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
        self.block(0x0a0d_0d0a, &b);
    }
    /// An IDB, with an `if_tsresol` option when given and a comment option
    /// before it (to be skipped).
    fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<i64>) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u16(linktype));
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.u32(snaplen));
        // opt_comment "eth0!" (5 bytes, padded to 8).
        b.extend_from_slice(&self.u16(1));
        b.extend_from_slice(&self.u16(5));
        b.extend_from_slice(b"eth0!\0\0\0");
        if let Some(r) = tsresol {
            b.extend_from_slice(&self.u16(9));
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            b.extend_from_slice(&self.u16(14));
            b.extend_from_slice(&self.u16(8));
            b.extend_from_slice(&if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        b.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        self.block(1, &b);
    }
    fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u32(iface));
        b.extend_from_slice(&self.u32((ts >> 32) as u32));
        b.extend_from_slice(&self.u32(ts as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(&self.u32(orig));
        b.extend_from_slice(data);
        self.block(6, &b);
    }
    fn spb(&mut self, data: &[u8]) {
        let mut b = self.u32(data.len() as u32).to_vec();
        b.extend_from_slice(data);
        self.block(3, &b);
    }
    fn pb(&mut self, iface: u16, ts: u64, data: &[u8]) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.u16(iface));
        b.extend_from_slice(&self.u16(0)); // drops
        b.extend_from_slice(&self.u32((ts >> 32) as u32));
        b.extend_from_slice(&self.u32(ts as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(data);
        self.block(2, &b);
    }
}

/// Two sections (little- then big-endian); interfaces with µs (default), ns,
/// 2^-20 s resolutions and a time offset; EPB, SPB, PB and skipped blocks.
fn sample_pcapng() -> Vec<u8> {
    let mut ng = Ng {
        be: false,
        out: Vec::new(),
    };
    ng.shb(false);
    ng.idb(1, 0, None, None); // Ethernet, µs by default
    ng.idb(101, 65_535, Some(9), None); // raw IP, ns
    ng.block(5, &[1, 2, 3, 4, 5, 6, 7, 8]); // Interface Statistics: skipped
    ng.epb(0, 1_700_000_000_000_001, &[1; 61], 61); // µs
    ng.epb(1, 1_700_000_000_000_000_002, &[2; 40], 1500); // ns
    ng.spb(&[3; 33]); // no time: the last one
    ng.block(0x0000_0bad, &[0; 16]); // custom block: skipped
    ng.shb(true);
    ng.idb(113, 0, Some(0x80 | 20), Some(1_000)); // SLL, 2^-20 s, +1000 s
    ng.pb(0, 3 << 20, &[4; 20]); // 3 s after the offset
    ng.out
}

#[test]
fn pcapng_interfaces_resolutions_and_sections() {
    let cap = Capture::from_vec("two.pcapng", sample_pcapng()).unwrap();
    assert_eq!(cap.format(), CaptureFormat::Pcapng { big_endian: false });
    let (frames, trunc) = read_all(&cap);
    assert_eq!(trunc, None);
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.ts_nanos, f.link, f.linktype_raw, f.data.len(), f.orig_len))
        .collect();
    assert_eq!(
        got,
        [
            (
                1_700_000_000_000_001_000,
                Some(LinkType::Ethernet),
                1,
                61,
                61
            ),
            (
                1_700_000_000_000_000_002,
                Some(LinkType::RawIp),
                101,
                40,
                1500
            ),
            (
                1_700_000_000_000_000_002,
                Some(LinkType::Ethernet),
                1,
                33,
                33
            ),
            (1_003_000_000_000, Some(LinkType::LinuxSll), 113, 20, 20),
        ]
    );
    assert_eq!(frames[0].data, &[1; 61]);
    assert_eq!(frames[2].data, &[3; 33]);
    assert_eq!(frames[3].data, &[4; 20]);
}

#[test]
fn pcapng_spb_is_cut_to_the_snap_length() {
    let mut ng = Ng {
        be: true,
        out: Vec::new(),
    };
    ng.shb(true);
    ng.idb(1, 16, None, None);
    ng.spb(&[7; 30]);
    let cap = Capture::from_vec("spb.pcapng", ng.out).unwrap();
    assert_eq!(cap.format(), CaptureFormat::Pcapng { big_endian: true });
    let (frames, _) = read_all(&cap);
    assert_eq!(
        (frames[0].data.len(), frames[0].orig_len, frames[0].ts_nanos),
        (16, 30, 0)
    );
}

#[test]
fn pcapng_damage_is_an_error() {
    // A packet on an interface that was never described.
    let mut ng = Ng {
        be: false,
        out: Vec::new(),
    };
    ng.shb(false);
    ng.idb(1, 0, None, None);
    ng.epb(0, 1, A, 60);
    ng.epb(3, 2, A, 60);
    let bad_at = ng.out.len() - (12 + 20 + 60);
    let cap = Capture::from_vec("noif.pcapng", ng.out.clone()).unwrap();
    let mut it = cap.frames();
    assert!(it.next().unwrap().is_ok());
    match it.next() {
        Some(Err(CaptureError::Corrupt {
            offset,
            frame,
            what,
            ..
        })) => {
            assert_eq!(
                (offset, frame, what),
                (bad_at as u64, 2, Corruption::UnknownInterface(3))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(it.next().is_none());

    // Trailing length disagrees with the leading one.
    let mut bytes = ng.out;
    let last = bytes.len() - 4;
    bytes[last] ^= 0x40;
    let cap = Capture::from_vec("trailer.pcapng", bytes).unwrap();
    let errs: Vec<_> = cap.frames().filter_map(Result::err).collect();
    assert!(matches!(
        errs[..],
        [CaptureError::Corrupt {
            what: Corruption::BlockLengthMismatch { .. },
            ..
        }]
    ));
    assert!(
        errs[0].to_string().contains("trailer.pcapng"),
        "{}",
        errs[0]
    );

    // A block length that is not a multiple of 4.
    let mut ng = Ng {
        be: false,
        out: Vec::new(),
    };
    ng.shb(false);
    ng.out.extend_from_slice(&[1, 0, 0, 0, 13, 0, 0, 0]);
    ng.out.extend_from_slice(&[0; 16]);
    let cap = Capture::from_vec("len.pcapng", ng.out).unwrap();
    let errs: Vec<_> = cap.frames().filter_map(Result::err).collect();
    assert!(matches!(
        errs[..],
        [CaptureError::Corrupt {
            what: Corruption::BadBlockLength(13),
            ..
        }]
    ));
}

#[test]
fn pcapng_truncated() {
    let whole = sample_pcapng();
    // Cut inside the PB, the last block (52 bytes: 12 + 20 + 20 data).
    let cut = whole.len() - 10;
    let cap = Capture::from_vec("cut.pcapng", whole[..cut].to_vec()).unwrap();
    let (frames, trunc) = read_all(&cap);
    assert_eq!(frames.len(), 3);
    assert_eq!(
        trunc,
        Some(TruncatedAt {
            offset: (whole.len() - 52) as u64,
            frame: 4
        })
    );
}

#[test]
fn truncated_pcap_reads_up_to_the_cut() {
    let frames_in: Vec<(u64, &[u8], u32)> = (0..5).map(|i| (i * 1_000_000_000, B, 1514)).collect();
    let whole = write_pcap(WriterOptions::default(), &frames_in);
    let rec = 16 + B.len();
    let fourth = 24 + 3 * rec;
    // Cut inside the data of frame 4, then inside its record header.
    for cut in [fourth + 16 + 700, fourth + 9] {
        let cap = Capture::from_vec("cut.pcap", whole[..cut].to_vec()).unwrap();
        let mut it = cap.frames();
        let n = it.by_ref().inspect(|f| assert!(f.is_ok(), "{f:?}")).count();
        assert_eq!(n, 3);
        let t = it.truncated().unwrap();
        assert_eq!(
            t,
            TruncatedAt {
                offset: fourth as u64,
                frame: 4
            }
        );
        assert_eq!(it.position(), fourth as u64);
        assert_eq!(
            t.to_string(),
            format!("capture cut short at byte {fourth} (frame 4); replayed up to the cut")
        );
        assert!(it.next().is_none());
    }
    // A file of just the header has no frames and is not truncated.
    let cap = Capture::from_vec("hdr.pcap", whole[..24].to_vec()).unwrap();
    assert_eq!(read_all(&cap), (vec![], None));
}

#[test]
fn absurd_caplen_is_corrupt_not_a_panic() {
    let mut bytes = write_pcap(
        WriterOptions::default(),
        &[(0, A, 60), (1, A, 60), (2, A, 60)],
    );
    let third = 24 + 2 * (16 + 60);
    bytes[third + 8..third + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let cap = Capture::from_vec("bad.pcap", bytes).unwrap();
    let items: Vec<_> = cap.frames().collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    let Err(e) = &items[2] else {
        panic!("expected an error")
    };
    assert!(matches!(
        e,
        CaptureError::Corrupt { offset, frame: 3, what: Corruption::CaplenTooLarge { caplen: 0x7fff_0000, max: 262_144 }, .. }
            if *offset == third as u64
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("bad.pcap") && msg.contains("corrupt at byte 176") && msg.contains("1-2"),
        "{msg}"
    );
}

#[test]
fn garbage_and_bad_headers_give_clear_errors() {
    let err = |bytes: &[u8]| Capture::from_vec("x.bin", bytes.to_vec()).unwrap_err();
    let e = err(b"hello world, this is not a capture at all");
    assert!(matches!(
        e,
        CaptureError::NotACapture {
            magic: 0x6865_6c6c,
            ..
        }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("x.bin is not a pcap or pcapng file (magic 0x68656c6c)"),
        "{msg}"
    );
    assert!(err(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
        .to_string()
        .contains("gunzip"));
    assert!(matches!(err(&[]), CaptureError::Empty { .. }));
    assert!(matches!(
        err(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]),
        CaptureError::TooShort { len: 6, .. }
    ));
    assert!(matches!(
        err(&[0xd4, 0xc3]),
        CaptureError::TooShort { len: 2, .. }
    ));
    let mut v3 = write_pcap(WriterOptions::default(), &[]);
    v3[4] = 3;
    let e = err(&v3);
    assert!(matches!(
        e,
        CaptureError::UnsupportedVersion {
            format: "pcap",
            major: 3,
            minor: 4,
            ..
        }
    ));
    assert!(e.to_string().contains("editcap"), "{e}");
    let mut ng = Ng {
        be: false,
        out: Vec::new(),
    };
    ng.shb(false);
    ng.out[12] = 2;
    assert!(matches!(
        err(&ng.out),
        CaptureError::UnsupportedVersion {
            format: "pcapng",
            major: 2,
            ..
        }
    ));
    ng.out[8] = 0x99;
    assert!(matches!(err(&ng.out), CaptureError::NotACapture { .. }));
}

#[test]
fn open_checks_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pcap");
    let e = Capture::open(&missing).unwrap_err();
    assert!(matches!(e, CaptureError::NotFound { .. }));
    assert!(e.to_string().contains("nope.pcap does not exist"), "{e}");
    assert!(matches!(
        Capture::open(dir.path()).unwrap_err(),
        CaptureError::NotAFile { .. }
    ));
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let e = Capture::open(&empty).unwrap_err();
    assert!(
        matches!(e, CaptureError::Empty { .. }) && e.to_string().contains("empty.pcap"),
        "{e}"
    );

    // A real file goes through the mapping.
    let path = dir.path().join("two.pcap");
    std::fs::write(
        &path,
        write_pcap(WriterOptions::default(), &[(5, A, 60), (6, B, 1514)]),
    )
    .unwrap();
    let cap = Capture::open(&path).unwrap();
    assert_eq!(cap.path(), path);
    assert_eq!(cap.len_bytes(), 24 + 16 + 60 + 16 + 1514);
    let mut it = cap.frames();
    assert_eq!(it.position(), 24);
    assert_eq!(it.next().unwrap().unwrap().data, A);
    assert_eq!(it.position(), 24 + 16 + 60);
    assert_eq!(it.next().unwrap().unwrap().data, B);
    assert!(it.next().is_none());
    assert_eq!(it.position(), cap.len_bytes());
}

fn testdata() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata"
    ))
}

fn captures_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            captures_under(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".pcap"))
        {
            out.push(p);
        }
    }
}

/// Frame counts per capture. Computed independently of this reader, by a
/// 15-line python3 script that walks the classic pcap records with
/// `struct.unpack` (what `tcpdump -r FILE | wc -l` prints for one-line
/// decodes; tcpdump itself is not installed here). Where tcpdump's `.out`
/// file has one line per packet it agrees: tcp-handshake-nano.out 3,
/// 802.1ad_QinQ.out 2, LINKTYPE_RAW_ipv4.out 1, LINKTYPE_RAW_ipv6.out 1,
/// tcp_eight_lowest_weight_flags_set.out 1, quic_handshake_truncated.out 18.
const EXPECTED_FRAMES: &[(&str, usize)] = &[
    ("suricata-verify/app-layer-template/input.pcap", 10),
    ("suricata-verify/bug-2646-02/input.pcap", 27),
    ("suricata-verify/bug-6733-syn-packet-flow-output/input.pcap", 1),
    ("suricata-verify/community-id-ipv6/input.pcap", 70),
    ("suricata-verify/dhcp-eve-extended/input.pcap", 2),
    ("suricata-verify/dns__dns-udp-eve-txt/input.pcap", 4),
    ("suricata-verify/firewall__ruletype-firewall-50-ruleset-vs-ping/icmp-ping-plus-weird-code.pcap", 3),
    ("tcpdump/802.1ad_QinQ/802.1ad_QinQ.pcap", 2),
    ("tcpdump/LINKTYPE_RAW_ipv4/LINKTYPE_RAW_ipv4.pcap", 1),
    ("tcpdump/LINKTYPE_RAW_ipv6/LINKTYPE_RAW_ipv6.pcap", 1),
    ("tcpdump/bigtcp-ipv4/bigtcp-ipv4.pcap", 1),
    ("tcpdump/ipv4_tcp_http_xml_tso/ipv4_tcp_http_xml_tso.pcap", 1),
    ("tcpdump/ipv6_jumbogram_1/ipv6_jumbogram_1.pcap", 1),
    ("tcpdump/quic_handshake_truncated/quic_handshake_truncated.pcap", 18),
    ("tcpdump/tcp-handshake-nano/tcp-handshake-nano.pcap", 3),
    ("tcpdump/tcp_eight_lowest_weight_flags_set/tcp_eight_lowest_weight_flags_set.pcap", 1),
    ("tcpdump/tcp_header_heapoverflow/tcp_header_heapoverflow.pcap", 1),
    ("tcpdump/udp-length-heapoverflow/udp-length-heapoverflow.pcap", 1),
    ("zeek/dhcp/dhcp.pcap", 9),
    ("zeek/ftp-ipv4/ipv4.pcap", 95),
    ("zeek/ftp-ipv6/ipv6.pcap", 136),
    ("zeek/q-in-q/q-in-q.pcap", 5),
    ("zeek/sctp/sctp.pcap", 74),
    ("zeek/tcp-padding/tcp-http-with-padding.pcap", 25),
    ("zeek/vlan-mpls/mixed-vlan-mpls.pcap", 47),
    ("zeek/wikipedia/wikipedia.pcap", 136),
];

#[test]
fn every_shared_capture_reads_cleanly() {
    let root = testdata();
    assert!(
        root.is_dir(),
        "the shared captures are missing: {} is not a folder",
        root.display()
    );
    let mut files = Vec::new();
    captures_under(&root, &mut files);
    assert!(
        files.len() >= EXPECTED_FRAMES.len(),
        "only {} captures under {}",
        files.len(),
        root.display()
    );
    let mut checked = 0;
    for path in &files {
        let cap = Capture::open(path).unwrap_or_else(|e| panic!("{e}"));
        let mut it = cap.frames();
        let mut n = 0usize;
        for f in it.by_ref() {
            let f = f.unwrap_or_else(|e| panic!("{e}"));
            assert!(f.data.len() <= MAX_CAPLEN as usize);
            n += 1;
        }
        assert_eq!(it.truncated(), None, "{}", path.display());
        assert_eq!(it.position(), cap.len_bytes(), "{}", path.display());
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if let Some(&(_, want)) = EXPECTED_FRAMES.iter().find(|(p, _)| *p == rel) {
            assert_eq!(n, want, "{rel}");
            checked += 1;
        }
    }
    assert_eq!(checked, EXPECTED_FRAMES.len());
}

#[test]
fn shared_capture_details() {
    let root = testdata();
    let first = |rel: &str| {
        let cap = Capture::open(&root.join(rel)).unwrap();
        let f = cap.frames().next().unwrap().unwrap();
        (
            cap.format(),
            f.ts_nanos,
            f.link,
            f.linktype_raw,
            f.data.len(),
            f.orig_len,
        )
    };
    // Nanosecond pcap, Linux cooked capture: 17:16:09.924505488 per tcpdump's .out.
    let (_, ts, link, lt, _, _) = first("tcpdump/tcp-handshake-nano/tcp-handshake-nano.pcap");
    assert_eq!(
        (ts, link, lt),
        (1_418_145_369_924_505_488, Some(LinkType::LinuxSll), 113)
    );
    // FCS bits in the link-type field (0x30000001), snap length 46.
    let (fmt, _, link, lt, caplen, orig) =
        first("tcpdump/tcp_header_heapoverflow/tcp_header_heapoverflow.pcap");
    assert_eq!(
        (link, lt, caplen, orig),
        (Some(LinkType::Ethernet), 1, 46, 262_144)
    );
    assert!(matches!(
        fmt,
        CaptureFormat::Pcap(PcapHeader {
            snaplen: 46,
            fcs_len: None,
            ..
        })
    ));
    // BSD loopback, cut by a 256-byte snap length.
    let (_, ts, link, lt, caplen, orig) =
        first("tcpdump/quic_handshake_truncated/quic_handshake_truncated.pcap");
    assert_eq!(
        (ts, link, lt, caplen, orig),
        (
            1_635_191_822_464_273_000,
            Some(LinkType::Null),
            0,
            256,
            1252
        )
    );
    let (_, _, link, lt, _, _) = first("tcpdump/LINKTYPE_RAW_ipv6/LINKTYPE_RAW_ipv6.pcap");
    assert_eq!((link, lt), (Some(LinkType::RawIp), 101));
}

/// Reader throughput against `cat`. Run by hand, in release:
/// `cargo test --release -p vswitch-plugin --no-default-features --lib
/// capture::tests::reader_throughput -- --ignored --nocapture`
/// (set `FLOWLOG_BENCH_PCAP=/path/big.pcap` to use a file of your own).
#[test]
#[ignore = "a measurement, not a test"]
fn reader_throughput() {
    use std::time::Instant;
    let path = match std::env::var_os("FLOWLOG_BENCH_PCAP") {
        Some(p) => PathBuf::from(p),
        None => {
            let p = std::env::temp_dir().join("flowlog-reader-bench.pcap");
            if !p.exists() {
                let spec = crate::gen::GenSpec {
                    packets: 4_000_000,
                    ..Default::default()
                };
                let file = std::fs::File::create(&p).unwrap();
                crate::gen::generate(&spec, &crate::gen::example_enis(), file).unwrap();
            }
            p
        }
    };
    // Warm the page cache, then time `cat` and our walk over the same bytes.
    let len = std::fs::metadata(&path).unwrap().len();
    let cat = |_: ()| {
        let t = Instant::now();
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cat '{}' > /dev/null", path.display()))
            .status()
            .unwrap();
        assert!(st.success());
        t.elapsed()
    };
    cat(());
    let (mut t_cats, mut t_walks) = (Vec::new(), Vec::new());
    for round in 0..9 {
        let t_cat = cat(());
        let t = Instant::now();
        let cap = Capture::open(&path).unwrap();
        let (mut n, mut sum) = (0u64, 0u64);
        for f in cap.frames() {
            let f = f.unwrap();
            n += 1;
            // Touch what a parser touches: the first bytes of each frame.
            sum = sum.wrapping_add(u64::from(f.data.first().copied().unwrap_or(0)) + f.ts_nanos);
        }
        drop(cap); // unmapping is part of the cost
        let t_walk = t.elapsed();
        println!(
            "round {round}: {len} bytes, {n} frames: walk {:.0} ms, cat {:.0} ms [{sum}]",
            t_walk.as_secs_f64() * 1e3,
            t_cat.as_secs_f64() * 1e3,
        );
        t_cats.push(t_cat);
        t_walks.push(t_walk);
    }
    t_cats.sort();
    t_walks.sort();
    let gbs = |d: std::time::Duration| len as f64 / d.as_secs_f64() / 1e9;
    for (name, t) in [("walk", &t_walks), ("cat", &t_cats)] {
        println!(
            "{name}: min {:.0} ms ({:.2} GB/s), median {:.0} ms ({:.2} GB/s)",
            t[0].as_secs_f64() * 1e3,
            gbs(t[0]),
            t[4].as_secs_f64() * 1e3,
            gbs(t[4])
        );
    }
}
