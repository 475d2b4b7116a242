//! Configuration tests: good and bad files, with the exact messages.

use super::*;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(name)
}

fn invalid(path: &str) -> Vec<String> {
    match Config::load(&fixture(path)) {
        Err(ConfigError::Invalid(v)) => v,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn good_file_loads_with_defaults() {
    let c = Config::load(&fixture("good.toml")).expect("good.toml is valid");
    assert_eq!(c.workers.lcores, vec![1, 2]);
    assert_eq!(c.workers.burst, 32);
    assert_eq!(c.workers.tx_flush, Duration::from_micros(50));
    assert_eq!(c.rx_queues(0), 2);
    assert_eq!(c.tx_queues(1), 2);
    assert!(c.ports[1].is_pci());
    assert_eq!(c.ports[1].ethdev_name(), "0000:01:00.0");
    let args = c.eal_args();
    assert_eq!(
        args,
        vec![
            "-l",
            "0,1,2",
            "--main-lcore=0",
            "--no-huge",
            "--no-shconf",
            "-m",
            "128",
            "--log-level=notice",
            "--vdev=net_ring0",
            "-a",
            "0000:01:00.0,rxq_cqe_comp_en=1",
        ]
    );
}

#[test]
fn shipped_configs_are_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf");
    for f in ["demo.toml", "roamlb.toml"] {
        Config::load(&root.join(f)).unwrap_or_else(|e| panic!("conf/{f}: {e}"));
    }
    let demo = Config::from_toml(DEMO_CONFIG, "embedded demo").expect("embedded demo");
    assert!(demo.eal_args().contains(&"--no-pci".to_owned()));
}

#[test]
fn bad_values_name_their_keys() {
    assert_eq!(
        invalid("bad-values.toml"),
        vec![
            "workers.lcores[0]: lcore 0 is eal.main_lcore (the management core); pick another",
            "workers.lcores[2]: lcore 1 is listed twice",
            "workers.burst: 100 is out of range (1 to 64)",
            "eal.memory: required when eal.hugepages = false (e.g. \"256MiB\")",
            "ports[0].forward_to: no port is named \"nowhere\"",
            "ports[0].rss[1]: unknown hash type \"ipv7\" (known: ipv4, ipv4_tcp, ipv4_udp, ipv4_other, ipv4_frag, ipv6, ipv6_tcp, ipv6_udp, ipv6_other, ipv6_frag, ipv6_ex, ipv6_tcp_ex, ipv6_udp_ex, esp)",
            "ports[1].rx_queues: 0 is not allowed (at least 1)",
            "ports[1].tx_queues: 1 is fewer than the 3 workers (each worker sends on its own TX queue)",
        ]
    );
}

#[test]
fn unknown_key_is_refused() {
    let path = fixture("unknown-key.toml");
    let e = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: unknown field `bursts`, expected one of `lcores`, `burst`, `idle`, `idle_sleep`, `tx_flush` for key `workers`",
            path.display()
        )
    );
}

#[test]
fn bad_duration_is_refused() {
    let path = fixture("bad-duration.toml");
    let e = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: invalid value: string \"fast\", expected a duration for key `workers.tx_flush`",
            path.display()
        )
    );
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/roamlb.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/roamlb.toml"), "{e}");
}

#[test]
fn pci_addresses() {
    assert!(is_pci_address("0000:3b:00.0"));
    assert!(is_pci_address("3b:00.1"));
    assert!(!is_pci_address("net_ring0"));
    assert!(!is_pci_address("net_pcap0"));
    assert!(!is_pci_address("3b:00"));
    assert!(!is_pci_address("zz:00.0"));
}

#[test]
fn effective_config_round_trips() {
    let c = Config::load(&fixture("good.toml")).unwrap();
    let text = c.to_toml();
    let again = Config::from_toml(&text, "rendered").expect("rendered config parses");
    assert_eq!(again.to_toml(), text);
}

