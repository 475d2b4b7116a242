//! `roamlb run` end to end, as separate processes (each its own EAL):
//! net_pcap in -> net_pcap out must carry exactly the input packets; SIGTERM
//! must give an orderly stop with final stats; the metrics endpoint must
//! answer while traffic flows. Every case runs with hugepages (when the
//! machine has them; otherwise it says so) and with `--no-huge`.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

mod common;

fn frames() -> Vec<Vec<u8>> {
    // Ethernet + IPv6 + UDP-ish payloads of varied sizes (64..1514 bytes);
    // forwarding must not care what they hold.
    (0..500u32)
        .map(|i| {
            let len = 64 + (i as usize * 37) % 1450;
            let mut f = vec![0u8; len];
            f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            for (j, b) in f[14..].iter_mut().enumerate() {
                *b = (i as usize * 7 + j) as u8;
            }
            f[14..18].copy_from_slice(&i.to_be_bytes());
            f
        })
        .collect()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(file).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

fn pcap_forwarding(want_huge: bool, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = frames();
    write_pcap(&d.join("in.pcap"), &input);
    write_pcap(&d.join("empty.pcap"), &[]);
    let cfg = format!(
        "[eal]\n{mem}log_level = \"warning\"\n\
         [workers]\nlcores = [1]\nidle = \"sleep\"\nidle_sleep = \"100us\"\n\
         [[ports]]\nname = \"client\"\ndevice = \"net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/back.pcap\"\nforward_to = \"server\"\n\
         [[ports]]\nname = \"server\"\ndevice = \"net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/out.pcap\"\nforward_to = \"client\"\n",
        mem = common::eal_memory(want_huge, 128, test),
        d = d.display()
    );
    std::fs::write(d.join("roamlb.toml"), cfg).unwrap();
    let out = Command::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_roamlb"),
            "run",
            "--until-idle",
            "1",
            "--json",
            "--config",
        ])
        .arg(d.join("roamlb.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "roamlb run failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON report on stdout");
    assert_eq!(report["stop_reason"], "idle");
    assert_eq!(
        report["hugepages"],
        want_huge && common::hugepages_available(64)
    );
    assert_eq!(report["mbufs_leaked"], 0);
    assert_eq!(report["ports"][0]["rx_packets"], input.len());
    assert_eq!(report["ports"][1]["tx_packets"], input.len());
    assert_eq!(report["totals"]["rx_packets"], input.len());
    assert_eq!(report["totals"]["tx_packets"], input.len());
    assert_eq!(report["totals"]["tx_full_drops"], 0);

    let output = read_pcap(&d.join("out.pcap"));
    assert_eq!(output.len(), input.len(), "every input packet came out");
    assert!(
        output == input,
        "output packets are exactly the input packets, in order"
    );
    assert!(
        read_pcap(&d.join("back.pcap")).is_empty(),
        "nothing flowed back to the client side"
    );
}

#[test]
fn pcap_forwarding_with_hugepages() {
    pcap_forwarding(true, "pcap_forwarding_with_hugepages");
}

#[test]
fn pcap_forwarding_without_hugepages() {
    pcap_forwarding(false, "pcap_forwarding_without_hugepages");
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn sigterm_orderly_stop(want_huge: bool, test: &str, metrics_port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // net_null receives an endless stream of 64-byte packets and discards what
    // it is given: a worker under full load.
    let cfg = format!(
        "[eal]\n{mem}log_level = \"warning\"\n\
         [workers]\nlcores = [1]\nidle = \"sleep\"\n\
         [management]\nstats_interval = \"200ms\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\
         [[ports]]\nname = \"a\"\ndevice = \"net_null0\"\nforward_to = \"b\"\n\
         [[ports]]\nname = \"b\"\ndevice = \"net_null1\"\n",
        mem = common::eal_memory(want_huge, 128, test),
    );
    std::fs::write(d.join("roamlb.toml"), cfg).unwrap();
    let mut child = Command::new("timeout")
        .args(["60", env!("CARGO_BIN_EXE_roamlb"), "run", "--config"])
        .arg(d.join("roamlb.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `timeout` forwards SIGTERM to roamlb; its own pid is the child's.
    let addr = format!("127.0.0.1:{metrics_port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut metrics = None;
    while Instant::now() < deadline {
        if let Some(body) = http_get(&addr, "/metrics") {
            if body.contains("roamlb_worker_rx_packets_total{worker=\"0\"}") {
                metrics = Some(body);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = metrics.expect("metrics endpoint served worker counters");
    assert!(
        metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roamlb_port_rx_packets_total{port=\"a\"}"),
        "{metrics}"
    );
    assert!(http_get(&addr, "/nope").unwrap().contains("404"));

    // SIGTERM to the process we started, by its pid.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let stderr: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let code = child.wait().unwrap();
    assert!(code.success(), "exit {code:?}\n{}", stderr.join("\n"));
    assert!(
        stdout.starts_with("final stats: stopped by Signal after "),
        "{stdout}"
    );
    assert!(
        stdout.contains("mbufs not returned to the pool: 0"),
        "{stdout}"
    );
    let a_line = stdout
        .lines()
        .find(|l| l.starts_with("a "))
        .expect("port a in final stats");
    let rx: u64 = a_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rx > 0, "traffic flowed before the stop: {a_line}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("signal received: stopping")),
        "{}",
        stderr.join("\n")
    );
}

#[test]
fn sigterm_stops_in_order_with_hugepages() {
    sigterm_orderly_stop(true, "sigterm_stops_in_order_with_hugepages", 19181);
}

#[test]
fn sigterm_stops_in_order_without_hugepages() {
    sigterm_orderly_stop(false, "sigterm_stops_in_order_without_hugepages", 19182);
}
