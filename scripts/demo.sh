#!/usr/bin/env bash
# The main job: generate a sample capture with the project's own traffic
# generator (deterministic, seeded), replay it with the example host
# configuration into the local log store under out/, and show what landed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -d "$d" ] && PATH="$d:$PATH"
done
cargo build --release --quiet -p vswitch-plugin --bin flowlogd
bin=target/release/flowlogd
mkdir -p out
$bin gen --out out/sample.pcap --packets 2000000 --seed 1
rm -rf out/store
$bin replay --config config/example.json --pcap out/sample.pcap --out out/store
echo
$bin show --out out/store --top 5
echo
echo "a few records (out/store/net-audit/...):"
find out/store -name '*.jsonl' | sort | head -1 | xargs head -n 3
