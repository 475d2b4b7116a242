//! Helpers shared by the integration tests that start roamlb processes.
#![allow(dead_code)] // each test file uses a different subset

/// Free 2 MiB hugepages on this machine.
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("HugePages_Free:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Whether at least `pages` hugepages are free and hugetlbfs is mounted.
pub fn hugepages_available(pages: u64) -> bool {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
        })
        .unwrap_or(false);
    free_hugepages() >= pages && mounted
}

/// The `[eal]` memory lines for a test: hugepages when wanted and the
/// machine has them (otherwise `--no-huge`, saying so for `test`), with
/// `mib` MiB reserved.
pub fn eal_memory(want_huge: bool, mib: u64, test: &str) -> String {
    let huge = want_huge && hugepages_available(mib / 2);
    if want_huge && !huge {
        eprintln!("{test}: no free hugepages here (scripts/setup.sh reserves them): running with --no-huge");
    }
    format!("hugepages = {huge}\nmemory = \"{mib}MiB\"\n")
}
