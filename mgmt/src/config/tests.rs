use super::store::{ConfigStore, StoreError};
use super::*;

const HUB: &str = include_str!("../../configs/hub.toml");
const SPOKE: &str = include_str!("../../configs/spoke.toml");

fn hub() -> Config {
    Config::from_toml(HUB).unwrap()
}

/// The messages of an invalid configuration, as `path: message` lines.
fn problems(c: &Config) -> Vec<String> {
    match c.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigError::Invalid(errors)) => errors.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn shipped_configs_are_valid_and_read_as_written() {
    let h = hub();
    assert_eq!(problems(&h), Vec::<String>::new());
    assert_eq!(h.tunnels.len(), 2);
    let t = &h.tunnels[0];
    assert_eq!((t.key, t.fvrf.as_deref(), t.nhrp.holdtime, t.nhrp.redirect), (Some(1001), Some("ISP1"), 600, true));
    assert_eq!(t.route_via, Some(RouteVia { interface: "wan1".into(), mode: RouteViaMode::Mandatory }));
    assert_eq!(h.tunnels[1].mtu, 1400, "default ip mtu");
    assert_eq!(h.crypto.ike_profiles[0].proposals[0].group, [DhGroup::Ecp256, DhGroup::Curve25519, DhGroup::Modp2048]);
    assert_eq!(h.crypto.ipsec_profiles[0].replay_window, 1024, "default window");
    assert!(h.crypto.ipsec_profiles[0].esn, "ESN offered by default");

    let s = Config::from_toml(SPOKE).unwrap();
    assert_eq!(problems(&s), Vec::<String>::new());
    assert_eq!(s.tunnels[0].nhrp.nhs[1].priority, 2);
    assert_eq!(s.tunnels[0].nhrp.holdtime, 600);
}

