use std::collections::BTreeSet;
use std::path::Path;

use super::*;

fn shipped(name: &str) -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles").join(format!("{name}.toml"));
    Profile::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn host(cpus: &str, pci: &[&str]) -> Host {
    Host { cpus: parse_cpu_list(cpus).unwrap(), pci: pci.iter().map(|s| s.to_string()).collect() }
}

/// The lab profile with `edit` applied to its text.
fn lab_with(edit: impl Fn(String) -> String) -> Result<Profile, String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/lab.toml")).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit must change the profile");
    Profile::parse(&edited).map_err(|e| e.to_string())
}

#[test]
fn every_shipped_profile_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = Profile::load(&e.unwrap().path()).unwrap();
        names.insert(p.name);
    }
    assert_eq!(names, BTreeSet::from(["lab".into(), "metal-2x25g".into(), "metal-qat".into()]));
}

#[test]
fn lab_fits_a_two_core_vm_and_makes_the_documented_eal_line() {
    let lab = shipped("lab");
    lab.check_host(&host("0-1", &[])).unwrap();
    assert_eq!(
        lab.eal_args("dp-1"),
        [
            "-l",
            "0,1",
            "--main-lcore",
            "0",
            "--file-prefix=dp-1",
            "--no-huge",
            "-m",
            "256",
            "--vdev=net_af_packet0,iface=dp-wan",
            "--vdev=net_af_packet1,iface=dp-lan",
            "--no-pci",
        ]
    );
    assert_eq!(lab.port("lan").map(|(i, p)| (i, p.device.port_name())), Some((1, "net_af_packet1")));
    assert!(matches!(lab.workers.poll, PollMode::Adaptive { idle_polls: 64, max_sleep_us: 1000 }));
}

#[test]
fn metal_profiles_name_their_nics_and_qat() {
    let m = shipped("metal-2x25g");
    assert_eq!(m.workers.lcores.len(), 8);
    assert!(m.ports.iter().all(|p| p.rx_queues == 8));
    let args = m.eal_args("hub");
    assert!(args.windows(2).any(|w| w == ["-a", "0000:3b:00.1"]), "{args:?}");
    assert!(args.contains(&"--socket-mem=2048".to_owned()));
    assert!(!args.contains(&"--no-pci".to_owned()) && !args.contains(&"--no-huge".to_owned()));
    let q = shipped("metal-qat");
    assert!(
        matches!(&q.crypto, CryptoConfig::Cryptodev { driver, devices, sessions } if *sessions == 262144 && driver == "crypto_qat" && devices.len() == 4)
    );
    assert!(q.eal_args("hub").windows(2).any(|w| w == ["-a", "0000:3d:01.3"]));
    let e = m.check_host(&host("0-1", &["0000:3b:00.0", "0000:3b:00.1"])).unwrap_err();
    assert_eq!(e.to_string(), "workers.lcores[0]: core 2 does not exist (cores 0-1 are online)");
    let e = m.check_host(&host("0-15", &["0000:3b:00.0"])).unwrap_err();
    assert_eq!(e.to_string(), "ports[1].device.pci: no PCI device 0000:3b:00.1 on this machine");
    let e = q.check_host(&host("0-15", &["0000:5e:00.0", "0000:5e:00.1", "0000:3d:01.0"])).unwrap_err();
    assert_eq!(e.to_string(), "crypto.cryptodev.devices[1]: no PCI device 0000:3d:01.1 on this machine");
    q.check_host(&host(
        "0-3,4-15",
        &["0000:5e:00.0", "0000:5e:00.1", "0000:3d:01.0", "0000:3d:01.1", "0000:3d:01.2", "0000:3d:01.3"],
    ))
    .unwrap();
}

