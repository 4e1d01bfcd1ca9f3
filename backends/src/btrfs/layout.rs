//! Where each part of a btrfs store lives under its root, and the checks
//! that a tree or snapshot is there.

use super::Btrfs;
use crate::{BackendError, Origin, Result, SnapshotId, TreeName};
use std::path::{Path, PathBuf};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

/// `snapshots/<tree>/tree.json`: a tree's origin, when it is a clone.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct TreeFile {
    pub origin: Option<Origin>,
}

impl Btrfs {
    /// `trees/`: the working subvolumes.
    pub(super) fn trees_dir(&self) -> PathBuf {
        self.root.join("trees")
    }

    /// `snapshots/<tree>/`: a tree's snapshots, their sidecars and `tree.json`.
    pub(super) fn snaps_dir(&self, tree: &TreeName) -> PathBuf {
        self.root.join("snapshots").join(tree.as_str())
    }

    /// `snapshots/<tree>/<id>`.
    pub(super) fn snap_dir(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.snaps_dir(tree).join(id.as_str())
    }

    /// `snapshots/<tree>/<id>.json`: the snapshot's metadata.
    pub(super) fn meta_file(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.snaps_dir(tree).join(format!("{id}.json"))
    }

    /// `snapshots/<tree>/tree.json`.
    pub(super) fn tree_file(&self, tree: &TreeName) -> PathBuf {
        self.snaps_dir(tree).join("tree.json")
    }

    /// `trees/<tree>`.
    pub(super) fn working(&self, tree: &TreeName) -> PathBuf {
        self.trees_dir().join(tree.as_str())
    }

    /// Where a half-finished swap leaves the old or new working tree: hidden,
    /// because tree names never start with a dot.
    pub(super) fn scratch(&self, tree: &TreeName) -> PathBuf {
        self.trees_dir().join(format!(".{tree}.swap"))
    }

    // f_type is i64 on x86_64 glibc but narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    pub(super) fn is_btrfs(path: &Path) -> bool {
        nix::sys::statfs::statfs(path)
            .map(|s| s.filesystem_type().0 as i64 == BTRFS_SUPER_MAGIC)
            .unwrap_or(false)
    }

    /// The working tree of `tree`, or [`BackendError::NotFound`].
    pub(super) fn require_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let path = self.working(tree);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(BackendError::tree_not_found(tree))
        }
    }

    /// The snapshot `tree@id`, or [`BackendError::NotFound`].
    pub(super) fn require_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf> {
        self.require_tree(tree)?;
        let path = self.snap_dir(tree, id);
        if path.is_dir() && !self.receiving(tree, id) {
            Ok(path)
        } else {
            Err(BackendError::snapshot_not_found(tree, id))
        }
    }

    /// The marker of a snapshot being received (see `replicate.rs`): a
    /// received subvolume cannot be renamed into place from another directory
    /// once it is read-only, so it is received where it stays, hidden by this.
    pub(super) fn receive_marker(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.snaps_dir(tree).join(format!(".recv-{id}"))
    }

    /// Whether `tree@id` is being received, so not listed yet.
    pub(super) fn receiving(&self, tree: &TreeName, id: &SnapshotId) -> bool {
        self.receive_marker(tree, id).exists()
    }
}

/// The snapshot IDs among a snapshot directory's entry names: those that
/// parse as IDs and are not being received.
pub(super) fn listed_ids(names: &[std::ffi::OsString]) -> Vec<SnapshotId> {
    let receiving: std::collections::HashSet<&str> = names
        .iter()
        .filter_map(|n| n.to_str()?.strip_prefix(".recv-"))
        .collect();
    names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| !receiving.contains(n))
        .filter_map(|n| n.parse::<SnapshotId>().ok())
        .collect()
}
