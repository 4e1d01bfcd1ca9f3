//! Native replication: a backend's own snapshot streams (`btrfs send` /
//! `btrfs receive`, `zfs send` / `zfs recv`), which the `sidus` crate pipes
//! between stores. Backends without one (LVM thin) return `None` from
//! [`crate::Backend::replication`].
//!
//! A receive is three steps the caller wraps in an intent:
//! [`Replication::begin_receive`] (the command reading the stream),
//! [`Replication::finish_receive`] once it exited successfully (and the
//! content was checked), or [`Replication::settle_receive`] when the process
//! doing it died. Until it is finished, nothing of the snapshot is listed.

use crate::runner::Argv;
use crate::{Result, Snapshot, SnapshotId, TreeName};
use std::path::PathBuf;

/// What a backend offers for sending and receiving its snapshots natively.
pub trait Replication {
    /// The stream's format; both ends must name the same one (`btrfs`, `zfs`).
    fn format(&self) -> &'static str;
    /// The command whose stdout is the stream of `tree@id`, incremental from
    /// `parent` (a snapshot the receiver has), or whole without one.
    fn send_command(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Argv>;
    /// Whether `tree@id` can be sent incrementally from `parent` (ZFS: only
    /// within one dataset's line, which a rollback breaks: its snapshots
    /// then go as archives). Without a parent, whether it can be sent whole.
    fn can_send(
        &self,
        _tree: &TreeName,
        _id: &SnapshotId,
        _parent: Option<&SnapshotId>,
    ) -> Result<bool> {
        Ok(true)
    }
    /// The command whose stdout resumes an interrupted stream from the
    /// receiver's token, where the storage supports it (`zfs send -t`).
    fn resume_command(&self, _token: &str) -> Option<Argv> {
        None
    }
    /// Bytes the stream of [`Replication::send_command`] would carry, estimated
    /// without sending it; `None` when the tool gives no estimate.
    fn estimate(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Option<u64>>;
    /// Gets ready to receive `tree@id` (the tree itself when it does not exist
    /// here yet) and returns the command that reads the stream on its stdin.
    /// `resume`: the stream continues an interrupted receive of this ID.
    fn begin_receive(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
        resume: bool,
    ) -> Result<Argv>;
    /// Where the received content can be read before it is listed, for
    /// checking it; `None` where a received snapshot is listed at once (ZFS:
    /// the caller checks it right after [`Replication::finish_receive`]).
    fn received_path(&self, tree: &TreeName, id: &SnapshotId) -> Option<PathBuf>;
    /// Lists the received snapshot with `snap`'s metadata (and the tree, when
    /// it is the tree's first). Idempotent.
    fn finish_receive(&self, snap: &Snapshot) -> Result<()>;
    /// After a receiver died: finishes a receive whose stream was complete and
    /// checked far enough to be listed (returns `true`), or removes what it
    /// left (`false`), keeping only a partial state the storage can resume.
    fn settle_receive(&self, tree: &TreeName, id: &SnapshotId) -> Result<bool>;
    /// Removes a receive of `tree@id` that failed or did not check out.
    fn abort_receive(&self, tree: &TreeName, id: &SnapshotId) -> Result<()>;
    /// A token resuming an interrupted receive into `tree`, if storage kept one.
    fn resume_token(&self, _tree: &TreeName) -> Result<Option<String>> {
        Ok(None)
    }
    /// Whether the working tree becomes each received snapshot by itself
    /// (ZFS); otherwise promoting a replica replaces it with the newest.
    fn working_follows(&self) -> bool;
}
