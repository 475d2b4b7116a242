//! Full NAT end to end through `roamlb replay` (real EAL, two workers,
//! handoff rings): scapy crafts IPv4 and IPv6 clients (TCP and UDP, and
//! mobile nodes that move between care-of addresses with a Home Address
//! option) for two `fnat` services; the translated packets must leave from
//! the local addresses and a port of the owning worker's range, with
//! checksums tshark finds valid. scapy then answers every translated flow as
//! its backend would, and a second replay with those answers fed in on the
//! server side (`--in-server`) must send each back to its client from the
//! VIP and service port — to a mobile node's current care-of address with a
//! type 2 Routing header — again with valid checksums. ICMP errors go
//! through too, both ways and for two DNAT services as well: scapy builds
//! what routers, backends and clients would send about the packets the
//! appliance sent (Packet Too Big, Fragmentation Needed, port unreachable),
//! and each must reach the right host about its own packet. DSR packets too
//! big for the server side once encapsulated come back to their clients as
//! Packet Too Big or Fragmentation Needed. The checks are
//! scapy's and tshark's, independent of roamlb's code.

use std::path::Path;
use std::process::Command;

mod common;

const GEN: &str = r#"
import sys, json
from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, wrpcap
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, HAO
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
pkts, truth = [], []
def flow(n, ip, l4, **kw):
    tag = ("flow-%d" % n).encode()
    pkts.append(Ether(**E)/ip/l4/Raw(tag))
for n in range(40):
    c4 = "203.0.113.%d" % (n + 1)
    flow(n, IP(src=c4, dst="198.51.100.90"), TCP(sport=40000 + n, dport=80, flags="S", seq=1000 + n))
    flow(100 + n, IP(src=c4, dst="198.51.100.90"), UDP(sport=41000 + n, dport=9))
    c6 = "2001:db8:c0::%x" % (n + 1)
    flow(200 + n, IPv6(src=c6, dst="2001:db8:ffff::90"), TCP(sport=42000 + n, dport=80, flags="S", seq=2000 + n))
    flow(300 + n, IPv6(src=c6, dst="2001:db8:ffff::90"), UDP(sport=43000 + n, dport=9))
# Mobile nodes: the same TCP flow from two care-of addresses in turn.
for coa in ("c1", "c2"):
    for n in range(20):
        home = "2001:db8:100::%x" % (n + 1)
        ip = IPv6(src="2001:db8:%s::%x" % (coa, n + 1), dst="2001:db8:ffff::90")/IPv6ExtHdrDestOpt(options=[HAO(hoa=home)])
        flow(400 + n, ip, TCP(sport=44000 + n, dport=80, flags="PA", seq=3000 + n))
wrpcap(sys.argv[1], pkts)
"#;

const REPLIES: &str = r#"
import sys, json
from scapy.all import rdpcap, Ether, IP, IPv6, TCP, UDP, Raw, wrpcap
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, HAO
out, flows = [], {}
for p in rdpcap(sys.argv[1]):
    ip = p[IP] if IP in p else p[IPv6]
    l4 = p[TCP] if TCP in p else p[UDP]
    tag = bytes(p[Raw].load).decode()
    hao = IPv6ExtHdrDestOpt in p and any(isinstance(o, HAO) for o in p[IPv6ExtHdrDestOpt].options)
    flows.setdefault(tag, set()).add((ip.src, l4.sport, ip.dst, l4.dport, hao, UDP in p))
for tag, seen in sorted(flows.items()):
    local, lport, backend, dport, hao, udp = sorted(seen)[0]
    L3 = IP if ":" not in local else IPv6
    ip = L3(src=backend, dst=local)
    if udp:
        l4 = UDP(sport=dport, dport=lport)
    else:
        l4 = TCP(sport=dport, dport=lport, flags="SA", seq=7, ack=1)
    out.append(Ether(src="02:00:00:00:00:30", dst="02:05:00:00:00:01")/ip/l4/Raw(("reply-" + tag).encode()))
wrpcap(sys.argv[2], out)
print(json.dumps({t: [list(s) for s in v] for t, v in flows.items()}))
"#;

const CHECK_CLIENT: &str = r#"
import sys, json
from scapy.all import rdpcap, IP, IPv6, TCP, UDP, Raw
from scapy.layers.inet6 import IPv6ExtHdrRouting
res = {}
for p in rdpcap(sys.argv[1]):
    ip = p[IP] if IP in p else p[IPv6]
    l4 = p[TCP] if TCP in p else p[UDP]
    tag = bytes(p[Raw].load).decode()
    rh2 = None
    raw = bytes(ip)
    if IP not in p and ip.nh == 43:
        # type 2 Routing header: next, len=2, type=2, segleft=1, reserved, home
        rh = raw[40:64]
        if rh[1] == 2 and rh[2] == 2 and rh[3] == 1:
            import ipaddress
            rh2 = str(ipaddress.IPv6Address(rh[8:24]))
    res[tag] = [ip.src, l4.sport, ip.dst, l4.dport, rh2]
print(json.dumps(res))
"#;

fn python(script: &str, args: &[&Path]) -> String {
    // Debian's python3 carries python3-scapy (installed by scripts/setup.sh).
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scapy script failed (scripts/setup.sh installs python3-scapy): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn config() -> String {
    format!(
        r#"
[eal]
{mem}log_level = "warning"
extra_args = ["--lcores", "0@0,1@1,2@1"]
[workers]
lcores = [1, 2]
idle = "sleep"
[dataplane]
sessions_per_worker = 4096
connections_per_worker = 4096
hash_key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
[[ports]]
name = "client"
device = "net_ring0"
role = "client"
[[ports]]
name = "server"
device = "net_ring1"
role = "server"
addresses = ["2001:db8:1::1/64", "192.0.2.1/24"]
[[service]]
name = "fnat6"
vip = "2001:db8:ffff::90"
protocol = "any"
ports = [9, 80]
forwarding = "fnat"
[[service.backend]]
address = "2001:db8:1::10"
[[service.backend]]
address = "2001:db8:1::11"
[[service]]
name = "fnat4"
vip = "198.51.100.90"
protocol = "any"
ports = [9, 80]
forwarding = "fnat"
fnat_addresses = ["192.0.2.5"]
[[service.backend]]
address = "192.0.2.30"
[[service.backend]]
address = "192.0.2.31"
[[service]]
name = "dnat6"
vip = "2001:db8:ffff::80"
protocol = "any"
ports = [9, 80]
forwarding = "dnat"
[[service.backend]]
address = "2001:db8:1::40"
[[service]]
name = "dnat4"
vip = "198.51.100.80"
protocol = "any"
ports = [9, 80]
forwarding = "dnat"
[[service.backend]]
address = "192.0.2.40"
[[service]]
name = "dsr6"
vip = "2001:db8:ffff::a0"
protocol = "any"
forwarding = "dsr"
[[service.backend]]
address = "2001:db8:1::50"
[[service]]
name = "dsr4"
vip = "198.51.100.160"
protocol = "any"
forwarding = "dsr"
[[service.backend]]
address = "192.0.2.50"
[[service]]
name = "dsr4to6"
vip = "198.51.100.161"
protocol = "any"
forwarding = "dsr"
[[service.backend]]
address = "2001:db8:1::51"
"#,
        mem = common::eal_memory(true, 256, "replay_fnat")
    )
}

fn replay(dir: &Path, args: &[&str], files: &[&Path]) -> serde_json::Value {
    replay_with(dir, args, files, &[])
}

/// [`replay`] with `ROAMLB_*` configuration overrides in the environment.
fn replay_with(
    dir: &Path,
    args: &[&str],
    files: &[&Path],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let cfg_path = dir.join("roamlb.toml");
    std::fs::write(&cfg_path, config()).unwrap();
    let mut c = Command::new("timeout");
    c.args([
        "120",
        env!("CARGO_BIN_EXE_roamlb"),
        "replay",
        "--json",
        "--config",
    ])
    .arg(&cfg_path);
    c.envs(env.iter().copied());
    for (a, f) in args.iter().zip(files) {
        c.arg(a).arg(f);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("JSON report")
}

/// Frames tshark flags: a TCP or UDP checksum not "Good", a bad IPv4 header
/// checksum, malformed or error-level frames. `None` without tshark.
fn tshark_problems(capture: &Path) -> Option<Vec<String>> {
    tshark_matching(capture, "(tcp and tcp.checksum.status != \"Good\") or (udp and udp.checksum.status != \"Good\") or (ip and ip.checksum.status != \"Good\") or _ws.malformed or _ws.expert.severity >= error")
}

/// The frames of `capture` that match the display `filter`, with TCP, UDP
/// and IPv4 checksum validation on. `None` without tshark.
fn tshark_matching(capture: &Path, filter: &str) -> Option<Vec<String>> {
    let o = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-r",
        ])
        .arg(capture)
        .args(["-Y", filter])
        .output()
        .ok()?;
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

fn tshark_count(capture: &Path) -> Option<usize> {
    let o = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(capture)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).lines().count())
}

