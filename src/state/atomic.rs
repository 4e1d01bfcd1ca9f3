//! Whole-file replacement for every state file, through the one routine of
//! [`sidus_backends::durable`] (temp file, fsync, rename, fsync of the
//! directory, exact mode): a reader (tftpd, nfs-server, a node, the next
//! sidus) sees the old file or the new one, never half of one, even across a
//! crash.

use anyhow::{Context, Result};
use sidus_backends::durable;
use std::path::{Path, PathBuf};

/// Replaces `path` with `data` (mode `mode`, whatever the umask), creating its directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    durable::write_atomic(path, data, mode).with_context(|| format!("write {}", path.display()))
}

/// Replaces many files as [`write_atomic`] does each, with one flush per
/// file system and one fsync per directory (the boot entries of a thousand
/// nodes); directories side by side, each in the order given.
pub fn write_atomic_all(files: &[(PathBuf, Vec<u8>, u32)]) -> Result<()> {
    durable::write_atomic_all(files).with_context(|| match files {
        [] => "write no files".to_string(),
        [(one, ..)] => format!("write {}", one.display()),
        [(first, ..), ..] => format!("write {} files ({} ...)", files.len(), first.display()),
    })
}

/// Removes each of `paths` that exists, durably; returns how many did.
pub fn remove_durable_all(paths: &[PathBuf]) -> Result<usize> {
    durable::remove_durable_all(paths).with_context(|| format!("remove {} files", paths.len()))
}

/// Removes `path` if it exists and makes the removal durable.
pub fn remove_durable(path: &Path) -> Result<bool> {
    durable::remove_durable(path).with_context(|| format!("remove {}", path.display()))
}

/// Renames `from` to `to` in the same directory, durably (a damaged record
/// moved aside by `sidus doctor --repair`).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    durable::rename_durable(from, to)
        .with_context(|| format!("rename {} to {}", from.display(), to.display()))
}

/// fsyncs a directory so renames and removals in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    durable::sync_dir(dir).with_context(|| format!("sync directory {}", dir.display()))
}

/// Creates a directory and its parents, mode 0755 whatever the umask.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    durable::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

#[cfg(test)]
mod tests {
    /// Files that replace files by other means than [`super::write_atomic`],
    /// and why none of them writes sidus's state.
    const OTHER_RENAMES: &[(&str, &str)] = &[
        ("backends/src/durable.rs", "the one routine itself"),
        (
            "backends/src/ordered.rs",
            "the one routine for records the next storage step commits (metadata, no fsync)",
        ),
        (
            "src/archive/export.rs",
            "an archive the user asked for, renamed in when complete",
        ),
        (
            "src/publish/system.rs",
            "a kernel and initrd copy renamed in as one directory",
        ),
        (
            "src/publish/intree.rs",
            "files inside a tree, through a directory handle rooted in it",
        ),
    ];

    #[test]
    fn state_files_have_one_writer() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        let mut dirs = vec![root.join("src"), root.join("backends/src")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                // (renameat_with, the run's wrappers inside a tree, is not a file write.)
                if code.contains("fs::rename(") || code.contains("renameat(") {
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    found.push(rel);
                }
            }
        }
        found.sort();
        let mut allowed: Vec<String> = OTHER_RENAMES.iter().map(|(f, _)| f.to_string()).collect();
        allowed.sort();
        assert_eq!(found, allowed);
    }
}
