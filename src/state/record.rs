//! The one reader and writer of sidus's JSON state records (tree state, pins,
//! publish state): each schema is a Rust type, read here and nowhere else by
//! hand. A damaged record is an error that names the file, what it holds and
//! how to repair it; it never reads as "empty".

use super::atomic::write_atomic;
use anyhow::Result;
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

/// Reads the record at `path`; `None` when the file does not exist.
pub fn read<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
    let mut data = serde_json::to_vec_pretty(value).expect("state records serialize");
    data.push(b'\n');
    write_atomic(path, &data, 0o644)
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
