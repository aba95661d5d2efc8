//! Finds the system DPDK with `pkg-config libdpdk`, compiles the C shim with every one of its cflags
//! (`-include rte_config.h` and `-march=...` among them: the shim's inline SSE code needs them) and
//! generates the bindings with the same flags.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(arg: &str) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args([arg, "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("dpdk-sys: running pkg-config failed ({e}); install pkg-config and libdpdk-dev"));
    assert!(
        out.status.success(),
        "dpdk-sys: `pkg-config {arg} libdpdk` failed: {}; install libdpdk-dev (scripts/install-deps.sh)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

/// Links DPDK's shared libraries. EAL then loads every PMD of its plugin directory at start (~130).
fn link_shared() {
    // The -Wl,--as-needed that pkg-config puts first would drop the PMD libraries (net_ring) that
    // nothing references by symbol, so it is left out.
    for f in pkg_config("--libs") {
        if let Some(lib) = f.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if let Some(dir) = f.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    // rte_vdev_init (vdevs made at run time, as the cryptodev tests do) lives in the vdev bus driver.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
}

/// The drivers a static build carries: the buses, the ring mempool, the port vdevs of the hardware
/// profiles and the crypto PMDs (intel-ipsec-mb, OpenSSL, QAT). Each registers itself from a
/// constructor, so each is linked whole.
const STATIC_DRIVERS: &[&str] = &[
    "bus_pci",
    "bus_vdev",
    "mempool_ring",
    "net_af_packet",
    "net_af_xdp",
    "net_tap",
    "net_pcap",
    "net_null",
    "net_ring",
    "crypto_ipsec_mb",
    "crypto_openssl",
    "common_qat",
];

/// The system libraries those drivers and DPDK's libraries call.
const STATIC_SYSTEM_LIBS: &[&str] =
    &["IPSec_MB", "crypto", "pcap", "xdp", "bpf", "elf", "z", "numa", "bsd", "jansson", "atomic", "rt", "dl", "m"];

/// Links DPDK statically with only [`STATIC_DRIVERS`]: EAL loads no plugins, so it starts faster.
fn link_static() {
    for f in pkg_config("--libs") {
        if let Some(dir) = f.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
    for d in STATIC_DRIVERS {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=rte_{d}");
    }
    // DPDK's libraries, dependents before dependencies as pkg-config lists them; only what is used is
    // taken from each archive.
    for f in pkg_config("--libs") {
        if let Some(lib) = f.strip_prefix("-l").filter(|l| l.starts_with("rte_")) {
            println!("cargo:rustc-link-lib=static:-bundle={lib}");
        }
    }
    for lib in STATIC_SYSTEM_LIBS {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let cflags = pkg_config("--cflags");

    let mut build = cc::Build::new();
    build.file("shim/shim.c").opt_level(3).warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("dpdk_shim");

    if env::var_os("CARGO_FEATURE_STATIC").is_some() {
        link_static();
    } else {
        link_shared();
    }

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&cflags)
        .allowlist_function("dp_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|mp_wait_lcore|wait_lcore|get_lcore_state)")
        .allowlist_function("rte_lcore_(count|is_enabled|to_socket_id)")
        .allowlist_function("rte_get_(main_lcore|next_lcore|tsc_hz)")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_(avail_count|in_use_count|free|lookup)")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_ring_(create|free)")
        .allowlist_function("rte_eth_from_rings")
        .allowlist_function("rte_eth_dev_(adjust_nb_rx_tx_desc|promiscuous_enable|count_avail|info_get|configure|start|stop|close|socket_id|get_port_by_name|get_name_by_port|is_valid_port)")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_vdev_init")
        .allowlist_function("rte_cryptodev_(count|devices_get|get_dev_id|info_get|configure|queue_pair_setup|start|stop|close|socket_id|sym_get_private_session_size|sym_session_pool_create|sym_session_free)")
        .allowlist_function("rte_crypto_op_pool_create")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|RTE_MAX_LCORE|RING_F_.*|RTE_ETH_.*|SOCKET_ID_ANY|RTE_MBUF_F_.*|DP_CRYPTO_.*")
        .allowlist_type("rte_crypto_op_type|rte_crypto_op_status|rte_cryptodev_info|rte_cryptodev_config|rte_cryptodev_qp_conf|rte_mbuf|rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_ether_addr|rte_eth_link")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("dpdk-sys: bindgen failed on shim/shim.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("dpdk-sys: writing bindings.rs");
}