#[test]
fn a_missing_core_port_or_queue_is_refused_naming_it() {
    let lab = shipped("lab");
    let e = lab.check_host(&host("0", &[])).unwrap_err();
    assert_eq!(e.to_string(), "workers.lcores[0]: core 1 does not exist (cores 0 are online)");
    let e = lab_with(|t| t.replace("main_lcore = 0", "main_lcore = 4")).unwrap().check_host(&host("0-1", &[]));
    assert_eq!(e.unwrap_err().to_string(), "eal.main_lcore: core 4 does not exist (cores 0-1 are online)");
    // A second RX queue on the WAN port: there is one worker, and af_packet has one queue pair.
    let e = lab_with(|t| t.replacen("rx_desc = 512", "rx_queues = 2\nrx_desc = 512", 1)).unwrap_err();
    assert_eq!(e, "ports[0].rx_queues: 2: each RX queue needs its worker, and there are 1");
    let e = lab_with(|t| t.replace("lcores = [1]", "lcores = [1, 2]")).unwrap_err();
    assert_eq!(
        e,
        "ports[0].device.vdev: net_af_packet0 has qpairs=1: fewer than the 2 queues asked (1 RX, one TX per each of 2 workers)"
    );
    lab_with(|t| {
        t.replace("lcores = [1]", "lcores = [1, 2]")
            .replace("iface=dp-wan", "iface=dp-wan,qpairs=2")
            .replace("iface=dp-lan", "iface=dp-lan,qpairs=2")
    })
    .unwrap();
    let e = lab_with(|t| t.replace("net_af_packet1", "net_foo1")).unwrap_err();
    assert!(e.starts_with("ports[1].device.vdev: \"net_foo1\" is not a vdev of net_af_packet, "), "{e}");
    let e = lab_with(|t| t.replace("net_af_packet1,", "net_af_packet,")).unwrap_err();
    assert_eq!(e, "ports[1].device.vdev: \"net_af_packet\" needs an instance number (net_af_packet0)");
}

#[test]
fn inconsistent_profiles_are_refused_naming_the_field() {
    let cases: [(&str, &str, &str); 10] = [
        ("lcores = [1]", "lcores = [0]", "workers.lcores[0]: core 0 is the main lcore"),
        ("lcores = [1]", "lcores = [1, 1]", "workers.lcores[1]: core 1 is named twice"),
        ("lcores = [1]", "lcores = []", "workers.lcores: no worker core: name at least one"),
        ("name = \"lan\"", "name = \"wan\"", "ports[1].name: \"wan\" is named twice"),
        ("net_af_packet1,iface=dp-lan", "net_af_packet0,iface=dp-lan", "ports[1].device: net_af_packet0 is named twice"),
        ("mbufs = 8192", "mbufs = 1000", "mempool.mbufs: 1000 is fewer than the 2112 that the descriptor rings, caches and bursts can hold"),
        ("burst = 32", "burst = 300", "workers.burst: 300 is not within 1..=256"),
        (
            "{ vdev = \"net_af_packet0,iface=dp-wan\" }",
            "{ pci = \"0000:3b:00.0\" }",
            "ports[0].device.pci: a PCI port needs eal.hugepages = true",
        ),
        ("software = {}", "cryptodev = { driver = \"crypto_foo\" }", "crypto.cryptodev.driver: \"crypto_foo\" is not one of crypto_qat, crypto_aesni_gcm, crypto_aesni_mb, crypto_openssl"),
        ("rx_desc = 512", "rx_desc = 16", "ports[0].rx_desc: 16 is not within 64..=8192"),
    ];
    for (from, to, want) in cases {
        assert_eq!(lab_with(|t| t.replacen(from, to, 1)).unwrap_err(), want, "{from} -> {to}");
    }
    let e = lab_with(|t| t.replace("hugepages = false", "hugepages = false\nhugepage = true")).unwrap_err();
    assert!(e.starts_with("profile line 9: unknown field `hugepage`"), "{e}");
    let e = lab_with(|t| {
        t.replace("{ vdev = \"net_af_packet0,iface=dp-wan\" }", "{ pci = \"3b:00.0\" }")
            .replace("hugepages = false", "hugepages = true")
    })
    .unwrap_err();
    assert_eq!(e, "ports[0].device.pci: \"3b:00.0\" is not a PCI address (0000:3b:00.0)");
    let gcm = lab_with(|t| t.replace("software = {}", "cryptodev = { driver = \"crypto_aesni_gcm\" }")).unwrap();
    assert!(matches!(gcm.crypto, CryptoConfig::Cryptodev { sessions: 4096, .. }));
    assert!(gcm.eal_args("p").contains(&"--vdev=crypto_aesni_gcm,max_nb_queue_pairs=1".to_owned()));
    let e = lab_with(|t| t.replace("software = {}", "cryptodev = { driver = \"crypto_aesni_gcm\", sessions = 0 }"))
        .unwrap_err();
    assert_eq!(e, "crypto.cryptodev.sessions: must be at least 1");
}

#[test]
fn cpu_lists_parse_like_the_kernel_writes_them() {
    assert_eq!(parse_cpu_list("0-3,8,10-11").map(|s| cpu_list(&s)), Some("0-3,8,10-11".into()));
    assert_eq!(parse_cpu_list("0"), Some(BTreeSet::from([0])));
    assert_eq!(parse_cpu_list("3-1"), None);
    assert_eq!(parse_cpu_list("x"), None);
    assert!(Host::current().unwrap().cpus.contains(&0));
}