#[test]
fn toml_and_json_round_trip() {
    let h = hub();
    assert_eq!(Config::from_toml(&h.to_toml().unwrap()).unwrap(), h);
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(Config::from_json(&json).unwrap(), h);
    assert!(json.contains(r#""address":"10.0.0.1/24""#), "prefixes travel as strings: {json}");
}

#[test]
fn parse_errors_name_the_field() {
    let bad_type = HUB.replace(
        "holdtime = 600\nredirect = true\nmulticast_dynamic = true\n\n[[tunnels]]",
        "holdtime = \"ten\"\nredirect = true\nmulticast_dynamic = true\n\n[[tunnels]]",
    );
    let e = Config::from_toml(&bad_type).unwrap_err().to_string();
    assert!(e.starts_with("toml parse error at tunnels[0].nhrp.holdtime: invalid type: string \"ten\""), "{e}");

    let unknown = HUB.replace("tcp_mss = 1360", "tcp_mss = 1360\nip_mtu = 1400");
    let e = Config::from_toml(&unknown).unwrap_err().to_string();
    assert!(e.contains("tunnels[0]") && e.contains("unknown field `ip_mtu`"), "{e}");

    let prefix = HUB.replace("\"10.0.0.1/24\"", "\"10.0.0.1/33\"");
    let e = Config::from_toml(&prefix).unwrap_err().to_string();
    assert!(e.contains("tunnels[0].address") && e.contains("prefix length 33 is longer than 32"), "{e}");

    let e = Config::from_json(r#"{"version": 1, "interfaces": [{"name": "a", "port": "p", "mtu": -1}]}"#)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("json parse error at interfaces[0].mtu: invalid value: integer `-1`"), "{e}");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let mut c = hub();
    c.version = 2;
    c.vrfs.push(Vrf { name: "ISP1".into(), id: 3 });
    c.interfaces[2].addresses[0] = "10.0.0.77/24".parse().unwrap();
    c.tunnels[0].nhrp.nhs.push(Nhs {
        address: "10.9.0.1".parse().unwrap(),
        nbma: "192.0.2.9".parse().unwrap(),
        priority: 0,
        cluster: 11,
    });
    c.tunnels[0].nhrp.authentication = Some("much-too-long".into());
    c.tunnels[1].key = Some(1001);
    c.tunnels[1].source = "wan1".into();
    c.tunnels[1].protection = Some("nope".into());
    c.crypto.keyrings[0].peers[0].pre_shared_key = "short".into();
    c.crypto.ipsec_profiles[0].replay_window = 100;
    c.routes[0].next_hop = Some("203.0.113.1".parse().unwrap());
    c.routes[2].prefix = "10.1.2.3/8".parse().unwrap();
    assert_eq!(
        problems(&c),
        [
            "version: this build reads version 1, got 2",
            "vrfs[2].name: VRF \"ISP1\" is defined twice",
            "tunnels[0].address: 10.0.0.1/24 overlaps the subnet of interfaces[2].addresses[0]",
            "tunnels[0].nhrp.authentication: Cisco's NHRP authentication string has 1 to 8 characters",
            "tunnels[0].nhrp.nhs[0].address: 10.9.0.1 is not in the tunnel's subnet 10.0.0.0/24",
            "tunnels[0].nhrp.nhs[0].cluster: 11 is outside 0..=10",
            "tunnels[1].source: interface \"wan1\" is not in the front-door VRF \"ISP2\"",
            "tunnels[1].key: tunnels[0] has the same source and key",
            "tunnels[1].protection: no IPsec profile named \"nope\"",
            "crypto.keyrings[0].peers[0].pre_shared_key: a pre-shared key needs at least 8 characters",
            "crypto.ipsec_profiles[0].replay_window: 100 is not a replay window (64, 128, ..., 4096)",
            "routes[0].next_hop: 203.0.113.1 is not on a connected subnet of the route's VRF",
            "routes[2].prefix: 10.1.2.3/8 has host bits set; the network is 10.0.0.0/8",
        ]
    );
}

#[test]
fn references_and_ios_rules() {
    let mut c = Config::from_toml(SPOKE).unwrap();
    c.tunnels[0].address = "10.0.0.11/32".parse().unwrap();
    c.tunnels[0].nhrp.map.push(NhrpMap { overlay: "10.0.0.11".parse().unwrap(), nbma: "192.0.2.50".parse().unwrap() });
    c.interfaces[1].addresses[0] = "10.2.1.0/24".parse().unwrap();
    c.crypto.ike_profiles[0].keyring = None;
    c.crypto.ike_profiles[0].authentication.remote = AuthMethod::Signature;
    c.routes[1].interface = Some("Tunnel9".into());
    c.manual_sas.push(ManualSa {
        tunnel: "Tunnel1".into(),
        peer: "192.0.2.1".parse().unwrap(),
        spi: 200,
        direction: SaDirection::In,
        transform: EspTransform::AesCbc128Sha1,
        enc_key: "00112233445566778899aabbccddeeff".into(),
        auth_key: None,
        mode: EspMode::Transport,
        esn: false,
        replay_window: 64,
    });
    assert_eq!(
        problems(&c),
        [
            "interfaces[1].addresses[0]: 10.2.1.0/24 is the network or broadcast address of its subnet",
            "tunnels[0].address: a multipoint tunnel needs a subnet, not a host address",
            "tunnels[0].nhrp.nhs[0].address: 10.0.0.1 is not in the tunnel's subnet 10.0.0.11/32",
            "tunnels[0].nhrp.nhs[1].address: 10.0.0.2 is not in the tunnel's subnet 10.0.0.11/32",
            "tunnels[0].nhrp.map[0].overlay: 10.0.0.11 is this tunnel's own address",
            "crypto.ike_profiles[0].keyring: pre-shared key authentication needs a keyring",
            "crypto.ike_profiles[0].certificate: signature authentication needs a certificate, its key and a CA",
            "routes[1].interface: no interface or tunnel named \"Tunnel9\"",
            "routes[1].next_hop: 10.0.0.1 is not on a connected subnet of the route's VRF on \"Tunnel9\"",
            "manual_sas[0].spi: SPI 200 is reserved (RFC 4303 §2.1: 1..=255)",
            "manual_sas[0].auth_key: this transform needs a 20-byte integrity key",
        ]
    );
}

#[test]
fn store_replaces_atomically_refuses_conflicts_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dmvpnd.toml");
    std::fs::write(&path, HUB).unwrap();
    let mut store = ConfigStore::open(&path).unwrap();
    let r0 = store.revision().to_string();

    // An invalid change leaves store and file as they were.
    let mut bad = store.current().clone();
    bad.tunnels[0].mtu = 100;
    let e = store.replace(bad, Some(&r0)).unwrap_err();
    assert_eq!(e.to_string(), "invalid configuration: tunnels[0].mtu: 100 is outside 576..=9000");
    assert_eq!((store.revision(), std::fs::read_to_string(&path).unwrap().as_str()), (r0.as_str(), HUB));

    // Two operators start from r0; the first change lands, the second is refused.
    let mut first = store.current().clone();
    first.tunnels[0].nhrp.holdtime = 300;
    let mut second = store.current().clone();
    second.tunnels[0].mtu = 1380;
    let r1 = store.replace(first, Some(&r0)).unwrap();
    assert_ne!(r1, r0);
    match store.replace(second, Some(&r0)) {
        Err(StoreError::Conflict { expected, current }) => assert_eq!((expected, current), (r0.clone(), r1.clone())),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // After a restart the file holds the change that landed, and nothing was left beside it.
    let reopened = ConfigStore::open(&path).unwrap();
    assert_eq!(reopened.revision(), r1);
    assert_eq!(reopened.current().tunnels[0].nhrp.holdtime, 300);
    assert_eq!(reopened.current().tunnels[0].mtu, 1400);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["dmvpnd.toml"]);
}

#[test]
fn a_json_store_and_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ConfigStore::open(dir.path().join("none.toml")).unwrap_err().to_string();
    assert!(missing.ends_with("none.toml: No such file or directory (os error 2)"), "{missing}");
    let path = dir.path().join("c.json");
    std::fs::write(&path, serde_json::to_string(&hub()).unwrap()).unwrap();
    let mut store = ConfigStore::open(&path).unwrap();
    let mut c = store.current().clone();
    c.hostname = "hub2".into();
    store.replace(c, None).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(Config::from_json(&text).unwrap().hostname, "hub2");
}
