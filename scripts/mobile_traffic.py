#!/usr/bin/python3
"""Write a capture of moving Mobile IPv6 nodes, crafted with scapy.

Independent of roamlb's own code, so tests can check roamlb against traffic it
did not build. Every packet goes to one VIP. Kinds of node (shares settable):

  hao     sends from a care-of address (CoA) that changes every few packets,
          with its home address in a Home Address option (RFC 6275 6.3)
  esp     IPsec ESP with a fixed SPI from changing addresses
  slaac   stateless-autoconfigured CoAs: the prefix changes, the interface
          ID stays (identity mode "slaac")
  bu      binding-update movers: a Binding Update (with a Home Address option,
          and an Alternate Care-of Address option for half of them), data
          without HAO from CoA1, a BU for CoA2, data from CoA2
  ipv4    plain IPv4 clients (the source address is the identity)

L4 checksums are computed here from RFC 6275's pseudo-header rule (the home
address replaces the source), not by scapy, which gets it wrong when the
Destination Options header holds padding beside the HAO.

With --truth FILE, writes one JSON line per packet: index, node, kind and the
identity roamlb should derive, so a test can check affinity from the output.
"""

import argparse
import ipaddress
import json
import random
import struct
import sys

from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, wrpcap  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6ExtHdrDestOpt, HAO, PadN, MIP6MH_BU, MIP6OptAltCoA,
)
from scapy.layers.ipsec import ESP  # noqa: E402

CLIENT_MAC = "02:00:00:00:00:01"
APPLIANCE_MAC = "02:00:00:00:00:02"


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def l4_checksum6(src: str, dst: str, proto: int, l4: bytes) -> int:
    from ipaddress import IPv6Address
    pseudo = (IPv6Address(src).packed + IPv6Address(dst).packed
              + struct.pack("!I3xB", len(l4), proto))
    c = csum(pseudo + l4)
    return c if c != 0 else 0xFFFF


def tcp6(src, hoa, dst, sport, dport, seq, payload):
    """TCP segment bytes with a checksum over the pseudo-header of hoa or src."""
    seg = TCP(sport=sport, dport=dport, seq=seq, flags="PA", chksum=0) / Raw(payload)
    raw = bytearray(bytes(seg))
    c = l4_checksum6(hoa or src, dst, 6, bytes(raw))
    raw[16:18] = struct.pack("!H", c)
    return bytes(raw)


def norm6(a):
    """RFC 5952 text, as roamlb and the checker print addresses."""
    return str(ipaddress.IPv6Address(a))


