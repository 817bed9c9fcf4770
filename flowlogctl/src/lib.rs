//! `flowlogctl`'s library: reading a local log store (JSON Lines, zstd,
//! the text form, Parquet) with partition pruning, filtering and
//! aggregating records, the ready-made questions, the explanation of
//! rejected flows by the configuration's rules, the same questions as SQL
//! for ClickHouse, and the HTML traffic report. The binary
//! (`src/main.rs`) is a thin command line over this; tests and the bench
//! call it directly.

#![forbid(unsafe_code)]

pub mod clickhouse;
pub mod ctl;
pub mod explain;
pub mod filter;
pub mod json;
pub mod model;
pub mod output;
pub mod presets;
pub mod query;
pub mod report;
pub mod scan;
pub mod time;

/// An error in what the user asked for (exit status 2), as opposed to one
/// met while doing it (exit status 1). The text says what to do.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Exit status of an error: 2 when the request was wrong, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.chain().any(|c| c.downcast_ref::<UsageError>().is_some()) {
        2
    } else {
        1
    }
}