fn check_tshark(what: &str, capture: &Path, frames: usize) {
    match (tshark_problems(capture), tshark_count(capture)) {
        (Some(p), Some(n)) => {
            assert_eq!(n, frames, "{what}: tshark reads every frame");
            assert!(p.is_empty(), "{what}: tshark flags {} frames:\n{}", p.len(), p.join("\n"));
        }
        _ => eprintln!(
            "{what}: tshark not installed here (scripts/setup.sh installs it): dissection check skipped"
        ),
    }
}

fn in_range(port: u64) -> bool {
    // Two workers: 1024-33279 and 33280-65535.
    (1024..=65535).contains(&port)
}

#[test]
fn full_nat_translates_both_ways_with_valid_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clients.pcap");
    python(GEN, &[&input]);
    // 40 x (TCP4, UDP4, TCP6, UDP6) + 20 mobile nodes x 2 care-of addresses.
    let frames = 40 * 4 + 40;

    // Run 1: the clients' traffic toward the backends.
    let out1 = d.join("server1.pcap");
    let r1 = replay(d, &["--in", "--out-server"], &[&input, &out1]);
    assert_eq!(r1["totals"]["to_backend"], frames as u64, "{r1}");
    assert_eq!(r1["totals"]["connections_created"], 180u64, "{r1}");
    check_tshark("toward the backends", &out1, frames);

    let replies = d.join("replies.pcap");
    let flows: serde_json::Value =
        serde_json::from_str(&python(REPLIES, &[&out1, &replies])).unwrap();
    let flows = flows.as_object().unwrap();
    assert_eq!(flows.len(), 180, "one translation per client flow");
    let mut locals = std::collections::BTreeSet::new();
    for (tag, seen) in flows {
        let seen = seen.as_array().unwrap();
        assert_eq!(
            seen.len(),
            1,
            "{tag}: every packet of a flow translated alike: {seen:?}"
        );
        let t = seen[0].as_array().unwrap();
        let (local, lport, backend, hao) = (
            t[0].as_str().unwrap(),
            t[1].as_u64().unwrap(),
            t[2].as_str().unwrap(),
            t[4].as_bool().unwrap(),
        );
        let v6 = local.contains(':');
        assert_eq!(
            local,
            if v6 { "2001:db8:1::1" } else { "192.0.2.5" },
            "{tag}"
        );
        assert!(in_range(lport), "{tag}: port {lport}");
        assert!(
            [
                "2001:db8:1::10",
                "2001:db8:1::11",
                "192.0.2.30",
                "192.0.2.31"
            ]
            .contains(&backend),
            "{tag}: {backend}"
        );
        assert!(!hao, "{tag}: no Home Address option toward the backend");
        assert!(
            locals.insert((local.to_owned(), lport)),
            "{tag}: a local port per connection"
        );
    }
    let ports: Vec<u64> = locals.iter().map(|(_, p)| *p).collect();
    assert!(
        ports.iter().any(|p| *p < 33280) && ports.iter().any(|p| *p >= 33280),
        "both workers own connections: {ports:?}"
    );

    // Run 2: the same clients, then the backends' answers on the server side.
    let out2 = d.join("server2.pcap");
    let back = d.join("clients-out.pcap");
    let r2 = replay(
        d,
        &["--in", "--in-server", "--out-server", "--out-client"],
        &[&input, &replies, &out2, &back],
    );
    assert_eq!(
        std::fs::read(&out1).unwrap().len(),
        std::fs::read(&out2).unwrap().len(),
        "the same translations again"
    );
    assert_eq!(r2["totals"]["injected"], 180u64, "{r2}");
    assert_eq!(r2["totals"]["replies"], 180u64, "{r2}");
    assert!(
        r2["drops"].as_object().unwrap().is_empty(),
        "nothing dropped: {}",
        r2["drops"]
    );
    let reply_handoffs = r2["totals"]["handoffs_out"].as_u64().unwrap()
        - r1["totals"]["handoffs_out"].as_u64().unwrap();
    assert!(
        (30..150).contains(&reply_handoffs),
        "replies landing on the other worker were handed over: {reply_handoffs}"
    );
    check_tshark("toward the clients", &back, 180);

    let got: serde_json::Value = serde_json::from_str(&python(CHECK_CLIENT, &[&back])).unwrap();
    let got = got.as_object().unwrap();
    assert_eq!(got.len(), 180);
    for (tag, r) in got {
        let n: u32 = tag.trim_start_matches("reply-flow-").parse().unwrap();
        let r = r.as_array().unwrap();
        let (src, sport, dst, dport, rh2) = (
            r[0].as_str().unwrap(),
            r[1].as_u64().unwrap(),
            r[2].as_str().unwrap(),
            r[3].as_u64().unwrap(),
            r[4].as_str(),
        );
        let i = n % 100;
        let (vip, vport, client, cport, home) = match n / 100 {
            0 => (
                "198.51.100.90",
                80,
                format!("203.0.113.{}", i + 1),
                40000 + i,
                None,
            ),
            1 => (
                "198.51.100.90",
                9,
                format!("203.0.113.{}", i + 1),
                41000 + i,
                None,
            ),
            2 => (
                "2001:db8:ffff::90",
                80,
                format!("2001:db8:c0::{:x}", i + 1),
                42000 + i,
                None,
            ),
            3 => (
                "2001:db8:ffff::90",
                9,
                format!("2001:db8:c0::{:x}", i + 1),
                43000 + i,
                None,
            ),
            _ => (
                "2001:db8:ffff::90",
                80,
                // The care-of address the node used last.
                format!("2001:db8:c2::{:x}", i + 1),
                44000 + i,
                Some(format!("2001:db8:100::{:x}", i + 1)),
            ),
        };
        assert_eq!((src, sport), (vip, vport), "{tag}: from the VIP");
        assert_eq!(
            (dst, dport),
            (client.as_str(), u64::from(cport)),
            "{tag}: to the client"
        );
        assert_eq!(rh2, home.as_deref(), "{tag}: type 2 routing header");
    }
}

