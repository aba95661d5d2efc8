//! `ike-peer`: drives the sans-IO IKEv2 engine (`ike::engine`) over real UDP sockets, as responder or
//! as initiator, and prints every engine event as one JSON line on stdout (keys in hex), so tests can
//! compare them with what strongSwan derived.
//!
//! ```text
//! ike-peer --listen 10.0.0.1 [--initiate 10.0.0.2] --id hub --psk SECRET [--remote-id spoke]
//!          [--ike aes256gcm16-prfsha256-ecp256,...] [--esp aes256gcm16-esn,...]
//!          [--no-transport] [--no-tunnel] [--seconds N] [--exit-when-up]
//!          [--child-lifetime S] [--ike-lifetime S] [--rekey-margin S] [--dpd S | --no-dpd] [--quiet]
//!          [--fragment-size N | --no-fragmentation] [--pfs GROUP]
//! ike-peer ... --id hub.example --cert hub.pem --key hub.key --ca ca.pem [--ca ...] [--crl crl.pem]
//!          [--rsa-pss]
//! ```
//!
//! With `--cert` (PEM: the certificate, then any intermediates) and `--key` (PEM or DER: PKCS #8, or
//! PKCS #1 RSA) we authenticate by RFC 7427 signature, and the peer must too, with a certificate
//! that chains to a `--ca` and is on no `--crl`; `--psk` is then not needed.
//!
//! Besides the events, a `stats` line with the counters `auth_failures` and `ike_rekey_collisions`
//! whenever they change. `--quiet` prints no events (the IKE benchmark, `perf/ike-bench.py`, runs it so as responder).
//!
//! Proposals use strongSwan's syntax: `aes128gcm16`/`aes256gcm16`/`aes128`/`aes256`, `sha256`/
//! `sha384`/`sha512` (integrity, with CBC), `prfsha256`/`prfsha384`/`prfsha512`, `ecp256`/`ecp384`/
//! `ecp521`/`x25519`/`modp2048`, and for ESP `esn`/`noesn`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ike::cert::{self, LocalCert, TrustStore};
use ike::config::{id_fqdn, AuthKind, Config, Dpd, Keyring, PeerMatch};
use ike::crypto::OsRandom;
use ike::engine::{Engine, Event, Mode};
use ike::message::Id;
use perf::ike_cli::{esp_proposal, ike_proposal, send, sockets};
use serde_json::json;

