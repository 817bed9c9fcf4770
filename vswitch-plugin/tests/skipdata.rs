//! A tiny table with eviction made impossible (the side ring to the exporter
//! is full): the packets that find no room are counted per ENI and come out
//! as SKIPDATA records whose packets and bytes are exactly what was skipped,
//! and every other packet is in an OK record.

use exporter::merge::{Merger, Plan};
use exporter::record::{LogStatus, Record};
use flowlog::export::{run_exporter, Clock};
use flowlog::flow::{FlowEntry, FlowTable};
use flowlog::wire::PacketMeta;
use flowlog::worker::{AcceptAll, Handoff, Seen, Side, Worker, NO_ENI, WORKER_BURST};
use std::sync::atomic::Ordering;

#[test]
fn skipped_packets_are_exactly_the_skipdata() {
    let cfg = exporter::config::from_json(
        r#"{"host":"h","enis":[
            {"eni_id":"eni-1","mac":"02:00:00:00:00:01","ips":[],"instance_type":"ecs.g7.large",
             "vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1", "vm_id": null, "port": null},
            {"eni_id":"eni-2","mac":"02:00:00:00:00:02","ips":[],"instance_type":"ecs.g7.large",
             "vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1", "vm_id": null, "port": null}],
            "vswitches":[{"vswitch_id":"vsw-1","vpc_id":"vpc-1"}],"security_groups":[],
            "network_acls":[],"flow_logs":[{"flow_log_id":"fl","account_id":"1","resource_type":"VPC",
            "resource_id":"vpc-1","aggregation_interval":60,"project_name":"p","log_store_name":"s"}]}"#,
        "test",
    )
    .expect("config");
    let plan = Plan::from_config(&cfg);
    let pool = (0..2).map(|_| Box::new(FlowTable::new(16, 2))).collect();
    let (handoff, active) = Handoff::new(pool, 1);
    // Fill the side ring so that no eviction can be handed over.
    let mut dummy = FlowEntry::default();
    dummy.key.eni = 1;
    dummy.packets = 1;
    dummy.used = true;
    handoff
        .side
        .push(Side::Evicted {
            slice: 600,
            gen: 0,
            entry: dummy,
        })
        .expect("room for one");
    let mut w = Worker::new(active, handoff.clone(), 60, 2, AcceptAll);

    let (mut total_p, mut total_b) = (0u64, 0u64);
    let mut pkts = Vec::new();
    for i in 0..200u32 {
        let mut m = PacketMeta {
            protocol: 17,
            src_port: i as u16,
            dst_port: 53,
            bytes: 60 + i,
            ..Default::default()
        };
        m.src[..4].copy_from_slice(&[10, 0, 0, 1]);
        m.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        for _ in 0..=(i % 3) {
            pkts.push(Seen {
                meta: m,
                secs: 610,
                ns: 610_000_000_000,
                out_eni: 0,
                in_eni: NO_ENI,
                host_verdict: None,
            });
            total_p += 1;
            total_b += u64::from(m.bytes);
        }
    }
    for c in pkts.chunks(WORKER_BURST) {
        w.process(c);
    }
    let skipped = w.counters.skipped;
    assert!(skipped > 0, "a 16-entry table cannot hold 200 flows");
    assert_eq!(w.counters.evictions, 0, "eviction was impossible");
    let clock = Clock::default();
    clock.first.store(610, Ordering::Release);
    clock.last.store(610, Ordering::Release);
    w.finish();

    let mut recs: Vec<Record> = Vec::new();
    let mut sink = |_: &exporter::merge::FlowLogInfo, _: u64, r: &[Record]| {
        recs.extend_from_slice(r);
        Ok(())
    };
    run_exporter(
        Merger::new(plan),
        &[handoff],
        &clock,
        None,
        &mut sink,
        &mut |_| {},
    );
    let eni1: Vec<&Record> = recs.iter().filter(|r| r.eni_id == "eni-1").collect();
    let ok_p: u64 = eni1
        .iter()
        .filter(|r| r.log_status == LogStatus::Ok)
        .map(|r| r.packets)
        .sum();
    let ok_b: u64 = eni1
        .iter()
        .filter(|r| r.log_status == LogStatus::Ok)
        .map(|r| r.bytes)
        .sum();
    let skip: Vec<&&Record> = eni1
        .iter()
        .filter(|r| r.log_status == LogStatus::SkipData)
        .collect();
    assert_eq!(skip.len(), 1, "one SKIPDATA record per ENI per window");
    assert_eq!(
        skip[0].packets, skipped,
        "SKIPDATA packets are the skipped packets"
    );
    assert_eq!(
        ok_p + skip[0].packets,
        total_p,
        "every packet is in exactly one OK or SKIPDATA record"
    );
    assert_eq!(ok_b + skip[0].bytes, total_b, "and so is every byte");
    assert_eq!((skip[0].start, skip[0].end), (600, 659));
}
