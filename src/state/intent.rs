//! Intent records: before the first step of a multi-step change, sidus
//! writes durably what it is about to do; after the change is journaled it
//! clears the record. Finding a record while holding the lock it was written
//! under means the sidus that wrote it died: the next writer finishes or
//! undoes the change first (see `crate::store::Store::write_lock`) and
//! journals what happened.
//!
//! Where records live, under the store's state directory:
//! - `trees/TREE.json`: [`TreeState`], the change in progress on one tree
//!   (create, snapshot, delete, prune, destroy, rollback, run) and the newest
//!   snapshot ID the tree ever had, so an ID is never given twice;
//! - `intents/clone-NEW.json`: a clone (it holds two trees' locks);
//! - `publish/intent.json`: a publish, unpublish or restore, a group publish
//!   or an inventory change (the publish lock).

use super::record::{self, Durability};
use crate::transaction::Record as RunRecord;
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};
use std::path::{Path, PathBuf};

/// A change sidus has begun and not yet journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// Unique among intents: names the journal entry of the change.
    pub id: String,
    /// The journal action, e.g. `snapshot`.
    pub action: String,
    /// The sidus process that began it.
    pub pid: u32,
    /// When.
    pub started: DateTime<Utc>,
    /// Who ran the command.
    pub user: String,
    /// The command line.
    pub command: String,
    /// What the change is.
    pub change: Change,
}

/// The changes that take several steps, with what recovery needs to finish
/// or undo each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// `create`: the tree, then its content; undone (a half copy is worthless).
    Create {
        /// The new tree.
        tree: TreeName,
    },
    /// `snapshot`: one snapshot of the working tree.
    Snapshot {
        /// The tree.
        tree: TreeName,
        /// The ID given to it.
        id: SnapshotId,
    },
    /// `delete` and `prune`: these snapshots go; finished (they were checked).
    Delete {
        /// The tree.
        tree: TreeName,
        /// The snapshots to remove.
        ids: Vec<SnapshotId>,
    },
    /// `destroy`: the tree and all its snapshots; finished.
    Destroy {
        /// The tree.
        tree: TreeName,
    },
    /// `rollback`: a safety snapshot, then the working tree replaced by a
    /// copy of the target; finished once the safety snapshot exists.
    Rollback {
        /// The tree.
        tree: TreeName,
        /// The snapshot rolled back to.
        target: SnapshotId,
        /// The ID of the safety snapshot of the replaced state.
        safety: SnapshotId,
    },
    /// `clone`: (a snapshot of the source, then) the new tree.
    Clone {
        /// The source tree.
        source: TreeName,
        /// The source snapshot.
        id: SnapshotId,
        /// Whether `id` is a snapshot this clone takes of the working state.
        takes_snapshot: bool,
        /// The new tree.
        new: TreeName,
    },
    /// `run`, `shell`, `update`: the run transaction's own record.
    Run(RunRecord),
    /// `publish` and `publish --rollback`: the boot entries are the commit.
    Publish {
        /// The tree.
        tree: TreeName,
        /// The ID to make current.
        id: SnapshotId,
    },
    /// `unpublish`: finished once begun (it was checked).
    Unpublish {
        /// The tree.
        tree: TreeName,
        /// The ID no longer served.
        id: SnapshotId,
        /// Whether it was the current ID (`--force`): the boot entries go too.
        was_current: bool,
    },
    /// `restore`: idempotent, done again.
    Restore,
    /// `node add`, `set`, `remove`, `import`: the inventory file is the
    /// commit; its content's digest (see `Inventory::digest`) says whether it landed.
    Inventory {
        /// The digest of the new inventory.
        digest: String,
    },
    /// `publish --group` and `publish --rollback --group`: the group's iPXE
    /// entry is the commit.
    PublishGroup {
        /// The group.
        group: TreeName,
        /// The tree of the snapshot.
        tree: TreeName,
        /// The snapshot the group is to boot.
        id: SnapshotId,
        /// Whether it is a rollback (the group's history is walked back).
        rollback: bool,
    },
    /// `unpublish --group`: the group boots the default entry again; finished.
    UnpublishGroup {
        /// The group.
        group: TreeName,
    },
    /// `replica-receive`: one snapshot received from the tree's primary;
    /// finished if the stream was complete and checked, else removed (a
    /// stream ZFS can resume is kept for `zfs send -t`).
    Receive {
        /// The replica tree.
        tree: TreeName,
        /// The snapshot being received.
        id: SnapshotId,
        /// It comes as the archive stream (unpacked into the working tree),
        /// not the backend's own.
        #[serde(default)]
        archive: bool,
    },
}

