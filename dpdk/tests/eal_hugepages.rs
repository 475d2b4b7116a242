//! EAL tests with hugepage-backed memory (the production mode). Where the
//! machine has no free hugepages the test says so and runs under --no-huge,
//! which `eal_nohuge.rs` covers as well.

mod common;

#[test]
fn eal_with_hugepages() {
    let huge = common::hugepages_available();
    if !huge {
        eprintln!(
            "eal_with_hugepages: no free hugepages or no hugetlbfs mount on this machine \
             (run scripts/setup.sh as root); falling back to --no-huge"
        );
    }
    let eal = common::start_eal(huge);
    common::run_all(eal, huge);
}
