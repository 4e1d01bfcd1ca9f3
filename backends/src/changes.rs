//! What storage says changed between two states of a tree, for backends that
//! track it ([`crate::Capabilities::native_diff`]): the caller then compares
//! only those paths instead of walking both trees.

use crate::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One side of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffSide<'a> {
    /// A snapshot.
    Snapshot(&'a TreeName, &'a SnapshotId),
    /// The working tree as it is now.
    Working(&'a TreeName),
}

/// How storage says a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathChange {
    /// Only on the new side.
    Added,
    /// Only on the old side.
    Removed,
    /// On both sides, something of it differs (content, attributes, or its
    /// link count).
    Modified,
    /// Moved from `path` to [`ChangedPath::to`].
    Renamed,
}

/// One path storage reports changed. Paths are absolute within the tree
/// (`/etc/motd`), in the bytes of the file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedPath {
    /// How it changed.
    pub change: PathChange,
    /// It is a directory (on the side it is reported for).
    pub dir: bool,
    /// Its path (the old one, for a rename).
    pub path: PathBuf,
    /// For [`PathChange::Renamed`]: the new path.
    pub to: Option<PathBuf>,
    /// Storage reported a change of the file's link count: a hard link was
    /// added or removed, under a name it does not report.
    pub links_changed: bool,
}

/// What storage says changed from one snapshot of a tree to a later one
/// ([`crate::Backend::snapshot_changes`]), by path of the later one. An entry
/// not named here, nor under a path named `replaced`, is the earlier
/// snapshot's entry at the same path, unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotChanges {
    /// Absolute paths in the bytes of the names (`/etc/motd`; the root is
    /// `/`), with what may differ at each.
    pub paths: BTreeMap<Vec<u8>, Touch>,
}

/// What may differ at one path of a [`SnapshotChanges`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touch {
    /// Another entry than the earlier snapshot's at this path (made, renamed
    /// or linked here), with all that is under it.
    pub replaced: bool,
    /// A directory whose entries were added, removed or renamed.
    pub listing: bool,
    /// Its attributes (mode, owner, xattrs, times).
    pub attrs: bool,
    /// Its data.
    pub data: bool,
}
