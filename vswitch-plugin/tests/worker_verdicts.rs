//! The worker records the verdict it is given: a host-supplied verdict is
//! used as is (the plugin ABI's seam), and a packet rejected on the sender's
//! egress never produces an `in` observation at the receiver.

use exporter::record::{Action, Direction};
use flowlog::flow::{FlowEntry, FlowTable};
use flowlog::wire::PacketMeta;
use flowlog::worker::{Handoff, Seen, Verdicts, Worker, NO_ENI};

/// Rejects everything leaving ENI 0, accepts the rest.
struct EgressDropAt0;

impl Verdicts for EgressDropAt0 {
    fn judge(&mut self, eni: u16, dir: Direction, _: &PacketMeta, _: u64) -> Action {
        if eni == 0 && dir == Direction::Out {
            Action::Reject
        } else {
            Action::Accept
        }
    }
}

fn entries(p: impl Verdicts, pkts: &[Seen]) -> Vec<FlowEntry> {
    let pool = (0..2).map(|_| Box::new(FlowTable::new(64, 4))).collect();
    let (h, active) = Handoff::new(pool, 64);
    let mut w = Worker::new(active, h.clone(), 60, 4, p);
    w.process(pkts);
    w.finish();
    let mut out = Vec::new();
    while let Some(mut t) = h.retired.pop() {
        t.drain(|e| out.push(*e), |_, _| {});
    }
    out.sort_by_key(|e| e.key);
    out
}

fn pkt(out_eni: u16, in_eni: u16, host: Option<Action>) -> Seen {
    let mut meta = PacketMeta {
        protocol: 6,
        src_port: 1000,
        dst_port: 80,
        bytes: 60,
        ..Default::default()
    };
    meta.src[..4].copy_from_slice(&[10, 0, 0, 1]);
    meta.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
    Seen {
        meta,
        secs: 100,
        ns: 100_000_000_000,
        out_eni,
        in_eni,
        host_verdict: host,
    }
}

#[test]
fn east_west_rejected_on_egress_gives_no_in_observation() {
    // ENI 0 -> ENI 1: dropped on ENI 0's egress.
    let e = entries(EgressDropAt0, &[pkt(0, 1, None)]);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].key.eni, e[0].key.direction(), e[0].key.action()),
        (0, Direction::Out, Action::Reject)
    );
    // ENI 1 -> ENI 0: accepted out of ENI 1, seen `in` at ENI 0.
    let e = entries(EgressDropAt0, &[pkt(1, 0, None)]);
    let seen: Vec<_> = e
        .iter()
        .map(|x| (x.key.eni, x.key.direction(), x.key.action()))
        .collect();
    assert!(seen.contains(&(1, Direction::Out, Action::Accept)));
    assert!(seen.contains(&(0, Direction::In, Action::Accept)));
    assert_eq!(seen.len(), 2);
}

#[test]
fn a_host_supplied_verdict_is_recorded_as_is() {
    // The policy would reject ENI 0's egress; the host says ACCEPT.
    let e = entries(EgressDropAt0, &[pkt(0, NO_ENI, Some(Action::Accept))]);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key.action(), Action::Accept);
    // And a host REJECT stands where the policy would accept.
    let e = entries(EgressDropAt0, &[pkt(NO_ENI, 2, Some(Action::Reject))]);
    assert_eq!((e[0].key.eni, e[0].key.action()), (2, Action::Reject));
}