#[test]
fn services_load() {
    let c = Config::load(&fixture("services.toml")).expect("services.toml is valid");
    assert_eq!(c.service.len(), 3);
    let web = &c.service[0];
    assert_eq!(web.ports.as_deref(), Some(&[80u16, 443][..]));
    assert_eq!(web.identity, ServiceIdentity::Slaac);
    assert_eq!(web.session_lifetime, Duration::from_secs(600));
    assert_eq!(web.backend[1].group, 1);
    assert_eq!(c.service[1].protocol, ServiceProtocol::Any);
    assert_eq!(c.service[1].backend[0].weight, 100, "default weight");
    assert_eq!(
        c.service[1].scheduler,
        SchedulerKind::Maglev,
        "default scheduler"
    );
    assert_eq!(c.service[2].forwarding, ForwardingMode::Fnat);
    assert_eq!(c.neighbor[0].mac, MacAddr([2, 0, 0, 0, 0x10, 0x10]));
    assert_eq!(c.ports[1].role, PortRole::Server);
    assert_eq!(c.dataplane.buckets, 1024);
    assert_eq!(c.dataplane.neighbor_hold, 16);
    assert_eq!(c.dataplane.icmp_errors_per_second, 1000, "default");
    assert_eq!(
        c.dataplane.icmp_translated_per_second, 0,
        "default: no limit"
    );
}

#[test]
fn session_lifetimes_go_down_to_ten_milliseconds_except_with_full_nat() {
    let text = std::fs::read_to_string(fixture("services.toml")).expect("fixture");
    let short = text.replace("session_lifetime = \"10m\"", "session_lifetime = \"200ms\"");
    let c = Config::from_toml(&short, "short").expect("a 200 ms lifetime is valid");
    assert_eq!(c.service[0].session_lifetime, Duration::from_millis(200));
    let too_short = text.replace("session_lifetime = \"10m\"", "session_lifetime = \"9ms\"");
    match Config::from_toml(&too_short, "too short") {
        Err(ConfigError::Invalid(v)) => assert_eq!(
            v,
            vec!["service[0].session_lifetime: 9ms is out of range (10ms to 7days)"]
        ),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let fnat = text.replace(
        "forwarding = \"fnat\"",
        "forwarding = \"fnat\"\nsession_lifetime = \"500ms\"",
    );
    match Config::from_toml(&fnat, "fnat") {
        Err(ConfigError::Invalid(v)) => assert_eq!(
            v,
            vec!["service[2].session_lifetime: 500ms is below 1s, the shortest with forwarding = \"fnat\""]
        ),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn bad_services_name_their_keys() {
    assert_eq!(
        invalid("bad-services.toml"),
        vec![
            "ports[0].gateways[0]: 203.0.113.1 is not inside any of the port's addresses' prefixes",
            "dataplane.buckets: 1000 must be a power of two from 64 to 65536",
            "dataplane.neighbor_hold: 5000 is out of range (0 to 4096)",
            "dataplane.icmp_errors_per_second: 0 is out of range (1 to 10000000; the rate of errors the appliance originates must be limited, RFC 4443 section 2.4)",
            "dataplane.icmp_translated_per_second: 20000000 is out of range (0 = no limit, up to 10000000)",
            "dataplane.hash_key: must be 32 hex digits (128 bits)",
            "neighbor[0].port: no port is named \"nowhere\"",
            "service[0].session_lifetime: 0s is out of range (10ms to 7days)",
            "service[0].fnat_idle_timeout: 1h is longer than session_lifetime (0s): a connection cannot outlive its client's session",
            "service[0].fnat_closed_timeout: 2h is longer than the idle timeout (1h)",
            "service[0].backend[0].weight: 20000 is out of range (0 to 10000)",
            "service[0].backend[0].address: 192.0.2.10 is not of the VIP's family (fnat cannot translate between IPv4 and IPv6; use dsr)",
            "service[0].backend[1].address: 192.0.2.10 is listed twice",
            "service[0].backend[1].address: 192.0.2.10 is not of the VIP's family (fnat cannot translate between IPv4 and IPv6; use dsr)",
            "service[0].fnat_addresses: full NAT needs a source address: list some, or give a server-side port an address of the VIP's family",
            "service[1].name: \"a\" is used by another service",
            "service[1]: 2001:db8:ffff::80 tcp overlaps another service",
            "service[1].fnat_idle_timeout: only used with forwarding = \"fnat\"",
            "service[1].backend: a service needs at least one backend",
            "service[2].ports: empty list (leave the key out for all ports)",
            "service[2].fnat_addresses[0]: 2001:db8::1 is not of the VIP's family",
            "service[2].fnat_addresses: only used with forwarding = \"fnat\"",
            "ports: services need a port with role \"server\" or \"both\"",
        ]
    );
}
