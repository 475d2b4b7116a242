#!/usr/bin/python3
"""Builds the capture fixtures under tests/fixtures/ with scapy, independently
of roamlb's own code, so tests/classify.rs checks our parser against frames we
did not build ourselves.

Run from the repository root:  /usr/bin/python3 scripts/make-fixtures.py
(Debian's python3-scapy 2.5; the output is committed, keep it small.)

L4 checksums: scapy 2.5 gets the TCP/UDP checksum wrong when a Home Address
option is not the only option of its header, so every packet with a HAO has
its L4 checksum computed here with the RFC 6275 §6.3 / RFC 8200 §8.1
pseudo-header (home address as source). Malformed packets are assembled from
raw bytes where scapy would "fix" the very field we want broken.
"""
import os
import struct
import sys

from scapy.all import (ARP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest, IP, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, PadN, Raw, TCP, UDP, RouterAlert,
                       wrpcap, in6_chksum)
from scapy.layers.inet6 import HAO, MIP6MH_BU, MIP6OptAltCoA, MIP6MH_BA, IPv6ExtHdrSegmentRouting
from scapy.layers.ipsec import ESP
from scapy.utils import PcapNgWriter, PcapWriter

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

MAC = dict(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
CN = "2001:db8:5::80"          # correspondent / VIP
COA = "2001:db8:c0a::1"        # care-of address
HOME = "2001:db8:40::1"        # home address
HA = "2001:db8:40::ffff"       # home agent
ALT = "2001:db8:c0b::2"        # alternate care-of address
SLAAC = "2001:db8:c0a:0:211:22ff:fe33:4455"


def eth(p, **kw):
    return Ether(**MAC, **kw) / p


def fix_l4_with_hoa(pkt, hoa):
    """Recomputes the TCP/UDP checksum with the home address as pseudo source."""
    pkt = Ether(bytes(pkt))
    for layer in (TCP, UDP):
        if pkt.haslayer(layer):
            l4 = pkt[layer]
            l4.chksum = 0
            data = bytes(l4)
            proto = 6 if layer is TCP else 17
            ip6 = pkt[IPv6]
            # Pseudo-header: home address, destination, length, next header.
            from ipaddress import IPv6Address
            ph = (IPv6Address(hoa).packed + IPv6Address(ip6.dst).packed
                  + struct.pack("!IxxxB", len(data), proto))
            s = 0
            buf = ph + data + (b"\0" if len(data) % 2 else b"")
            for i in range(0, len(buf), 2):
                s += (buf[i] << 8) | buf[i + 1]
            while s >> 16:
                s = (s & 0xffff) + (s >> 16)
            c = (~s) & 0xffff
            if c == 0 and layer is UDP:
                c = 0xffff
            l4.chksum = c
            return Ether(bytes(pkt))
    return pkt


def basic():
    p = []
    # 0 IPv4/TCP
    p.append(eth(IP(src="192.0.2.10", dst="198.51.100.1") / TCP(sport=40000, dport=80, seq=1000, flags="S")))
    # 1 IPv6/TCP
    p.append(eth(IPv6(src=COA, dst=CN) / TCP(sport=40001, dport=443, flags="S")))
    # 2 IPv6 + DestOpts(HAO) / TCP
    p.append(fix_l4_with_hoa(eth(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME)]) / TCP(sport=40002, dport=80, flags="PA")), HOME))
    # 3 IPv6 + HBH(RouterAlert) + DestOpts(PadN, HAO) / UDP
    p.append(fix_l4_with_hoa(eth(IPv6(src=COA, dst=CN) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
                                 / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0"), HAO(hoa=HOME)], autopad=1)
                                 / UDP(sport=5000, dport=53) / Raw(b"query")), HOME))
    # 4 IPv6 + ESP
    p.append(eth(IPv6(src=COA, dst=CN) / ESP(spi=0x0000abcd, seq=7, data=b"\x11" * 24)))
    # 5 IPv4 + ESP
    p.append(eth(IP(src="192.0.2.11", dst="198.51.100.1") / ESP(spi=0xdeadbeef, seq=1, data=b"\x22" * 16)))
    # 6 IPv6 + DestOpts(HAO) + ESP: SPI wins over HAO
    p.append(eth(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME)]) / ESP(spi=0x01020304, seq=2, data=b"\x33" * 16)))
    # 7 ARP request
    p.append(Ether(src=MAC["src"], dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC["src"], psrc="192.0.2.10", pdst="192.0.2.1"))
    # 8 802.1Q VLAN 100, IPv4/UDP
    p.append(Ether(**MAC) / Dot1Q(vlan=100) / IP(src="192.0.2.12", dst="198.51.100.1") / UDP(sport=1234, dport=53))
    # 9 QinQ 802.1ad 200 / 802.1Q 300, IPv6/TCP with HAO
    p.append(fix_l4_with_hoa(Ether(**MAC) / Dot1AD(vlan=200) / Dot1Q(vlan=300) / IPv6(src=COA, dst=CN)
                             / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME)]) / TCP(sport=40003, dport=80), HOME))
    # 10, 11 IPv6 fragments: first (carries TCP) and non-first
    p.append(eth(IPv6(src=COA, dst=CN) / IPv6ExtHdrFragment(id=99, m=1, offset=0, nh=6) / TCP(sport=40004, dport=80) / Raw(b"x" * 16)))
    p.append(eth(IPv6(src=COA, dst=CN) / IPv6ExtHdrFragment(id=99, m=0, offset=5, nh=6) / Raw(b"y" * 16)))
    # 12, 13 IPv4 fragments: first and non-first
    p.append(eth(IP(src="192.0.2.13", dst="198.51.100.1", flags="MF", frag=0, proto=17) / Raw(b"\x13\x88\x00\x35\x00\x20\x00\x00" + b"z" * 16)))
    p.append(eth(IP(src="192.0.2.13", dst="198.51.100.1", flags=0, frag=3, proto=17) / Raw(b"w" * 8)))
    # 14 Reply to a mobile node: type 2 Routing header with the home address
    p.append(eth(IPv6(src=CN, dst=COA) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOME]) / TCP(sport=80, dport=40002, flags="A")))
    # 15 ICMPv6 echo request
    p.append(eth(IPv6(src=COA, dst=CN) / ICMPv6EchoRequest(id=1, seq=1)))
    return p


