//! The pktgen-dpdk material in `scripts/pktgen/`: every Lua file parses
//! (`luac5.3 -p`), the shell scripts parse (`bash -n`), and the capture each
//! script replays (`local CAPTURE = "..."`) is written by a command that
//! `scripts/pktgen/captures.sh` and `README.md` both give verbatim —
//! run here, it produces that capture with the requested packet count.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lua_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("scripts/pktgen"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .collect();
    v.sort();
    v
}

#[test]
fn lua_and_shell_scripts_parse() {
    let files = lua_files();
    assert!(
        files.len() >= 4,
        "replay, sweep, latency and common: {files:?}"
    );
    for f in &files {
        let o = Command::new("luac5.3")
            .arg("-p")
            .arg(f)
            .output()
            .expect("luac5.3 is installed (apt-get install lua5.3)");
        assert!(
            o.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for sh in ["run.sh", "captures.sh"] {
        let st = Command::new("bash")
            .arg("-n")
            .arg(root().join("scripts/pktgen").join(sh))
            .status()
            .unwrap();
        assert!(st.success(), "{sh} does not parse");
    }
}

/// `roamlb gen --write-pcap NAME ...` lines of a file, by capture name.
fn gen_commands(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("roamlb gen --write-pcap "))
        .map(|rest| {
            let name = rest.split_whitespace().next().unwrap().to_owned();
            (name, format!("roamlb gen --write-pcap {rest}"))
        })
        .collect()
}

fn pcap_count(p: &Path) -> (u64, usize) {
    let f = std::fs::File::open(p).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    let (mut n, mut min) = (0u64, usize::MAX);
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.unwrap();
        n += 1;
        min = min.min(pkt.data.len());
    }
    (n, min)
}

#[test]
fn captures_named_by_scripts_come_from_the_documented_commands() {
    let captures_sh = std::fs::read_to_string(root().join("scripts/pktgen/captures.sh")).unwrap();
    let docs = std::fs::read_to_string(root().join("README.md")).unwrap();
    let script_cmds = gen_commands(&captures_sh);
    let doc_cmds = gen_commands(&docs);
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for f in lua_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let Some(capture) = text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("local CAPTURE = \"")
                .and_then(|r| r.split('"').next())
        }) else {
            continue; // common.lua
        };
        let (_, cmd) = script_cmds
            .iter()
            .find(|(n, _)| n == capture)
            .unwrap_or_else(|| panic!("{}: captures.sh does not write {capture}", f.display()));
        assert!(
            doc_cmds.iter().any(|(_, c)| c == cmd),
            "README.md does not give `{cmd}` verbatim"
        );
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let o = Command::new(env!("CARGO_BIN_EXE_roamlb"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let count: u64 = args
            .iter()
            .position(|a| *a == "--count")
            .map(|i| args[i + 1].parse().unwrap())
            .unwrap();
        let (n, min_len) = pcap_count(&dir.path().join(capture));
        assert_eq!(n, count, "{capture}: packet count");
        assert!(min_len >= 60, "{capture}: no runt frames");
        checked += 1;
    }
    assert!(checked >= 3, "replay, sweep and latency name captures");
}
