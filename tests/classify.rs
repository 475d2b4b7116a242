//! Runs the built `roamlb classify --json` on the scapy-made fixtures
//! (scripts/make-fixtures.py) and checks every line exactly; where `tshark`
//! is installed, cross-checks identities and Binding Update fields against
//! Wireshark's dissectors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn classify(name: &str, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roamlb"))
        .arg("classify")
        .arg("--pcap")
        .arg(fixture(name))
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run roamlb");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json_lines(name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = classify(name, &args);
    assert!(ok, "classify {name} failed: {err}");
    out.lines().map(str::to_owned).collect()
}

fn assert_lines(got: &[String], want: &[&str]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "line {i}");
    }
    assert_eq!(got.len(), want.len(), "line count");
}

const FWD_NULL: &str = r#","binding_update":null}"#;

fn fwd(i: usize, id: &str) -> String {
    format!(r#"{{"index":{i},"verdict":"forward","identity":"{id}"{FWD_NULL}"#)
}

fn drop(i: usize, reason: &str, id: Option<&str>) -> String {
    let id = id.map_or("null".to_string(), |s| format!("\"{s}\""));
    format!(r#"{{"index":{i},"verdict":"drop","reason":"{reason}","identity":{id}{FWD_NULL}"#)
}

#[test]
fn basic_capture() {
    let want = [
        fwd(0, "source=192.0.2.10"),           // IPv4/TCP
        fwd(1, "source=2001:db8:c0a::1"),      // IPv6/TCP
        fwd(2, "home_address=2001:db8:40::1"), // IPv6+DestOpts(HAO)/TCP
        fwd(3, "home_address=2001:db8:40::1"), // IPv6+HBH+DestOpts(PadN,HAO)/UDP
        fwd(4, "spi=0x0000abcd"),              // IPv6+ESP
        fwd(5, "spi=0xdeadbeef"),              // IPv4+ESP
        fwd(6, "spi=0x01020304"),              // HAO+ESP: SPI first
        fwd(7, "source=192.0.2.10"),           // ARP sender
        fwd(8, "source=192.0.2.12"),           // 802.1Q
        fwd(9, "home_address=2001:db8:40::1"), // QinQ + HAO
        fwd(10, "source=2001:db8:c0a::1"),     // IPv6 first fragment
        fwd(11, "source=2001:db8:c0a::1"),     // IPv6 non-first fragment
        fwd(12, "source=192.0.2.13"),          // IPv4 first fragment
        fwd(13, "source=192.0.2.13"),          // IPv4 non-first fragment
        fwd(14, "source=2001:db8:5::80"),      // reply with type 2 RH
        fwd(15, "source=2001:db8:c0a::1"),     // ICMPv6 echo
    ];
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_lines(&json_lines("basic.pcap", &[]), &want);
}

const BU_LINES: [&str; 3] = [
    r#"{"index":0,"verdict":"forward","identity":"home_address=2001:db8:40::1","binding_update":{"home_address":"2001:db8:40::1","care_of_address":"2001:db8:c0a::1"}}"#,
    r#"{"index":1,"verdict":"forward","identity":"home_address=2001:db8:40::1","binding_update":{"home_address":"2001:db8:40::1","care_of_address":"2001:db8:c0b::2"}}"#,
    r#"{"index":2,"verdict":"forward","identity":"source=2001:db8:40::ffff","binding_update":null}"#,
];

#[test]
fn binding_updates_pcap_and_pcapng() {
    assert_lines(&json_lines("mobility.pcap", &[]), &BU_LINES);
    assert_lines(&json_lines("mobility.pcapng", &[]), &BU_LINES);
}

#[test]
fn slaac_mode() {
    let default = [
        fwd(0, "source=2001:db8:c0a:0:211:22ff:fe33:4455"),
        fwd(1, "home_address=2001:db8:40::1"),
        fwd(2, "source=192.0.2.20"),
    ];
    let slaac = [
        fwd(0, "interface_id=0211:22ff:fe33:4455"),
        fwd(1, "home_address=2001:db8:40::1"),
        fwd(2, "source=192.0.2.20"),
    ];
    let d: Vec<&str> = default.iter().map(String::as_str).collect();
    let s: Vec<&str> = slaac.iter().map(String::as_str).collect();
    assert_lines(&json_lines("slaac.pcap", &[]), &d);
    assert_lines(
        &json_lines("slaac.pcap", &["--identity-mode", "default"]),
        &d,
    );
    assert_lines(&json_lines("slaac.pcap", &["--identity-mode", "slaac"]), &s);
}

#[test]
fn malformed_capture() {
    let coa = Some("source=2001:db8:c0a::1");
    let want = [
        drop(0, "eth_truncated", None),
        drop(1, "ipv4_bad_checksum", Some("source=192.0.2.30")),
        drop(2, "ipv4_truncated", None),
        drop(3, "hao_bad_length", coa),
        drop(4, "hao_bad_length", coa),
        drop(5, "hao_bad_length", coa),
        drop(6, "mh_length_past_packet", coa),
        drop(7, "esp_truncated", coa),
        drop(8, "ext_chain_too_long", coa),
        drop(9, "option_past_header", coa),
        drop(10, "tcp_bad_data_offset", coa),
        drop(11, "unknown_ethertype", None),
        drop(12, "hop_by_hop_not_first", coa),
        drop(13, "ipv6_payload_past_packet", None),
        drop(14, "tcp_truncated", Some("home_address=2001:db8:40::1")),
        drop(15, "unknown_option_discard", coa),
        drop(16, "alt_coa_bad_length", coa),
    ];
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_lines(&json_lines("malformed.pcap", &[]), &want);
}

#[test]
fn table_output_has_drop_summary() {
    let (ok, out, _) = classify("malformed.pcap", &[]);
    assert!(ok);
    assert!(out.starts_with(" index  verdict"), "{out}");
    assert!(
        out.contains("17 packets: 0 forwarded, 17 dropped, 0 binding updates"),
        "{out}"
    );
    assert!(
        out.contains("  hao_bad_length                   3\n"),
        "{out}"
    );
}

#[test]
fn non_ethernet_link_type_is_refused_by_name() {
    let (ok, out, err) = classify("cooked.pcap", &["--json"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("LINUX_SLL (113)"), "{err}");
}

#[test]
fn missing_file_is_an_error() {
    let (ok, _, err) = classify("no-such-file.pcap", &[]);
    assert!(!ok);
    assert!(err.contains("cannot open"), "{err}");
}

/// Rows of `tshark -T fields` for `fields`, or `None` when tshark is absent.
fn tshark(name: &str, fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(fixture(name)).args([
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=f",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.split('|').map(str::to_owned).collect())
                .collect(),
        ),
        Ok(o) => {
            eprintln!(
                "skipping tshark cross-check: tshark failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("skipping tshark cross-check: tshark not available ({e})");
            None
        }
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let k = format!("\"{key}\":\"");
    let start = line.find(&k)? + k.len();
    Some(&line[start..start + line[start..].find('"')?])
}

#[test]
fn tshark_agrees_on_identities() {
    for name in ["basic.pcap", "slaac.pcap", "mobility.pcap"] {
        let Some(rows) = tshark(
            name,
            &[
                "esp.spi",
                "ipv6.opt.mipv6.home_address",
                "ip.src",
                "ipv6.src",
                "arp.src.proto_ipv4",
            ],
        ) else {
            return;
        };
        let ours = json_lines(name, &[]);
        assert_eq!(rows.len(), ours.len(), "{name}");
        for (i, (r, line)) in rows.iter().zip(&ours).enumerate() {
            let expected = if !r[0].is_empty() {
                format!("spi={}", r[0].to_lowercase())
            } else if !r[1].is_empty() {
                format!("home_address={}", r[1])
            } else {
                let src = [&r[2], &r[3], &r[4]]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .expect("a source");
                format!("source={src}")
            };
            assert_eq!(
                field(line, "identity"),
                Some(expected.as_str()),
                "{name} packet {i}"
            );
        }
    }
}

#[test]
fn tshark_agrees_on_binding_updates() {
    for name in ["mobility.pcap", "mobility.pcapng"] {
        let Some(rows) = tshark(
            name,
            &[
                "mip6.mhtype",
                "ipv6.opt.mipv6.home_address",
                "mip6.acoa.acoa",
                "ipv6.src",
            ],
        ) else {
            return;
        };
        let ours = json_lines(name, &[]);
        assert_eq!(rows.len(), ours.len());
        for (r, line) in rows.iter().zip(&ours) {
            if r[0] == "5" {
                let coa = if r[2].is_empty() { &r[3] } else { &r[2] };
                let want = format!(
                    r#""binding_update":{{"home_address":"{}","care_of_address":"{coa}"}}"#,
                    r[1]
                );
                assert!(line.contains(&want), "{line} vs {want}");
            } else {
                assert!(line.ends_with(FWD_NULL), "{line}");
            }
        }
    }
}
