//! `dmvpnctl`: reads `dmvpnd`'s status socket and prints it as IOS would.
//!
//! ```text
//! dmvpnctl [--socket PATH] show dmvpn | show ip nhrp | show ip nhrp nhs [detail]
//!        | show crypto ikev2 sa | show crypto ipsec sa | show interfaces | show ip route [vrf NAME]
//!        | show counters [all] | json [VIEW]
//! dmvpnctl --api https://ADDR:PORT [--cacert CERT.pem | --insecure] debug ... | undebug ... | capture ...
//! ```
//!
//! Each `show` prints the view of the same name that the REST API serves (`GET /api/v1/views/VIEW`),
//! cut from the same status by [`mgmt::show`]; `json VIEW` prints that view's JSON, `json` alone the
//! whole status. The commands with `--api` (debug conditions, the event stream, packet capture; see
//! [`mgmt::ctl`]) go through the REST API with the bearer token in `$DMVPN_TOKEN`.

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
    if let Some(done) = api_command(&mut args) {
        return done;
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

/// Runs a command through the REST API (`--api URL [--cacert PEM | --insecure] WORDS`), if that is
/// what `args` asks for.
fn api_command(args: &mut Vec<String>) -> Option<Result<()>> {
    let mut target = mgmt::ctl::Target::default();
    loop {
        match args.first().map(String::as_str) {
            Some("--api") if args.len() > 1 => target.url = args.drain(..2).nth(1).unwrap_or_default(),
            Some("--cacert") if args.len() > 1 => target.cacert = args.drain(..2).nth(1).map(Into::into),
            Some("--insecure") => {
                args.remove(0);
                target.insecure = true;
            }
            _ => break,
        }
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if !mgmt::ctl::handles(&words) {
        return None;
    }
    Some((|| {
        if target.url.is_empty() {
            bail!("{words:?} goes through the REST API: give --api https://ADDR:PORT\n{USAGE}{}", mgmt::ctl::USAGE);
        }
        target.token = std::env::var("DMVPN_TOKEN").context("the API token goes in $DMVPN_TOKEN")?;
        mgmt::ctl::run(&target, &words, &mut std::io::stdout())
    })())
}
