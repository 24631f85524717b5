//! Finds DPDK with pkg-config, generates the raw bindings with bindgen, compiles the small C
//! shim that wraps DPDK's static-inline functions, and links the DPDK libraries.
//!
//! Environment (besides what the `pkg-config` crate reads, e.g. `PKG_CONFIG_PATH`):
//! * `PKG_CONFIG`: the pkg-config program to run for the compiler flags (default `pkg-config`).
//!
//! Linking: every library `pkg-config --libs libdpdk` lists, dynamically (rustc links with
//! `--as-needed`, so only those whose symbols are used end up as `NEEDED`), plus
//! `librte_net_ring`, which is not in that list (it is a driver) but whose
//! `rte_eth_from_rings` the safe layer calls. The other drivers (net_null, net_pcap,
//! net_af_packet, the PCI NICs, ...) are not linked: in a shared build `rte_eal_init` loads
//! every driver in `RTE_EAL_PMD_PATH` (Debian: `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "install Debian's libdpdk-dev (DPDK 22.11 headers, libraries and \
     pkg-config file) and libclang-dev (for bindgen): `apt-get install libdpdk-dev libclang-dev`";

/// The oldest DPDK whose API and ABI these bindings were written against.
const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    let lib =
        pkg_config::Config::new().atleast_version(MIN_VERSION).cargo_metadata(false).probe("libdpdk").unwrap_or_else(
            |e| {
                panic!(
                    "dpdk-sys: pkg-config cannot find libdpdk >= {MIN_VERSION} ({e}); {INSTALL_HINT} \
                 (or point PKG_CONFIG_PATH at a DPDK build's lib/pkgconfig)"
                )
            },
        );
    if !lib.version.starts_with("22.11") {
        println!(
            "cargo:warning=dpdk-sys: written for DPDK 22.11 LTS, found {}; the shim and the \
             bindings are regenerated, but the safe layer may not match a newer ABI",
            lib.version
        );
    }

    // All of `--cflags`: besides the include paths, DPDK's public headers need
    // `-include rte_config.h` and an `-march` at least as high as DPDK was built with.
    let cflags = cflags("libdpdk");

    // The shim first: its static library must precede the DPDK libraries on the link line.
    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").opt_level(2).warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("esprit_dpdk_shim");

    for dir in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for name in &lib.libs {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    // Not listed by pkg-config (a driver), but `rte_eth_from_rings` lives there.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    for dir in &lib.include_paths {
        println!("cargo:include={}", dir.display());
    }
    println!("cargo:version={}", lib.version);
    println!("cargo:rustc-env=DPDK_SYS_VERSION={}", lib.version);

    let bindings = bindgen::Builder::default()
        .header("csrc/shim.h")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .parse_callbacks(Box::new(FlagTypes))
        // Function-like macros such as `RTE_ETH_RSS_IP` (`RTE_BIT64(n) | ...`) are evaluated by
        // clang, not skipped.
        .clang_macro_fallback()
        .use_core()
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        // The rings and mempools are only ever handled by pointer.
        .opaque_type("rte_ring")
        .opaque_type("rte_mempool")
        .allowlist_function("esprit_rte_.*")
        .allowlist_function("rte_eal_(init|cleanup|get_runtime_dir|process_type|has_hugepages)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_lcore_count")
        .allowlist_function("rte_thread_(register|unregister)")
        .allowlist_function("rte_dev_(probe|remove)")
        .allowlist_function("rte_eth_dev_(adjust_nb_rx_tx_desc|count_avail|count_total|get_port_by_name|get_name_by_port|is_valid_port|socket_id|info_get|configure|start|stop|close|set_mtu|get_mtu|set_link_up|set_link_down|rss_hash_conf_get)")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup")
        .allowlist_function("rte_eth_find_next(_owned_by)?")
        .allowlist_function("rte_eth_promiscuous_(enable|disable|get)")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_link_get(_nowait)?")
        .allowlist_function("rte_eth_stats_(get|reset)")
        .allowlist_function("rte_eth_from_rings")
        .allowlist_function("rte_pktmbuf_(pool_create|free_bulk)")
        .allowlist_function("rte_mempool_(free|lookup|avail_count|in_use_count)")
        .allowlist_function("rte_ring_(create|free)")
        .allowlist_type("rte_eth_(conf|dev_info|rxconf|txconf|stats|link|rss_conf)")
        .allowlist_type("rte_ether_addr")
        .allowlist_var("RTE_ETH_RSS_.*")
        .allowlist_var("RTE_ETH_MQ_(RX|TX)_.*")
        .allowlist_var("RTE_ETH_LINK_.*")
        .allowlist_var("RTE_ETH_SPEED_NUM_.*")
        .allowlist_var("RTE_ETH_DEV_NO_OWNER")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MBUF_F_(RX_.*|INDIRECT|EXTERNAL)")
        .allowlist_var("RTE_MBUF_DEFAULT_(BUF_SIZE|DATAROOM)")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MEMPOOL_CACHE_MAX_SIZE")
        .allowlist_var("RTE_MEMPOOL_NAMESIZE")
        .allowlist_var("RTE_EAL_PMD_PATH")
        .allowlist_var("RTE_ETHER_(ADDR_LEN|MTU|MAX_LEN)")
        .allowlist_var("RING_F_(SP_ENQ|SC_DEQ)")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("SOCKET_ID_ANY")
        .generate()
        .unwrap_or_else(|e| {
            panic!("dpdk-sys: bindgen failed on csrc/shim.h with the libdpdk cflags {cflags:?}: {e}; {INSTALL_HINT}")
        });

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("dpdk-sys: cannot write bindings.rs");
}

/// Gives the 64-bit flag macros one type whatever their value: `RTE_ETH_RSS_IP` (which fits in
/// 32 bits) and `RTE_ETH_RSS_PROTO_MASK` (which does not) are both `u64`, as `rss_hf` and
/// `ol_flags` are.
#[derive(Debug)]
struct FlagTypes;

impl bindgen::callbacks::ParseCallbacks for FlagTypes {
    fn int_macro(&self, name: &str, _value: i64) -> Option<bindgen::callbacks::IntKind> {
        (name.starts_with("RTE_ETH_RSS_") || name.starts_with("RTE_MBUF_F_"))
            .then_some(bindgen::callbacks::IntKind::U64)
    }
}

/// `pkg-config --cflags <package>`, split into arguments.
fn cflags(package: &str) -> Vec<String> {
    let program = env::var_os("PKG_CONFIG").unwrap_or_else(|| "pkg-config".into());
    let output = Command::new(&program)
        .args(["--cflags", package])
        .output()
        .unwrap_or_else(|e| panic!("dpdk-sys: cannot run {}: {e}; {INSTALL_HINT}", PathBuf::from(&program).display()));
    if !output.status.success() {
        panic!(
            "dpdk-sys: `pkg-config --cflags {package}` failed: {}; {INSTALL_HINT}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect()
}
