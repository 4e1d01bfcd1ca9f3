//! Records written as file-system metadata, made durable by the next storage
//! step instead of an fsync of their own.
//!
//! [`write_ordered`] keeps a record in an extended attribute of an empty
//! file and renames that file in: an xattr and a rename are metadata, which
//! btrfs (one transaction), ZFS (one txg) and ext4 (one jbd2 transaction)
//! commit atomically and in order. So a crash leaves the old record or the
//! new one, never half of one; and on a backend whose storage steps commit
//! that file system (see `Capabilities::orders_state`), a step taken after
//! the write is never durable without the record. An fsync costs about a
//! millisecond on btrfs; this write costs tens of microseconds.
//!
//! [`read_record`] reads what either this module or
//! [`crate::durable::write_atomic`] wrote: an empty file means "the record is
//! in the xattr".

use std::ffi::CStr;
use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The extended attribute that holds a record.
const XATTR: &CStr = c"user.sidus.json";

/// Largest record kept in an xattr: well inside one btrfs leaf item (and
/// ext4's in-inode and block xattr space).
pub const XATTR_MAX: usize = 3800;

/// How [`write_ordered`] kept a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// In the xattr of an empty file: durable with the file system's next commit.
    Metadata,
    /// Too large for an xattr, or the file system has no user xattrs: written
    /// by [`crate::durable::write_atomic`], durable already.
    Synced,
}

/// Replaces `path` with `data` (mode `mode` exactly), as metadata: whole or
/// absent after a crash, durable once the file system commits (see the
/// module's doc). Falls back to [`crate::durable::write_atomic`] when the
/// record cannot be metadata.
pub fn write_ordered(path: &Path, data: &[u8], mode: u32) -> io::Result<Kept> {
    if data.len() > XATTR_MAX {
        crate::durable::write_atomic(path, data, mode)?;
        return Ok(Kept::Synced);
    }
    let tmp = crate::durable::temp_path(path)?;
    let write = || -> io::Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
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
            return Err(io::Error::last_os_error());
        }
        fs::rename(&tmp, path)
    };
    crate::durable::create_dir_all(crate::durable::parent(path)?)?;
    match write() {
        Ok(()) => Ok(Kept::Metadata),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            log::debug!(
                "no xattr record for {} ({e}); writing the file",
                path.display()
            );
            crate::durable::write_atomic(path, data, mode)?;
            Ok(Kept::Synced)
        }
    }
}

/// Removes `path` if it exists, without an fsync of its directory: the
/// removal is durable with the file system's next commit, and a crash before
/// it leaves the file whole. Returns whether it existed.
pub fn remove_ordered(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The record at `path`, from the file or, when the file is empty, from its
/// xattr; `None` when the file does not exist. An empty file without the
/// xattr reads as empty bytes (the caller's parser names it damaged).
pub fn read_record(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Ok(Some(read_xattr(path)?.unwrap_or_default())),
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_xattr(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
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
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_metadata_or_file_and_leave_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/r.json");
        let kept = write_ordered(&p, b"{\"a\":1}", 0o644).unwrap();
        assert_eq!(read_record(&p).unwrap().unwrap(), b"{\"a\":1}");
        if kept == Kept::Metadata {
            assert_eq!(
                fs::metadata(&p).unwrap().len(),
                0,
                "the record is the xattr"
            );
        }
        let big = vec![b'x'; XATTR_MAX + 1];
        assert_eq!(write_ordered(&p, &big, 0o600).unwrap(), Kept::Synced);
        assert_eq!(read_record(&p).unwrap().unwrap(), big);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        // A synced write after a metadata one replaces it whole.
        write_ordered(&p, b"small", 0o644).unwrap();
        crate::durable::write_atomic(&p, b"file", 0o644).unwrap();
        assert_eq!(read_record(&p).unwrap().unwrap(), b"file");
        let names: Vec<_> = fs::read_dir(d.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
        assert!(remove_ordered(&p).unwrap());
        assert!(!remove_ordered(&p).unwrap());
        assert_eq!(read_record(&p).unwrap(), None);
    }
}
