//! What storage says changed between two states of a tree, for backends that
//! track it ([`crate::Capabilities::native_diff`]): the caller then compares
//! only those paths instead of walking both trees.

use crate::{SnapshotId, TreeName};
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
