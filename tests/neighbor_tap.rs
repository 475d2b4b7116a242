//! ARP and neighbour discovery against a real peer: the Linux kernel on the
//! other side of a DPDK `net_tap` port must resolve the VIPs (IPv4 by ARP,
//! IPv6 by NS/NA) to roamlb's MAC, and its connection attempts must then
//! reach a backend. Needs root and iproute2 (scripts/setup.sh); says why
//! when it skips.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn the_kernel_resolves_vips_through_roamlb() {
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root || !Path::new("/dev/net/tun").exists() || !ip(&["-V"]) {
        eprintln!("neighbor_tap: skipped: needs root, /dev/net/tun and iproute2 (run as root after scripts/setup.sh)");
        return;
    }
    let iface = format!("rlbt{}", std::process::id() % 100_000);
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
device = "net_ring0"
role = "server"
addresses = ["2001:db8:1::1/64"]
[[neighbor]]
address = "2001:db8:1::10"
mac = "02:00:00:00:01:10"
port = "server"
[[service]]
name = "web6"
vip = "2001:db8:77::80"
protocol = "tcp"
[[service.backend]]
address = "2001:db8:1::10"
[[service]]
name = "web4"
vip = "198.18.77.80"
protocol = "tcp"
forwarding = "dsr"
[[service.backend]]
address = "2001:db8:1::10"
"#
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_roamlb"))
        .args(["run", "--duration", "8", "--json", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ip(&["link", "show", &iface]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
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
    // A connection attempt makes the kernel resolve the VIP first; nothing
    // answers the SYN (the backend is behind a ring), so it times out.
    for vip in ["198.18.77.80:80", "[2001:db8:77::80]:80"] {
        let _ = TcpStream::connect_timeout(
            &vip.parse::<SocketAddr>().unwrap(),
            Duration::from_millis(800),
        );
    }
    let neigh = Command::new("ip")
        .args(["neigh", "show", "dev", &iface])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert!(t["neighbor_answers"].as_u64().unwrap() >= 2, "{t}");
    assert!(
        t["neighbors_learned"].as_u64().unwrap() >= 2,
        "the kernel's addresses were learned: {t}"
    );
    assert!(
        t["to_backend"].as_u64().unwrap() >= 2,
        "the SYNs reached the backend side: {t}"
    );
}

use std::path::Path;
