#!/usr/bin/env bash
# Benchmarks that print numbers (never timed tests). Each figure is printed
# as one JSON line (prefixed "BENCH ") and summed up in a table at the end.
#
#   scripts/bench.sh                 # everything
#   scripts/bench.sh datapath        # per-core datapath vs memory limit
#   scripts/bench.sh policy          # security groups: established traffic and a scan, 0-1000 rules
#   scripts/bench.sh replay          # replay end to end vs softflowd, nfpcapd, pmacctd, argus, cat
#
# Environment: PACKETS (replay capture size, default 2000000), RUNS (default 3,
# the median is reported), FLOWS (datapath flow counts).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -d "$d" ] && PATH="$d:$PATH"
done

PACKETS=${PACKETS:-2000000}
RUNS=${RUNS:-3}
FLOWS=${FLOWS:-"1000 100000 1000000 4000000"}
what=${1:-all}
bin=target/release/flowlogd
work=out/bench
mkdir -p "$work"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p')"
cargo build --release --quiet -p vswitch-plugin --bin flowlogd

if [ "$what" = all ] || [ "$what" = datapath ]; then
  echo "== datapath: parse + attribution + verdict + flow-table update, one core"
  for f in $FLOWS; do
    line=$($bin bench datapath --flows "$f" --json)
    echo "BENCH $line"
  done
fi

if [ "$what" = all ] || [ "$what" = policy ]; then
  echo "== policy: established traffic and a scan, beside the no-policy rate of the same run"
  for r in 0 10 100 1000; do
    line=$($bin bench policy --rules "$r" --json)
    echo "BENCH $line"
  done
fi

# median of the wall times of RUNS runs of a command (stdout/stderr dropped)
median_run() {
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

if [ "$what" = all ] || [ "$what" = replay ]; then
  need=()
  for p in softflowd nfdump pmacct argus-server bc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "installing the peers: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts some of them as services; the benchmark runs them by hand.
    systemctl stop softflowd pmacctd argus-server nfdump 2>/dev/null || true
  fi
  cap=$work/replay-$PACKETS.pcap
  [ -s "$cap" ] || $bin gen --out "$cap" --packets "$PACKETS" --seed 7 >/dev/null
  echo "== replay end to end: $cap ($PACKETS packets, $(du -m "$cap" | cut -f1) MiB), median of $RUNS runs"
  cat "$cap" >/dev/null  # page cache warm for everyone
  rm -rf "$work/store" "$work/nfpcapd" "$work/argus.out" "$work/pmacct.csv"
  mkdir -p "$work/nfpcapd"
  declare -A T
  T[cat]=$(median_run sh -c "cat '$cap' > /dev/null")
  T[flowlogd_1]=$(median_run sh -c "rm -rf '$work/store'; $bin replay --config config/example.json --pcap '$cap' --out '$work/store' --quiet --workers 1")
  T[flowlogd_2]=$(median_run sh -c "rm -rf '$work/store'; $bin replay --config config/example.json --pcap '$cap' --out '$work/store' --quiet --workers 2")
  T[softflowd]=$(median_run softflowd -r "$cap" -n 127.0.0.1:9995)
  T[nfpcapd]=$(median_run sh -c "rm -rf '$work/nfpcapd'/*; nfpcapd -r '$cap' -w '$work/nfpcapd'")
  T[argus]=$(median_run argus -r "$cap" -w "$work/argus.out")
  T[pmacctd]=$(median_run pmacctd -I "$cap" -P print -c src_host,dst_host,proto,src_port,dst_port -O csv -o "$work/pmacct.csv")
  printf '%-14s %10s %10s %12s\n' tool seconds Mpps "vs fastest peer"
  best=0
  for peer in softflowd nfpcapd argus pmacctd; do
    m=$(echo "$PACKETS / ${T[$peer]} / 1000000" | bc -l)
    if (( $(echo "$m > $best" | bc -l) )); then best=$m; fi
  done
  for k in cat flowlogd_1 flowlogd_2 softflowd nfpcapd argus pmacctd; do
    m=$(echo "$PACKETS / ${T[$k]} / 1000000" | bc -l)
    r=$(echo "$m / $best" | bc -l)
    printf '%-14s %10.3f %10.2f %11.2fx\n' "$k" "${T[$k]}" "$m" "$r"
    echo "BENCH {\"bench\":\"replay\",\"tool\":\"$k\",\"packets\":$PACKETS,\"seconds\":${T[$k]},\"mpps\":$(printf '%.3f' "$m"),\"vs_fastest_peer\":$(printf '%.2f' "$r")}"
  done
fi
