//! Placeholder until the sink exists.
fn main() {
    eprintln!("sink_clickhouse: not built yet");
    std::process::exit(1);
}
