//! Finds the system DPDK with pkg-config, generates bindings for the parts we
//! use with bindgen, and compiles the C shim of static-inline functions.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    let lib = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "DPDK (pkg-config libdpdk >= 22.11) was not found: {e}\n\
             fix: run `sudo scripts/setup.sh` (installs Debian's libdpdk-dev), \
             or build without DPDK: `cargo build --no-default-features -p vswitch-plugin`"
        ),
    };

    // DPDK's pkg-config cflags carry `-include rte_config.h` and -march; keep
    // all of them for the shim, and the include paths / defines for bindgen.
    let mut extra: Vec<String> = Vec::new();
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config runs");
    let flags = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = flags.split_whitespace().peekable();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                extra.push(format!("-include{h}"));
            }
        } else {
            extra.push(f.to_string());
        }
    }

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .opt_level(3)
        .warnings(true);
    for f in &extra {
        build.flag(f);
    }
    build.compile("fl_dpdk_shim");

    let mut clang_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    clang_args.extend(
        extra
            .iter()
            .filter(|f| f.starts_with("-I") || f.starts_with("-D"))
            .cloned(),
    );
    clang_args.push("-I.".into());

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_lcore_.*|rte_get_main_lcore|rte_get_next_lcore|rte_socket_id")
        .allowlist_function("rte_thread_register|rte_thread_unregister")
        .allowlist_function("rte_eal_remote_launch|rte_eal_mp_wait_lcore|rte_eal_wait_lcore")
        .allowlist_function("rte_eth_dev_.*|rte_eth_rx_queue_setup|rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_stats_.*|rte_eth_macaddr_get|rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_link_get_nowait|rte_eth_find_next_owned_by")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("rte_ring_create|rte_ring_free")
        .allowlist_function("rte_mbuf_dyn_rx_timestamp_register")
        .allowlist_function("rte_tel_.*|rte_telemetry_.*")
        .allowlist_function("rte_vdev_init|rte_vdev_uninit")
        .allowlist_function("fl_.*")
        .allowlist_type("rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_ether_addr")
        .allowlist_type("rte_eth_rss_conf|rte_eth_link")
        .allowlist_var("RTE_ETH_.*|RTE_MAX_ETHPORTS|RTE_MAX_LCORE|RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("RTE_PKTMBUF_HEADROOM|RING_F_.*|SOCKET_ID_ANY|RTE_ETHER_ADDR_LEN")
        .allowlist_var("RTE_TEL_.*")
        // Packed structs that contain aligned ones cannot be laid out by Rust;
        // nothing of ours touches their fields.
        .opaque_type("rte_arp_ipv4|rte_arp_hdr|rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr|rte_ether_addr_packed")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .expect("bindgen generates DPDK bindings");

    let out_path = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out_path.join("bindings.rs"))
        .expect("bindings written");

    // Let dependents (tests, the C reference host) find DPDK too.
    for p in &lib.include_paths {
        println!("cargo:include={}", p.display());
    }
}
