//! Helpers shared by the IKE tools (`ike-peer`, `ike-load`): proposals in strongSwan's syntax
//! (`aes256gcm16-prfsha256-ecp256`, `aes256gcm16-esn`), and the UDP plumbing of ports 500 and 4500 with
//! the non-ESP marker (RFC 3948 §2.2) and NAT keepalives (§2.3).
//!
//! Tokens: `aes128gcm16`/`aes256gcm16`/`aes128`/`aes256`, `sha256`/`sha384`/`sha512` (integrity, with
//! CBC), `prfsha256`/`prfsha384`/`prfsha512`, `ecp256`/`ecp384`/`ecp521`/`x25519`/`modp2048`, and for
//! ESP `esn`/`noesn`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc;

use anyhow::{anyhow, bail, Context, Result};
use ike::config::{EspProposal, IkeProposal};
use ike::engine::{Transmit, NAT_T_PORT};
use ike::message::{DhGroup, EncrId, EsnId, IntegId, PrfId};

fn encr(tok: &str) -> Option<(EncrId, u16)> {
    Some(match tok {
        "aes128gcm16" => (EncrId::ENCR_AES_GCM_16, 128),
        "aes256gcm16" => (EncrId::ENCR_AES_GCM_16, 256),
        "aes128" => (EncrId::ENCR_AES_CBC, 128),
        "aes256" => (EncrId::ENCR_AES_CBC, 256),
        _ => return None,
    })
}

fn integ(tok: &str) -> Option<IntegId> {
    Some(match tok {
        "sha256" => IntegId::AUTH_HMAC_SHA2_256_128,
        "sha384" => IntegId::AUTH_HMAC_SHA2_384_192,
        "sha512" => IntegId::AUTH_HMAC_SHA2_512_256,
        _ => return None,
    })
}

/// An IKE proposal from its strongSwan spelling.
pub fn ike_proposal(s: &str) -> Result<IkeProposal> {
    let mut p = IkeProposal {
        encr: EncrId::ENCR_AES_GCM_16,
        key_bits: 0,
        integ: IntegId::NONE,
        prf: PrfId::PRF_HMAC_SHA2_256,
        groups: Vec::new(),
    };
    for tok in s.split('-') {
        if let Some((e, bits)) = encr(tok) {
            (p.encr, p.key_bits) = (e, bits);
        } else if let Some(i) = integ(tok) {
            p.integ = i;
        } else {
            match tok {
                "prfsha256" => p.prf = PrfId::PRF_HMAC_SHA2_256,
                "prfsha384" => p.prf = PrfId::PRF_HMAC_SHA2_384,
                "prfsha512" => p.prf = PrfId::PRF_HMAC_SHA2_512,
                "ecp256" => p.groups.push(DhGroup::ECP_256),
                "ecp384" => p.groups.push(DhGroup::ECP_384),
                "ecp521" => p.groups.push(DhGroup::ECP_521),
                "x25519" | "curve25519" => p.groups.push(DhGroup::CURVE25519),
                "modp2048" => p.groups.push(DhGroup::MODP_2048),
                _ => bail!("IKE proposal {s:?}: unknown token {tok:?}"),
            }
        }
    }
    if p.key_bits == 0 || p.groups.is_empty() {
        bail!("IKE proposal {s:?} needs an encryption algorithm and a DH group");
    }
    Ok(p)
}

/// An ESP proposal from its strongSwan spelling (NO_ESN when neither `esn` nor `noesn` is given).
pub fn esp_proposal(s: &str) -> Result<EspProposal> {
    let mut p = EspProposal { encr: EncrId::ENCR_AES_GCM_16, key_bits: 0, integ: IntegId::NONE, esn: Vec::new() };
    for tok in s.split('-') {
        if let Some((e, bits)) = encr(tok) {
            (p.encr, p.key_bits) = (e, bits);
        } else if let Some(i) = integ(tok) {
            p.integ = i;
        } else {
            match tok {
                "esn" => p.esn.push(EsnId::ESN),
                "noesn" => p.esn.push(EsnId::NO_ESN),
                _ => bail!("ESP proposal {s:?}: unknown token {tok:?}"),
            }
        }
    }
    if p.key_bits == 0 {
        bail!("ESP proposal {s:?} needs an encryption algorithm");
    }
    if p.esn.is_empty() {
        p.esn.push(EsnId::NO_ESN);
    }
    Ok(p)
}

/// A received datagram: our address, the sender's, the IKE message.
pub type Received = (SocketAddr, SocketAddr, Vec<u8>);

/// Binds ports 500 and 4500 on `ip`; each socket gets a reader thread feeding one channel, so the
/// engines live on the caller's thread alone. IKE on 4500 carries the non-ESP marker (RFC 3948
/// §2.2), stripped here; anything else on 4500 (ESP, NAT keepalives) is not for the engine.
pub fn sockets(ip: IpAddr) -> Result<(UdpSocket, UdpSocket, mpsc::Receiver<Received>)> {
    let (tx, rx) = mpsc::channel();
    let mut socks = Vec::new();
    for port in [500, NAT_T_PORT] {
        let local = SocketAddr::new(ip, port);
        let sock = UdpSocket::bind(local).with_context(|| format!("binding {local}"))?;
        let reader = sock.try_clone()?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = reader.recv_from(&mut buf) {
                let data = match (port, buf.get(..n).unwrap_or_default()) {
                    (NAT_T_PORT, [0, 0, 0, 0, rest @ ..]) => rest.to_vec(),
                    (NAT_T_PORT, _) => continue,
                    (_, d) => d.to_vec(),
                };
                if tx.send((local, from, data)).is_err() {
                    return;
                }
            }
        });
        socks.push(sock);
    }
    let s4500 = socks.pop().ok_or_else(|| anyhow!("no socket"))?;
    let s500 = socks.pop().ok_or_else(|| anyhow!("no socket"))?;
    Ok((s500, s4500, rx))
}

/// Sends an engine's datagram from the socket of its port: on 4500 an IKE message gets the non-ESP
/// marker, a NAT keepalive goes as it is.
pub fn send(s500: &UdpSocket, s4500: &UdpSocket, t: &Transmit) -> std::io::Result<usize> {
    match t.local.port() {
        NAT_T_PORT if t.is_nat_keepalive() => s4500.send_to(&t.data, t.remote),
        NAT_T_PORT => {
            let mut d = vec![0u8; 4];
            d.extend_from_slice(&t.data);
            s4500.send_to(&d, t.remote)
        }
        _ => s500.send_to(&t.data, t.remote),
    }
}
