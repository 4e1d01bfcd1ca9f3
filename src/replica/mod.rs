//! Replication of trees to other boot servers: remotes, `sidus replicate`
//! (the sender), the hidden `replica-have` / `replica-receive` subcommands a
//! remote sidus answers over stdin/stdout, and the read-only rule for
//! replicas until `sidus replica promote`.
//!
//! The engines are the backends' own streams (`btrfs send -p | btrfs
//! receive`, `zfs send -i | zfs recv`); sidus adds the IDs, the metadata, the
//! check against the primary's manifest and the crash safety. One
//! `replica-receive` per replication answers what it has, then takes each
//! snapshot as a JSON header line ([`wire::Header`]) and the framed stream
//! (see [`session`]).

pub mod have;
pub mod promote;
pub mod receive;
pub mod remotes;
pub mod send;
pub mod session;
pub mod status;
pub mod stream;
pub mod wire;

use crate::state::intent::{Change, TreeState};
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};
use std::path::Path;

/// What makes a tree a replica: recorded in its state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaOf {
    /// The primary as its sender names itself (host and store).
    pub source: String,
    /// When the first snapshot was received.
    pub since: DateTime<Utc>,
    /// The stream it is fed with (`btrfs`, `zfs`, `archive`): a replica begun
    /// with archives has no native base to go on from, so it stays on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A receive ZFS kept the partial state of, for `zfs send -t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumable: Option<SnapshotId>,
}

/// The replica record of `tree`, if it is one.
pub fn replica_of(state_dir: &Path, tree: &TreeName) -> Result<Option<ReplicaOf>> {
    Ok(TreeState::load(state_dir, tree)?.replica)
}

/// Refuses a change that would make a replica differ from its primary.
pub fn refuse_change_to_replica(state_dir: &Path, change: &Change) -> Result<()> {
    let (tree, what) = match change {
        Change::Snapshot { tree, .. } => (tree, "snapshot"),
        Change::Delete { tree, .. } => (tree, "delete snapshots of"),
        Change::Rollback { tree, .. } => (tree, "roll back"),
        Change::Run(r) => (&r.tree, "run a command in"),
        Change::Clone {
            source,
            takes_snapshot: true,
            ..
        } => (source, "snapshot (for a clone)"),
        _ => return Ok(()),
    };
    if let Some(r) = replica_of(state_dir, tree)? {
        bail!(
            "refusing to {what} '{tree}': it is a read-only replica of {} (it changes only by `sidus replicate` there); \
             `sidus replica promote {tree}` makes it a tree of this store",
            r.source
        );
    }
    Ok(())
}

/// Forgets that `tree` was a replica (it was destroyed): a new tree of that
/// name is this store's own.
pub fn forget(state_dir: &Path, tree: &TreeName) -> Result<()> {
    let mut st = TreeState::load(state_dir, tree)?;
    if st.replica.take().is_some() {
        st.save(state_dir, tree)?;
    }
    Ok(())
}
