-- The table of the ClickHouse sink (exporter/src/sink/clickhouse.rs; docs/DESIGN.md,
-- "ClickHouse sink"). For ClickHouse 18.16 and later (Debian 12's clickhouse-server).
-- Columns: RECORDS.md's keys with '-' written '_', flow_log_id and window_start
-- first, then batch_id (one id per INSERT: how a retry finds out whether an earlier
-- attempt landed). Addresses are text as RECORDS.md writes them (18.16 has no IPv6
-- type, and text keeps ::ffff:192.0.2.1 apart from 192.0.2.1); NULL where a record
-- has null. Times are Unix seconds as DateTime('UTC').
-- Partitioned by UTC day of window_start: the sink never puts two days in one INSERT,
-- so one INSERT is one part (all or nothing). Keep the partition key if you edit this.
-- Run it with e.g.:
--   clickhouse-client --multiquery < scripts/clickhouse/records.sql
-- or: curl --data-binary @- http://127.0.0.1:8123/  (one statement per request)
CREATE DATABASE IF NOT EXISTS flowlogs;

CREATE TABLE IF NOT EXISTS flowlogs.records
(
    flow_log_id  String,
    window_start DateTime('UTC'),
    version      UInt32,
    account_id   String,
    vpc_id       String,
    vswitch_id   String,
    vm_id        Nullable(String),
    eni_id       String,
    srcaddr      Nullable(String),
    dstaddr      Nullable(String),
    srcport      Nullable(UInt16),
    dstport      Nullable(UInt16),
    protocol     Nullable(UInt8),
    direction    Nullable(Enum8('in' = 1, 'out' = 2)),
    packets      UInt64,
    bytes        UInt64,
    start        DateTime('UTC'),
    end          DateTime('UTC'),
    tcp_flags    UInt8,
    log_status   Enum8('OK' = 1, 'NODATA' = 2, 'SKIPDATA' = 3),
    action       Nullable(Enum8('ACCEPT' = 1, 'REJECT' = 2)),
    batch_id     UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(window_start)
-- The usual questions name a flow log or an ENI and a time range. The addresses stay
-- out of the key: 18.16 refuses Nullable key columns, and ifNull(srcaddr, '') in the
-- key halves the insert rate (benches/sink_clickhouse.rs).
ORDER BY (flow_log_id, eni_id, window_start);
