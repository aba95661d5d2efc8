//! `dmvpnctl`: reads `dmvpnd`'s status socket and prints it as IOS would.
//!
//! ```text
//! dmvpnctl [--socket PATH] show dmvpn | show ip nhrp | json
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: dmvpnctl [--socket PATH] show dmvpn | show ip nhrp | json";

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
    let mut text = String::new();
    UnixStream::connect(&socket)
        .and_then(|mut s| s.read_to_string(&mut text))
        .with_context(|| format!("reading dmvpnd's status from {socket}"))?;
    let status: serde_json::Value = serde_json::from_str(&text).context("dmvpnd's status is not JSON")?;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = match words.as_slice() {
        ["show", "dmvpn"] => mgmt::show::dmvpn(&status),
        ["show", "ip", "nhrp"] => mgmt::show::ip_nhrp(&status),
        ["json"] => serde_json::to_string_pretty(&status)? + "\n",
        _ => bail!(USAGE),
    };
    std::io::stdout().write_all(out.as_bytes()).context("writing to stdout")?;
    Ok(())
}
