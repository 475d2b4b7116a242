#!/bin/bash
# Runs one roamlb pktgen script on bare metal: writes the capture it names
# (scripts/pktgen/captures.sh) if missing, then starts pktgen with it on
# port 0 and the script.
#
#   PKTGEN=/usr/local/bin/pktgen PCI0=0000:81:00.0 PCI1=0000:81:00.1 \
#       scripts/pktgen/run.sh scripts/pktgen/sweep.lua
#
# Cores: CORES (default 2-6: main lcore 2, rx/tx 3:4 for port 0, 5:6 for port 1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRIPT=${1:?usage: run.sh SCRIPT.lua}
CAPTURE=$(sed -n 's/^local CAPTURE = "\(.*\)".*/\1/p' "$SCRIPT")
[ -n "$CAPTURE" ] || { echo "run.sh: $SCRIPT names no CAPTURE" >&2; exit 2; }
DIR=$ROOT/scripts/pktgen/captures
[ -f "$DIR/$CAPTURE" ] || "$ROOT/scripts/pktgen/captures.sh" "$DIR"
cd "$ROOT"
exec "${PKTGEN:-pktgen}" -l "${CORES:-2-6}" -n 4 --proc-type auto --file-prefix pg \
    -a "${PCI0:?set PCI0}" -a "${PCI1:?set PCI1}" -- \
    -P -T -m "[3:4].0,[5:6].1" -s "0:$DIR/$CAPTURE" -f "$SCRIPT"
