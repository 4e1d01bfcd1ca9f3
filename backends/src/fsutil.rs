//! Small file helpers shared by backends that keep sidecar files.

use crate::{BackendError, Result};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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

/// The extended attribute that holds a record written by [`write_json_xattr`].
const XATTR: &std::ffi::CStr = c"user.sidus.json";

/// Largest record kept in an xattr: well inside one btrfs leaf item.
const XATTR_MAX: usize = 3800;

/// Reads a JSON file, or the record in its xattr when the file is empty (see
/// [`write_json_xattr`]); `None` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) if bytes.is_empty() => match read_xattr(path) {
            Some(data) => serde_json::from_slice(&data).map(Some).map_err(|e| {
                BackendError::UnexpectedOutput {
                    tool: path.display().to_string(),
                    detail: e.to_string(),
                }
            }),
            None => Err(BackendError::UnexpectedOutput {
                tool: path.display().to_string(),
                detail: "empty record".into(),
            }),
        },
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

/// Writes JSON through [`crate::durable::write_atomic`]: a reader sees the old
/// or the new document, never half of one, also after a crash.
pub(crate) fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec(value).expect("serializable");
    crate::durable::write_atomic(path, &data, 0o644).map_err(|e| BackendError::io("write", path, e))
}

fn read_xattr(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: both pointers are valid for the lengths given.
    let n = unsafe {
        libc::getxattr(
            cpath.as_ptr(),
            XATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n > 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

/// Like [`write_json_atomic`], but on btrfs without an fsync: the record goes
/// into an xattr of an empty file, which is file-system metadata. The caller's
/// next btrfs transaction commit (a subvolume snapshot commits one) makes it
/// durable together with what it describes, so a crash never keeps the one
/// without the other. Records too large for an xattr, or file systems without
/// user xattrs, fall back to [`write_json_atomic`].
pub(crate) fn write_json_xattr<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    let data = serde_json::to_vec(value).expect("serializable");
    if data.len() > XATTR_MAX {
        return write_json_atomic(path, value);
    }
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        // SAFETY: the descriptor is open and the buffers valid for their lengths.
        let rc = unsafe {
            libc::fsetxattr(
                f.as_raw_fd(),
                XATTR.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                0,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        fs::rename(&tmp, path)
    };
    match write() {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            log::debug!(
                "no xattr record for {} ({e}); writing the file",
                path.display()
            );
            write_json_atomic(path, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
