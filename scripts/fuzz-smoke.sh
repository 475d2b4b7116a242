#!/usr/bin/env bash
# Short smoke run of every cargo-fuzz target (default 20 s each).
# Usage: scripts/fuzz-smoke.sh [seconds]
# Needs cargo-fuzz (installed here if missing) and nightly features; on a
# stable toolchain RUSTC_BOOTSTRAP=1 unlocks them. Set FUZZ_SANITIZER=address
# to run under ASan (default: none, which works on every toolchain here).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/parse_frame fuzz/corpus/binding_update
# Seed the frame corpus from the committed fixtures (one file per packet,
# with a leading extension-limit octet of 8).
if command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import scapy' 2>/dev/null; then
    /usr/bin/python3 - <<'PY'
import glob, os
from scapy.all import rdpcap
n = 0
for f in glob.glob("tests/fixtures/*.pcap"):
    if "cooked" in f:
        continue
    for p in rdpcap(f):
        open(f"fuzz/corpus/parse_frame/seed{n}", "wb").write(b"\x08" + bytes(p))
        n += 1
PY
fi
for target in parse_frame binding_update; do
    echo "== fuzz $target for ${secs}s (sanitizer: $sanitizer)"
    cargo fuzz run --sanitizer "$sanitizer" "$target" -- -max_total_time="$secs" -rss_limit_mb=2048
done