impl Change {
    /// Whether the change's first step after its intent is a storage step
    /// (a snapshot, a clone, a snapshot deletion) and nothing outside the
    /// store's storage changes before it: on a backend that orders state,
    /// that step makes the intent durable, so the intent needs no fsync.
    pub fn begins_with_storage_step(&self) -> bool {
        matches!(
            self,
            Change::Snapshot { .. }
                | Change::Clone { .. }
                | Change::Rollback { .. }
                | Change::Delete { .. }
        )
    }

    /// The trees the change writes to: recovery holds all their locks.
    pub fn trees(&self) -> Vec<&TreeName> {
        match self {
            Change::Create { tree }
            | Change::Snapshot { tree, .. }
            | Change::Delete { tree, .. }
            | Change::Destroy { tree }
            | Change::Rollback { tree, .. }
            | Change::Publish { tree, .. }
            | Change::PublishGroup { tree, .. }
            | Change::Unpublish { tree, .. }
            | Change::Receive { tree, .. } => vec![tree],
            Change::Clone { source, new, .. } => vec![source, new],
            Change::Run(r) => vec![&r.tree],
            Change::Restore | Change::Inventory { .. } | Change::UnpublishGroup { .. } => vec![],
        }
    }
}

/// The per-tree state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TreeState {
    /// The newest snapshot ID this tree ever had (deleted ones included).
    #[serde(default)]
    pub last_id: Option<SnapshotId>,
    /// The change in progress, if any.
    #[serde(default)]
    pub intent: Option<Intent>,
    /// Set while the tree is a replica of another store's: only `sidus
    /// replicate` from there changes it, until `sidus replica promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<crate::replica::ReplicaOf>,
}

/// Where an intent is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// In the tree's state file, beside its `last_id`.
    Tree(TreeName),
    /// A clone's own file.
    Clone(TreeName),
    /// The publish intent.
    Publish,
}

impl TreeState {
    /// The state file of `tree`.
    pub fn path(state_dir: &Path, tree: &TreeName) -> PathBuf {
        state_dir.join("trees").join(format!("{tree}.json"))
    }

    /// Reads `tree`'s state; empty when it has none yet.
    pub fn load(state_dir: &Path, tree: &TreeName) -> Result<TreeState> {
        Ok(record::read(
            &Self::path(state_dir, tree),
            &format!("the state of tree '{tree}'"),
        )?
        .unwrap_or_default())
    }

    /// Writes `tree`'s state durably.
    pub fn save(&self, state_dir: &Path, tree: &TreeName) -> Result<()> {
        self.save_with(state_dir, tree, Durability::Synced)
    }

    /// Writes `tree`'s state, as durable as `how` says.
    pub fn save_with(&self, state_dir: &Path, tree: &TreeName, how: Durability) -> Result<()> {
        record::write_with(&Self::path(state_dir, tree), self, how)
    }
}

impl Slot {
    /// The file the slot's intent is in.
    pub fn path(&self, state_dir: &Path) -> PathBuf {
        match self {
            Slot::Tree(t) => TreeState::path(state_dir, t),
            Slot::Clone(new) => clones_dir(state_dir).join(format!("clone-{new}.json")),
            Slot::Publish => state_dir.join("publish").join("intent.json"),
        }
    }

    /// The intent in this slot, if any.
    pub fn load(&self, state_dir: &Path) -> Result<Option<Intent>> {
        match self {
            Slot::Tree(t) => Ok(TreeState::load(state_dir, t)?.intent),
            _ => record::read(&self.path(state_dir), "an unfinished change's record"),
        }
    }

    /// Writes `intent` into the slot (for a tree, `last_id` too), as durable
    /// as `how` says: [`Durability::Ordered`] only when the change's next
    /// step is a storage step of a backend that orders state.
    pub fn save(
        &self,
        state_dir: &Path,
        intent: &Intent,
        last_id: Option<&SnapshotId>,
        how: Durability,
    ) -> Result<()> {
        match self {
            Slot::Tree(t) => {
                let mut st = TreeState::load(state_dir, t)?;
                if let Some(id) = last_id {
                    st.last_id = Some(st.last_id.take().map_or(id.clone(), |o| o.max(id.clone())));
                }
                st.intent = Some(intent.clone());
                st.save_with(state_dir, t, how)?;
            }
            _ => record::write_with(&self.path(state_dir), intent, how)?,
        }
        super::failpoint::hit("intent:after-write");
        Ok(())
    }

