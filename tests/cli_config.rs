//! `roamlb check-config` as an operator uses it: exit codes, the effective
//! configuration on stdout, errors naming the key, environment overrides.
//! No EAL is started here.

use std::process::Command;

fn roamlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roamlb"))
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_config_prints_effective_configuration() {
    let out = roamlb()
        .args(["check-config", "--config"])
        .arg(root().join("conf/roamlb.toml"))
        .env_remove("ROAMLB_WORKERS__BURST")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("lcores = [\n    2,\n    3,\n    4,\n    5,\n]"),
        "{stdout}"
    );
    assert!(stdout.contains("device = \"0000:3b:00.0\""), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("roamlb.toml: OK\n"));
}

#[test]
fn environment_overrides_the_file() {
    let out = roamlb()
        .args(["check-config", "--config"])
        .arg(root().join("conf/demo.toml"))
        .env("ROAMLB_WORKERS__BURST", "16")
        .env("ROAMLB_EAL__LOG_LEVEL", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("burst = 16\n"), "{stdout}");
    assert!(stdout.contains("log_level = \"debug\"\n"), "{stdout}");
}

#[test]
fn invalid_configuration_exits_2_with_every_problem() {
    let path = root().join("tests/config/bad-values.toml");
    let out = roamlb()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "{}: invalid configuration\n{}\n",
        path.display(),
        [
            "workers.lcores[0]: lcore 0 is eal.main_lcore (the management core); pick another",
            "workers.lcores[2]: lcore 1 is listed twice",
            "workers.burst: 100 is out of range (1 to 64)",
            "eal.memory: required when eal.hugepages = false (e.g. \"256MiB\")",
            "ports[0].forward_to: no port is named \"nowhere\"",
            "ports[0].rss[1]: unknown hash type \"ipv7\" (known: ipv4, ipv4_tcp, ipv4_udp, ipv4_other, ipv4_frag, ipv6, ipv6_tcp, ipv6_udp, ipv6_other, ipv6_frag, ipv6_ex, ipv6_tcp_ex, ipv6_udp_ex, esp)",
            "ports[1].rx_queues: 0 is not allowed (at least 1)",
            "ports[1].tx_queues: 1 is fewer than the 3 workers (each worker sends on its own TX queue)",
        ]
        .join("\n")
    );
    assert_eq!(stderr, expected);
}

#[test]
fn run_with_invalid_configuration_starts_nothing() {
    let out = roamlb()
        .args(["run", "--config"])
        .arg(root().join("tests/config/unknown-key.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("unknown field `bursts`"), "{stderr}");
    assert!(!stderr.contains("EAL"), "EAL must not start: {stderr}");
}
