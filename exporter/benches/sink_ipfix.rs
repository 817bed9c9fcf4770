//! Placeholder until the sink exists.
fn main() {
    eprintln!("sink_ipfix: not built yet");
    std::process::exit(1);
}
