//! Hardware profiles: which ports the appliance drives, with how many queues, on which cores and NUMA
//! sockets, with how big a mempool, polling how, and encrypting with which engine.
//!
//! Layer: configuration, below the runner (`dp-run`) and the daemon; no DPDK in here. Contract:
//! - A profile is a TOML file (`profiles/*.toml`), parsed into [`Profile`] with unknown keys refused.
//! - [`Profile::parse`] checks everything that can be checked from the file alone (names unique, queue
//!   counts within the workers and the vdev's own queue count, lcores distinct, the pool big enough for
//!   every descriptor ring, PCI ports only with hugepages, known vdev and cryptodev drivers).
//! - [`Profile::check_host`] checks it against a machine ([`Host::current`] reads `/sys`): every core
//!   and every PCI device it names exists. Errors name the field and say what is wrong
//!   (`workers.lcores[2]: core 9 does not exist (cores 0-1 are online)`).
//! - [`Profile::eal_args`] turns it into the EAL's command line.
//!
//! Worker model: worker `i` runs on `workers.lcores[i]`, polls RX queue `i` of every port that has more
//! than `i` RX queues (RSS spreads flows over them) and transmits on TX queue `i` of every port.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// A profile that cannot be used, naming the field and what is wrong with it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field}: {what}")]
pub struct ProfileError {
    /// Path of the field (`ports[1].rx_queues`), or `profile` for the whole file.
    pub field: String,
    /// What is wrong.
    pub what: String,
}

fn err(field: impl Into<String>, what: impl Into<String>) -> ProfileError {
    ProfileError { field: field.into(), what: what.into() }
}

/// A whole profile.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (`lab`, `metal-2x25g`).
    pub name: String,
    /// What machine it describes.
    #[serde(default)]
    pub description: String,
    /// The EAL's memory and main core.
    pub eal: EalConfig,
    /// The ports, in the order of the data plane's port ids.
    pub ports: Vec<PortConfig>,
    /// The worker cores and how they poll.
    pub workers: WorkersConfig,
    /// The packet buffer pool (one per NUMA socket in use).
    pub mempool: MempoolConfig,
    /// The crypto engine.
    #[serde(default)]
    pub crypto: CryptoConfig,
}

/// EAL memory and the main (management) core.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// The core of the management thread (punts, injects, stats).
    pub main_lcore: u32,
    /// Use hugepages (metal); without them the EAL runs with `--no-huge` (lab, CI).
    pub hugepages: bool,
    /// Memory in MiB: `-m` without hugepages, `--socket-mem` per socket in use with them.
    pub memory_mb: u32,
}

/// One port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The name the data plane's config gives the port (`wan`, `lan`).
    pub name: String,
    /// The device.
    pub device: Device,
    /// RX queues; RSS spreads flows over them. At most one per worker.
    #[serde(default = "one")]
    pub rx_queues: u16,
    /// Descriptors per RX queue.
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// Descriptors per TX queue (there is one TX queue per worker).
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// NUMA socket of the NIC (its mbufs come from that socket's pool).
    #[serde(default)]
    pub socket: u32,
}

fn one() -> u16 {
    1
}

fn default_desc() -> u16 {
    1024
}

/// A port's device.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum Device {
    /// A PCI NIC bound to a DPDK-capable driver (vfio-pci): `0000:3b:00.0`.
    Pci(String),
    /// A virtual device, with its arguments: `net_af_packet0,iface=veth0`.
    Vdev(String),
}

/// Vdev drivers the appliance may drive, with the argument that sets their queue count and its default.
const NET_VDEVS: [(&str, Option<&str>); 7] = [
    ("net_af_packet", Some("qpairs")),
    ("net_af_xdp", Some("queue_count")),
    ("net_tap", None),
    ("net_pcap", None),
    ("net_null", None),
    ("net_ring", None),
    ("net_memif", None),
];

impl Device {
    /// The name DPDK's ethdev layer gives the port: the PCI address, or the vdev name before its
    /// arguments.
    pub fn port_name(&self) -> &str {
        match self {
            Device::Pci(a) => a,
            Device::Vdev(v) => v.split(',').next().unwrap_or(v),
        }
    }
}

/// Worker cores.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// One worker per core, pinned; worker `i` polls RX queue `i` of each port.
    pub lcores: Vec<u32>,
    /// How the workers poll.
    pub poll: PollMode,
    /// Largest RX burst.
    #[serde(default = "default_burst")]
    pub burst: u16,
}

