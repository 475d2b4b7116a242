#!/usr/bin/python3
"""Send or capture roamlb home-agent notifications (README.md).

A home agent tells roamlb that a mobile node's care-of address changed with
one 80-octet UDP datagram signed with HMAC-SHA256 under a shared key. This
script builds such datagrams from the format alone (stdlib hmac, hashlib,
struct), independently of roamlb's Rust code, so tests can check one against
the other.

Modes (the datagram is always built the same way):

  (default)            print each datagram as hex, one per line
  --send HOST:PORT     send it over UDP to a live appliance
  --pcap FILE --src IP --dst IP --dport PORT
                       write Ethernet/IPv4|IPv6/UDP frames carrying it
                       (scapy needed for this mode only; --append to add)
  --verify HEX         check a datagram with the key and print its fields
                       as JSON (exit status 1 and the reason if refused)

--count N builds N datagrams with sequences S, S+1, ... (same timestamp).
--forge flips one bit of the MAC, giving a datagram roamlb must drop.
The sequence defaults to the timestamp in milliseconds, which keeps it
increasing across restarts of the sender as long as its clock does.
"""

import argparse
import hashlib
import hmac
import ipaddress
import json
import socket
import struct
import sys
import time

MAGIC = b"RLBN"
VERSION = 1
FLAG_REMOVE = 0x01
LENGTH = 80
SIGNED = 64
MAC_LEN = 16
# magic, version, flags, reserved(2), timestamp, sequence, lifetime,
# reserved(4), home, care-of: 64 octets, network byte order.
HEADER = struct.Struct("!4sBBHQQII16s16s")
assert HEADER.size == SIGNED

CLIENT_MAC = "02:00:00:00:00:01"
APPLIANCE_MAC = "02:00:00:00:00:02"


def parse_key(text):
    text = text.strip()
    key = bytes.fromhex(text)
    if not 16 <= len(key) <= 64 or len(text) != 2 * len(key):
        raise ValueError("the key must be 32 to 128 hex digits (16 to 64 octets)")
    return key


def encode(key, home, coa, lifetime, remove, sequence, timestamp_ms, forge=False):
    """The 80-octet datagram."""
    signed = HEADER.pack(
        MAGIC,
        VERSION,
        FLAG_REMOVE if remove else 0,
        0,
        timestamp_ms,
        sequence,
        lifetime,
        0,
        ipaddress.IPv6Address(home).packed,
        ipaddress.IPv6Address(coa).packed,
    )
    mac = bytearray(hmac.new(key, signed, hashlib.sha256).digest()[:MAC_LEN])
    if forge:
        mac[-1] ^= 0x01
    out = signed + bytes(mac)
    assert len(out) == LENGTH
    return out


def decode(key, data, now_ms=None, skew_ms=None):
    """Checks a datagram as roamlb does; returns (fields, None) or (None, reason)."""
    if len(data) != LENGTH:
        return None, "notify_bad_length"
    magic, version, flags, res1, ts, seq, lifetime, res2, home, coa = HEADER.unpack(
        data[:SIGNED]
    )
    if magic != MAGIC:
        return None, "notify_bad_magic"
    if version != VERSION:
        return None, "notify_bad_version"
    if flags & ~FLAG_REMOVE & 0xFF:
        return None, "notify_bad_flags"
    if res1 or res2:
        return None, "notify_bad_reserved"
    want = hmac.new(key, data[:SIGNED], hashlib.sha256).digest()[:MAC_LEN]
    if not hmac.compare_digest(want, data[SIGNED:]):
        return None, "notify_bad_mac"
    if now_ms is not None and skew_ms is not None:
        if now_ms - ts > skew_ms:
            return None, "notify_stale"
        if ts - now_ms > skew_ms:
            return None, "notify_future"
    remove = bool(flags & FLAG_REMOVE)
    if remove != (lifetime == 0) or lifetime > 65535 * 4:
        return None, "notify_bad_lifetime"
    h, c = ipaddress.IPv6Address(home), ipaddress.IPv6Address(coa)
    if h == c or any(a.is_unspecified or a.is_loopback or a.is_multicast for a in (h, c)):
        return None, "notify_bad_address"
    return {
        "home": str(h),
        "coa": str(c),
        "lifetime": lifetime,
        "remove": remove,
        "sequence": seq,
        "timestamp_ms": ts,
    }, None


