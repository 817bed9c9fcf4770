#!/usr/bin/env bash
# The main job. For now: forward a real capture between two DPDK virtual
# devices (net_pcap) and print the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -d "$d" ] && PATH="$d:$PATH"
done
cargo build --release --quiet -p vswitch-plugin --bin flowlogd
mkdir -p out
target/release/flowlogd smoke --pcap ../shared/testdata/zeek/ftp-ipv4/ipv4.pcap --out out/smoke.pcap