    /// Clears the slot: the change is journaled. Not flushed: a crash that
    /// loses the clearing brings the intent back whole, and the next writer
    /// finds its change journaled and clears it again (`trees::recover::settle`).
    pub fn clear(&self, state_dir: &Path) -> Result<()> {
        match self {
            Slot::Tree(t) => {
                let mut st = TreeState::load(state_dir, t)?;
                if st.intent.take().is_some() {
                    st.save_with(state_dir, t, Durability::Ordered)?;
                }
                Ok(())
            }
            _ => record::remove_with(&self.path(state_dir), Durability::Ordered).map(drop),
        }
    }
}

/// Where clone intents are kept.
pub fn clones_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("intents")
}

/// The names in `dir` that are `PREFIX<tree>.json`, as trees.
fn tree_files(dir: &Path, prefix: &str) -> Result<Vec<TreeName>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("read {}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(tree) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix)?.strip_suffix(".json"))
            .and_then(|n| n.parse::<TreeName>().ok())
        {
            out.push(tree);
        }
    }
    out.sort();
    Ok(out)
}

/// Every tree that has a state file (existing trees, and destroyed ones,
/// whose `last_id` is kept).
pub fn trees_with_state(state_dir: &Path) -> Result<Vec<TreeName>> {
    tree_files(&state_dir.join("trees"), "")
}

/// Every clone slot that has a record, readable or not.
pub fn clone_slots(state_dir: &Path) -> Result<Vec<Slot>> {
    Ok(tree_files(&clones_dir(state_dir), "clone-")?
        .into_iter()
        .map(Slot::Clone)
        .collect())
}

/// The clone intents that involve `tree` (as source or as new tree).
pub fn clones_involving(state_dir: &Path, tree: &TreeName) -> Result<Vec<(Slot, Intent)>> {
    let mut out = Vec::new();
    for slot in clone_slots(state_dir)? {
        if let Some(intent) = slot.load(state_dir)? {
            if intent.change.trees().contains(&tree) {
                out.push((slot, intent));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(change: Change) -> Intent {
        Intent {
            id: "x".into(),
            action: "snapshot".into(),
            pid: 1,
            started: Utc::now(),
            user: "root".into(),
            command: "sidus snapshot lab".into(),
            change,
        }
    }

    #[test]
    fn tree_slot_keeps_last_id_after_clear_and_never_lowers_it() {
        let d = tempfile::tempdir().unwrap();
        let lab: TreeName = "lab".parse().unwrap();
        let slot = Slot::Tree(lab.clone());
        let a: SnapshotId = "20261125T101500Z".parse().unwrap();
        let b: SnapshotId = "20261125T101501Z".parse().unwrap();
        let i = intent(Change::Snapshot {
            tree: lab.clone(),
            id: b.clone(),
        });
        slot.save(d.path(), &i, Some(&b), Durability::Synced)
            .unwrap();
        assert_eq!(slot.load(d.path()).unwrap(), Some(i.clone()));
        slot.save(d.path(), &i, Some(&a), Durability::Ordered)
            .unwrap();
        slot.clear(d.path()).unwrap();
        let st = TreeState::load(d.path(), &lab).unwrap();
        assert_eq!((st.last_id, st.intent), (Some(b), None));
    }

    #[test]
    fn clone_slots_are_found_by_either_tree() {
        let d = tempfile::tempdir().unwrap();
        let (lab, copy, other): (TreeName, TreeName, TreeName) = (
            "lab".parse().unwrap(),
            "copy".parse().unwrap(),
            "other".parse().unwrap(),
        );
        let slot = Slot::Clone(copy.clone());
        let i = intent(Change::Clone {
            source: lab.clone(),
            id: "20261125T101500Z".parse().unwrap(),
            takes_snapshot: false,
            new: copy.clone(),
        });
        slot.save(d.path(), &i, None, Durability::Ordered).unwrap();
        assert_eq!(clones_involving(d.path(), &lab).unwrap().len(), 1);
        assert_eq!(clones_involving(d.path(), &copy).unwrap().len(), 1);
        assert!(clones_involving(d.path(), &other).unwrap().is_empty());
        slot.clear(d.path()).unwrap();
        assert!(clones_involving(d.path(), &lab).unwrap().is_empty());
    }
}
