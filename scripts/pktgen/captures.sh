#!/bin/bash
# Writes the captures the pktgen scripts replay (`-s 0:FILE`), with roamlb's
# own generator — no EAL needed. Every Lua script names its capture in
# `local CAPTURE = "..."`; README.md lists the same commands, and
# tests/pktgen_scripts.rs checks that they agree and produce the files.
#
#   scripts/pktgen/captures.sh [OUTDIR]      (default: scripts/pktgen/captures)
#
# 65,536 packets each: pktgen loads a whole capture into mbufs and replays it
# in a loop, so every node sends 65536/nodes packets per loop, with the same
# per-flow sequence numbers on each loop (a DUT does not care; a verifier
# reading the backend side with `roamlb gen --verify-pcap` must take one loop).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/scripts/pktgen/captures}
ROAMLB=${ROAMLB:-$ROOT/target/release/roamlb}
mkdir -p "$OUT"
cd "$OUT"
roamlb() { "$ROAMLB" "$@"; }

roamlb gen --write-pcap mobile-1k-64.pcap --count 65536 --nodes 1000 --mix hao=80,esp=10,slaac=10 --move-every 64 --size 64
roamlb gen --write-pcap mobile-1k-512.pcap --count 65536 --nodes 1000 --mix hao=80,esp=10,slaac=10 --move-every 64 --size 512
roamlb gen --write-pcap mobile-64k-mix-64.pcap --count 65536 --nodes 65536 --size 64
roamlb gen --write-pcap new-identities-64.pcap --count 65536 --nodes 1 --new-share 1.0 --mix hao=80,esp=10,slaac=10 --size 64
roamlb gen --write-pcap ipv4-1k-64.pcap --count 65536 --nodes 1000 --mix ipv4=1 --size 64