const GEN_ICMP: &str = r#"
import sys
from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, wrpcap
from scapy.layers.inet6 import IPv6ExtHdrDestOpt, HAO
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
V4, V6 = sys.argv[2:4] if len(sys.argv) > 3 else ("198.51.100.90", "2001:db8:ffff::90")
pkts = []
for n in range(10):
    pkts.append(Ether(**E)/IP(src="203.0.113.%d" % (n + 1), dst=V4)/UDP(sport=51000 + n, dport=9)/Raw(b"x" * 40))
    pkts.append(Ether(**E)/IP(src="203.0.113.%d" % (n + 1), dst=V4)/TCP(sport=52000 + n, dport=80, flags="S"))
    pkts.append(Ether(**E)/IPv6(src="2001:db8:c0::%x" % (n + 1), dst=V6)/UDP(sport=53000 + n, dport=9)/Raw(b"y" * 40))
    ip = IPv6(src="2001:db8:c2::%x" % (n + 1), dst=V6)/IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:100::%x" % (n + 1))])
    pkts.append(Ether(**E)/ip/TCP(sport=54000 + n, dport=80, flags="PA")/Raw(b"z" * 1300))
wrpcap(sys.argv[1], pkts)
"#;

/// What the server side sends back about each translated packet (the
/// appliance's output there): a router's Fragmentation Needed quoting the
/// IPv4 header and 8 octets (RFC 792) for TCP; the backend's own port
/// unreachable quoting the whole datagram for UDP (ICMPv4 3/3, ICMPv6 1/4);
/// a router's Packet Too Big for a mobile node's large segment, quoting as
/// much as fits in 1280 octets (RFC 4443 §2.4 (c)).
const ICMP_ERRORS: &str = r#"
import sys
from scapy.all import rdpcap, Ether, IP, IPv6, ICMP, TCP, Raw, wrpcap
from scapy.layers.inet6 import ICMPv6PacketTooBig, ICMPv6DestUnreach
out = []
for p in rdpcap(sys.argv[1]):
    if IP in p:
        if TCP in p:
            e = IP(src="192.0.2.254", dst=p[IP].src)/ICMP(type=3, code=4, nexthopmtu=1400)/Raw(bytes(p[IP])[:28])
        else:
            e = IP(src=p[IP].dst, dst=p[IP].src)/ICMP(type=3, code=3)/Raw(bytes(p[IP]))
    elif TCP in p:
        e = IPv6(src="2001:db8:1::fe", dst=p[IPv6].src)/ICMPv6PacketTooBig(mtu=1280)/Raw(bytes(p[IPv6])[:1280 - 48])
    else:
        e = IPv6(src=p[IPv6].dst, dst=p[IPv6].src)/ICMPv6DestUnreach(code=4)/Raw(bytes(p[IPv6]))
    out.append(Ether(src="02:00:00:00:00:fe", dst="02:05:00:00:00:01")/e)
wrpcap(sys.argv[2], out)
"#;

/// (outer src, outer dst, quoted src, quoted sport, quoted dst, quoted
/// dport, quoted protocol, the home address of an outer type 2 Routing
/// header or "", IP packet length, whether the quoted TCP/UDP checksum is
/// the one of the client's packet with that source port in the capture
/// `argv[2]` — `null` when the quote stops before it) of every ICMP error,
/// from the raw octets.
const CHECK_ICMP: &str = r#"
import sys, json, socket, struct
from scapy.all import rdpcap
def l4(raw):
    if raw[0] >> 4 == 4:
        return raw[9], (raw[0] & 15) * 4
    nh, pos = raw[6], 40
    if nh == 60:
        nh, pos = raw[40], 40 + (raw[41] + 1) * 8
    return nh, pos
CK = {6: 16, 17: 6}
sent = {}
for p in rdpcap(sys.argv[2]):
    raw = bytes(p)[14:]
    nh, pos = l4(raw)
    if nh in CK:
        sent[(nh, struct.unpack("!H", raw[pos:pos + 2])[0])] = raw[pos + CK[nh]:pos + CK[nh] + 2]
res = []
for p in rdpcap(sys.argv[1]):
    raw = bytes(p)[14:]
    rh2 = ""
    if raw[0] >> 4 == 4:
        f = lambda b: socket.inet_ntop(socket.AF_INET, b)
        ihl = (raw[0] & 15) * 4
        src, dst, q, length = f(raw[12:16]), f(raw[16:20]), raw[ihl + 8:], struct.unpack("!H", raw[2:4])[0]
        qs, qd, nh, pos = f(q[12:16]), f(q[16:20]), q[9], (q[0] & 15) * 4
    else:
        f = lambda b: socket.inet_ntop(socket.AF_INET6, b)
        src, dst, length = f(raw[8:24]), f(raw[24:40]), 40 + struct.unpack("!H", raw[4:6])[0]
        at = 40
        if raw[6] == 43:
            # type 2 Routing header: next, len=2, type=2, segleft=1, reserved, home
            assert raw[41:44] == bytes([2, 2, 1]), raw[40:64].hex()
            rh2, at = f(raw[48:64]), 64
        q = raw[at + 8:]
        qs, qd, nh, pos = f(q[8:24]), f(q[24:40]), q[6], 40
        if nh == 60:
            nh, pos = q[40], 40 + (q[41] + 1) * 8
    sport, dport = struct.unpack("!HH", q[pos:pos + 4])
    ck = q[pos + CK[nh]:pos + CK[nh] + 2]
    same = sent[(nh, sport)] == ck if len(ck) == 2 else None
    res.append([src, dst, qs, sport, qd, dport, nh, rh2, length, same])
print(json.dumps(res))
"#;

