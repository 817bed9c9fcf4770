#!/usr/bin/env bash
# Installs, with apt, everything the build and the tests need on Debian 12.
# Idempotent: quiet when all is there. Must run as root (or through sudo).
set -euo pipefail

PACKAGES=(
  # build: DPDK 22.11 and bindgen's libclang, pkg-config to find them
  libdpdk-dev dpdk libclang-dev clang pkg-config
  # net_pcap virtual devices and captures
  libpcap-dev tcpdump
  # compression of the log store, checks in tests
  zstd python3 ca-certificates
  # sinks' real peers, started on loopback by the tests: an IPFIX collector
  # (nfcapd, read back with nfdump) and ClickHouse over HTTP
  nfdump clickhouse-server clickhouse-client
  # the traffic report is opened in headless Chromium by its test
  chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: these packages are missing: ${missing[*]}" >&2
    echo "setup.sh: run it as root to install them: sudo scripts/setup.sh" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH"
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: no Rust toolchain (cargo) found; install one with rustup (Rust 1.80 or newer)" >&2
  exit 1
fi
if ! pkg-config --atleast-version=22.11 libdpdk; then
  echo "setup.sh: pkg-config does not find DPDK >= 22.11 (libdpdk-dev) after installing it" >&2
  exit 1
fi
