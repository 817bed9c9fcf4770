//! Fuzzes `flowlog::wire::parse`: the first byte selects the link type
//! (low 3 bits) and how the wire length relates to the captured length
//! (high 5 bits); the rest is the frame. Besides "no panic", checks the
//! invariants RECORDS.md promises of every successfully parsed packet.
//!
//! Seeds: `scripts/fuzz-seeds.sh` (frames of the test captures).
//! Run: `cargo +nightly fuzz run parse -- -max_total_time=600`.

#![no_main]

use flowlog::wire::{parse, LinkType, PacketMeta};
use libfuzzer_sys::fuzz_target;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::RawIpv4,
    LinkType::RawIpv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel & 7)];
    let captured = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    // 0: wire = captured; 1: one byte less (inconsistent record);
    // k >= 2: captured + 2^k (snap length, TSO, jumbograms, up to 2^31).
    let wire_len = match sel >> 3 {
        0 => captured,
        1 => captured.saturating_sub(1),
        k => captured.saturating_add(1u32 << k),
    };

    let mut a = PacketMeta::default();
    let ra = parse(link, frame, wire_len, &mut a);
    // Success overwrites every field: a second parse into garbage agrees.
    let mut b = PacketMeta {
        src_mac: [0xee; 6],
        dst_mac: [0xee; 6],
        src: [0xee; 16],
        dst: [0xee; 16],
        v6: true,
        protocol: 0xee,
        src_port: 0xeeee,
        dst_port: 0xeeee,
        tcp_flags: 0xee,
        fragment: true,
        bytes: 0xeeee_eeee,
    };
    let rb = parse(link, frame, wire_len, &mut b);
    assert_eq!(ra, rb);
    if ra.is_err() {
        return;
    }
    assert_eq!(a, b);

    // RECORDS.md invariants.
    assert!(a.bytes <= wire_len.max(captured), "bytes beyond the wire");
    if a.v6 {
        assert!(a.bytes >= 40);
    } else {
        assert!(a.bytes >= 20);
        assert_eq!(&a.src[4..], &[0; 12]);
        assert_eq!(&a.dst[4..], &[0; 12]);
    }
    if !link.has_mac() {
        assert_eq!(a.src_mac, [0; 6]);
        assert_eq!(a.dst_mac, [0; 6]);
    }
    if a.fragment {
        assert_eq!((a.src_port, a.dst_port, a.tcp_flags), (0, 0, 0));
    }
    if a.protocol != 6 {
        assert_eq!(a.tcp_flags, 0);
    }
    match a.protocol {
        6 | 17 | 132 => {}
        1 | 58 => assert_eq!(a.src_port, 0),
        _ => assert_eq!((a.src_port, a.dst_port), (0, 0)),
    }
});
