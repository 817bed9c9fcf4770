#!/usr/bin/env bash
# The test command: set-up, formatting, lints, then every test. Ends with the
# test runner's summary. Run from anywhere, as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -d "$d" ] && PATH="$d:$PATH"
done
export PATH

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
mkdir -p target
status=0
# Benchmarks are built (clippy above checks them) but not run here: they
# print figures and take minutes (scripts/bench.sh runs them).
cargo test --workspace --lib --bins --tests --examples --no-fail-fast 2>&1 | tee target/test.log | grep -vE '^test .* \.\.\. ok$' || status=$?
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' target/test.log
exit "$status"
