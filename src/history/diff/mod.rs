//! What differs between two directory trees.
//!
//! Both trees are treated as hostile: every entry is opened relative to its
//! parent's descriptor with `O_NOFOLLOW`, symlinks are compared by target and
//! never followed, and the comparison does not descend into other file
//! systems (a mount, a nested btrfs subvolume). Compared: type, permission
//! bits (with setuid/setgid/sticky), owner, size, content (byte by byte, only
//! when sizes are equal), symlink target and device number. Not compared:
//! times, xattrs, hard link structure, directory sizes.
//!
//! Two ways to the same answer, the cheapest the backend allows:
//! - [`walk`]: both trees side by side. Equal-sized files are read, except on
//!   one btrfs file system where both map exactly the same extents
//!   ([`crate::history::extents`]): then they are equal without reading, so
//!   two snapshots of a big tree compare in the time of a metadata walk.
//! - [`changed`]: where storage tracks what changed
//!   ([`Capabilities::native_diff`](sidus_backends::Capabilities), `zfs diff`),
//!   only the paths it names are compared, so a diff reads what changed.

mod changed;
#[cfg(test)]
mod tests;
mod walk;

use crate::store::Store;
use anyhow::Result;
use nix::sys::stat::{FileStat, SFlag};
use serde::Serialize;
use sidus_backends::{BackendError, DiffSide};
use std::path::Path;

pub use changed::diff_changed;
pub use walk::diff_trees;

/// Every difference from `from` to `to` (each a side and where its content
/// is), asking storage what changed when the backend tracks it and walking
/// both trees otherwise, or when storage cannot tell for this pair.
pub fn diff_sides(
    store: &Store,
    from: (DiffSide<'_>, &Path),
    to: (DiffSide<'_>, &Path),
) -> Result<Vec<Entry>> {
    if store.backend.capabilities().native_diff {
        match store.backend.changed_paths(from.0, to.0) {
            Ok(changes) => {
                if let Some(entries) = diff_changed(from.1, to.1, &changes)? {
                    return Ok(entries);
                }
                log::debug!("hard links changed: comparing the whole trees");
            }
            Err(BackendError::Unsupported { what, why }) => {
                log::debug!("{what}: {why}; comparing the whole trees");
            }
            Err(e) => return Err(e.into()),
        }
    }
    diff_trees(from.1, to.1)
}

/// The type of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

impl Kind {
    pub(super) fn of(st: &FileStat) -> Kind {
        Kind::from_mode(st.st_mode)
    }

    /// The type a `st_mode` names.
    pub(crate) fn from_mode(mode: u32) -> Kind {
        match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            SFlag::S_IFCHR => Kind::Char,
            SFlag::S_IFBLK => Kind::Block,
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFSOCK => Kind::Socket,
            _ => Kind::File,
        }
    }

    /// The short name used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// What is recorded of one side of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attrs {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky, in octal (`0644`).
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes, for regular files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Target, for symlinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `major:minor`, for devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// How an entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new tree.
    Added,
    /// Only in the old tree.
    Removed,
    /// In both, different.
    Modified,
}

/// An aspect of an entry that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// File type.
    Type,
    /// Permission bits.
    Mode,
    /// uid or gid.
    Owner,
    /// Size of a regular file.
    Size,
    /// Bytes of a regular file.
    Content,
    /// Symlink target.
    Target,
    /// Device number.
    Device,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The path, absolute within the tree (`/etc/motd`). Names that are not UTF-8
    /// are shown with U+FFFD.
    pub path: String,
    /// Added, removed or modified.
    pub change: Change,
    /// For `modified`: what differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<Aspect>,
    /// The old side, unless added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Attrs>,
    /// The new side, unless removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Attrs>,
}
