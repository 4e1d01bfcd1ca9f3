//! Small file helpers shared by backends that keep sidecar files.

use crate::{BackendError, Result};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// Reads a JSON file; `None` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| BackendError::UnexpectedOutput {
                    tool: path.display().to_string(),
                    detail: e.to_string(),
                })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackendError::io("read", path, e)),
    }
}

/// Writes JSON to a temp file beside `path` and renames it over `path`, so a
/// reader sees the old or the new document, never half of one.
pub(crate) fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let data = serde_json::to_vec(value).expect("serializable");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_data()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        BackendError::io("write", path, e)
    })
}