def hao_destopt(hoa):
    # PadN(4) puts the HAO at offset 6 mod 8 (its 8n+6 alignment rule).
    return IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0"), HAO(hoa=hoa)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--truth")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=6, help="data packets per node")
    ap.add_argument("--vip6", default="2001:db8:ffff::80")
    ap.add_argument("--vip4", default="198.51.100.80")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--mix", default="hao=50,esp=15,slaac=15,bu=10,ipv4=10",
                    help="kind=share list")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    rnd = random.Random(a.seed)
    mix = [(k, int(v)) for k, v in (kv.split("=") for kv in a.mix.split(","))]
    kinds = [k for k, n in mix for _ in range(n)]
    per_node = []  # list of (node, kind, [packets], [identities])
    counts = {}
    for node in range(a.nodes):
        kind = kinds[node % len(kinds)]
        counts[kind] = counts.get(kind, 0) + 1
        hi, lo = node >> 8, node & 0xFF
        home = norm6(f"2001:db8:100::{hi:x}:{lo:x}")
        iid = f"{0x0200 + hi:x}:{0x5eff:x}:{0xfe00 + lo:x}:{node:x}"
        sport = 20000 + node % 40000
        pkts, ids = [], []
        seq = [1000]

        def payload(tag):
            """Payload bytes and the TCP sequence number they start at."""
            data = tag.encode()
            start = seq[0]
            seq[0] += len(data)
            return start, data

        eth = Ether(src=CLIENT_MAC, dst=APPLIANCE_MAC)
        if kind == "hao":
            for i in range(a.packets):
                coa = f"2001:db8:c{i % 3:x}::{hi:x}:{lo:x}"
                sn, data = payload(f"hao-{i}")
                l4 = tcp6(coa, home, a.vip6, sport, a.port, sn, data)
                pkts.append(eth / IPv6(src=coa, dst=a.vip6) / hao_destopt(home) / Raw(l4))
                pkts[-1][IPv6].nh = 60
                pkts[-1][IPv6ExtHdrDestOpt].nh = 6
                ids.append(f"home_address={home}")
        elif kind == "esp":
            spi = 0x10000 + node
            for i in range(a.packets):
                src = norm6(f"2001:db8:e{i % 2:x}::{hi:x}:{lo:x}")
                pkts.append(eth / IPv6(src=src, dst=a.vip6) / ESP(spi=spi, seq=i + 1, data=b"\x00" * 24))
                ids.append(f"spi=0x{spi:08x}")
        elif kind == "slaac":
            for i in range(a.packets):
                src = f"2001:db8:{0xa0 + i % 2:x}:1:{iid}"
                sn, data = payload(f"slaac-{i}")
                l4 = tcp6(src, None, a.vip6, sport, a.port, sn, data)
                pkts.append(eth / IPv6(src=src, dst=a.vip6, nh=6) / Raw(l4))
                ids.append("interface_id=" + ":".join(f"{int(g, 16):04x}" for g in iid.split(":")))
        elif kind == "bu":
            coa1 = f"2001:db8:b1::{hi:x}:{lo:x}"
            coa2 = f"2001:db8:b2::{hi:x}:{lo:x}"
            alt = node % 2 == 0
            half = max(1, a.packets // 2)
            for step, coa in enumerate((coa1, coa2)):
                # Lifetime 100 units of 4 s; A (acknowledge) set.
                bu = MIP6MH_BU(seq=node * 2 + step, flags="A", mhtime=100, cksum=0)
                if alt:
                    bu.options = [MIP6OptAltCoA(acoa=coa)]
                # With the Alternate CoA option the BU may come from another
                # address of the node; the option names the care-of address.
                src = f"2001:db8:aa::{hi:x}:{lo:x}" if alt else coa
                mh = bytearray(bytes(bu))
                mh[4:6] = struct.pack("!H", l4_checksum6(home, a.vip6, 135, bytes(mh)))
                pkts.append(eth / IPv6(src=src, dst=a.vip6) / hao_destopt(home) / Raw(bytes(mh)))
                pkts[-1][IPv6].nh = 60
                pkts[-1][IPv6ExtHdrDestOpt].nh = 135
                ids.append(f"home_address={home}")
                for i in range(half):
                    sn, data = payload(f"bu-{step}-{i}")
                    l4 = tcp6(coa, None, a.vip6, sport, a.port, sn, data)
                    pkts.append(eth / IPv6(src=coa, dst=a.vip6, nh=6) / Raw(l4))
                    # No HAO: roamlb maps the CoA to the node through the BU.
                    ids.append(f"home_address={home}")
        elif kind == "ipv4":
            src = f"10.{(node >> 16) & 0xFF}.{hi & 0xFF}.{lo}"
            for i in range(a.packets):
                sn, data = payload(f"v4-{i}")
                pkts.append(eth / IP(src=src, dst=a.vip4) / TCP(sport=sport, dport=a.port, seq=sn, flags="PA") / Raw(data))
                ids.append(f"source={src}")
        else:
            sys.exit(f"unknown kind {kind}")
        per_node.append((node, kind, pkts, ids))

    # Interleave nodes round-robin so moves happen while others talk.
    out, truth = [], []
    depth = max(len(p) for _, _, p, _ in per_node)
    for i in range(depth):
        order = list(range(len(per_node)))
        rnd.shuffle(order)
        for n in order:
            node, kind, pkts, ids = per_node[n]
            if i < len(pkts):
                truth.append({"index": len(out), "node": node, "kind": kind, "identity": ids[i]})
                pkts[i].time = 1_700_000_000 + len(out) * 1e-5
                out.append(pkts[i])
    wrpcap(a.out, out)
    if a.truth:
        with open(a.truth, "w") as f:
            for t in truth:
                f.write(json.dumps(t) + "\n")
    summary = ", ".join(f"{counts[k]} {k}" for k, _ in mix if k in counts)
    print(f"{a.out}: {len(out)} packets from {a.nodes} mobile nodes ({summary})")


if __name__ == "__main__":
    main()
