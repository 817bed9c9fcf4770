#!/usr/bin/env bash
# The main job: generate a sample capture with the project's own traffic
# generator (deterministic, seeded), replay it with the example host
# configuration into the local log store under out/, and show what landed:
# records per flow log, top talkers, rejected traffic with the rule that
# rejects it, and a self-contained HTML report (out/report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -d "$d" ] && PATH="$d:$PATH"
done
cargo build --release --quiet -p vswitch-plugin --bin flowlogd -p flowlogctl --bin flowlogctl
bin=target/release/flowlogd
ctl=target/release/flowlogctl
mkdir -p out
$bin gen --out out/sample.pcap --packets 2000000 --seed 1
rm -rf out/store
$bin replay --config config/example.json --pcap out/sample.pcap --out out/store
echo
$bin show --out out/store --top 5
echo
echo "a few records (out/store/net-audit/...):"
find out/store -name '*.jsonl' | sort | head -1 | xargs head -n 3
echo
echo "top talkers (flowlogctl top-talkers --store out/store):"
$ctl top-talkers --store out/store --top 5
echo
echo "rejected traffic and the rule that rejects it (flowlogctl rejected --explain):"
$ctl rejected --store out/store --explain --config config/example.json --top 5
$ctl report --store out/store --config config/example.json --out out/report.html
echo
echo "report: out/report.html (open it in a browser; it works offline)"
