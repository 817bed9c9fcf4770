#!/usr/bin/env bash
# Benchmarks that print numbers (never timed tests). Each figure is printed
# as one JSON line (prefixed "BENCH ") and summed up in a table at the end.
#
#   scripts/bench.sh                 # everything
#   scripts/bench.sh datapath        # per-core datapath vs memory limit
#   scripts/bench.sh policy          # security groups: established traffic and a scan, 0-1000 rules
#   scripts/bench.sh replay          # replay end to end vs softflowd, nfpcapd, pmacctd, argus, cat
#   scripts/bench.sh run             # flowlogd run forwarding vs dpdk-testpmd on the same vdevs
#   scripts/bench.sh scale           # the same, 1 to 12 workers (NS), where the machine has the cores
#   scripts/bench.sh sinks           # records/s of one 1M-record window into each sink, one thread
#   scripts/bench.sh query           # flowlogctl top-talkers scan rate over 10M records
#
# Environment: PACKETS (replay capture size, default 2000000), RUNS (default 3,
# the median is reported), FLOWS (datapath flow counts); for run: RUN_PACKETS
# (capture size, default 200000; 1000000 gives about 100 000 flows), SECS
# (seconds per forwarder, default 8), ROUNDS (alternating rounds, default 3,
# the medians are reported), HUGE=0 (4 KiB pages only), CEILING=1 (two more
# forwarders each round, for context: testpmd --forward-mode=5tswap, and
# flowlogd run with ENIs that match no packet, so every packet is parsed and
# attributed but nothing is judged or recorded).
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

# The run benchmarks' configurations: the example's ENIs without ports (all
# via the uplink), security groups padded to 100 rules per ENI; flow logs on
# (run-on.json), or all off (run-off.json); and run-nomatch.json, flow logs on
# with ENIs whose MAC addresses no packet carries (the forwarding loop's
# ceiling).
run_configs() {
  python3 - "$work" <<'PY'
import json, sys
c = json.load(open("config/example.json"))
for e in c["enis"]:
    e["port"] = None
for g in c["security_groups"]:
    for i in range(100 - len(g["rules"])):
        g["rules"].append({"direction": "ingress", "policy": "accept" if i % 2 else "drop",
                           "priority": 1 + i % 100, "ip_protocol": ["tcp", "udp"][i % 2],
                           "port_range": f"{2000 + i * 7}/{2003 + i * 7}", "cidr": f"10.200.{i}.0/24"})
json.dump(c, open(sys.argv[1] + "/run-on.json", "w"))
nomatch = json.loads(json.dumps(c))
for i, e in enumerate(nomatch["enis"]):
    e["mac"] = "02:99:99:99:99:%02x" % i
json.dump(nomatch, open(sys.argv[1] + "/run-nomatch.json", "w"))
for f in c["flow_logs"]:
    f["status"] = "Inactive"
json.dump(c, open(sys.argv[1] + "/run-off.json", "w"))
PY
}

# 2 MiB hugepages for the forwarding benchmarks, where HUGE=1 (the default)
# and the kernel grants them: `hugepages_reserve PAGES FREE` reserves PAGES,
# mounts hugetlbfs and succeeds when FREE pages are there to use;
# `hugepages_restore` puts the reservation found at the start back.
hp_file=/proc/sys/vm/nr_hugepages
hp_before=$(cat "$hp_file" 2>/dev/null || echo 0)
hugepages_reserve() {
  [ "${HUGE:-1}" = 1 ] && [ -w "$hp_file" ] || return 1
  mkdir -p /dev/hugepages
  mount | grep -q " type hugetlbfs" || mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
  # Pages a process stopped by a timeout left behind hold the memory.
  rm -f /dev/hugepages/bench-*map_* /dev/hugepages/scale-*map_*
  echo "$1" > "$hp_file" 2>/dev/null || true
  [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge "$2" ] && mount | grep -q " type hugetlbfs"
}
# run_for SECS LOG READY CMD...: runs CMD (output to LOG) until READY shows in
# LOG (at most 60 s), then SECS more, then stops it with SIGINT (an orderly
# stop, which flowlogd reports on).
run_for() {
  local secs=$1 log=$2 ready=$3 pid
  shift 3
  timeout -k 10 -s INT $((secs + 120)) "$@" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 240); do grep -qF "$ready" "$log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.25; done
  sleep "$secs"
  kill -INT $pid 2>/dev/null || true
  wait $pid || true
}

# The median of the numbers given (the mean of the middle two for an even
# count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'
}