/// Frames tshark flags in a capture of ICMP errors: an ICMP or ICMPv6
/// checksum not "Good", a bad IPv4 header checksum (outer or quoted), a
/// quoted TCP/UDP checksum tshark can check and finds bad, malformed or
/// error-level frames. `None` without tshark.
///
/// Two kinds of quoted TCP/UDP checksum tshark 4.0 gets wrong, flagging
/// even scapy's own packets before the appliance touched them, are left to
/// byte comparisons (`CHECK_ICMP`, `DNAT_BACKEND_QUOTES`): one in an error
/// that fills the IPv6 minimum MTU (a 1294-octet frame), whose quote is cut
/// inside the payload (tshark sums what is left), and one behind a type 2
/// Routing header (tshark sums over the care-of address, not the final
/// destination the header names, RFC 8200 §8.1).
fn tshark_icmp_problems(capture: &Path) -> Option<Vec<String>> {
    const TRANSPORT_BAD: &str =
        "(udp.checksum.status == \"Bad\" or tcp.checksum.status == \"Bad\")";
    const UNCHECKABLE: &str = "(frame.len >= 1294 or ipv6.routing.type == 2)";
    let filter = format!(
        "(icmp and icmp.checksum.status != \"Good\") \
         or (icmpv6 and icmpv6.checksum.status != \"Good\") \
         or ip.checksum.status == \"Bad\" \
         or ({TRANSPORT_BAD} and not {UNCHECKABLE}) \
         or _ws.malformed \
         or (_ws.expert.severity >= error and not ({TRANSPORT_BAD} and {UNCHECKABLE}))"
    );
    tshark_matching(capture, &filter)
}

#[test]
fn full_nat_translates_icmp_errors_for_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clients.pcap");
    python(GEN_ICMP, &[&input]);
    let frames = 40u64;

    let out1 = d.join("server1.pcap");
    let r1 = replay(d, &["--in", "--out-server"], &[&input, &out1]);
    assert_eq!(r1["totals"]["to_backend"], frames, "{r1}");

    let errors = d.join("errors.pcap");
    python(ICMP_ERRORS, &[&out1, &errors]);
    let out2 = d.join("server2.pcap");
    let back = d.join("clients-out.pcap");
    let r2 = replay(
        d,
        &["--in", "--in-server", "--out-server", "--out-client"],
        &[&input, &errors, &out2, &back],
    );
    assert_eq!(r2["totals"]["injected"], frames, "{r2}");
    assert_eq!(r2["totals"]["icmp_errors_translated"], frames, "{r2}");
    assert!(
        r2["drops"].as_object().unwrap().is_empty(),
        "nothing dropped: {}",
        r2["drops"]
    );
    match (tshark_icmp_problems(&back), tshark_count(&back)) {
        (Some(p), Some(n)) => {
            assert_eq!(n as u64, frames, "tshark reads every frame");
            assert!(
                p.is_empty(),
                "tshark flags {} frames:\n{}",
                p.len(),
                p.join("\n")
            );
        }
        _ => eprintln!(
            "tshark not installed here (scripts/setup.sh installs it): dissection check skipped"
        ),
    }

    let got: Vec<IcmpSeen> = serde_json::from_str(&python(CHECK_ICMP, &[&back, &input])).unwrap();
    let got: std::collections::BTreeSet<_> = got.into_iter().collect();
    let mut want = std::collections::BTreeSet::new();
    for n in 0..10u64 {
        let v4 = format!("203.0.113.{}", n + 1);
        let (vip4, vip6) = ("198.51.100.90".to_owned(), "2001:db8:ffff::90".to_owned());
        // Port unreachable quoting the whole datagram (20 + 8 + 40), and
        // Fragmentation Needed quoting 28 octets. Every quoted checksum is
        // the client's own.
        want.insert((
            vip4.clone(),
            v4.clone(),
            v4.clone(),
            51000 + n,
            vip4.clone(),
            9,
            17,
            String::new(),
            20 + 8 + 68,
            Some(true),
        ));
        want.insert((
            vip4.clone(),
            v4.clone(),
            v4.clone(),
            52000 + n,
            vip4.clone(),
            80,
            6,
            String::new(),
            20 + 8 + 28,
            None,
        ));
        let c6 = format!("2001:db8:c0::{:x}", n + 1);
        want.insert((
            vip6.clone(),
            c6.clone(),
            c6,
            53000 + n,
            vip6.clone(),
            9,
            17,
            String::new(),
            40 + 8 + 88,
            Some(true),
        ));
        // A mobile node: to its care-of address through a type 2 Routing
        // header naming its home address, quoting its home address (the
        // address its transport uses) as the source; the quote gave up 24
        // octets so that the error still fits 1280.
        let coa = format!("2001:db8:c2::{:x}", n + 1);
        let home = format!("2001:db8:100::{:x}", n + 1);
        want.insert((
            vip6.clone(),
            coa,
            home.clone(),
            54000 + n,
            vip6,
            80,
            6,
            home,
            1280,
            Some(true),
        ));
    }
    assert_eq!(
        got, want,
        "every error reaches its client about its own packet"
    );
}

/// What `CHECK_ICMP` reports of one ICMP error.
type IcmpSeen = (
    String,
    String,
    String,
    u64,
    String,
    u64,
    u64,
    String,
    u64,
    Option<bool>,
);

/// The clients of `GEN_ICMP`, then what routers on the client side send
/// back about the replies those clients got (VIP:service port -> client):
/// Packet Too Big quoting the whole reply (a mobile node's with its type 2
/// Routing header), Destination Unreachable (port) quoting 8 octets of it.
const CLIENT_SIDE_ERRORS: &str = r#"
import sys
from scapy.all import rdpcap, Ether, IP, IPv6, ICMP, TCP, UDP, Raw, wrpcap
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6ExtHdrRouting
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
V4, V6 = sys.argv[3:5] if len(sys.argv) > 4 else ("198.51.100.90", "2001:db8:ffff::90")
pkts = list(rdpcap(sys.argv[1]))
for n in range(10):
    c4 = "203.0.113.%d" % (n + 1)
    reply = bytes(IP(src=V4, dst=c4)/UDP(sport=9, dport=51000 + n)/Raw(b"r" * 40))
    pkts.append(Ether(**E)/IP(src=c4, dst=V4)/ICMP(type=3, code=3)/Raw(reply[:28]))
    coa, home = "2001:db8:c2::%x" % (n + 1), "2001:db8:100::%x" % (n + 1)
    r6 = IPv6(src=V6, dst=coa)/IPv6ExtHdrRouting(type=2, segleft=1, addresses=[home])/TCP(sport=80, dport=54000 + n, flags="A")/Raw(b"s" * 60)
    pkts.append(Ether(**E)/IPv6(src="2001:db8:c2::fffe", dst=V6)/ICMPv6PacketTooBig(mtu=1280)/Raw(bytes(r6)))
wrpcap(sys.argv[2], pkts)
"#;

