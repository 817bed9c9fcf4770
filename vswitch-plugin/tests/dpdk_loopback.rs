//! Runs real DPDK on this machine, without hugepages: EAL with `--no-huge
//! --no-pci`, a `net_ring` virtual device (whose TX ring is its own RX ring),
//! frames sent and received back byte-identical, then a clean shutdown.
//!
//! EAL initialises once per process, so this file is its own test binary
//! with a single test.

#![cfg(feature = "dpdk")]

use flowlog::dpdk::{Burst, Eal, Mempool, Port, PortConfig, QueueId, BURST_SIZE};

fn frame(i: usize) -> Vec<u8> {
    // Ethernet + IPv4 + UDP with a payload that differs per frame and length.
    let mut f = vec![
        0x02, 0, 0, 0, 0, 0x02, // dst MAC
        0x02, 0, 0, 0, 0, 0x01, // src MAC
        0x08, 0x00, // IPv4
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, // header up to the checksum
        10, 0, 0, 1, 10, 0, 0, 2, // addresses
        0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0, // UDP 12345 -> 53
    ];
    f.extend((0..(i * 7) % 200).map(|b| (b ^ i) as u8));
    let ip_len = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f
}

#[test]
fn net_ring_loopback_is_byte_identical() {
    let prefix = format!("fl-test-{}", std::process::id());
    let args = [
        "dpdk_loopback",
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "-l",
        "0",
        "--file-prefix",
        &prefix,
        "--vdev=net_ring0",
        "--no-telemetry",
        "--log-level",
        "lib.eal:error",
    ];
    let eal = Eal::init(&args).expect("EAL initialises without hugepages");
    assert!(
        Eal::init(&args).is_err(),
        "a second EAL init in one process is refused"
    );
    assert_eq!(eal.port_count(), 1, "net_ring0 is the only port");

    let pool = Mempool::new("fl_test_pool", 2047, 32, -1).expect("mempool");
    let id = Port::id_by_name("net_ring0").expect("port by name");
    assert_eq!(Port::name(id).unwrap(), "net_ring0");
    let port = Port::start(id, &PortConfig::default(), &pool).expect("port starts");

    let free_before = pool.available();
    let rounds = 10;
    let mut sent_frames = Vec::new();
    let mut received = Vec::new();
    for r in 0..rounds {
        let mut tx = Burst::new();
        let base = r * BURST_SIZE;
        tx.alloc_with(&pool, BURST_SIZE, |i| frame(base + i))
            .expect("mbufs");
        sent_frames.extend((0..BURST_SIZE).map(|i| frame(base + i)));
        let sent = port.tx_burst(QueueId(0), &mut tx);
        assert_eq!(sent, BURST_SIZE, "the ring takes the whole burst");
        assert!(tx.is_empty());

        let mut rx = Burst::new();
        let mut got = 0;
        while got < BURST_SIZE {
            let n = port.rx_burst(QueueId(0), &mut rx);
            assert!(n > 0, "frames come back from the ring");
            for i in 0..n {
                assert_eq!(rx.pkt_len(i) as usize, rx.data(i).len());
                received.push(rx.data(i).to_vec());
            }
            got += n;
            rx.clear();
        }
    }
    assert_eq!(received.len(), rounds * BURST_SIZE);
    assert_eq!(
        received, sent_frames,
        "every frame comes back byte-identical, in order"
    );
    assert_eq!(
        pool.available(),
        free_before,
        "every mbuf is back in the pool"
    );

    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, (rounds * BURST_SIZE) as u64);
    assert_eq!(stats.ipackets, (rounds * BURST_SIZE) as u64);

    drop(port);
    drop(pool);
    drop(eal);
}
