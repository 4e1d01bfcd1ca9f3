//! Small file helpers shared by backends that keep sidecar files.

use crate::{BackendError, Result};
use std::path::Path;

/// Undoes the octal escapes the kernel writes in /proc/self/mountinfo fields
/// (`\040` for a space; also tab, newline and backslash), as raw bytes.
pub fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Reads a JSON record written by [`write_json_atomic`] or
/// [`write_json_xattr`]; `None` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match crate::ordered::read_record(path) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => return Err(BackendError::io("read", path, e)),
    };
    if bytes.is_empty() {
        return Err(BackendError::UnexpectedOutput {
            tool: path.display().to_string(),
            detail: "empty record".into(),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| BackendError::UnexpectedOutput {
            tool: path.display().to_string(),
            detail: e.to_string(),
        })
}

/// Writes JSON through [`crate::durable::write_atomic`]: a reader sees the old
/// or the new document, never half of one, also after a crash.
pub(crate) fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec(value).expect("serializable");
    crate::durable::write_atomic(path, &data, 0o644).map_err(|e| BackendError::io("write", path, e))
}

/// Like [`write_json_atomic`], but without an fsync (see
/// [`crate::ordered`]): the caller's next btrfs transaction commit (a
/// subvolume snapshot commits one) makes it durable together with what it
/// describes, so a crash never keeps the one without the other.
pub(crate) fn write_json_xattr<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec(value).expect("serializable");
    crate::ordered::write_ordered(path, &data, 0o644)
        .map(drop)
        .map_err(|e| BackendError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct R {
        a: String,
    }

    #[test]
    fn records_round_trip_through_xattr_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let small = R { a: "x".into() };
        write_json_xattr(&p, &small).unwrap();
        assert_eq!(read_json::<R>(&p).unwrap(), Some(small));
        let big = R {
            a: "y".repeat(10_000),
        };
        write_json_xattr(&p, &big).unwrap();
        assert!(
            fs::metadata(&p).unwrap().len() > 0,
            "large records go in the file"
        );
        assert_eq!(read_json::<R>(&p).unwrap(), Some(big));
        assert_eq!(read_json::<R>(&dir.path().join("none")).unwrap(), None);
    }
}
