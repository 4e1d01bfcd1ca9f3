//! Whole-file replacement for every state file, through the one routine of
//! [`sidus_backends::durable`] (temp file, fsync, rename, fsync of the
//! directory, exact mode): a reader (tftpd, nfs-server, a node, the next
//! sidus) sees the old file or the new one, never half of one, even across a
//! crash.

use anyhow::{Context, Result};
use sidus_backends::durable;
use std::path::Path;

/// Replaces `path` with `data` (mode `mode`, whatever the umask), creating its directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    durable::write_atomic(path, data, mode).with_context(|| format!("write {}", path.display()))
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove_durable(path: &Path) -> Result<bool> {
    durable::remove_durable(path).with_context(|| format!("remove {}", path.display()))
}

/// fsyncs a directory so renames and removals in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    durable::sync_dir(dir).with_context(|| format!("sync directory {}", dir.display()))
}

/// Creates a directory and its parents, mode 0755 whatever the umask.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    durable::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}
