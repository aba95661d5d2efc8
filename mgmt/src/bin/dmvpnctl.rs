//! `dmvpnctl`: reads `dmvpnd`'s status socket and prints it as IOS would.
//!
//! ```text
//! dmvpnctl [--socket PATH] show dmvpn | show ip nhrp | show ip nhrp nhs [detail]
//!        | show crypto ikev2 sa | show crypto ipsec sa | show interfaces | show ip route [vrf NAME]
//!        | show counters [all] | json [VIEW]
//! ```
//!
//! Each `show` prints the view of the same name that the REST API serves (`GET /api/v1/views/VIEW`),
//! cut from the same status by [`mgmt::show`]; `json VIEW` prints that view's JSON, `json` alone the
//! whole status.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use anyhow::{bail, Context, Result};
use mgmt::api::View;
use mgmt::show;

const USAGE: &str = "usage: dmvpnctl [--socket PATH] show dmvpn | show ip nhrp | show ip nhrp nhs [detail]
       | show crypto ikev2 sa | show crypto ipsec sa | show interfaces | show ip route [vrf NAME]
       | show counters [all] | json [dmvpn|nhrp|nhrp-nhs|ikev2-sa|ipsec-sa|interfaces|routes|counters]";

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = String::from("/run/dmvpnd.sock");
    if args.first().is_some_and(|a| a == "--socket") {
        if args.len() < 2 {
            bail!(USAGE);
        }
        socket = args.remove(1);
        args.remove(0);
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if words.is_empty() {
        bail!(USAGE);
    }
    let mut text = String::new();
    UnixStream::connect(&socket)
        .and_then(|mut s| s.read_to_string(&mut text))
        .with_context(|| format!("reading dmvpnd's status from {socket}"))?;
    let status: serde_json::Value = serde_json::from_str(&text).context("dmvpnd's status is not JSON")?;
    let v = |view| show::view(&status, view);
    let out = match words.as_slice() {
        ["show", "dmvpn"] => show::dmvpn(&v(View::Dmvpn)),
        ["show", "ip", "nhrp"] => show::ip_nhrp(&v(View::Nhrp)),
        ["show", "ip", "nhrp", "nhs"] | ["show", "ip", "nhrp", "nhs", "detail"] => {
            show::nhrp_nhs_detail(&v(View::NhrpNhs))
        }
        ["show", "crypto", "ikev2", "sa"] => show::crypto_ikev2_sa(&v(View::Ikev2Sa)),
        ["show", "crypto", "ipsec", "sa"] => show::crypto_ipsec_sa(&v(View::IpsecSa)),
        ["show", "interfaces"] | ["show", "ip", "interface", "brief"] => show::interfaces(&v(View::Interfaces)),
        ["show", "ip", "route"] => show::ip_route(&v(View::Routes), None),
        ["show", "ip", "route", "vrf", name] => show::ip_route(&v(View::Routes), Some(name)),
        ["show", "counters"] => show::counters_text(&v(View::Counters), false),
        ["show", "counters", "all"] => show::counters_text(&v(View::Counters), true),
        ["json"] => serde_json::to_string_pretty(&status)? + "\n",
        ["json", name] => {
            let view: View = serde_json::from_value(serde_json::Value::String(name.to_string()))
                .map_err(|_| anyhow::anyhow!("no view named {name:?}\n{USAGE}"))?;
            serde_json::to_string_pretty(&v(view))? + "\n"
        }
        _ => bail!(USAGE),
    };
    std::io::stdout().write_all(out.as_bytes()).context("writing to stdout")?;
    Ok(())
}
