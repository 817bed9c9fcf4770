-- A cluster for the ClickHouse sink (docs/DESIGN.md, "ClickHouse sink"): two shards
-- of two replicas each. The sink inserts into the LOCAL table of one replica per
-- shard (its endpoints, "mode": "shards"); queries go to the Distributed table.
-- Do not point the sink at the Distributed table: its INSERTs are forwarded in the
-- background, so the sink's batch_id check after an uncertain attempt could miss a
-- batch still queued there, and one INSERT would no longer be one part.
--
-- config.xml of every server (18.16 syntax), plus <zookeeper> and <macros>
-- (<shard>01</shard><replica>a</replica> …) for the replicated engine:
--   <remote_servers>
--     <flowlogs>
--       <shard><internal_replication>true</internal_replication>
--         <replica><host>ch1a</host><port>9000</port></replica>
--         <replica><host>ch1b</host><port>9000</port></replica></shard>
--       <shard><internal_replication>true</internal_replication>
--         <replica><host>ch2a</host><port>9000</port></replica>
--         <replica><host>ch2b</host><port>9000</port></replica></shard>
--     </flowlogs>
--   </remote_servers>
--
-- The sink: "endpoints": ["http://ch1a:8123", "http://ch2a:8123"], "table": "records_local".
-- Without replication, use records.sql's MergeTree as records_local on each shard.

CREATE DATABASE IF NOT EXISTS flowlogs;

-- On every server: the local table, replicated within its shard (same columns,
-- partition and key as records.sql).
CREATE TABLE IF NOT EXISTS flowlogs.records_local
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/flowlogs/records_local', '{replica}')
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (flow_log_id, eni_id, window_start);

-- On every server: the table to query, over all shards.
CREATE TABLE IF NOT EXISTS flowlogs.records AS flowlogs.records_local
ENGINE = Distributed(flowlogs, flowlogs, records_local, rand());
