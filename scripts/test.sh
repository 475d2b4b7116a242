#!/usr/bin/env bash
# The whole roamlb test suite on a fresh Debian 12 machine (as root): set-up,
# build, lint, unit/integration/property tests, fuzz smoke runs.
# Ends with one line "tests: N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)

echo "== build"
cargo build --workspace --all-targets --locked
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

if [ -x scripts/fuzz-smoke.sh ] && [ "$status" -eq 0 ]; then
  echo "== fuzz smoke"
  scripts/fuzz-smoke.sh || status=1
fi

passed=$(awk '/^test result:/{for(i=1;i<=NF;i++) if($(i+1) ~ /^passed;?$/) s+=$i} END{print s+0}' "$log")
failed=$(awk '/^test result:/{for(i=1;i<=NF;i++) if($(i+1) ~ /^failed;?$/) s+=$i} END{print s+0}' "$log")
ignored=$(awk '/^test result:/{for(i=1;i<=NF;i++) if($(i+1) ~ /^ignored;?$/) s+=$i} END{print s+0}' "$log")
echo "== done in $(( $(date +%s) - start ))s"
echo "tests: $passed passed, $failed failed, $ignored skipped"
exit "$status"
