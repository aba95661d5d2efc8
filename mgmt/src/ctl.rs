//! `dmvpnctl`'s commands that go through the REST API rather than the status socket: per-peer debug
//! conditions, the event stream, recent events and packet capture.
//!
//! ```text
//! dmvpnctl --api https://ADDR:PORT [--cacert CERT.pem | --insecure] COMMAND      (token in $DMVPN_TOKEN)
//!   debug condition peer ADDRESS [nhrp] [ike] [esp]    trace one peer (all three when none is named)
//!   undebug condition peer ADDRESS | undebug all
//!   show debug                                          the conditions in force
//!   show events [since SEQ]                             recent events
//!   debug stream [since SEQ]                            events and debug lines as they happen (^C ends)
//!   capture start [peer A] [port P] [tunnel T] [points rx,decrypted,pre-encrypt,tx]
//!                 [packets N] [bytes N] [seconds N]
//!   capture status | capture stop | capture get FILE.pcap
//! ```

use std::io::Write;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// The usage of these commands, for `dmvpnctl`'s.
pub const USAGE: &str = "
   with --api https://ADDR:PORT [--cacert CERT.pem | --insecure] (token in $DMVPN_TOKEN):
       debug condition peer ADDRESS [nhrp] [ike] [esp] | undebug condition peer ADDRESS | undebug all
       | show debug | show events [since SEQ] | debug stream [since SEQ]
       | capture start [peer A] [port P] [tunnel T] [points rx,decrypted,pre-encrypt,tx] [packets N] [bytes N]
         [seconds N] | capture status | capture stop | capture get FILE.pcap";

/// How to reach the API.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `https://ADDR:PORT`.
    pub url: String,
    /// A PEM certificate to trust (the daemon's own, often self-signed).
    pub cacert: Option<std::path::PathBuf>,
    /// Trust any certificate (a lab).
    pub insecure: bool,
    /// The bearer token.
    pub token: String,
}

/// Whether `words` is one of these commands.
pub fn handles(words: &[&str]) -> bool {
    matches!(words, ["debug", ..] | ["undebug", ..] | ["capture", ..] | ["show", "debug"] | ["show", "events", ..])
}

/// Runs one command, writing what it prints to `out`.
pub fn run(target: &Target, words: &[&str], out: &mut dyn Write) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio")?;
    rt.block_on(run_async(target, words, out))
}

async fn run_async(target: &Target, words: &[&str], out: &mut dyn Write) -> Result<()> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = &target.cacert {
        let pem = std::fs::read(path).with_context(|| format!("--cacert {}", path.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).context("--cacert: not PEM")?);
    }
    if target.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    let c = Client { http: builder.build().context("HTTP client")?, target };
    match words {
        ["debug", "condition", "peer", addr, what @ ..] => {
            let mut body = json!({"peer": addr});
            if !what.is_empty() {
                body["what"] = json!(what);
            }
            let v = c.call(reqwest::Method::PUT, "/api/v1/debug/conditions", Some(body)).await?;
            write!(out, "{}", conditions_text(&v))?;
        }
        ["undebug", "condition", "peer", addr] => {
            let v = c.call(reqwest::Method::DELETE, &format!("/api/v1/debug/conditions/{addr}"), None).await?;
            write!(out, "{}", conditions_text(&v))?;
        }
        ["undebug", "all"] => {
            let v = c.call(reqwest::Method::DELETE, "/api/v1/debug/conditions", None).await?;
            writeln!(out, "{} debug conditions removed", v["removed"])?;
        }
        ["show", "debug"] => {
            let v = c.call(reqwest::Method::GET, "/api/v1/debug/conditions", None).await?;
            write!(out, "{}", conditions_text(&v))?;
        }
        ["show", "events", rest @ ..] => {
            let since = since(rest)?;
            let v = c.call(reqwest::Method::GET, &format!("/api/v1/events?since={since}"), None).await?;
            for e in v["events"].as_array().into_iter().flatten() {
                writeln!(out, "{}", event_line(e))?;
            }
        }
        ["debug", "stream", rest @ ..] => c.stream(since(rest)?, out).await?,
        ["capture", "start", rest @ ..] => {
            let v = c.call(reqwest::Method::POST, "/api/v1/capture", Some(capture_spec(rest)?)).await?;
            write!(out, "{}", capture_text(&v))?;
        }
        ["capture", "status"] => {
            write!(out, "{}", capture_text(&c.call(reqwest::Method::GET, "/api/v1/capture", None).await?))?
        }
        ["capture", "stop"] => {
            write!(out, "{}", capture_text(&c.call(reqwest::Method::POST, "/api/v1/capture/stop", None).await?))?
        }
        ["capture", "get", file] => {
            let bytes = c.bytes("/api/v1/capture/pcap").await?;
            std::fs::write(file, &bytes).with_context(|| format!("writing {file}"))?;
            writeln!(out, "{} bytes written to {file}", bytes.len())?;
        }
        _ => bail!("unknown command{USAGE}"),
    }
    Ok(())
}

fn since(rest: &[&str]) -> Result<u64> {
    match rest {
        [] => Ok(0),
        ["since", n] => n.parse().with_context(|| format!("since {n:?}: not a sequence number")),
        _ => bail!("expected [since SEQ], got {rest:?}"),
    }
}