def frames(args, payloads):
    from scapy.all import Ether, IP, IPv6, UDP, Raw  # pcap mode only

    src = ipaddress.ip_address(args.src)
    dst = ipaddress.ip_address(args.dst)
    if src.version != dst.version:
        raise SystemExit("--src and --dst must be the same IP version")
    l3 = IP if src.version == 4 else IPv6
    return [
        Ether(src=args.src_mac, dst=args.dst_mac)
        / l3(src=str(src), dst=str(dst))
        / UDP(sport=args.sport, dport=args.dport)
        / Raw(p)
        for p in payloads
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key", required=True, help="shared key, 32 to 128 hex digits")
    ap.add_argument("--home", help="the mobile node's home address (IPv6)")
    ap.add_argument("--coa", help="its new care-of address (IPv6)")
    ap.add_argument("--lifetime", type=int, default=None,
                    help="alias lifetime in seconds (default 600, or 0 with --remove)")
    ap.add_argument("--remove", action="store_true", help="remove the alias")
    ap.add_argument("--sequence", type=int, help="sequence (default: the timestamp)")
    ap.add_argument("--timestamp-ms", type=int, help="milliseconds since the epoch (default: now)")
    ap.add_argument("--count", type=int, default=1, help="datagrams, sequences counting up")
    ap.add_argument("--forge", action="store_true", help="flip a MAC bit")
    ap.add_argument("--send", metavar="HOST:PORT", help="send over UDP")
    ap.add_argument("--pcap", metavar="FILE", help="write frames to a pcap")
    ap.add_argument("--append", action="store_true", help="append to --pcap")
    ap.add_argument("--src", help="frame source IP (pcap mode)")
    ap.add_argument("--dst", help="frame destination IP (pcap mode)")
    ap.add_argument("--sport", type=int, default=54321)
    ap.add_argument("--dport", type=int, help="frame destination UDP port (pcap mode)")
    ap.add_argument("--src-mac", default=CLIENT_MAC)
    ap.add_argument("--dst-mac", default=APPLIANCE_MAC)
    ap.add_argument("--verify", metavar="HEX", help="check a datagram and print it as JSON")
    ap.add_argument("--now-ms", type=int, help="with --verify: check the timestamp against this")
    ap.add_argument("--skew-ms", type=int, default=30000, help="with --verify and --now-ms")
    args = ap.parse_args(argv)

    try:
        key = parse_key(args.key)
    except ValueError as e:
        ap.error(str(e))

    if args.verify is not None:
        fields, reason = decode(key, bytes.fromhex(args.verify.strip()), args.now_ms, args.skew_ms)
        if reason:
            print(reason)
            return 1
        print(json.dumps(fields, sort_keys=True))
        return 0

    if not args.home or not args.coa:
        ap.error("--home and --coa are required to build a notification")
    if args.count < 1:
        ap.error("--count must be at least 1")
    ts = args.timestamp_ms if args.timestamp_ms is not None else time.time_ns() // 1_000_000
    seq = args.sequence if args.sequence is not None else ts
    lifetime = args.lifetime if args.lifetime is not None else (0 if args.remove else 600)
    payloads = [
        encode(key, args.home, args.coa, lifetime, args.remove, seq + i, ts, args.forge)
        for i in range(args.count)
    ]

    if args.pcap:
        if not (args.src and args.dst and args.dport):
            ap.error("--pcap needs --src, --dst and --dport")
        from scapy.all import wrpcap

        wrpcap(args.pcap, frames(args, payloads), append=args.append)
    if args.send:
        host, _, port = args.send.rpartition(":")
        host = host.strip("[]")
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as s:
            for p in payloads:
                s.sendto(p, info[4])
    if not args.pcap and not args.send:
        for p in payloads:
            print(p.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
