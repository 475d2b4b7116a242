//! A live run over net_memif: `roamlb run` (the device under test, memif
//! server) and `roamlb gen` (memif client) as two DPDK processes, at a low
//! fixed rate with idle backoff on both sides. The generator's receive side
//! must see every data packet of every flow, in order, each mobile node on
//! one backend. Both processes run under `timeout`, with unique file
//! prefixes and socket names, and the appliance is stopped by its PID.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn dut_config(tag: &str) -> String {
    // Backends on-link on the server port, with static neighbours (no ND/ARP).
    let mut s = format!(
        r#"
[eal]
hugepages = true
memory = "256MiB"
in_memory = false
file_prefix = "{tag}-dut"
log_level = "warning"
extra_args = ["--lcores", "0@1,1@1", "--huge-unlink"]
[workers]
lcores = [1]
idle = "sleep"
[dataplane]
sessions_per_worker = 65536
[[ports]]
name = "client"
device = "net_memif0,role=server,socket=/run/{tag}-c.sock,id=0"
role = "client"
[[ports]]
name = "server"
device = "net_memif1,role=server,socket=/run/{tag}-s.sock,id=0"
role = "server"
addresses = ["2001:db8:1::1/64", "192.0.2.1/24"]
[[service]]
name = "mobile6"
vip = "2001:db8:ffff::80"
protocol = "any"
identity = "slaac"
backend = [{{ address = "2001:db8:1::10" }}, {{ address = "2001:db8:1::11" }}, {{ address = "2001:db8:1::12" }}]
[[service]]
name = "web4"
vip = "198.51.100.80"
protocol = "any"
backend = [{{ address = "192.0.2.30" }}, {{ address = "192.0.2.31" }}]
"#
    );
    let backends = [
        "2001:db8:1::10",
        "2001:db8:1::11",
        "2001:db8:1::12",
        "192.0.2.30",
        "192.0.2.31",
    ];
    for (i, addr) in backends.iter().enumerate() {
        s.push_str(&format!(
            "[[neighbor]]\naddress = \"{addr}\"\nmac = \"02:00:00:00:10:{i:02x}\"\nport = \"server\"\n"
        ));
    }
    s
}

#[test]
fn live_memif_run_verifies_every_flow() {
    if common::free_hugepages() < 300 {
        eprintln!(
            "gen_live: fewer than 300 free hugepages (scripts/setup.sh reserves 2048): skipped"
        );
        return;
    }
    let tag = format!("roamlb-gentest-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dut.toml");
    std::fs::write(&cfg, dut_config(&tag)).unwrap();
    let bin = env!("CARGO_BIN_EXE_roamlb");
    let dut = Command::new("timeout")
        .args([
            "-s",
            "TERM",
            "40",
            bin,
            "run",
            "--json",
            "--duration",
            "35",
            "--config",
        ])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let gen = Command::new("timeout")
        .args([
            "30",
            bin,
            "gen",
            "--json",
            "--nodes",
            "300",
            "--rate",
            "20k",
            "--duration",
            "2",
        ])
        .args([
            "--warmup",
            "0.2",
            "--drain",
            "0.5",
            "--link-wait",
            "15",
            "--",
        ])
        .args([
            "-l",
            "0",
            "-m",
            "256",
            "--no-pci",
            "--huge-unlink",
            "--log-level=warning",
        ])
        .arg(format!("--file-prefix={tag}-gen"))
        .arg(format!(
            "--vdev=net_memif0,role=client,socket=/run/{tag}-c.sock,id=0"
        ))
        .arg(format!(
            "--vdev=net_memif1,role=client,socket=/run/{tag}-s.sock,id=0"
        ))
        .output()
        .unwrap();
    // Stop the appliance by its own PID (the timeout wrapper forwards TERM).
    let _ = Command::new("kill")
        .args(["-TERM", &dut.id().to_string()])
        .status();
    let dut_out = dut.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(45));
    // The EAL's runtime directories (hugepage files were unlinked already).
    for side in ["dut", "gen"] {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{tag}-{side}"));
    }
    assert!(
        gen.status.success(),
        "gen failed: {}\nDUT: {}",
        String::from_utf8_lossy(&gen.stderr),
        String::from_utf8_lossy(&dut_out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&gen.stdout).unwrap();
    let v = &r["verify"];
    assert_eq!(
        r["tx_packets"],
        r["generated"]["data"].as_u64().unwrap()
            + r["generated"]["binding_updates"].as_u64().unwrap()
    );
    assert!(r["tx_packets"].as_u64().unwrap() >= 30_000, "{r}");
    assert_eq!(v["lost"], 0, "{r}");
    assert_eq!(v["duplicates"], 0, "{r}");
    assert_eq!(v["reordered"], 0, "{r}");
    assert_eq!(v["affinity_violations"], 0, "{r}");
    assert_eq!(v["flows_seen"], 300, "{r}");
    assert_eq!(v["backends"].as_array().unwrap().len(), 5, "{r}");
    assert!(v["latency"]["samples"].as_u64().unwrap() > 0);
    assert!(
        dut_out.status.success(),
        "DUT: {}",
        String::from_utf8_lossy(&dut_out.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&dut_out.stdout).unwrap();
    assert_eq!(
        d["totals"]["to_backend"], r["rx_packets"],
        "DUT report: {d}"
    );
}
