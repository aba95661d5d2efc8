//! Small value types of the config model that travel as strings: prefixes and MAC addresses.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

use schemars::gen::SchemaGenerator;
use schemars::schema::{InstanceType, Schema, SchemaObject};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON Schema string with a pattern and an example.
fn string_schema(pattern: &str, example: &str) -> Schema {
    let mut s = SchemaObject { instance_type: Some(InstanceType::String.into()), ..Default::default() };
    s.string().pattern = Some(pattern.to_string());
    // OpenAPI 3.0 has `example`, not JSON Schema's `examples`.
    s.extensions.insert("example".into(), example.into());
    s.into()
}

/// An address with a prefix length, `192.0.2.1/24` or `2001:db8::1/64`. The address keeps its host
/// bits: on an interface it is the interface's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl Prefix {
    /// Longest prefix length of the address family.
    pub fn max_len(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// True when `addr` is inside the prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4() && Prefix { addr, len: self.len }.network() == self.network()
    }

    /// True when the two prefixes share an address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Prefix, String> {
        let (addr, len) = s.split_once('/').ok_or_else(|| format!("{s:?} is not ADDRESS/LENGTH"))?;
        let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let len: u8 = len.parse().map_err(|_| format!("{len:?} is not a prefix length"))?;
        let prefix = Prefix { addr, len };
        if len > prefix.max_len() {
            return Err(format!("prefix length {len} is longer than {}", prefix.max_len()));
        }
        Ok(prefix)
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A MAC address, `02:00:00:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Mac, String> {
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(|| format!("{s:?} is not a MAC address"))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?} is not a MAC address"));
        }
        Ok(Mac(mac))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Prefix {
    fn schema_name() -> String {
        "Prefix".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(r"^[0-9A-Fa-f.:]+/[0-9]{1,3}$", "192.0.2.1/24")
    }
}

impl JsonSchema for Mac {
    fn schema_name() -> String {
        "Mac".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", "02:00:00:00:00:01")
    }
}
