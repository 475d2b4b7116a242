//! SIGHUP reload of a running appliance (its own EAL process): a changed
//! service is applied without a restart, an invalid file leaves the running
//! configuration in place, sections that need a restart are named, and the
//! process keeps running until SIGTERM. (What a reload does to sessions is
//! tested in `dataplane::lb`: slots stay stable, sessions to remaining
//! backends survive, those on removed backends pick anew.)

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(backends: &[&str], burst: u16) -> String {
    let mut c = format!(
        r#"
[eal]
hugepages = false
memory = "128MiB"
log_level = "warning"
[workers]
lcores = [1]
idle = "sleep"
burst = {burst}
[[ports]]
name = "client"
device = "net_null0"
role = "client"
[[ports]]
name = "server"
device = "net_null1"
role = "server"
addresses = ["2001:db8:1::1/64"]
[[service]]
name = "web6"
vip = "2001:db8:ffff::80"
protocol = "tcp"
"#
    );
    for b in backends {
        c.push_str(&format!("[[service.backend]]\naddress = \"{b}\"\n"));
    }
    c
}

fn wait_for(log: &std::path::Path, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn sighup_reloads_services_and_survives_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("roamlb.toml");
    let log = dir.path().join("stderr.log");
    std::fs::write(&cfg, config(&["2001:db8:1::10", "2001:db8:1::11"], 32)).unwrap();
    // Bounded by roamlb's own --duration (a `timeout` wrapper does not pass
    // on every SIGHUP); signalled by its PID.
    let mut child = Command::new(env!("CARGO_BIN_EXE_roamlb"))
        .args(["run", "--duration", "60", "--json", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(
        wait_for(&log, "1 service(s)", Duration::from_secs(20)),
        "started"
    );

    // A backend added, the burst changed (a restart-only setting).
    std::fs::write(
        &cfg,
        config(&["2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::12"], 16),
    )
    .unwrap();
    signal(pid, "-HUP");
    assert!(
        wait_for(&log, "reloaded: 1 service(s)", Duration::from_secs(10)),
        "reload applied"
    );
    assert!(
        wait_for(
            &log,
            "SIGHUP: changes to [workers] take effect at the next restart",
            Duration::from_secs(1)
        ),
        "restart-only change named"
    );

    // A broken file: the running configuration stays.
    std::fs::write(&cfg, "[workers]\nlcores = [1]\nbogus = 1\n").unwrap();
    signal(pid, "-HUP");
    assert!(
        wait_for(
            &log,
            "not reloaded, the running configuration stays",
            Duration::from_secs(10)
        ),
        "bad file refused"
    );

    signal(pid, "-TERM");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["reloads"], 1);
    assert_eq!(report["stop_reason"], "signal");
    let backends: Vec<&str> = report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        backends,
        ["2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::12"]
    );
}