/// For the server-side capture: the (local, local port, backend, backend
/// port, protocol) of every translated client packet by client port, and
/// the (outer src, outer dst, quoted src, quoted sport, quoted dst, quoted
/// dport, protocol, the MTU of a Packet Too Big or 0) of every ICMP error.
const SPLIT_SERVER: &str = r#"
import sys, json, socket, struct
from scapy.all import rdpcap, IP, IPv6, TCP, UDP, ICMP
from scapy.layers.inet6 import ICMPv6PacketTooBig
flows, errors = {}, []
for p in rdpcap(sys.argv[1]):
    raw = bytes(p)[14:]
    v4 = raw[0] >> 4 == 4
    f = (lambda b: socket.inet_ntop(socket.AF_INET, b)) if v4 else (lambda b: socket.inet_ntop(socket.AF_INET6, b))
    if v4:
        ihl = (raw[0] & 15) * 4
        src, dst, nh, body = f(raw[12:16]), f(raw[16:20]), raw[9], raw[ihl:]
    else:
        src, dst, nh, body = f(raw[8:24]), f(raw[24:40]), raw[6], raw[40:]
        if nh == 60:
            nh, body = body[0], body[(body[1] + 1) * 8:]
    if nh in (1, 58):
        q = body[8:]
        if v4:
            qs, qd, qn, pos = f(q[12:16]), f(q[16:20]), q[9], (q[0] & 15) * 4
        else:
            qs, qd, qn, pos = f(q[8:24]), f(q[24:40]), q[6], 40
            if qn == 43:
                qn, pos = q[40], 40 + (q[41] + 1) * 8
        sp, dp = struct.unpack("!HH", q[pos:pos + 4])
        mtu = struct.unpack("!I", body[4:8])[0] if nh == 58 and body[0] == 2 else 0
        errors.append([src, dst, qs, sp, qd, dp, qn, mtu])
    else:
        sp, dp = struct.unpack("!HH", body[:4])
        flows["%s|%d" % (src, sp)] = [src, sp, dst, dp, nh]
print(json.dumps({"flows": flows, "errors": errors}))
"#;

#[test]
fn full_nat_translates_client_side_icmp_errors_for_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clients = d.join("clients.pcap");
    python(GEN_ICMP, &[&clients]);
    let input = d.join("clients-and-errors.pcap");
    python(CLIENT_SIDE_ERRORS, &[&clients, &input]);
    let out = d.join("server.pcap");
    let r = replay(d, &["--in", "--out-server"], &[&input, &out]);
    assert_eq!(r["totals"]["to_backend"], 40u64, "{r}");
    assert_eq!(r["totals"]["icmp_errors_translated"], 20u64, "{r}");
    assert!(
        r["drops"].as_object().unwrap().is_empty(),
        "nothing dropped: {}",
        r["drops"]
    );
    match (tshark_icmp_problems(&out), tshark_count(&out)) {
        (Some(p), Some(n)) => {
            assert_eq!(n, 60, "tshark reads every frame");
            assert!(
                p.is_empty(),
                "tshark flags {} frames:\n{}",
                p.len(),
                p.join("\n")
            );
        }
        _ => eprintln!(
            "tshark not installed here (scripts/setup.sh installs it): dissection check skipped"
        ),
    }
    let got: serde_json::Value = serde_json::from_str(&python(SPLIT_SERVER, &[&out])).unwrap();
    // The translated client packets, by their local port: (local, backend,
    // backend port, protocol) and the client port they came from.
    let mut by_client_port = std::collections::BTreeMap::new();
    for (_, t) in got["flows"].as_object().unwrap() {
        let t = t.as_array().unwrap();
        let (local, lport, backend, bport, proto) = (
            t[0].as_str().unwrap().to_owned(),
            t[1].as_u64().unwrap(),
            t[2].as_str().unwrap().to_owned(),
            t[3].as_u64().unwrap(),
            t[4].as_u64().unwrap(),
        );
        by_client_port.insert((local.clone(), lport), (backend, bport, proto));
    }
    let errors = got["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 20);
    for e in errors {
        let e = e.as_array().unwrap();
        let s = |i: usize| e[i].as_str().unwrap().to_owned();
        let u = |i: usize| e[i].as_u64().unwrap();
        let (outer_src, outer_dst, qsrc, qsport, qdst, qdport, proto, mtu) =
            (s(0), s(1), s(2), u(3), s(4), u(5), u(6), u(7));
        // From the local address to the backend, about the backend's own
        // packet to that local address and port: a connection we opened.
        let (backend, bport, fproto) = by_client_port
            .get(&(qdst.clone(), qdport))
            .unwrap_or_else(|| panic!("{e:?}: quotes a local port of a translated flow"));
        assert_eq!((&outer_src, &outer_dst), (&qdst, backend), "{e:?}");
        assert_eq!((&qsrc, qsport, proto), (backend, *bport, *fproto), "{e:?}");
        // Packet Too Big about a mobile node's reply: the backend must
        // leave room for the routing header the appliance put in it.
        let want_mtu = if proto == 6 { 1280 - 24 } else { 0 };
        assert_eq!(mtu, want_mtu, "{e:?}");
    }
}

/// The errors in a server-side capture (`argv[1]`) whose quotes are not,
/// octet for octet, the reply the DNAT backend (`argv[2]`, `argv[3]`) sent
/// before the appliance put the VIP in: scapy builds that reply again the
/// way `CLIENT_SIDE_ERRORS` built the client's view of it, with the backend
/// as source, and computes every checksum itself.
const DNAT_BACKEND_QUOTES: &str = r#"
import sys, json, struct
from scapy.all import rdpcap, IP, IPv6, ICMP, TCP, UDP, Raw
from scapy.layers.inet6 import IPv6ExtHdrRouting, ICMPv6PacketTooBig
B4, B6 = sys.argv[2:4]
checked, bad = 0, []
for p in rdpcap(sys.argv[1]):
    if ICMP in p:
        q = bytes(p[ICMP])[8:]
        n = struct.unpack("!H", q[22:24])[0] - 51000
        want = bytes(IP(src=B4, dst="203.0.113.%d" % (n + 1))/UDP(sport=9, dport=51000 + n)/Raw(b"r" * 40))[:28]
    elif ICMPv6PacketTooBig in p:
        q = bytes(p[ICMPv6PacketTooBig])[8:]
        n = struct.unpack("!H", q[66:68])[0] - 54000
        coa, home = "2001:db8:c2::%x" % (n + 1), "2001:db8:100::%x" % (n + 1)
        want = bytes(IPv6(src=B6, dst=coa)/IPv6ExtHdrRouting(type=2, segleft=1, addresses=[home])/TCP(sport=80, dport=54000 + n, flags="A")/Raw(b"s" * 60))
    else:
        continue
    checked += 1
    if q != want:
        bad.append([q.hex(), want.hex()])
print(json.dumps({"checked": checked, "bad": bad}))
"#;

