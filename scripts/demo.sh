#!/usr/bin/env bash
# roamlb's main job on its embedded default configuration (conf/demo.toml):
# no NIC needed. Sets the machine up, builds roamlb, writes a capture of moving
# Mobile IPv6 nodes, runs the appliance on DPDK net_pcap devices over it, and
# reports what went through.
#
# Environment: DEMO_NODES (default 2000) mobile nodes in the capture.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== build (release)"
cargo build --release --locked --bin roamlb

echo "== traffic"
mkdir -p demo-out
rm -f demo-out/to-servers.pcap demo-out/to-clients.pcap
scripts/mobile_traffic.py --out demo-out/in.pcap --truth demo-out/truth.jsonl --nodes "${DEMO_NODES:-2000}"
/usr/bin/python3 -c 'from scapy.all import wrpcap; wrpcap("demo-out/empty.pcap", [], linktype=1)'

free=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
if [ "${free:-0}" -lt 128 ] || ! grep -qs ' hugetlbfs ' /proc/mounts; then
  echo "demo: no hugepages available here: running with --no-huge"
  export ROAMLB_EAL__HUGEPAGES=false
fi

echo "== roamlb run (embedded conf/demo.toml)"
target/release/roamlb run --until-idle 2 | tee demo-out/report.txt

echo "== result"
# net_pcap stamps what it writes with the time of sending, so compare frames,
# not files.
/usr/bin/python3 - <<'PY'
import json
from scapy.all import rdpcap
sent = [bytes(p) for p in rdpcap("demo-out/in.pcap")]
got = [bytes(p) for p in rdpcap("demo-out/to-servers.pcap")]
nodes = {json.loads(l)["node"] for l in open("demo-out/truth.jsonl")}
print(f"packets in (client side): {len(sent)} from {len(nodes)} mobile nodes")
print(f"packets out (server side): {len(got)}")
if sent != got:
    raise SystemExit("demo: FAILED: the server side did not receive exactly the client-side packets")
print("every packet crossed the appliance unchanged and in order (captures in demo-out/)")
PY