fn default_burst() -> u16 {
    32
}

/// How a worker polls.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum PollMode {
    /// Spin on the queues whether or not packets come (metal: lowest latency, a whole core each).
    Busy,
    /// Back off when idle: after `idle_polls` empty polls, sleep, doubling up to `max_sleep_us`
    /// (lab: several appliances share two cores).
    Adaptive {
        /// Empty polls before the first sleep.
        idle_polls: u32,
        /// Longest sleep, in microseconds.
        max_sleep_us: u32,
    },
}

/// The packet pool.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Mbufs per pool.
    pub mbufs: u32,
    /// Per-lcore cache (at most 512, DPDK's `RTE_MEMPOOL_CACHE_MAX_SIZE`).
    #[serde(default)]
    pub cache: u32,
}

/// The crypto engine.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum CryptoConfig {
    /// The data plane's software engine (`ring`'s AES-GCM).
    #[default]
    Software,
    /// A DPDK cryptodev, used through the data plane's batch crypto interface.
    Cryptodev {
        /// The driver: a vdev (`crypto_aesni_gcm`, `crypto_aesni_mb`, `crypto_openssl`) or `crypto_qat`.
        driver: String,
        /// PCI addresses of QAT virtual functions (`crypto_qat` only).
        #[serde(default)]
        devices: Vec<String>,
        /// Sessions in the session pool: one per SA and direction a worker runs on the device (two per
        /// peer). An SA that finds the pool empty is encrypted in software.
        #[serde(default = "default_sessions")]
        sessions: u32,
    },
}

fn default_sessions() -> u32 {
    4096
}

const CRYPTO_VDEVS: [&str; 3] = ["crypto_aesni_gcm", "crypto_aesni_mb", "crypto_openssl"];

/// `RTE_MEMPOOL_CACHE_MAX_SIZE`.
const MAX_CACHE: u32 = 512;

/// What a machine has, for [`Profile::check_host`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Online CPUs.
    pub cpus: BTreeSet<u32>,
    /// PCI devices present (`0000:3b:00.0`).
    pub pci: BTreeSet<String>,
}

impl Host {
    /// This machine, from `/sys/devices/system/cpu/online` and `/sys/bus/pci/devices`.
    pub fn current() -> std::io::Result<Host> {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")?;
        let cpus = parse_cpu_list(online.trim())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("cpu list {online:?}")))?;
        let mut pci = BTreeSet::new();
        if let Ok(dir) = std::fs::read_dir("/sys/bus/pci/devices") {
            for e in dir.flatten() {
                pci.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(Host { cpus, pci })
    }
}

/// Parses a kernel CPU list (`0-3,8,10-11`).
pub fn parse_cpu_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

fn cpu_list(set: &BTreeSet<u32>) -> String {
    let mut out = String::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        let sep = if out.is_empty() { "" } else { "," };
        let _ = if start == end { write!(out, "{sep}{start}") } else { write!(out, "{sep}{start}-{end}") };
    }
    out
}

fn is_pci_address(s: &str) -> bool {
    // DDDD:BB:DD.F, hexadecimal, function 0-7 (the form the kernel names devices in /sys).
    let b = s.as_bytes();
    let hex = |r: core::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_hexdigit));
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && matches!(b[11], b'0'..=b'7')
}

