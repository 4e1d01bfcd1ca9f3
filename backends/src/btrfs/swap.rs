//! Rollback's swap of the working subvolume, and finishing a swap a crash
//! interrupted. The copy of the target is made at the hidden scratch path,
//! then exchanged with the working tree in one `renameat2(RENAME_EXCHANGE)`,
//! so at no instant is there no working tree.

use super::Btrfs;
use crate::{Result, SnapshotId, TreeName};

impl Btrfs {
    /// Replaces the working tree of `tree` with a writable copy of `tree@id`.
    pub(super) fn swap_in_copy(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let source = self.require_snapshot(tree, id)?;
        self.clear_scratch(tree)?;
        let working = self.working(tree);
        let scratch = self.scratch(tree);
        self.snapshot_subvolume(
            format!("copy {tree}@{id} for rollback"),
            &source,
            &scratch,
            false,
        )?;
        crate::failpoint::hit("btrfs:rollback-after-copy");
        // One atomic exchange: at no instant is there no working tree.
        nix::fcntl::renameat2(
            None,
            &scratch,
            None,
            &working,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|e| crate::BackendError::io("swap in rollback copy at", &working, e.into()))?;
        self.delete_subvolumes(
            &format!("remove replaced working tree of '{tree}'"),
            &[scratch],
        )
    }

    /// Finishes a swap interrupted by a crash: the scratch subvolume is either the
    /// new copy (not yet swapped in) or the old working tree (already swapped out);
    /// in both cases the working tree is the one to keep. Returns whether
    /// there was one.
    pub(super) fn clear_scratch(&self, tree: &TreeName) -> Result<bool> {
        let scratch = self.scratch(tree);
        if scratch.exists() && self.working(tree).exists() {
            self.delete_subvolumes(
                &format!("clean up interrupted rollback of '{tree}'"),
                &[scratch],
            )?;
            return Ok(true);
        }
        Ok(false)
    }
}
