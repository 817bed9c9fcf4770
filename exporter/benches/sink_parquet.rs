//! Placeholder until the sink exists.
fn main() {
    eprintln!("sink_parquet: not built yet");
    std::process::exit(1);
}