# testpmd's rate in Mpps from its log (--stats-period 1): the median of the
# per-second samples after the first; 0 when there is none.
testpmd_mpps() {
  local samples
  samples=$(grep -E 'Rx-pps' "$1" | awk '$2 > 0 {print $2 / 1e6}' | tail -n +2 || true)
  if [ -n "$samples" ]; then median $samples; else echo 0; fi
}

# The name in the BENCH lines of each forwarder of `run`.
run_tool() {
  case $1 in
    off | on) echo "flowlogd run, flow logs $1, 100 rules/ENI" ;;
    tp5) echo "dpdk-testpmd 5tswap" ;;
    nomatch) echo "flowlogd run, ENIs matching no packet" ;;
  esac
}

hugepages_restore() {
  rm -f /dev/hugepages/bench-*map_* /dev/hugepages/scale-*map_*
  if [ -w "$hp_file" ]; then echo "$hp_before" > "$hp_file" 2>/dev/null || true; fi
}

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

if [ "$what" = all ] || [ "$what" = run ]; then
  dpkg-query -W -f='${Status}' dpdk-dev 2>/dev/null | grep -q "install ok installed" || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpdk-dev >/dev/null
  RUN_PACKETS=${RUN_PACKETS:-200000}
  SECS=${SECS:-8}
  ROUNDS=${ROUNDS:-3}
  rcap=$work/run-$RUN_PACKETS.pcap
  [ -s "$rcap" ] || $bin gen --out "$rcap" --packets "$RUN_PACKETS" --seed 11 >/dev/null
  run_configs
  vdevs=(--vdev="net_pcap0,rx_pcap=$rcap,infinite_rx=1" --vdev=net_null0,no-rx=1)
  # Two memory set-ups, everyone on the same one in turn: 4 KiB pages
  # (--no-huge, what every machine here allows) and, where the kernel grants
  # them, 2 MiB hugepages (how DPDK runs in production), reserved for the
  # run and the previous reservation put back afterwards. EAL memory for
  # RUN_PACKETS + 65536 mbufs: about 2.3 KiB each on hugepages, 4.5 KiB on
  # 4 KiB pages, plus room for the rest; at least 2 GiB (1100 hugepages for
  # the 200 000-packet default). RUN_PACKETS=1000000 gives the ~100 000
  # flows of the issue's example.
  mbufs=$((RUN_PACKETS + 65536))
  mem_huge=$(( mbufs * 2368 / 1048576 + 512 )); [ $mem_huge -lt 2048 ] && mem_huge=2048
  mem_small=$(( mbufs * 4608 / 1048576 + 512 )); [ $mem_small -lt 2048 ] && mem_small=2048
  memories=(no-huge)
  if hugepages_reserve $((mem_huge / 2 + 76)) $((mem_huge / 2)); then
    memories+=(hugepages)
  fi
  for mem in "${memories[@]}"; do
    eal_mb=$mem_huge
    [ "$mem" = no-huge ] && eal_mb=$mem_small
    common=(--no-pci -m "$eal_mb" --no-telemetry --log-level lib.eal:error)
    [ "$mem" = no-huge ] && common=(--no-huge "${common[@]}")
    echo "== run ($mem): one forwarding core, net_pcap (infinite_rx, $RUN_PACKETS packets) -> net_null, ${SECS} s each, $ROUNDS rounds"
    # Rounds alternate the order (testpmd, off, on; then on, off, testpmd;
    # with CEILING=1, tp5 and nomatch after on), so that neither side always
    # runs first after a quiet spell; each figure is compared with its own
    # round's testpmd, and the summary gives the medians (this VM's timings
    # drift by 10% between minutes).
    modes=(off on)
    [ "${CEILING:-0}" = 1 ] && modes+=(tp5 nomatch)
    declare -A got=()
    for round in $(seq "$ROUNDS"); do
      order=(testpmd "${modes[@]}")
      if [ $((round % 2)) = 0 ]; then
        for ((a = 0, b = ${#order[@]} - 1; a < b; a++, b--)); do t=${order[a]}; order[a]=${order[b]}; order[b]=$t; done
      fi
      declare -A mpps=()
      for t in "${order[@]}"; do
        rm -f /dev/hugepages/bench-*map_*
        # Each runs SECS from the moment it forwards (loading a large
        # capture into mbufs, and the first touch of fresh hugepages, take
        # seconds before that).
        if [ "$t" = testpmd ] || [ "$t" = tp5 ]; then
          fwd=io; [ "$t" = tp5 ] && fwd=5tswap
          run_for "$SECS" "$work/$t.log" Rx-pps dpdk-testpmd "${common[@]}" -l 0,1 --file-prefix bench-tp "${vdevs[@]}" -- \
            --forward-mode=$fwd --stats-period 1 --auto-start --nb-cores=1 --total-num-mbufs=$mbufs
          mpps[$t]=$(testpmd_mpps "$work/$t.log")
        else
          rm -rf "$work/run-store"
          # flowlogd reports the packets it received over the time they flowed.
          run_for "$SECS" "$work/run-$t.out" 'queue(s)' $bin run --config "$work/run-$t.json" --out "$work/run-store" --uplink 1 \
            --mbufs $mbufs --json -- "${common[@]}" -l 0 --file-prefix "bench-$t" "${vdevs[@]}"
          mpps[$t]=$(tail -1 "$work/run-$t.out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["mpps"])' 2>/dev/null || echo 0)
        fi
      done
      missing=""
      for t in "${order[@]}"; do
        [ "$(echo "${mpps[$t]} > 0" | bc)" = 1 ] || missing="$missing $t"
      done
      if [ -n "$missing" ]; then
        echo "run: round $round ($mem) has no figure for$missing (logs in $work): left out" >&2
        unset mpps
        continue
      fi
      tp=${mpps[testpmd]}
      echo "BENCH {\"bench\":\"run\",\"memory\":\"$mem\",\"round\":$round,\"tool\":\"dpdk-testpmd io\",\"mpps\":$tp}"
      got[testpmd]+=" $tp"
      for mode in "${modes[@]}"; do
        m=${mpps[$mode]}
        r=$(printf '%.3f' "$(echo "$m / $tp" | bc -l)")
        echo "BENCH {\"bench\":\"run\",\"memory\":\"$mem\",\"round\":$round,\"tool\":\"$(run_tool "$mode")\",\"mpps\":$m,\"vs_testpmd\":$r}"
        got[$mode]+=" $m"
        got[$mode-ratio]+=" $r"
      done
      unset mpps
    done
    [ -n "${got[testpmd]:-}" ] || { echo "run ($mem): no round gave figures" >&2; continue; }
    n=$(echo ${got[testpmd]} | wc -w)
    echo "BENCH {\"bench\":\"run\",\"memory\":\"$mem\",\"median_of\":$n,\"tool\":\"dpdk-testpmd io\",\"mpps\":$(median ${got[testpmd]})}"
    for mode in "${modes[@]}"; do
      echo "BENCH {\"bench\":\"run\",\"memory\":\"$mem\",\"median_of\":$n,\"tool\":\"$(run_tool "$mode")\",\"mpps\":$(median ${got[$mode]}),\"vs_testpmd\":$(median ${got[$mode-ratio]})}"
    done
    unset got
  done
  hugepages_restore
fi

if [ "$what" = all ] || [ "$what" = scale ]; then
  dpkg-query -W -f='${Status}' dpdk-dev 2>/dev/null | grep -q "install ok installed" || \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpdk-dev >/dev/null
  # N workers beside testpmd with N forwarding cores: one net_pcap device
  # with N RX queues (one capture of SCALE_PACKETS per queue, seeds 11..,
  # replayed forever) into net_null. net_pcap has no RSS, so flowlogd hands
  # each connection to its owner (--workers N: a handoff), where testpmd
  # forwards each queue on its own core. testpmd: main lcore 0, forwarding
  # lcores 1..N; flowlogd: workers on lcores 1..N, its exporter on the rest.
  NS=${NS:-"1 2 4 6 8 12"}
  SECS=${SECS:-5}
  SCALE_PACKETS=${SCALE_PACKETS:-100000}
  run_configs
  maxn=0
  # Captures only for the worker counts this machine has the cores for.
  for n in $NS; do
    if [ "$n" -gt "$maxn" ] && [ $((n + 1)) -le "$(nproc)" ]; then maxn=$n; fi
  done
  for q in $(seq 0 $((maxn - 1))); do
    [ -s "$work/scale-$SCALE_PACKETS-$q.pcap" ] || $bin gen --out "$work/scale-$SCALE_PACKETS-$q.pcap" --packets "$SCALE_PACKETS" --seed $((11 + q)) >/dev/null
  done
  mem_mode=no-huge
  want=$(( (maxn * SCALE_PACKETS + 65536 + maxn * 8192) * 4608 / 1048576 / 2 + 1024 ))
  if hugepages_reserve "$want" "$want"; then
    mem_mode=hugepages
  fi
  echo "== scale ($mem_mode): N workers / N forwarding cores, net_pcap (N RX queues x $SCALE_PACKETS packets, infinite_rx) -> net_null, ${SECS} s each"
  for n in $NS; do
    if [ $((n + 1)) -gt "$(nproc)" ]; then
      echo "scale: $n workers need $((n + 1)) cores (testpmd's main lcore and $n forwarding); this machine has $(nproc): skipped"
      continue
    fi
    rx=""
    for q in $(seq 0 $((n - 1))); do rx="$rx,rx_pcap=$work/scale-$SCALE_PACKETS-$q.pcap"; done
    vdevs=(--vdev="net_pcap0${rx},infinite_rx=1" --vdev=net_null0,no-rx=1)
    # 4 KiB pages hold one 2.2 KiB mbuf each (DPDK keeps objects within a page).
    mb=$((n * SCALE_PACKETS + 65536 + n * 8192))
    common=(--no-pci -m $((mb * 4608 / 1048576 + 1024)) --no-telemetry --log-level lib.eal:error)
    [ "$mem_mode" = no-huge ] && common=(--no-huge "${common[@]}")
    rm -f /dev/hugepages/scale-*map_*
    # Forwarding starts once the captures are loaded: time from there.
    run_for "$SECS" "$work/scale-tp.log" Rx-pps dpdk-testpmd "${common[@]}" -l "0-$n" --file-prefix scale-tp "${vdevs[@]}" -- \
      --forward-mode=io --stats-period 1 --auto-start --nb-cores="$n" --rxq="$n" --txq="$n" --total-num-mbufs="$mb"
    tp=$(testpmd_mpps "$work/scale-tp.log")
    echo "BENCH {\"bench\":\"scale\",\"memory\":\"$mem_mode\",\"workers\":$n,\"tool\":\"dpdk-testpmd io\",\"mpps\":$tp}"
    for mode in off on; do
      rm -rf "$work/scale-store"
      rm -f /dev/hugepages/scale-*map_*
      run_for "$SECS" "$work/scale-$mode.out" 'queue(s)' $bin run --config "$work/run-$mode.json" --out "$work/scale-store" --uplink 1 --workers "$n" --no-socket \
        --mbufs "$mb" --json -- "${common[@]}" -l "1-$n" --file-prefix "scale-$mode" "${vdevs[@]}"
      tail -1 "$work/scale-$mode.out" | python3 -c '
import json, sys
n, mode, mem, tp = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
d = json.loads(sys.stdin.read())
m = (d["received"] - d["handoff_dropped"]) / d["rx_s"] / 1e6
print("BENCH " + json.dumps({"bench": "scale", "memory": mem, "workers": int(n),
      "tool": "flowlogd run, flow logs %s, 100 rules/ENI" % mode, "mpps": round(m, 3),
      "vs_testpmd": round(m / tp, 2) if tp else None, "handed_off": round(d["handed_off"] / max(1, d["received"]), 3),
      "handoff_dropped": d["handoff_dropped"]}))' "$n" "$mode" "$mem_mode" "$tp" ||
        { echo "scale: flowlogd run with $n workers failed:"; tail -3 "$work/scale-$mode.out"; }
    done
  done
  hugepages_restore
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
  # The floor under any replay of this file here: mapping it, finding every
  # frame, unmapping it, with no packet processed. The best ratio to the
  # fastest peer that a replay could reach on this machine is that floor's.
  line=$($bin bench read --pcap "$cap" --json)
  echo "BENCH $line"
  floor=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["figures"]["reader_total_ms"] / 1000)')
  printf 'reader alone (map + find every frame + unmap): %.3f s, %.2fx the fastest peer at best\n' \
    "$floor" "$(echo "$PACKETS / $floor / 1000000 / $best" | bc -l)"
fi

if [ "$what" = all ] || [ "$what" = sinks ]; then
  echo "== sinks: one 1M-record window, one exporter thread, beside JSON Lines in the same run"
  # Each bench prints its BENCH lines; the ClickHouse one starts its own
  # clickhouse-server on loopback.
  for b in sink_parquet sink_ipfix sink_clickhouse; do
    cargo bench --quiet -p exporter --bench "$b" 2>/dev/null | grep '^BENCH ' || echo "bench $b failed" >&2
  done
fi

if [ "$what" = all ] || [ "$what" = query ]; then
  echo "== query: top talkers over 10M records, one core (Parquet and zstd JSON Lines)"
  cargo bench --quiet -p flowlogctl --bench query 2>/dev/null | grep '^BENCH ' || echo "bench query failed" >&2
fi
