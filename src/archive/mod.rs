//! Deterministic archives of snapshots (`sidus export`) and making a tree from
//! one (`sidus import`).
//!
//! Both formats have one layout: the tree's content at the top, and beside it
//! `.sidus-archive/` with `archive.json` (format, `TREE@ID`, root hash),
//! `manifest` (the snapshot's manifest), `snapshot.json` (its metadata, as
//! `sidus show --json` prints it) and `packages` (its installed Debian
//! packages, `name arch version source source-version`, one per line). In a
//! tar they come first, so `import -` reads them before the content. A tree
//! that has a `/.sidus-archive` of its own cannot be exported.
//!
//! The same snapshot gives the same bytes: entries in manifest order (sorted
//! by path), owners numeric, modes and xattrs as they are, times the files'
//! own, and no time of the export anywhere.

pub mod export;
pub mod extract;
pub mod import;
pub mod squashfs;
pub mod tarball;

use crate::history::packages;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The directory beside the tree's content holding what the archive carries.
pub const META_DIR: &str = ".sidus-archive";
/// The members of [`META_DIR`], in the order a tar carries them.
pub const META_FILES: [&str; 4] = ["archive.json", "manifest", "snapshot.json", "packages"];

/// `archive.json`: what the archive is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Always `sidus-archive`.
    pub format: String,
    /// Layout version, 1.
    pub version: u32,
    /// The tree the snapshot was of.
    pub tree: String,
    /// The snapshot ID.
    pub id: String,
    /// The manifest's root hash.
    pub root_hash: String,
    /// Entries in the manifest.
    pub entries: usize,
    /// Bytes of regular files.
    pub file_bytes: u64,
}

/// The value of [`Info::format`].
pub const FORMAT: &str = "sidus-archive";

/// The `packages` member for the tree at `root`: empty when it has no dpkg status.
pub fn packages_text(root: &Path) -> Result<String> {
    let Some(status) = packages::read_status_in(root)? else {
        return Ok(String::new());
    };
    let mut s = String::new();
    for p in packages::installed(&status) {
        s.push_str(&format!(
            "{} {} {} {} {}\n",
            p.name,
            if p.arch.is_empty() { "-" } else { &p.arch },
            p.version,
            p.source,
            p.source_version
        ));
    }
    Ok(s)
}
