//! The one reader and writer of sidus's JSON state records (tree state, pins,
//! publish state): each schema is a Rust type, read here and nowhere else by
//! hand. A damaged record is an error that names the file, what it holds and
//! how to repair it; it never reads as "empty".
//!
//! A record is written durably now ([`Durability::Synced`]: temp, fsync,
//! rename, fsync of the directory) or, just before a storage step of a
//! backend that orders state (see `Capabilities::orders_state`), as
//! metadata that the step itself makes durable ([`Durability::Ordered`]).

use super::atomic::write_atomic;
use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A state file that exists but cannot be read as what it should hold.
#[derive(Debug)]
pub struct DamagedRecord {
    /// The file.
    pub path: PathBuf,
    /// What it holds, e.g. "the publish state".
    pub what: String,
    /// Why it cannot be read.
    pub detail: String,
}

impl fmt::Display for DamagedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is damaged ({}): run `sidus doctor` to see how to repair it",
            self.what,
            self.path.display(),
            self.detail
        )
    }
}

impl std::error::Error for DamagedRecord {}

/// How a state write survives a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Durable when the write returns.
    Synced,
    /// Whole or absent after a crash, and durable no later than the storage
    /// step that follows it, on a backend that orders state: for a record
    /// written just before such a step, or one whose loss recovery repairs
    /// (a cleared intent that comes back is found journaled and cleared again).
    Ordered,
}

/// Reads the record at `path`; `None` when the file does not exist.
pub fn read<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    let bytes = match sidus_backends::ordered::read_record(path) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("read {what} {}", path.display())))
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        DamagedRecord {
            path: path.to_path_buf(),
            what: what.to_string(),
            detail: e.to_string(),
        }
        .into()
    })
}

/// Writes `value` at `path` as pretty JSON, durably (see [`write_atomic`]).
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_with(path, value, Durability::Synced)
}

/// Writes `value` at `path` as JSON, as durable as `how` says.
pub fn write_with<T: Serialize>(path: &Path, value: &T, how: Durability) -> Result<()> {
    match how {
        Durability::Synced => {
            let mut data = serde_json::to_vec_pretty(value).expect("state records serialize");
            data.push(b'\n');
            write_atomic(path, &data, 0o644)
        }
        Durability::Ordered => {
            let data = serde_json::to_vec(value).expect("state records serialize");
            sidus_backends::ordered::write_ordered(path, &data, 0o644)
                .map(drop)
                .with_context(|| format!("write {}", path.display()))
        }
    }
}

/// Removes the record at `path` if there is one, as durable as `how` says.
pub fn remove_with(path: &Path, how: Durability) -> Result<bool> {
    match how {
        Durability::Synced => super::atomic::remove_durable(path),
        Durability::Ordered => sidus_backends::ordered::remove_ordered(path)
            .with_context(|| format!("remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct R {
        a: u32,
    }

    #[test]
    fn missing_is_none_damaged_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        assert_eq!(read::<R>(&p, "the test record").unwrap(), None);
        write(&p, &R { a: 1 }).unwrap();
        assert_eq!(read::<R>(&p, "the test record").unwrap(), Some(R { a: 1 }));
        write_with(&p, &R { a: 2 }, Durability::Ordered).unwrap();
        assert_eq!(read::<R>(&p, "the test record").unwrap(), Some(R { a: 2 }));
        std::fs::write(&p, "{\"a\": tr").unwrap();
        let e = read::<R>(&p, "the test record").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("the test record {} is damaged", p.display()))
                && text.contains("sidus doctor"),
            "{text}"
        );
        assert!(e.downcast_ref::<DamagedRecord>().is_some());
    }
}