struct Args {
    listen: IpAddr,
    initiate: Option<IpAddr>,
    config: Config,
    remote_id: Option<Id>,
    seconds: Option<u64>,
    exit_when_up: bool,
    quiet: bool,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut listen = None;
    let mut initiate = None;
    let mut id = None;
    let mut psk = None;
    let mut remote_id = None;
    let mut ike = None;
    let mut esp = None;
    let (mut transport, mut tunnel, mut seconds, mut exit_when_up) = (true, true, None, false);
    let (mut quiet, mut no_dpd, mut fragment_size, mut pfs) = (false, false, None, None);
    let (mut child_lifetime, mut ike_lifetime, mut margin, mut dpd) = (None, None, None, None);
    let (mut cert_file, mut key_file, mut cas, mut crls, mut rsa_pss) = (None, None, Vec::new(), Vec::new(), false);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(val()?.parse().context("--listen")?),
            "--initiate" => initiate = Some(val()?.parse().context("--initiate")?),
            "--id" => id = Some(val()?),
            "--psk" => psk = Some(val()?),
            "--remote-id" => remote_id = Some(id_fqdn(&val()?)),
            "--ike" => ike = Some(val()?.split(',').map(ike_proposal).collect::<Result<Vec<_>>>()?),
            "--esp" => esp = Some(val()?.split(',').map(esp_proposal).collect::<Result<Vec<_>>>()?),
            "--seconds" => seconds = Some(val()?.parse().context("--seconds")?),
            "--no-transport" => transport = false,
            "--no-tunnel" => tunnel = false,
            "--exit-when-up" => exit_when_up = true,
            "--quiet" => quiet = true,
            "--no-dpd" => no_dpd = true,
            "--fragment-size" => fragment_size = Some(Some(val()?.parse().context("--fragment-size")?)),
            "--no-fragmentation" => fragment_size = Some(None),
            "--pfs" => pfs = Some(val()?),
            "--child-lifetime" => {
                child_lifetime = Some(Duration::from_secs(val()?.parse().context("--child-lifetime")?))
            }
            "--ike-lifetime" => ike_lifetime = Some(Duration::from_secs(val()?.parse().context("--ike-lifetime")?)),
            "--rekey-margin" => margin = Some(Duration::from_secs(val()?.parse().context("--rekey-margin")?)),
            "--dpd" => dpd = Some(Duration::from_secs(val()?.parse().context("--dpd")?)),
            "--cert" => cert_file = Some(val()?),
            "--key" => key_file = Some(val()?),
            "--ca" => cas.push(val()?),
            "--crl" => crls.push(val()?),
            "--rsa-pss" => rsa_pss = true,
            _ => bail!("unknown argument {a:?}"),
        }
    }
    let mut config = Config::new(id_fqdn(&id.ok_or_else(|| anyhow!("--id is required"))?));
    let read = |f: &str| std::fs::read(f).with_context(|| format!("reading {f}"));
    if let Some(cert_file) = cert_file {
        let chain = cert::certificates_from_pem(&read(&cert_file)?).context("--cert")?;
        let key_file = key_file.ok_or_else(|| anyhow!("--cert needs --key"))?;
        let key = cert::private_key_from_pem(&read(&key_file)?).context("--key")?;
        config.local_cert = Some(LocalCert::new(chain, key).context("--cert/--key")?.with_rsa_pss(rsa_pss));
        config.auth.default = AuthKind::Certificate;
    }
    let mut ca_ders = Vec::new();
    for f in &cas {
        ca_ders.extend(cert::certificates_from_pem(&read(f)?).with_context(|| format!("--ca {f}"))?);
    }
    let mut crl_ders = Vec::new();
    for f in &crls {
        crl_ders.extend(cert::crls_from_pem(&read(f)?).with_context(|| format!("--crl {f}"))?);
    }
    config.trust = TrustStore::new(ca_ders, crl_ders).context("--ca/--crl")?;
    match psk {
        Some(psk) => config.keyring = Keyring::default().with(PeerMatch::Any, psk),
        None if config.auth.default == AuthKind::Certificate => {}
        None => bail!("--psk or --cert is required"),
    }
    if let Some(ike) = ike {
        config.ike_proposals = ike;
    }
    if let Some(esp) = esp {
        config.esp_proposals = esp;
    }
    config.transport = transport;
    config.allow_tunnel = tunnel;
    config.child_lifetime = child_lifetime.unwrap_or(config.child_lifetime);
    config.ike_lifetime = ike_lifetime.unwrap_or(config.ike_lifetime);
    config.rekey_margin = margin.unwrap_or(config.rekey_margin);
    if let Some(interval) = dpd {
        config.dpd = Some(Dpd { interval, retry_interval: Duration::from_secs(1), retries: 2 });
    }
    if no_dpd {
        config.dpd = None;
    }
    if let Some(size) = fragment_size {
        config.fragment_size = size;
    }
    if let Some(group) = pfs {
        // The group token as in an IKE proposal: `x25519`, `ecp256`, ...
        let p = ike_proposal(&format!("aes128gcm16-{group}")).context("--pfs")?;
        config.pfs = p.groups.first().copied();
    }
    Ok(Args {
        listen: listen.ok_or_else(|| anyhow!("--listen is required"))?,
        initiate,
        config,
        remote_id,
        seconds,
        exit_when_up,
        quiet,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn event_json(e: &Event) -> serde_json::Value {
    match e {
        Event::IkeSaUp { sa, local, remote, peer_id } => json!({
            "event": "ike_sa_up", "sa": format!("{:016x}", sa.0), "local": local.to_string(),
            "remote": remote.to_string(), "peer_id": cert::id_display(peer_id),
        }),
        Event::IkeSaDown { sa, remote, reason } => json!({
            "event": "ike_sa_down", "sa": format!("{:016x}", sa.0), "remote": remote.to_string(),
            "reason": format!("{reason:?}"),
        }),
        Event::IkeSaRekeyed { old, new } => json!({
            "event": "ike_sa_rekeyed", "old": format!("{:016x}", old.0), "new": format!("{:016x}", new.0),
        }),
        Event::InstallSaPair(p) => json!({
            "event": "install_sa_pair", "sa": format!("{:016x}", p.ike_sa.0), "remote": p.remote.to_string(),
            "udp_encap": p.udp_encap, "encr": p.suite.encr.0, "key_bits": p.suite.key_bits, "integ": p.suite.integ.0, "esn": p.suite.esn,
            "mode": if p.mode == Mode::Transport { "transport" } else { "tunnel" },
            "in_spi": format!("{:08x}", p.inbound.spi), "out_spi": format!("{:08x}", p.outbound.spi),
            "in_encr": hex(&p.inbound.keys.encr), "in_salt": hex(&p.inbound.keys.salt),
            "in_integ": hex(&p.inbound.keys.integ), "out_encr": hex(&p.outbound.keys.encr),
            "out_salt": hex(&p.outbound.keys.salt), "out_integ": hex(&p.outbound.keys.integ),
            "ts_local": format!("{:?}", p.ts_local), "ts_remote": format!("{:?}", p.ts_remote),
        }),
        Event::DeleteSaPair { ike_sa, inbound_spi, outbound_spi } => json!({
            "event": "delete_sa_pair", "sa": format!("{:016x}", ike_sa.0),
            "in_spi": format!("{inbound_spi:08x}"), "out_spi": format!("{outbound_spi:08x}"),
        }),
        Event::PeerDead { sa, remote, .. } => json!({
            "event": "peer_dead", "sa": format!("{:016x}", sa.0), "remote": remote.to_string(),
        }),
        Event::Failed { sa, remote, failure } => json!({
            "event": "failed", "sa": format!("{:016x}", sa.0), "remote": remote.to_string(),
            "failure": format!("{failure:?}"),
        }),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let local = SocketAddr::new(args.listen, 500);
    let (s500, s4500, rx) = sockets(args.listen)?;
    let mut engine = Engine::new(args.config, Box::new(OsRandom));
    let start = Instant::now();
    engine.set_wall_clock(start, std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?);
    if let Some(remote) = args.initiate {
        engine.initiate(start, local, SocketAddr::new(remote, 500), args.remote_id)?;
    }
    let mut out = std::io::stdout().lock();
    let (mut up, mut installed) = (false, false);
    let mut counters = (0, 0);
    loop {
        while let Some(t) = engine.poll_transmit() {
            let sent = send(&s500, &s4500, &t);
            sent.with_context(|| format!("sending to {}", t.remote))?;
        }
        while let Some(e) = engine.poll_event() {
            up |= matches!(e, Event::IkeSaUp { .. });
            installed |= matches!(e, Event::InstallSaPair(_));
            if !args.quiet {
                writeln!(out, "{}", event_json(&e))?;
                out.flush()?;
            }
        }
        // Counters the tests look at, printed when they change.
        let st = engine.stats();
        if (st.auth_failures, st.ike_rekey_collisions) != counters && !args.quiet {
            counters = (st.auth_failures, st.ike_rekey_collisions);
            let line = json!({"event": "stats", "auth_failures": counters.0, "ike_rekey_collisions": counters.1});
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        let now = Instant::now();
        if args.exit_when_up && up && installed {
            return Ok(());
        }
        if args.seconds.is_some_and(|s| now - start >= Duration::from_secs(s)) {
            return Ok(());
        }
        let wait = engine.poll_timeout().map_or(Duration::from_millis(200), |t| t.saturating_duration_since(now));
        match rx.recv_timeout(wait.min(Duration::from_millis(200))) {
            Ok((local, from, data)) => engine.handle_datagram(Instant::now(), local, from, &data),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("socket readers stopped"),
        }
        engine.handle_timeout(Instant::now());
    }
}
