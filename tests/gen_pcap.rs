//! `roamlb gen --write-pcap`: the capture dissects in tshark (Home Address
//! options, ESP, Binding Updates, valid UDP/TCP checksums, nothing
//! malformed) with the requested packet count and sizes; and the capture
//! through `roamlb replay` (the real data plane) comes out with every data
//! packet, each mobile node on one backend, as `gen --verify-pcap` reads it.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn roamlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roamlb"))
}

fn json(o: std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: JSON: {e}"))
}

fn write(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, serde_json::Value) {
    let path = dir.join(name);
    let o = roamlb()
        .args(["gen", "--json", "--write-pcap"])
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    (path, json(o, "gen --write-pcap"))
}

fn tshark_lines(capture: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut c = Command::new("tshark");
    c.args([
        "-n",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-r",
    ])
    .arg(capture);
    if !filter.is_empty() {
        c.args(["-Y", filter]);
    }
    c.args(["-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let o = c.output().expect("tshark is installed (scripts/setup.sh)");
    assert!(
        o.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn write_pcap_dissects_in_tshark() {
    let dir = tempfile::tempdir().unwrap();
    // UDP at 200 octets: every kind fits, so every data frame is 196 + FCS.
    let (udp, r) = write(
        dir.path(),
        "udp.pcap",
        &[
            "--count",
            "3000",
            "--nodes",
            "300",
            "--size",
            "200",
            "--new-share",
            "0.1",
            "--move-every",
            "4",
        ],
    );
    assert_eq!(r["packets"], 3000);
    let bus = r["generated"]["binding_updates"].as_u64().unwrap();
    assert!(bus > 0);
    assert!(r["generated"]["new_identity"].as_u64().unwrap() >= 299);
    let lens = tshark_lines(&udp, "", &["frame.len"]);
    assert_eq!(lens.len(), 3000, "packet count");
    let data = lens.iter().filter(|l| *l == "196").count() as u64;
    assert_eq!(
        data + bus,
        3000,
        "every data frame is 196 octets (200 with FCS)"
    );
    let bu = tshark_lines(
        &udp,
        "mip6.mhtype == 5 and ipv6.opt.mipv6.home_address",
        &["frame.number"],
    );
    assert_eq!(
        bu.len() as u64,
        bus,
        "each Binding Update dissects, with a HAO"
    );
    let hao = tshark_lines(
        &udp,
        "udp and ipv6.opt.mipv6.home_address",
        &["ipv6.opt.mipv6.home_address"],
    );
    assert!(hao.len() > 1000, "HAO data packets: {}", hao.len());
    assert!(
        hao.iter().all(|a| a.starts_with("2001:db8:a::")),
        "home addresses"
    );
    let esp = tshark_lines(&udp, "esp", &["esp.spi"]);
    assert!(esp.len() > 100, "ESP packets: {}", esp.len());
    let v4 = tshark_lines(&udp, "ip and udp", &["ip.src"]);
    assert!(!v4.is_empty());
    let bad = tshark_lines(
        &udp,
        "(udp and udp.checksum.status != \"Good\") or (ip and ip.checksum.status == \"Bad\") or _ws.malformed or _ws.expert.severity >= error",
        &["frame.number"],
    );
    assert!(bad.is_empty(), "bad or malformed frames: {bad:?}");

    // TCP at 64 octets: IPv4 frames are the Ethernet minimum (60 + FCS);
    // IPv6 kinds need more and are sent at their minimum.
    let (tcp, r) = write(
        dir.path(),
        "tcp.pcap",
        &[
            "--count", "1200", "--nodes", "120", "--size", "64", "--proto", "tcp",
        ],
    );
    let fl: std::collections::HashMap<String, u64> = r["frame_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_u64().unwrap()))
        .collect();
    assert_eq!(fl["ipv4"], 70, "14 + 20 + 20 + 16-octet mark");
    assert_eq!(fl["hao"], 14 + 40 + 24 + 20 + 16);
    let lens = tshark_lines(&tcp, "ip and tcp", &["frame.len"]);
    assert!(!lens.is_empty() && lens.iter().all(|l| l == "70"));
    let bad = tshark_lines(
        &tcp,
        "(tcp and tcp.checksum.status != \"Good\") or (ip and ip.checksum.status == \"Bad\") or _ws.malformed or _ws.expert.severity >= error",
        &["frame.number"],
    );
    assert!(bad.is_empty(), "bad or malformed frames: {bad:?}");
    assert_eq!(tshark_lines(&tcp, "", &["frame.len"]).len(), 1200);

    // 64-octet UDP over IPv4 is exactly 60 octets on the wire without FCS.
    let (_, r) = write(
        dir.path(),
        "v4.pcap",
        &["--count", "10", "--size", "64", "--mix", "ipv4=1"],
    );
    assert_eq!(r["bytes"], 600);
}

/// Services in `forwarding` mode (`dnat` or `dsr`).
fn services(forwarding: &str) -> String {
    format!(
        r#"
[[service]]
name = "mobile6"
vip = "2001:db8:ffff::80"
protocol = "any"
identity = "slaac"
forwarding = "{forwarding}"
[[service.backend]]
address = "2001:db8:1::10"
[[service.backend]]
address = "2001:db8:1::11"
[[service.backend]]
address = "2001:db8:1::12"
[[service]]
name = "web4"
vip = "198.51.100.80"
protocol = "any"
forwarding = "{forwarding}"
[[service.backend]]
address = "192.0.2.30"
[[service.backend]]
address = "192.0.2.31"
"#
    )
}

/// DNAT rewrites the destination; DSR prepends an outer header. Either way
/// the mark at the end of the frame is found and the backend is the
/// outermost destination.
#[test]
fn gen_capture_through_replay_keeps_affinity() {
    for forwarding in ["dnat", "dsr"] {
        through_replay(forwarding);
    }
}

fn through_replay(forwarding: &str) {
    let dir = tempfile::tempdir().unwrap();
    let profile = [
        "--count",
        "20000",
        "--nodes",
        "2000",
        "--size",
        "128",
        "--new-share",
        "0.05",
    ];
    let (input, r) = write(dir.path(), "in.pcap", &profile);
    let cfg = format!(
        "[eal]\n{}log_level = \"warning\"\n[workers]\nlcores = [1]\nidle = \"sleep\"\n\
         [dataplane]\nsessions_per_worker = 65536\n\
         [[ports]]\nname = \"client\"\ndevice = \"net_ring0\"\nrole = \"client\"\n\
         [[ports]]\nname = \"server\"\ndevice = \"net_ring1\"\nrole = \"server\"\n\
         addresses = [\"2001:db8:1::1/64\", \"192.0.2.1/24\"]\n{}",
        common::eal_memory(true, 256, "gen_pcap"),
        services(forwarding)
    );
    let cfg_path = dir.path().join("roamlb.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let out = dir.path().join("out.pcap");
    let o = Command::new("timeout")
        .args([
            "120",
            env!("CARGO_BIN_EXE_roamlb"),
            "replay",
            "--json",
            "--config",
        ])
        .arg(&cfg_path)
        .arg("--in")
        .arg(&input)
        .arg("--out-server")
        .arg(&out)
        .output()
        .unwrap();
    let rep = json(o, "replay");
    assert_eq!(rep["totals"]["rx_packets"], 20000);
    let o = roamlb()
        .args(["gen", "--json", "--verify-pcap"])
        .arg(&out)
        .args(profile)
        .output()
        .unwrap();
    let v = json(o, "gen --verify-pcap");
    assert_eq!(v["lost"], 0, "{forwarding}: {v}");
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["affinity_violations"], 0, "{forwarding}: {v}");
    assert_eq!(v["flows_seen"], 2000);
    assert_eq!(v["new_identity_packets"], r["generated"]["new_identity"]);
    assert_eq!(v["flow_packets"], r["generated"]["data"]);
    assert_eq!(
        v["unmarked"], r["generated"]["binding_updates"],
        "Binding Updates reach the backend too"
    );
    assert_eq!(v["backends"].as_array().unwrap().len(), 5, "{v}");
}
