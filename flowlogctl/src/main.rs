//! `flowlogctl`: reads flow logs (query, report).

fn main() {
    eprintln!("flowlogctl: no command yet");
    std::process::exit(2);
}
