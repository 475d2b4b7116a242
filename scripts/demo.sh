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
rm -f demo-out/to-servers.pcap* demo-out/to-clients.pcap*
# Moving nodes: Home Address option movers over three care-of addresses,
# ESP flows from changing addresses, SLAAC movers across two prefixes,
# binding-update movers (BU, data from CoA1 without HAO, BU for CoA2, data
# from CoA2), and IPv4 clients.
scripts/mobile_traffic.py --out demo-out/in.pcap --truth demo-out/truth.jsonl \
  --nodes "${DEMO_NODES:-2000}" --mix hao=40,esp=20,slaac=20,bu=10,ipv4=10
/usr/bin/python3 -c 'from scapy.all import wrpcap; wrpcap("demo-out/empty.pcap", [], linktype=1)'

free=$(awk '/HugePages_Free/{print $2}' /proc/meminfo)
if [ "${free:-0}" -lt 128 ] || ! grep -qs ' hugetlbfs ' /proc/mounts; then
  echo "demo: no hugepages available here: running with --no-huge"
  export ROAMLB_EAL__HUGEPAGES=false
fi

echo "== roamlb run (embedded conf/demo.toml: two workers, DNAT to 3 IPv6 and 2 IPv4 backends)"
target/release/roamlb run --until-idle 2 | tee demo-out/report.txt

echo "== result (read back from the server-side captures by scripts/check_affinity.py)"
scripts/check_affinity.py demo-out/to-servers.pcap demo-out/to-servers.pcap.1 --truth demo-out/truth.jsonl \
  > demo-out/affinity.json
/usr/bin/python3 - <<'PY'
import json
r = json.load(open("demo-out/affinity.json"))
sent = sum(1 for _ in open("demo-out/truth.jsonl"))
print(f"packets in: {sent}; packets out toward backends: {r['packets']}")
print("mobile nodes served per backend:")
for backend, nodes in r["nodes_per_backend"].items():
    print(f"  {backend:<18} {nodes:>6} nodes")
print(f"nodes that reached more than one backend: {r['violations']} of {r['nodes']}")
if r["violations"] or r["unmatched"] or r["packets"] != sent:
    raise SystemExit("demo: FAILED: affinity or accounting does not hold")
print("every mobile node kept its backend across its moves (captures in demo-out/)")
PY