/// DNAT both ways, with the clients and errors of the full-NAT tests sent
/// to two DNAT services: what the server side sends back about the
/// translated packets (`ICMP_ERRORS`, built from the appliance's output)
/// reaches each client from the VIP about the packet it sent — a mobile
/// node's with its Home Address option, which DNAT leaves in place — and
/// what the client side sends about replies (`CLIENT_SIDE_ERRORS`) reaches
/// the backend of the client's session about the backend's own packet.
/// tshark finds every checksum good.
#[test]
fn dnat_translates_icmp_errors_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (vip4, vip6) = ("198.51.100.80", "2001:db8:ffff::80");
    let (b4, b6) = ("192.0.2.40", "2001:db8:1::40");
    let vips = [Path::new(vip4), Path::new(vip6)];
    let clients = d.join("clients.pcap");
    python(GEN_ICMP, &[&clients, vips[0], vips[1]]);
    let out1 = d.join("server1.pcap");
    let r1 = replay(d, &["--in", "--out-server"], &[&clients, &out1]);
    assert_eq!(r1["totals"]["to_backend"], 40u64, "{r1}");

    let errors = d.join("errors.pcap");
    python(ICMP_ERRORS, &[&out1, &errors]);
    let input = d.join("clients-and-errors.pcap");
    python(CLIENT_SIDE_ERRORS, &[&clients, &input, vips[0], vips[1]]);
    let (out_server, out_client) = (d.join("server2.pcap"), d.join("clients-out.pcap"));
    let r2 = replay(
        d,
        &["--in", "--in-server", "--out-server", "--out-client"],
        &[&input, &errors, &out_server, &out_client],
    );
    assert_eq!(r2["totals"]["to_backend"], 40u64, "{r2}");
    assert_eq!(r2["totals"]["icmp_errors_translated"], 60u64, "{r2}");
    assert!(
        r2["drops"].as_object().unwrap().is_empty(),
        "nothing dropped: {}",
        r2["drops"]
    );
    for (capture, frames) in [(&out_client, 40), (&out_server, 60)] {
        match (tshark_icmp_problems(capture), tshark_count(capture)) {
            (Some(p), Some(n)) => {
                assert_eq!(n, frames, "tshark reads every frame");
                assert!(
                    p.is_empty(),
                    "tshark flags {} frames:\n{}",
                    p.len(),
                    p.join("\n")
                );
            }
            _ => eprintln!(
                "tshark not installed here (scripts/setup.sh installs it): dissection check skipped"
            ),
        }
    }

    // Server side -> clients.
    let got: Vec<IcmpSeen> =
        serde_json::from_str(&python(CHECK_ICMP, &[&out_client, &clients])).unwrap();
    let got: std::collections::BTreeSet<_> = got.into_iter().collect();
    let mut want = std::collections::BTreeSet::new();
    let none = String::new;
    for n in 0..10u64 {
        let (v4, c6) = (
            format!("203.0.113.{}", n + 1),
            format!("2001:db8:c0::{:x}", n + 1),
        );
        let coa = format!("2001:db8:c2::{:x}", n + 1);
        let (vip4, vip6) = (vip4.to_owned(), vip6.to_owned());
        want.insert((
            vip4.clone(),
            v4.clone(),
            v4.clone(),
            51000 + n,
            vip4.clone(),
            9,
            17,
            none(),
            96,
            Some(true),
        ));
        want.insert((
            vip4.clone(),
            v4.clone(),
            v4,
            52000 + n,
            vip4,
            80,
            6,
            none(),
            56,
            None,
        ));
        want.insert((
            vip6.clone(),
            c6.clone(),
            c6,
            53000 + n,
            vip6.clone(),
            9,
            17,
            none(),
            136,
            Some(true),
        ));
        // The router answered the care-of address (the packet's source);
        // the quote keeps it, and the Home Address option behind it.
        want.insert((
            vip6.clone(),
            coa.clone(),
            coa,
            54000 + n,
            vip6,
            80,
            6,
            none(),
            1280,
            Some(true),
        ));
    }
    assert_eq!(
        got, want,
        "every error reaches its client about its own packet"
    );

    // Client side -> backends: only the errors, not the forwarded packets.
    let got: serde_json::Value =
        serde_json::from_str(&python(SPLIT_SERVER, &[&out_server])).unwrap();
    type Seen = (String, String, String, u64, String, u64, u64, u64);
    let got: std::collections::BTreeSet<Seen> = got["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    let mut want = std::collections::BTreeSet::new();
    for n in 0..10u64 {
        let c4 = format!("203.0.113.{}", n + 1);
        let coa = format!("2001:db8:c2::{:x}", n + 1);
        // From where it came, to the backend, about the backend's reply.
        want.insert((
            c4.clone(),
            b4.to_owned(),
            b4.to_owned(),
            9,
            c4,
            51000 + n,
            17,
            0,
        ));
        // The backend itself put the routing header in: the MTU stays.
        want.insert((
            "2001:db8:c2::fffe".to_owned(),
            b6.to_owned(),
            b6.to_owned(),
            80,
            coa,
            54000 + n,
            6,
            1280,
        ));
    }
    assert_eq!(
        got, want,
        "every error reaches its backend about its own packet"
    );
    let quotes: serde_json::Value = serde_json::from_str(&python(
        DNAT_BACKEND_QUOTES,
        &[&out_server, Path::new(b4), Path::new(b6)],
    ))
    .unwrap();
    assert_eq!(quotes["checked"], 20u64, "{quotes}");
    assert_eq!(
        quotes["bad"],
        serde_json::json!([]),
        "each quote is the backend's reply, octet for octet"
    );
}

/// Clients of the two DSR services: per family, one packet that fits the
/// server side (1500, the replay's MTU) with the outer header and one of
/// 1500 octets that does not; for IPv4 a second big one without DF.
const GEN_DSR: &str = r#"
import sys
from scapy.all import Ether, IP, IPv6, UDP, Raw, wrpcap
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
pkts = [
    Ether(**E)/IPv6(src="2001:db8:c0::1", dst="2001:db8:ffff::a0")/UDP(sport=5000, dport=9)/Raw(b"s" * 100),
    Ether(**E)/IPv6(src="2001:db8:c0::2", dst="2001:db8:ffff::a0")/UDP(sport=5001, dport=9)/Raw(b"B" * 1452),
    Ether(**E)/IP(src="203.0.113.1", dst="198.51.100.160", flags="DF")/UDP(sport=5002, dport=9)/Raw(b"s" * 100),
    Ether(**E)/IP(src="203.0.113.2", dst="198.51.100.160", flags="DF")/UDP(sport=5003, dport=9)/Raw(b"B" * 1472),
    Ether(**E)/IP(src="203.0.113.3", dst="198.51.100.160")/UDP(sport=5004, dport=9)/Raw(b"B" * 1472),
]
wrpcap(sys.argv[1], pkts)
"#;

/// Reads the errors the appliance sent toward the clients and checks each
/// with scapy against the client's own packet: addresses, type, MTU, the
/// quote octet for octet, and the ICMP checksum recomputed by scapy.
const CHECK_DSR: &str = r#"
import sys, json
from scapy.all import rdpcap, IP, IPv6, ICMP, raw
from scapy.layers.inet6 import ICMPv6PacketTooBig
sent = rdpcap(sys.argv[1])
got = []
for p in rdpcap(sys.argv[2]):
    if ICMPv6PacketTooBig in p:
        e = p[ICMPv6PacketTooBig]
        orig = raw(sent[1][IPv6])
        quote = raw(e.payload)
        c = e.cksum
        e2 = p[IPv6].copy(); del e2[ICMPv6PacketTooBig].cksum
        ok = IPv6(raw(e2))[ICMPv6PacketTooBig].cksum == c
        got.append(["ptb", p[IPv6].src, p[IPv6].dst, e.mtu, len(raw(p)), quote == orig[:len(quote)], ok])
    elif ICMP in p:
        e = p[ICMP]
        orig = raw(sent[3][IP])
        quote = raw(e.payload)
        c = e.chksum
        e2 = p[IP].copy(); del e2[ICMP].chksum
        ok = IP(raw(e2))[ICMP].chksum == c
        got.append(["frag-needed", p[IP].src, p[IP].dst, e.type, e.code, e.nexthopmtu, len(raw(p)), quote == orig[:len(quote)], ok])
