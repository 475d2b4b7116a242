//! ARP and neighbour discovery against real peers: Linux kernels on the
//! other side of two DPDK `net_tap` ports.
//!
//! - Client side (the tap stays in this namespace): the kernel must resolve
//!   the VIPs (IPv4 by ARP, IPv6 by NS/NA) to roamlb's MAC, and its
//!   connection attempts must then reach a backend.
//! - Server side (the tap is moved into a network namespace of its own,
//!   whose kernel is the backend of two UDP services): the first datagrams
//!   of each family find the backend unresolved; roamlb holds them, asks
//!   (ARP / NS), and sends them once the kernel answers — a receiver in the
//!   namespace gets every one, in order, and roamlb counts them held and
//!   released, none dropped.
//!
//! Needs root, /dev/net/tun, iproute2 with `ip netns` and python3 (for the
//! receiver inside the namespace); says why when it skips. roamlb runs under
//! `timeout`; the namespace is removed by a guard even when the test fails.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Datagrams sent per family, all before the backend is resolved.
const DATAGRAMS: usize = 5;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Removes the namespace (after giving the tap back to the initial
/// namespace, where DPDK closes it) however the test ends.
struct Netns {
    name: String,
    iface: String,
}

impl Netns {
    fn give_back(&self) {
        let _ = ip(&["-n", &self.name, "link", "set", &self.iface, "netns", "1"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.give_back();
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Counts what roamlb logs, and says when its workers run (the ports are
/// started: only then may a tap move to another namespace, since DPDK
/// configures it by name).
fn watch_stderr(child: &mut Child) -> (mpsc::Receiver<()>, std::thread::JoinHandle<String>) {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("service(s),") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    (rx, h)
}

/// A UDP receiver on port 5000 (IPv4 and IPv6) inside the namespace: prints
/// "ready", then, once it has `DATAGRAMS` of each family or after 8 s, one
/// line of payloads per family.
const RECEIVER: &str = r#"
import select, socket, sys, time
n = int(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.bind(("0.0.0.0", 5000))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("::", 5000))
print("ready", flush=True)
got = {s4: [], s6: []}
end = time.time() + 8
while time.time() < end and (len(got[s4]) < n or len(got[s6]) < n):
    r, _, _ = select.select([s4, s6], [], [], 0.1)
    for s in r:
        got[s].append(s.recv(2048).decode(errors="replace"))
print("v4 " + " ".join(got[s4]))
print("v6 " + " ".join(got[s6]))
"#;

#[test]
fn the_kernel_resolves_vips_and_held_packets_reach_a_kernel_backend() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let python = Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    if !is_root || !Path::new("/dev/net/tun").exists() || !ip(&["-V"]) || !python {
        eprintln!("neighbor_tap: skipped: needs root, /dev/net/tun, iproute2 and python3 (run as root after scripts/setup.sh)");
        return;
    }
    let tag = std::process::id() % 100_000;
    let iface = format!("rlbt{tag}");
    let siface = format!("rlbs{tag}");
    let ns_name = format!("rlbns{tag}");
    if !ip(&["netns", "add", &ns_name]) {
        eprintln!("neighbor_tap: skipped: cannot create a network namespace");
        return;
    }
    let ns = Netns {
        name: ns_name.clone(),
        iface: siface.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roamlb.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[eal]
hugepages = false
memory = "128MiB"
log_level = "warning"
file_prefix = "rlbt{tag}"
[workers]
lcores = [1]
idle = "sleep"
[[ports]]
name = "client"
device = "net_tap0,iface={iface}"
role = "client"
addresses = ["2001:db8:77::1/64", "198.18.77.1/24"]
[[ports]]
name = "server"
device = "net_tap1,iface={siface}"
role = "server"
addresses = ["2001:db8:78::1/64", "198.18.78.1/24"]
[[neighbor]]
address = "2001:db8:78::10"
mac = "02:00:00:00:01:10"
port = "server"
[[service]]
name = "web6"
vip = "2001:db8:77::80"
protocol = "tcp"
[[service.backend]]
address = "2001:db8:78::10"
[[service]]
name = "web4"
vip = "198.18.77.80"
protocol = "tcp"
forwarding = "dsr"
[[service.backend]]
address = "2001:db8:78::10"
[[service]]
name = "udp4"
vip = "198.18.77.81"
protocol = "udp"
ports = [5000]
[[service.backend]]
address = "198.18.78.2"
[[service]]
name = "udp6"
vip = "2001:db8:77::81"
protocol = "udp"
ports = [5000]
[[service.backend]]
address = "2001:db8:78::2"
"#
        ),
    )
    .unwrap();
    let mut child = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_roamlb"),
            "run",
            "--json",
            "--config",
        ])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `timeout` forwards SIGTERM to roamlb; its own pid is the child's.
    let (started, log) = watch_stderr(&mut child);
    if started.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        panic!("roamlb did not start: {}", log.join().unwrap());
    }

    // Client side, in this namespace.
    assert!(ip(&["link", "set", &iface, "up"]), "tap {iface} up");
    assert!(ip(&["addr", "add", "198.18.77.2/24", "dev", &iface]));
    assert!(ip(&[
        "-6",
        "addr",
        "add",
        "2001:db8:77::2/64",
        "dev",
        &iface,
        "nodad"
    ]));
    // Server side: the backend's kernel in its own namespace.
    assert!(
        ip(&["link", "set", &siface, "netns", &ns_name]),
        "move {siface}"
    );
    let n = |args: &[&str]| {
        let mut a = vec!["-n", ns_name.as_str()];
        a.extend_from_slice(args);
        assert!(ip(&a), "ip {a:?}");
    };
    n(&["link", "set", "lo", "up"]);
    n(&["link", "set", &siface, "up"]);
    n(&["addr", "add", "198.18.78.2/24", "dev", &siface]);
    n(&[
        "-6",
        "addr",
        "add",
        "2001:db8:78::2/64",
        "dev",
        &siface,
        "nodad",
    ]);
    n(&["route", "add", "default", "via", "198.18.78.1"]);
    n(&["-6", "route", "add", "default", "via", "2001:db8:78::1"]);
    let mut receiver = Command::new("ip")
        .args(["netns", "exec", &ns_name, "python3", "-c", RECEIVER])
        .arg(DATAGRAMS.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut rx_out = BufReader::new(receiver.stdout.take().unwrap());
    let mut ready = String::new();
    rx_out.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");

    // A connection attempt makes the kernel resolve the VIP first; nothing
    // answers the SYN (the backend's MAC is a static one nobody has), so it
    // times out.
    for vip in ["198.18.77.80:80", "[2001:db8:77::80]:80"] {
        let _ = TcpStream::connect_timeout(
            &vip.parse::<SocketAddr>().unwrap(),
            Duration::from_millis(800),
        );
    }
    // Datagrams to the UDP VIPs: sent at once, so they reach roamlb
    // together, while it still resolves the backend.
    for (bind, vip) in [
        ("0.0.0.0:0", "198.18.77.81:5000"),
        ("[::]:0", "[2001:db8:77::81]:5000"),
    ] {
        let s = UdpSocket::bind(bind).unwrap();
        for i in 0..DATAGRAMS {
            s.send_to(format!("p{i}").as_bytes(), vip).unwrap();
        }
    }
    let mut got = String::new();
    rx_out.read_to_string(&mut got).unwrap();
    let _ = receiver.wait();

    let neigh = Command::new("ip")
        .args(["neigh", "show", "dev", &iface])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    let backend_neigh = Command::new("ip")
        .args(["-n", &ns_name, "neigh", "show", "dev", &siface])
        .output()
        .unwrap();
    let backend_neigh = String::from_utf8_lossy(&backend_neigh.stdout).into_owned();

    // The tap goes back before roamlb closes it; then an orderly stop.
    ns.give_back();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ip(&["link", "show", &siface]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = log.join().unwrap();
    assert!(status.success(), "exit {status:?}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    drop(ns);

    let mac = neigh
        .lines()
        .find(|l| l.starts_with("198.18.77.80 "))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "lladdr").nth(1))
        .unwrap_or_else(|| panic!("the kernel resolved the IPv4 VIP by ARP: {neigh}"))
        .to_owned();
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with("2001:db8:77::80 ") && l.contains(&mac) && l.contains("router")),
        "the kernel resolved the IPv6 VIP by NS/NA to the same MAC, router flag set: {neigh}"
    );
    let t = &report["totals"];
    let drops = &report["drops"];
    eprintln!("backend received:\n{got}totals: {t}\ndrops: {drops}");
    assert!(t["neighbor_answers"].as_u64().unwrap() >= 2, "{t}");
    assert!(
        t["neighbors_learned"].as_u64().unwrap() >= 4,
        "both kernels' addresses were learned: {t}"
    );
    assert!(
        t["to_backend"].as_u64().unwrap() >= 2,
        "the SYNs reached the backend side: {t}"
    );

    // Every datagram reached the backend's kernel, in order, although the
    // first ones arrived while roamlb was still asking for its MAC.
    let want: Vec<String> = (0..DATAGRAMS).map(|i| format!("p{i}")).collect();
    let want = want.join(" ");
    assert!(
        got.lines().any(|l| l == format!("v4 {want}")),
        "IPv4 datagrams at the backend: {got}\n{t}\n{drops}\nbackend's neighbours: {backend_neigh}"
    );
    assert!(
        got.lines().any(|l| l == format!("v6 {want}")),
        "IPv6 datagrams at the backend: {got}\n{t}\n{drops}"
    );
    assert!(
        backend_neigh.contains("198.18.78.1 ") && backend_neigh.contains("2001:db8:78::1 "),
        "the backend's kernel learned roamlb from its ARP request and NS: {backend_neigh}"
    );
    let held = t["neighbor_held"].as_u64().unwrap();
    assert!(held >= 2, "the first datagram of each family was held: {t}");
    assert_eq!(t["neighbor_released"].as_u64(), Some(held), "{t}");
    assert_eq!(t["neighbor_hold_packets"].as_u64(), Some(0), "{t}");
    assert!(t["neighbor_requests"].as_u64().unwrap() >= 2, "{t}");
    for reason in [
        "neighbor_hold_full",
        "neighbor_timeout",
        "neighbor_unresolved",
    ] {
        assert!(drops.get(reason).is_none(), "{reason}: {drops}");
    }
    assert_eq!(report["mbufs_leaked"].as_u64(), Some(0), "{report}");
}