/// `capture start`'s words as the API's JSON spec (numbers stay numbers, the API checks the rest).
fn capture_spec(rest: &[&str]) -> Result<Value> {
    let mut spec = Map::new();
    let mut it = rest.iter();
    while let Some(key) = it.next() {
        let value = it.next().with_context(|| format!("capture start: {key} needs a value"))?;
        let v = match *key {
            "peer" => json!(value),
            "port" | "tunnel" => value.parse::<u64>().map_or_else(|_| json!(value), |n| json!(n)),
            "points" => json!(value.split(',').collect::<Vec<_>>()),
            "packets" | "bytes" | "seconds" => {
                json!(value.parse::<u64>().with_context(|| format!("capture start: {key} {value:?}: not a number"))?)
            }
            _ => bail!("capture start: unknown {key:?} (peer, port, tunnel, points, packets, bytes, seconds)"),
        };
        spec.insert(key.to_string(), v);
    }
    Ok(Value::Object(spec))
}

struct Client<'a> {
    http: reqwest::Client,
    target: &'a Target,
}

impl Client<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.target.url.trim_end_matches('/')))
            .bearer_auth(&self.target.token)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let r = req.send().await.with_context(|| format!("reaching the API at {}", self.target.url))?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let mut msg = format!("{status}: {}", body["error"].as_str().unwrap_or("(no message)"));
        for f in body["fields"].as_array().into_iter().flatten() {
            msg.push_str(&format!("\n  {}: {}", f["path"].as_str().unwrap_or(""), f["message"].as_str().unwrap_or("")));
        }
        bail!(msg)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await?.json().await.context("the API's answer is not JSON")
    }

    async fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        let r = self.send(self.request(reqwest::Method::GET, path)).await?;
        Ok(r.bytes().await.context("reading the answer")?.to_vec())
    }

    /// Follows the Server-Sent Events stream, one line per event, until the server ends it.
    async fn stream(&self, since: u64, out: &mut dyn Write) -> Result<()> {
        let path =
            if since > 0 { format!("/api/v1/events/stream?since={since}") } else { "/api/v1/events/stream".into() };
        let mut r = self.send(self.request(reqwest::Method::GET, &path)).await?;
        let mut buf = String::new();
        while let Some(chunk) = r.chunk().await.context("reading the stream")? {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let message: String = buf.drain(..end + 2).collect();
                let kind = message.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("");
                let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
                let line = match (kind, serde_json::from_str::<Value>(data)) {
                    ("lost", Ok(v)) => format!("*** {} lines lost (this client fell behind)", v["lost"]),
                    (_, Ok(v)) => event_line(&v),
                    (_, Err(_)) => data.to_string(),
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// One event as a log line: `TIME [FACILITY] EVENT peer=.. nbma=.. tunnel=.. reason=.. rest`.
pub fn event_line(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    let mut line = format!("{} ", s("time"));
    if let Some(f) = e["facility"].as_str() {
        line.push_str(&format!("[{f}] "));
    }
    line.push_str(&s("event"));
    let skip = ["seq", "time", "t_ms", "kind", "event", "facility"];
    let first = ["peer", "nbma", "tunnel", "reason"];
    let mut keys: Vec<&String> =
        e.as_object().into_iter().flat_map(|o| o.keys()).filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort_by_key(|k| (first.iter().position(|f| f == k).unwrap_or(first.len()), (*k).clone()));
    for k in keys {
        match &e[k] {
            Value::Null => {}
            Value::String(v) => line.push_str(&format!(" {k}={v}")),
            v => line.push_str(&format!(" {k}={v}")),
        }
    }
    line
}

fn conditions_text(v: &Value) -> String {
    let list = v["conditions"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "No debug conditions\n".into();
    }
    let mut s = String::from("Debug conditions:\n");
    for c in list {
        let what: Vec<&str> = c["what"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        s.push_str(&format!("  peer {}: {}\n", c["peer"].as_str().unwrap_or(""), what.join(", ")));
    }
    s
}

fn capture_text(v: &Value) -> String {
    let mut s = format!(
        "Capture {} {}: {} packets, {} bytes, {} lost",
        v["id"],
        v["state"].as_str().unwrap_or(""),
        v["packets"],
        v["bytes"],
        v["lost"]
    );
    if let Some(by) = v["stopped_by"].as_str() {
        s.push_str(&format!(", stopped by {by}"));
    }
    s.push('\n');
    if v["spec"].is_object() {
        s.push_str(&format!("  spec: {}\n", v["spec"]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_prints_as_one_line_with_the_peer_first() {
        let e = json!({"seq": 3, "time": "2026-12-06T06:09:05.123Z", "t_ms": 5, "kind": "debug", "facility": "nhrp",
                       "event": "nhrp_rx", "op": "registration_request", "nbma": "203.0.113.10", "peer": "10.0.0.11",
                       "len": 88, "src_nbma": null});
        assert_eq!(
            event_line(&e),
            "2026-12-06T06:09:05.123Z [nhrp] nhrp_rx peer=10.0.0.11 nbma=203.0.113.10 len=88 op=registration_request"
        );
    }

    #[test]
    fn capture_words_become_the_api_spec() {
        let spec =
            capture_spec(&["peer", "203.0.113.10", "tunnel", "Tunnel1", "points", "rx,decrypted", "packets", "50"]);
        assert_eq!(
            spec.unwrap(),
            json!({"peer": "203.0.113.10", "tunnel": "Tunnel1", "points": ["rx", "decrypted"], "packets": 50})
        );
        assert_eq!(capture_spec(&["port", "0"]).unwrap(), json!({"port": 0}));
        assert!(capture_spec(&["packets", "many"]).is_err());
        assert!(capture_spec(&["peer"]).is_err());
        assert!(capture_spec(&["vrf", "1"]).is_err());
    }

    #[test]
    fn the_commands_it_takes() {
        assert!(handles(&["debug", "stream"]));
        assert!(handles(&["show", "debug"]));
        assert!(!handles(&["show", "dmvpn"]));
    }
}
