//! Generates the DPDK 22.11 bindings.
//!
//! The compiler flags come raw from `pkg-config --cflags libdpdk`: they carry
//! `-include rte_config.h` and the `-march` DPDK was built for, without which
//! the headers do not parse the same way they were compiled. DPDK's fast path
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ring bursts, `rte_lcore_id`, …)
//! is made of `static inline` functions; bindgen's `wrap_static_fns` writes an
//! out-of-line C wrapper for each, which we compile here with the same flags.
//! Flag macros such as `RTE_ETH_RSS_IPV6_EX` are `RTE_BIT64(n)` expressions
//! that bindgen can only evaluate with `clang_macro_fallback`; their type is
//! forced to `u64` so they combine with the 64-bit fields they belong in.

use std::env;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug)]
struct MacroTypes;

impl bindgen::callbacks::ParseCallbacks for MacroTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        const U64_FAMILIES: &[&str] = &[
            "RTE_ETH_RSS_",
            "RTE_ETH_RX_OFFLOAD_",
            "RTE_ETH_TX_OFFLOAD_",
            "RTE_MBUF_F_",
            "RTE_ETH_LINK_SPEED_",
        ];
        if U64_FAMILIES.iter().any(|p| name.starts_with(p)) {
            Some(bindgen::callbacks::IntKind::U64)
        } else {
            None
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "libdpdk (DPDK >= 22.11) not found through pkg-config: {e}\n\
                 install it with scripts/setup.sh (Debian: apt-get install libdpdk-dev pkg-config)"
            )
        });
    let version = lib.version.clone();
    println!("cargo:rustc-env=ROAMLB_DPDK_PKG_VERSION={version}");

    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("running pkg-config --cflags libdpdk");
    assert!(out.status.success(), "pkg-config --cflags libdpdk failed");
    let cflags: Vec<String> = String::from_utf8(out.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrappers = out_dir.join("rte_static_fns");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_.*lcore.*")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("rte_rdtsc")
        .allowlist_function("rte_pause")
        .allowlist_function("rte_delay_us_sleep")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mbuf_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_ring_.*")
        .allowlist_function("rte_dev_.*")
        .allowlist_function("rte_vdev_.*")
        .allowlist_function("roamlb_.*")
        .allowlist_type("rte_eth_.*")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_ring")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_.*")
        .allowlist_var("RTE_RING_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("RTE_MEMPOOL_.*")
        .allowlist_var("RTE_MAX_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("RTE_VER_.*")
        // The fast-path functions are `static inline` in DPDK's headers.
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .clang_macro_fallback()
        .parse_callbacks(Box::new(MacroTypes))
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .expect("bindgen failed on DPDK headers");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("writing bindings.rs");

    // Compile the generated wrappers for the static inline functions.
    let mut build = cc::Build::new();
    build
        .file(wrappers.with_extension("c"))
        .include(env::current_dir().expect("cwd"))
        .define("ALLOW_EXPERIMENTAL_API", None)
        .warnings(false)
        .opt_level(2);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("roamlb_rte_static_fns");
}
