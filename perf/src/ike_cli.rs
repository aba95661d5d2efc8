//! Command-line helpers shared by the IKE tools (`ike-peer`, `ike-load`): proposals in strongSwan's
//! syntax (`aes256gcm16-prfsha256-ecp256`, `aes256gcm16-esn`).
//!
//! Tokens: `aes128gcm16`/`aes256gcm16`/`aes128`/`aes256`, `sha256`/`sha384`/`sha512` (integrity, with
//! CBC), `prfsha256`/`prfsha384`/`prfsha512`, `ecp256`/`ecp384`/`ecp521`/`x25519`/`modp2048`, and for
//! ESP `esn`/`noesn`.

use anyhow::{bail, Result};
use ike::config::{EspProposal, IkeProposal};
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
