//! Per-core flow tables: the key of RECORDS.md (`exporter::key`),
//! fixed-capacity open addressing, one cache line per flow, no allocation
//! after start.

mod table;

pub use exporter::key::{FlowKey, META_OUT, META_REJECT, META_V6};
pub use table::{FlowEntry, FlowTable, Insert, Judge, Sample, Skipped, PROBE};

use crate::wire::PacketMeta;
use exporter::record::{Action, Direction};

/// The key of one packet as seen at ENI `eni` in direction `dir` with verdict `action`.
#[inline]
pub fn key_of(m: &PacketMeta, eni: u16, dir: Direction, action: Action) -> FlowKey {
    let mut meta = 0;
    if m.v6 {
        meta |= META_V6;
    }
    if dir == Direction::Out {
        meta |= META_OUT;
    }
    if action == Action::Reject {
        meta |= META_REJECT;
    }
    FlowKey {
        src: m.src,
        dst: m.dst,
        sport: m.src_port,
        dport: m.dst_port,
        eni,
        proto: m.protocol,
        meta,
    }
}
