//! The configuration as the appliance keeps it: the current, validated [`Config`], its revision, and
//! its file, replaced atomically.
//!
//! Contract: [`ConfigStore::replace`] either leaves everything as it was (a refused change: invalid, or
//! made against an older revision than the current one) or has the new configuration both on disk and
//! current. The file is written beside the old one, flushed to disk and renamed over it, so a crash or
//! power loss leaves the old file or the new one, never a mix. A change names the revision it was made
//! against, so that of two conflicting concurrent changes the second is refused rather than merged.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{Config, ConfigError};

/// Why the store refused or failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The configuration is not valid (or the file's does not parse).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The change was made against another revision than the current one.
    #[error(
        "the configuration changed (now revision {current}, the change was made against {expected}); reload and retry"
    )]
    Conflict {
        /// The revision the change was made against.
        expected: String,
        /// The current revision.
        current: String,
    },
}

/// The current configuration, its revision and its file.
#[derive(Debug)]
pub struct ConfigStore {
    path: PathBuf,
    current: Config,
    revision: String,
}

/// A configuration's revision: the SHA-256 of its JSON, in hex (short enough to read).
pub fn revision(config: &Config) -> String {
    let digest = Sha256::digest(config.to_json().as_bytes());
    hex::encode(&digest[..8])
}

impl ConfigStore {
    /// Loads and validates the configuration in `path` (TOML, or JSON when the name ends in `.json`).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let text = fs::read_to_string(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
        let current = if path.extension().is_some_and(|e| e == "json") {
            Config::from_json(&text)?
        } else {
            Config::from_toml(&text)?
        };
        current.validate()?;
        let revision = revision(&current);
        Ok(Self { path, current, revision })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force.
    pub fn current(&self) -> &Config {
        &self.current
    }

    /// Its revision.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Validates `new`, and if it was made against the current revision (`expected`; `None` to replace
    /// whatever is there), writes it to the file and makes it current. Returns the new revision.
    pub fn replace(&mut self, new: Config, expected: Option<&str>) -> Result<String, StoreError> {
        if let Some(expected) = expected {
            if expected != self.revision {
                return Err(StoreError::Conflict { expected: expected.to_string(), current: self.revision.clone() });
            }
        }
        new.validate()?;
        let text = if self.path.extension().is_some_and(|e| e == "json") { new.to_json() } else { new.to_toml()? };
        write_atomically(&self.path, text.as_bytes())
            .map_err(|source| StoreError::Io { path: self.path.clone(), source })?;
        self.revision = revision(&new);
        self.current = new;
        Ok(self.revision.clone())
    }
}

/// Writes `bytes` to a temporary file beside `path`, flushes it, renames it over `path` and flushes the
/// directory, so that `path` holds either its old content or `bytes`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