def mobility():
    p = []
    # 0 BU from the MN to its HA: HAO + BU, no Alternate CoA
    p.append(eth(IPv6(src=COA, dst=HA) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME)])
                 / MIP6MH_BU(seq=10, flags=0b1100, mhtime=150)))
    # 1 BU with an Alternate Care-of Address option
    p.append(eth(IPv6(src=COA, dst=HA) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME)])
                 / MIP6MH_BU(seq=11, mhtime=75, options=[MIP6OptAltCoA(acoa=ALT)])))
    # 2 Binding Acknowledgement (not a BU): forwarded, no binding_update
    p.append(eth(IPv6(src=HA, dst=COA) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOME]) / MIP6MH_BA(seq=10, mhtime=150)))
    return p


def slaac():
    return [
        eth(IPv6(src=SLAAC, dst=CN) / TCP(sport=40010, dport=80, flags="S")),
        fix_l4_with_hoa(eth(IPv6(src=SLAAC, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME)]) / TCP(sport=40011, dport=80)), HOME),
        eth(IP(src="192.0.2.20", dst="198.51.100.1") / TCP(sport=40012, dport=80)),
    ]


def raw_ipv6(nh, payload, src=COA, dst=CN, plen=None):
    from ipaddress import IPv6Address
    plen = len(payload) if plen is None else plen
    hdr = struct.pack("!IHBB", 6 << 28, plen, nh, 64) + IPv6Address(src).packed + IPv6Address(dst).packed
    return Ether(**MAC, type=0x86dd) / Raw(hdr + payload)


TCP_HDR = struct.pack("!HHIIBBHHH", 40020, 80, 1, 0, 5 << 4, 0x02, 8192, 0, 0)


