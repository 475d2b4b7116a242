//! `scripts/bench_summary.py`, the summary of `scripts/bench.sh`, on crafted
//! raw runs: ratios over valid pairs only, generator-bound pairs counted,
//! and a scenario measured while the host changed speed marked as such.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One raw run as `bench.sh` writes it.
fn run(scenario: &str, dut: &str, pair: u32, mpps: f64, valid: bool) -> String {
    format!(
        r#"{{"scenario": "{scenario}", "dut": "{dut}", "pair": {pair}, "mpps": {rx}, "tx_mpps": {mpps}, "gen_cpu": 1.0, "dut_cpu": 0.99, "valid": {valid}, "window_s": 3.0}}"#,
        rx = if dut == "testpmd-rxonly" { 0.0 } else { mpps },
    )
}

fn scenario(name: &str, ceilings: [f64; 2], pairs: &[(f64, f64, bool)]) -> Vec<String> {
    let mut v = vec![run(name, "testpmd-rxonly", 0, ceilings[0], true)];
    for (i, &(roamlb, testpmd, valid)) in pairs.iter().enumerate() {
        let p = i as u32 + 1;
        v.push(run(name, "roamlb", p, roamlb, valid));
        v.push(run(name, "testpmd", p, testpmd, true));
    }
    v.push(run(name, "testpmd-rxonly", 0, ceilings[1], true));
    v
}

#[test]
fn summary_counts_generator_bound_pairs_and_unsteady_hosts() {
    let dir = std::env::temp_dir().join(format!("roamlb-bench-summary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs.jsonl");
    let json = dir.join("summary.json");
    let mut lines = Vec::new();
    // Steady: ceilings and testpmd within 25 %; the third pair is invalid
    // (its roamlb run had too little CPU) and counts nowhere.
    lines.extend(scenario(
        "steady",
        [10.0, 10.2],
        &[(3.5, 7.0, true), (3.6, 7.2, true), (9.9, 7.1, false)],
    ));
    // testpmd at 95 % of the higher ceiling in one pair of two.
    lines.extend(scenario(
        "bound",
        [10.0, 9.8],
        &[(4.0, 9.5, true), (4.0, 8.0, true)],
    ));
    // The generator's ceiling halved during the scenario.
    lines.extend(scenario(
        "unsteady",
        [10.0, 5.0],
        &[(3.0, 7.0, true), (3.0, 7.2, true)],
    ));
    std::fs::write(&runs, lines.join("\n") + "\n").unwrap();

    let out = Command::new("python3")
        .arg(root().join("scripts/bench_summary.py"))
        .arg(&runs)
        .arg("test machine")
        .arg(&json)
        .arg("0")
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_owned()
    };
    let steady = row("steady");
    assert!(
        steady.contains(" 2/3 "),
        "two valid pairs of three: {steady}"
    );
    assert!(steady.contains("10.00/10.20 "), "both ceilings: {steady}");
    assert!(!steady.contains('*'), "{steady}");
    assert!(steady.ends_with("0/2"), "{steady}");
    assert!(row("bound").ends_with("1/2"), "{text}");
    assert!(row("unsteady").contains("10.00/5.00*"), "{text}");
    assert!(
        text.contains("gen-bound: pairs whose testpmd ran at 90%"),
        "{text}"
    );
    assert!(text.contains("the host changed speed"), "{text}");

    let summary = std::fs::read_to_string(&json).unwrap();
    let get = |name: &str, field: &str| {
        let s = &summary[summary.find(&format!("\"name\": \"{name}\"")).unwrap()..];
        let at = s.find(&format!("\"{field}\": ")).unwrap() + field.len() + 4;
        s[at..].split([',', '\n']).next().unwrap().trim().to_owned()
    };
    // The steady scenario's ratio is the median of 3.5/7.0 and 3.6/7.2.
    assert_eq!(get("steady", "ratio"), "0.5");
    assert_eq!(get("steady", "generator_bound_pairs"), "0");
    assert_eq!(get("steady", "host_unsteady"), "false");
    assert_eq!(get("steady", "generator_ceiling_mpps"), "10.2");
    assert_eq!(get("bound", "generator_bound_pairs"), "1");
    assert_eq!(get("unsteady", "host_unsteady"), "true");
    std::fs::remove_dir_all(&dir).unwrap();
}
