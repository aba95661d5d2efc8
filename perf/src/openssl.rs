//! The OpenSSL reference: runs `openssl speed -evp aes-128-gcm -bytes SIZE -seconds T` and reads its
//! table.
//!
//! What it measures (OpenSSL 3.0 `apps/speed.c`, the non-`-aead` EVP loop): `EVP_EncryptUpdate` over a
//! `SIZE`-byte buffer per operation, with no per-operation IV, AAD or tag. That is less work per
//! operation than an ESP packet, so it is a conservative bar for our per-packet seal.

use std::process::Command;

use thiserror::Error;

/// Why the reference is missing.
#[derive(Debug, Error)]
pub enum OpensslError {
    /// `openssl` did not run.
    #[error("openssl speed: could not run `openssl`: {0}")]
    Spawn(#[from] std::io::Error),
    /// It ran and failed.
    #[error("openssl speed -bytes {size}: exited with {status}")]
    Failed {
        /// Size asked for.
        size: usize,
        /// Exit status.
        status: std::process::ExitStatus,
    },
    /// Its output had no result line.
    #[error("openssl speed -bytes {size}: no `AES-128-GCM <n>k` line in its output")]
    Parse {
        /// Size asked for.
        size: usize,
    },
}

/// OpenSSL's throughput at one size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpensslRate {
    /// Bytes per operation.
    pub size: usize,
    /// Bytes per second, as OpenSSL reports it.
    pub bytes_per_sec: f64,
}

impl OpensslRate {
    /// Million operations per second.
    pub fn mops(&self) -> f64 {
        self.bytes_per_sec / self.size as f64 / 1e6
    }

    /// Gigabits per second.
    pub fn gbps(&self) -> f64 {
        self.bytes_per_sec * 8.0 / 1e9
    }
}

/// Runs `openssl speed -evp aes-128-gcm -bytes size -seconds seconds`.
pub fn speed(size: usize, seconds: u32) -> Result<OpensslRate, OpensslError> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "aes-128-gcm", "-bytes", &size.to_string(), "-seconds", &seconds.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(OpensslError::Failed { size, status: out.status });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes_per_sec = parse(&text).ok_or(OpensslError::Parse { size })?;
    Ok(OpensslRate { size, bytes_per_sec })
}

/// Reads the result line of a one-size `openssl speed -evp aes-128-gcm` table (`AES-128-GCM 2629918.33k`,
/// in 1000s of bytes per second) and returns bytes per second.
pub fn parse(stdout: &str) -> Option<f64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("aes-128-gcm")))?;
    let value = line.split_whitespace().nth(1)?;
    let kilo: f64 = value.strip_suffix('k')?.parse().ok()?;
    Some(kilo * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_3_table() {
        // The stdout of `openssl speed -evp aes-128-gcm -bytes 1400 -seconds 1`, OpenSSL 3.0.22, this VM.
        let text = "version: 3.0.22\nbuilt on: Wed Oct 21 09:54:24 2026 UTC\noptions: bn(64,64)\n\
                    The 'numbers' are in 1000s of bytes per second processed.\n\
                    type           1400 bytes\nAES-128-GCM    2629918.33k\n";
        assert_eq!(parse(text), Some(2_629_918_330.0));
        assert_eq!(parse("type 64 bytes\n"), None);
        assert_eq!(parse("AES-128-GCM 12.5M\n"), None);
    }
}