def destopts(opts, nh=6):
    body = bytes(opts)
    assert (len(body) + 2) % 8 == 0, len(body)
    return bytes([nh, (len(body) + 2) // 8 - 1]) + body


def hao_opt(length):
    return bytes([201, length]) + b"\x20" * length


def malformed():
    from ipaddress import IPv6Address
    p = []
    good = bytes(eth(IPv6(src=COA, dst=CN) / TCP(sport=1, dport=2)))
    # 0 Ethernet header cut short
    p.append(Raw(good[:10]))
    # 1 IPv4 with a corrupted header checksum
    v4 = eth(IP(src="192.0.2.30", dst="198.51.100.1") / TCP(sport=1, dport=2))
    b = bytearray(bytes(v4)); b[24] ^= 0xff
    p.append(Raw(bytes(b)))
    # 2 IPv4 header cut at 12 octets
    p.append(Raw(bytes(v4)[:14 + 12]))
    # 3, 4, 5 HAO with Option Length 8, 20 and 0
    p.append(raw_ipv6(60, destopts(hao_opt(8) + bytes([1, 2, 0, 0])) + TCP_HDR))
    p.append(raw_ipv6(60, destopts(hao_opt(20)) + TCP_HDR))
    p.append(raw_ipv6(60, destopts(hao_opt(0) + bytes([1, 2, 0, 0])) + TCP_HDR))
    # 6 Mobility Header with a bogus Header Len (past the packet)
    bu = bytes(MIP6MH_BU(seq=1, mhtime=1))
    bad = bytearray(bu); bad[1] = 20
    p.append(raw_ipv6(135, bytes(bad)))
    # 7 ESP cut before the SPI ends
    p.append(raw_ipv6(50, b"\x00\x00"))
    # 8 64 Destination Options headers in a row
    chain = b"".join(destopts([1, 4, 0, 0, 0, 0], nh=60) for _ in range(63)) + destopts([1, 4, 0, 0, 0, 0], nh=6)
    p.append(raw_ipv6(60, chain + TCP_HDR))
    # 9 option length runs past its header
    p.append(raw_ipv6(60, bytes([6, 0, 1, 9, 0, 0, 0, 0]) + TCP_HDR))
    # 10 TCP data offset 4
    bad_tcp = bytearray(TCP_HDR); bad_tcp[12] = 4 << 4
    p.append(raw_ipv6(6, bytes(bad_tcp)))
    # 11 LLDP: not an EtherType we balance
    p.append(Ether(src=MAC["src"], dst="01:80:c2:00:00:0e", type=0x88cc) / Raw(b"\x02\x07\x04" + b"\0" * 40))
    # 12 Hop-by-Hop after Destination Options
    p.append(raw_ipv6(60, destopts([1, 4, 0, 0, 0, 0], nh=0) + destopts([1, 4, 0, 0, 0, 0], nh=6) + TCP_HDR))
    # 13 IPv6 Payload Length past the frame: refused before any address is trusted
    p.append(raw_ipv6(6, TCP_HDR, plen=200))
    # 14 HAO found, then the TCP header is truncated: identity is the home address
    p.append(raw_ipv6(60, destopts([1, 2, 0, 0, 201, 16] + list(IPv6Address(HOME).packed)) + TCP_HDR[:10]))
    # 15 unknown option type 0x9e (high bits 10: discard)
    p.append(raw_ipv6(60, destopts([0x9e, 4, 0, 0, 0, 0]) + TCP_HDR))
    # 16 MH Binding Update with an Alternate CoA option of length 8
    altbad = bytes([59, 3, 5, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 3, 8]) + b"\0" * 8 + bytes([1, 6]) + b"\0" * 6
    p.append(raw_ipv6(135, altbad))
    return p


def main():
    os.makedirs(OUT, exist_ok=True)
    sets = {"basic": basic(), "mobility": mobility(), "slaac": slaac(), "malformed": malformed()}
    for name, pkts in sets.items():
        path = os.path.join(OUT, name + ".pcap")
        w = PcapWriter(path, linktype=1, sync=True)
        for i, pk in enumerate(pkts):
            pk.time = 1700000000 + i
            w.write(pk)
        w.close()
    # pcapng: the mobility set again, to check the pcapng reader.
    w = PcapNgWriter(os.path.join(OUT, "mobility.pcapng"))
    for i, pk in enumerate(mobility()):
        pk.time = 1700000000 + i
        w.write(pk)
    w.close()
    # Linux cooked capture (DLT_LINUX_SLL, 113): classify must refuse it.
    from scapy.layers.l2 import CookedLinux
    cooked = CookedLinux(proto=0x0800) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP()
    cooked.time = 1700000000
    wrpcap(os.path.join(OUT, "cooked.pcap"), [cooked], linktype=113)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)), file=sys.stderr)


if __name__ == "__main__":
    main()
