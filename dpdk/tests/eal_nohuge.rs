//! EAL tests without hugepages (`--no-huge`): the same checks as
//! `eal_hugepages.rs`, for containers and CI machines that cannot reserve
//! hugepages.

mod common;

#[test]
fn eal_without_hugepages() {
    let eal = common::start_eal(false);
    common::run_all(eal, false);
}