impl Profile {
    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path.display().to_string(), e.to_string()))?;
        Profile::parse(&text)
    }

    /// Parses and validates a profile.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| {
            let what = e.message().to_owned();
            let at = e.span().and_then(|s| text.get(..s.start)).map(|before| before.matches('\n').count() + 1);
            err(at.map_or("profile".into(), |l| format!("profile line {l}")), what)
        })?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(err("name", format!("{:?}: use letters, digits, '-' and '_'", self.name)));
        }
        let w = &self.workers;
        if w.lcores.is_empty() {
            return Err(err("workers.lcores", "no worker core: name at least one"));
        }
        let mut seen = BTreeSet::new();
        for (i, &c) in w.lcores.iter().enumerate() {
            if c == self.eal.main_lcore {
                return Err(err(format!("workers.lcores[{i}]"), format!("core {c} is the main lcore")));
            }
            if !seen.insert(c) {
                return Err(err(format!("workers.lcores[{i}]"), format!("core {c} is named twice")));
            }
        }
        if w.burst == 0 || w.burst > 256 {
            return Err(err("workers.burst", format!("{} is not within 1..=256", w.burst)));
        }
        if let PollMode::Adaptive { max_sleep_us, .. } = w.poll {
            if max_sleep_us == 0 || max_sleep_us > 100_000 {
                return Err(err(
                    "workers.poll.adaptive.max_sleep_us",
                    format!("{max_sleep_us} is not within 1..=100000"),
                ));
            }
        }
        if self.ports.is_empty() {
            return Err(err("ports", "no port"));
        }
        let workers = w.lcores.len();
        let mut names = BTreeSet::new();
        let mut devices = BTreeSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let field = |f: &str| format!("ports[{i}].{f}");
            if !names.insert(p.name.as_str()) {
                return Err(err(field("name"), format!("{:?} is named twice", p.name)));
            }
            if !devices.insert(p.device.port_name()) {
                return Err(err(field("device"), format!("{} is named twice", p.device.port_name())));
            }
            if p.rx_queues == 0 || usize::from(p.rx_queues) > workers {
                return Err(err(
                    field("rx_queues"),
                    format!("{}: each RX queue needs its worker, and there are {workers}", p.rx_queues),
                ));
            }
            for (f, d) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
                if !(64..=8192).contains(&d) {
                    return Err(err(field(f), format!("{d} is not within 64..=8192")));
                }
            }
            match &p.device {
                Device::Pci(a) => {
                    if !is_pci_address(a) {
                        return Err(err(field("device.pci"), format!("{a:?} is not a PCI address (0000:3b:00.0)")));
                    }
                    if !self.eal.hugepages {
                        return Err(err(field("device.pci"), "a PCI port needs eal.hugepages = true"));
                    }
                }
                Device::Vdev(v) => check_vdev(v, p.rx_queues, workers, &field("device.vdev"))?,
            }
        }
        let sockets: BTreeSet<u32> = self.ports.iter().map(|p| p.socket).collect();
        let needed: u32 = self
            .ports
            .iter()
            .map(|p| u32::from(p.rx_queues) * u32::from(p.rx_desc) + workers as u32 * u32::from(p.tx_desc))
            .sum::<u32>()
            / sockets.len() as u32
            + workers as u32 * (self.mempool.cache + 2 * u32::from(w.burst));
        if self.mempool.mbufs < needed {
            return Err(err(
                "mempool.mbufs",
                format!(
                    "{} is fewer than the {needed} that the descriptor rings, caches and bursts can hold",
                    self.mempool.mbufs
                ),
            ));
        }
        if self.mempool.cache > MAX_CACHE {
            return Err(err("mempool.cache", format!("{} is above DPDK's maximum of {MAX_CACHE}", self.mempool.cache)));
        }
        if let CryptoConfig::Cryptodev { driver, devices, sessions } = &self.crypto {
            if *sessions == 0 {
                return Err(err("crypto.cryptodev.sessions", "must be at least 1"));
            }
            match driver.as_str() {
                "crypto_qat" => {
                    if devices.is_empty() {
                        return Err(err("crypto.cryptodev.devices", "crypto_qat needs the PCI addresses of its VFs"));
                    }
                    if !self.eal.hugepages {
                        return Err(err("crypto.cryptodev.devices", "a PCI crypto device needs eal.hugepages = true"));
                    }
                    for (i, d) in devices.iter().enumerate() {
                        if !is_pci_address(d) {
                            return Err(err(
                                format!("crypto.cryptodev.devices[{i}]"),
                                format!("{d:?} is not a PCI address"),
                            ));
                        }
                    }
                }
                d if CRYPTO_VDEVS.contains(&d) => {
                    if !devices.is_empty() {
                        return Err(err("crypto.cryptodev.devices", format!("{d} is a vdev: it takes no PCI device")));
                    }
                }
                d => {
                    return Err(err(
                        "crypto.cryptodev.driver",
                        format!("{d:?} is not one of crypto_qat, {}", CRYPTO_VDEVS.join(", ")),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Checks the profile against `host`: every core and PCI device it names must exist.
    pub fn check_host(&self, host: &Host) -> Result<(), ProfileError> {
        let online = || format!("cores {} are online", cpu_list(&host.cpus));
        if !host.cpus.contains(&self.eal.main_lcore) {
            return Err(err("eal.main_lcore", format!("core {} does not exist ({})", self.eal.main_lcore, online())));
        }
        for (i, c) in self.workers.lcores.iter().enumerate() {
            if !host.cpus.contains(c) {
                return Err(err(format!("workers.lcores[{i}]"), format!("core {c} does not exist ({})", online())));
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Device::Pci(a) = &p.device {
                if !host.pci.contains(a) {
                    return Err(err(format!("ports[{i}].device.pci"), format!("no PCI device {a} on this machine")));
                }
            }
        }
        if let CryptoConfig::Cryptodev { devices, .. } = &self.crypto {
            for (i, d) in devices.iter().enumerate() {
                if !host.pci.contains(d) {
                    return Err(err(
                        format!("crypto.cryptodev.devices[{i}]"),
                        format!("no PCI device {d} on this machine"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The port named `name`, with its index (the data plane's port id).
    pub fn port(&self, name: &str) -> Option<(usize, &PortConfig)> {
        self.ports.iter().enumerate().find(|(_, p)| p.name == name)
    }

    /// The EAL command line (without the program name). `file_prefix` names this process's shared
    /// files (`--file-prefix`), so that several appliances run side by side.
    pub fn eal_args(&self, file_prefix: &str) -> Vec<String> {
        let mut lcores = vec![self.eal.main_lcore];
        lcores.extend(&self.workers.lcores);
        let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
        let mut a = vec![
            "-l".to_owned(),
            list.join(","),
            "--main-lcore".to_owned(),
            self.eal.main_lcore.to_string(),
            format!("--file-prefix={file_prefix}"),
        ];
        if self.eal.hugepages {
            let sockets: BTreeSet<u32> = self.ports.iter().map(|p| p.socket).collect();
            let top = sockets.iter().max().copied().unwrap_or(0);
            let per: Vec<String> =
                (0..=top).map(|s| if sockets.contains(&s) { self.eal.memory_mb } else { 0 }.to_string()).collect();
            a.push(format!("--socket-mem={}", per.join(",")));
        } else {
            a.extend(["--no-huge".to_owned(), "-m".to_owned(), self.eal.memory_mb.to_string()]);
        }
        let mut pci: Vec<&str> = Vec::new();
        for p in &self.ports {
            match &p.device {
                Device::Pci(addr) => pci.push(addr),
                Device::Vdev(v) => a.push(format!("--vdev={v}")),
            }
        }
        if let CryptoConfig::Cryptodev { driver, devices, .. } = &self.crypto {
            if devices.is_empty() {
                // One queue pair per worker (the software PMDs default to 8).
                a.push(format!("--vdev={driver},max_nb_queue_pairs={}", self.workers.lcores.len()));
            }
            pci.extend(devices.iter().map(String::as_str));
        }
        if pci.is_empty() {
            a.push("--no-pci".to_owned());
        }
        for d in pci {
            a.push("-a".to_owned());
            a.push(d.to_owned());
        }
        a
    }
}

fn check_vdev(v: &str, rx_queues: u16, workers: usize, field: &str) -> Result<(), ProfileError> {
    let mut parts = v.split(',');
    let name = parts.next().unwrap_or_default();
    let driver = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let Some((_, queue_arg)) = NET_VDEVS.iter().find(|(d, _)| *d == driver) else {
        let known: Vec<&str> = NET_VDEVS.iter().map(|(d, _)| *d).collect();
        return Err(err(field, format!("{name:?} is not a vdev of {} followed by a number", known.join(", "))));
    };
    if driver == name {
        return Err(err(field, format!("{name:?} needs an instance number ({name}0)")));
    }
    if let Some(arg) = queue_arg {
        let mut queues = 1u32;
        for kv in parts {
            if let Some(n) = kv.strip_prefix(arg).and_then(|r| r.strip_prefix('=')) {
                queues = n.parse().map_err(|_| err(field, format!("{arg}={n:?} is not a number")))?;
            }
        }
        // The vdev has `queues` queue pairs: RX queues beyond that, or more TX queues (one per worker)
        // than that, do not exist.
        if u32::from(rx_queues) > queues || workers as u32 > queues {
            return Err(err(
                field,
                format!(
                    "{name} has {arg}={queues}: fewer than the {} queues asked ({rx_queues} RX, one TX per each of {workers} workers)",
                    u32::from(rx_queues).max(workers as u32)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