print(json.dumps(got))
"#;

#[test]
fn dsr_too_big_for_the_server_side_gets_packet_too_big_or_fragmentation_needed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clients.pcap");
    python(GEN_DSR, &[&input]);
    let out = d.join("server.pcap");
    let back = d.join("clients-out.pcap");
    let r = replay(
        d,
        &["--in", "--out-server", "--out-client"],
        &[&input, &out, &back],
    );
    assert_eq!(
        r["totals"]["to_backend"], 3u64,
        "the small ones, encapsulated, and the IPv4 one without DF: {r}"
    );
    assert_eq!(r["totals"]["icmp_too_big_sent"], 2u64, "{r}");
    assert_eq!(
        r["totals"]["encap_fragmented"], 1u64,
        "IPv4 without DF: {r}"
    );
    assert!(
        r["drops"].as_object().unwrap().is_empty(),
        "nothing dropped: {}",
        r["drops"]
    );
    let got: serde_json::Value =
        serde_json::from_str(&python(CHECK_DSR, &[&input, &back])).unwrap();
    assert_eq!(
        got,
        serde_json::json!([
            ["ptb", "2001:db8:ffff::a0", "2001:db8:c0::2", 1460, 1294, true, true],
            ["frag-needed", "198.51.100.160", "203.0.113.2", 3, 4, 1480, 590, true, true]
        ]),
        "errors from the VIP to each client, MTU less the outer header, quote and checksum as scapy builds them"
    );
    match tshark_matching(
        &back,
        "(icmp and icmp.checksum.status != \"Good\") or (icmpv6 and icmpv6.checksum.status != \"Good\") or _ws.malformed",
    ) {
        Some(p) => assert!(p.is_empty(), "tshark flags:\n{}", p.join("\n")),
        None => eprintln!("tshark not installed here (scripts/setup.sh installs it): dissection check skipped"),
    }
    check_tshark("DSR to the backends", &out, 4);
    // The two fragments reassemble (scapy's defragment) into exactly the
    // IPv4-in-IPv4 packet scapy builds around the client's packet.
    let frags: serde_json::Value =
        serde_json::from_str(&python(CHECK_DSR_FRAGMENTS, &[&input, &out])).unwrap();
    assert_eq!(
        frags,
        serde_json::json!([[1500, true, 0], [40, false, 1480]]),
        "two outer fragments under the 1500-octet MTU: {frags}"
    );
}

/// The IPv4-in-IPv4 fragments in the server-side capture: each one's
/// total length, More Fragments flag and offset in octets; then the
/// reassembled packet compared with the one scapy builds from the client's
/// packet (exits non-zero when they differ or a checksum is wrong).
const CHECK_DSR_FRAGMENTS: &str = r#"
import sys, json
from scapy.all import rdpcap, IP, raw, defragment
sent = rdpcap(sys.argv[1])
frags = [p[IP] for p in rdpcap(sys.argv[2]) if IP in p and (p[IP].flags.MF or p[IP].frag)]
out = []
for f in frags:
    h = IP(raw(f)); del h.chksum
    assert IP(raw(h)).chksum == f.chksum, "header checksum"
    assert not f.flags.DF
    out.append([f.len, bool(f.flags.MF), f.frag * 8])
whole = defragment([f.copy() for f in frags])
assert len(whole) == 1, whole
want = IP(src="192.0.2.1", dst="192.0.2.50", proto=4)/sent[4][IP]
assert raw(whole[0][IP].payload) == raw(want[IP].payload), "reassembled payload"
assert whole[0][IP].proto == 4 and whole[0][IP].src == "192.0.2.1" and whole[0][IP].dst == "192.0.2.50"
print(json.dumps(out))
"#;

/// Twelve clients whose packets are too big for the server side once
/// encapsulated, with the appliance's Packet Too Big rate set to 2 a second
/// (1 per worker): the errors sent and the drops over the limit account for
/// every packet, and at most one error per worker per second of the replay
/// (two at most, it takes well under a second) leaves.
#[test]
fn dsr_packet_too_big_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clients.pcap");
    python(
        r#"
import sys
from scapy.all import Ether, IPv6, UDP, Raw, wrpcap
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
wrpcap(sys.argv[1], [
    Ether(**E)/IPv6(src="2001:db8:c0::%x" % (i + 1), dst="2001:db8:ffff::a0")/UDP(sport=5000 + i, dport=9)/Raw(b"B" * 1452)
    for i in range(12)
])
"#,
        &[&input],
    );
    let back = d.join("clients-out.pcap");
    let out = d.join("server.pcap");
    let r = replay_with(
        d,
        &["--in", "--out-server", "--out-client"],
        &[&input, &out, &back],
        &[("ROAMLB_DATAPLANE__ICMP_ERRORS_PER_SECOND", "2")],
    );
    let sent = r["totals"]["icmp_too_big_sent"].as_u64().unwrap();
    let limited = r["drops"]["icmp_rate_limited"].as_u64().unwrap();
    assert_eq!(sent + limited, 12, "every packet accounted for: {r}");
    assert!(
        (1..=4).contains(&sent),
        "at most 1 per worker per second: {r}"
    );
    assert_eq!(r["totals"]["to_backend"], 0u64, "{r}");
    let in_capture = python(
        "import sys\nfrom scapy.all import rdpcap\nfrom scapy.layers.inet6 import ICMPv6PacketTooBig\nprint(sum(ICMPv6PacketTooBig in p for p in rdpcap(sys.argv[1])))",
        &[&back],
    );
    assert_eq!(
        in_capture.trim(),
        sent.to_string(),
        "Packet Too Big frames in the client-side capture"
    );
}

/// Two clients' packets to the DSR services, and what a router between the
/// appliance and the backends would send about them once encapsulated
/// (built by scapy, not taken from roamlb's output): an ICMPv6 Packet Too
/// Big with MTU 1400 quoting the IPv6-in-IPv6 packet to 1280 octets, and a
/// Fragmentation Needed with next-hop MTU 1400 quoting the IPv4-in-IPv4
/// one to 576 octets, both to the appliance's server-side addresses.
const GEN_DSR_TUNNEL: &str = r#"
import sys
from scapy.all import Ether, IP, IPv6, UDP, ICMP, Raw, raw, wrpcap
from scapy.layers.inet6 import ICMPv6PacketTooBig
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
S = dict(src="02:05:00:00:00:fe", dst="02:05:00:00:00:01")
c6 = IPv6(src="2001:db8:c0::7", dst="2001:db8:ffff::a0")/UDP(sport=5007, dport=9)/Raw(b"T" * 1300)
c4 = IP(src="203.0.113.7", dst="198.51.100.160", flags="DF")/UDP(sport=5008, dport=9)/Raw(b"T" * 1300)
o6 = IPv6(src="2001:db8:1::1", dst="2001:db8:1::50", nh=41)/c6
o4 = IP(src="192.0.2.1", dst="192.0.2.50", proto=4)/c4
e6 = Ether(**S)/IPv6(src="2001:db8:1::fe", dst="2001:db8:1::1")/ICMPv6PacketTooBig(mtu=1400)/Raw(raw(o6)[:1232])
e4 = Ether(**S)/IP(src="192.0.2.254", dst="192.0.2.1")/ICMP(type=3, code=4, nexthopmtu=1400)/Raw(raw(o4)[:548])
wrpcap(sys.argv[1], [Ether(**E)/c6, Ether(**E)/c4])
wrpcap(sys.argv[2], [e6, e4])
"#;

/// The errors the appliance sent toward the clients, each checked by scapy
/// against the client's own packet: addresses, type, MTU, the quote octet
/// for octet, the length, and the checksum scapy recomputes.
const CHECK_DSR_TUNNEL: &str = r#"
import sys, json
from scapy.all import rdpcap, IP, IPv6, ICMP, raw
from scapy.layers.inet6 import ICMPv6PacketTooBig
sent = rdpcap(sys.argv[1])
got = []
for p in rdpcap(sys.argv[2]):
    if ICMPv6PacketTooBig in p:
        e = p[ICMPv6PacketTooBig]
        quote = raw(e.payload)
        e2 = p[IPv6].copy(); del e2[ICMPv6PacketTooBig].cksum
        ok = IPv6(raw(e2))[ICMPv6PacketTooBig].cksum == e.cksum
        got.append(["ptb", p[IPv6].src, p[IPv6].dst, e.mtu, len(raw(p)), quote == raw(sent[0][IPv6])[:len(quote)], ok])
    elif ICMP in p:
        e = p[ICMP]
        quote = raw(e.payload)
        e2 = p[IP].copy(); del e2[ICMP].chksum
        ok = IP(raw(e2))[ICMP].chksum == e.chksum
        got.append(["frag-needed", p[IP].src, p[IP].dst, e.type, e.code, e.nexthopmtu, len(raw(p)), quote == raw(sent[1][IP])[:len(quote)], ok])
got.sort()
print(json.dumps(got))
"#;

/// RFC 2473 §8 / RFC 2003 §4: a router's Packet Too Big or Fragmentation
/// Needed about an encapsulated packet, sent to the appliance's server-side
/// address (which is also `fnat6`'s local address here), reaches the
/// client from the VIP about the client's own packet, the MTU less the
/// outer header.
#[test]
fn dsr_tunnel_errors_reach_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, errors) = (d.join("clients.pcap"), d.join("errors.pcap"));
    python(GEN_DSR_TUNNEL, &[&input, &errors]);
    let out = d.join("server.pcap");
    let back = d.join("clients-out.pcap");
    let r = replay(
        d,
        &["--in", "--in-server", "--out-server", "--out-client"],
        &[&input, &errors, &out, &back],
    );
    assert_eq!(r["totals"]["to_backend"], 2u64, "{r}");
    assert_eq!(r["totals"]["injected"], 2u64, "{r}");
    assert_eq!(r["totals"]["icmp_tunnel_too_big"], 2u64, "{r}");
    assert!(
        r["drops"].as_object().unwrap().is_empty(),
        "nothing dropped: {}",
        r["drops"]
    );
    let got: serde_json::Value =
        serde_json::from_str(&python(CHECK_DSR_TUNNEL, &[&input, &back])).unwrap();
    assert_eq!(
        got,
        serde_json::json!([
            ["frag-needed", "198.51.100.160", "203.0.113.7", 3, 4, 1380, 14 + 576 - 20, true, true],
            ["ptb", "2001:db8:ffff::a0", "2001:db8:c0::7", 1360, 14 + 1280 - 40, true, true]
        ]),
        "from the VIP to each client, the router's MTU less the outer header, the client's packet quoted"
    );
    match tshark_matching(
        &back,
        "(icmp and icmp.checksum.status != \"Good\") or (icmpv6 and icmpv6.checksum.status != \"Good\") or _ws.malformed",
    ) {
        Some(p) => assert!(p.is_empty(), "tshark flags:\n{}", p.join("\n")),
        None => eprintln!("tshark not installed here (scripts/setup.sh installs it): dissection check skipped"),
    }
}

/// RFC 2473 §7.1: an IPv4 client packet without DF that an IPv6 outer
/// header takes past the server side's 1500 octets leaves as two IPv6
/// fragments (Fragment headers), which scapy's `defragment6` reassembles
/// into exactly the IPv4-in-IPv6 packet it builds around the client's.
#[test]
fn dsr_ipv4_to_an_ipv6_backend_leaves_in_ipv6_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clients.pcap");
    python(
        r#"
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
E = dict(src="02:0c:00:00:00:09", dst="02:0c:00:00:00:01")
wrpcap(sys.argv[1], [Ether(**E)/IP(src="203.0.113.4", dst="198.51.100.161")/UDP(sport=5009, dport=9)/Raw(b"F" * 1472)])
"#,
        &[&input],
    );
    let out = d.join("server.pcap");
    let r = replay(d, &["--in", "--out-server"], &[&input, &out]);
    assert_eq!(r["totals"]["to_backend"], 1u64, "{r}");
    assert_eq!(r["totals"]["encap_fragmented"], 1u64, "{r}");
    let got = python(
        r#"
import sys, json
from scapy.all import rdpcap, IP, IPv6, raw
from scapy.layers.inet6 import IPv6ExtHdrFragment, defragment6
sent = rdpcap(sys.argv[1])
frags = [p[IPv6] for p in rdpcap(sys.argv[2])]
out = [[len(raw(f)), f[IPv6ExtHdrFragment].m, f[IPv6ExtHdrFragment].offset * 8, f[IPv6ExtHdrFragment].nh] for f in frags]
assert frags[0][IPv6ExtHdrFragment].id == frags[1][IPv6ExtHdrFragment].id
whole = defragment6(frags)
want = IPv6(src="2001:db8:1::1", dst="2001:db8:1::51", nh=4)/sent[0][IP]
assert whole[IPv6].src == want.src and whole[IPv6].dst == want.dst and whole[IPv6].nh == 4, whole.summary()
assert raw(whole[IPv6].payload) == raw(sent[0][IP]), "the client's packet, whole"
print(json.dumps(out))
"#,
        &[&input, &out],
    );
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got,
        serde_json::json!([[1496, 1, 0, 4], [100, 0, 1448, 4]]),
        "two fragments under 1500: {got}"
    );
    check_tshark("IPv4 in IPv6 fragments", &out, 2);
}
