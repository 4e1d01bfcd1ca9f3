//! What each group boots: `<state_dir>/fleet/groups.json`, read and written
//! through [`crate::state::record`].
//!
//! Shape: `{"groups": {"canary": {"current": {"tree": "lab", "id": "ID"},
//! "previous": [{"tree": "lab", "id": "ID"}, ...]}}}`. `current` is what the
//! group's boot entry names (`null`: the group has no snapshot of its own and
//! its nodes boot the default entry); `previous` is the group's publish
//! history, oldest first, that `publish --rollback --group` walks back. Every
//! current ID is also in the tree's `exported` list of the publish state, so
//! it is served, restored after a reboot and protected like any published ID.

use super::inventory::GroupName;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A published snapshot, `TREE@ID`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The tree.
    pub tree: TreeName,
    /// The snapshot.
    pub id: SnapshotId,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.tree, self.id)
    }
}

/// One group's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    /// What the group's entry names.
    pub current: Option<Target>,
    /// What it named before, oldest first.
    #[serde(default)]
    pub previous: Vec<Target>,
}

/// Every group's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Groups {
    /// Per group.
    #[serde(default)]
    pub groups: BTreeMap<GroupName, GroupState>,
}

impl Groups {
    /// The group state file of a store.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("fleet").join("groups.json")
    }

    /// Reads it; empty when no group was ever published to.
    pub fn load(state_dir: &Path) -> Result<Groups> {
        Ok(
            crate::state::record::read(&Self::path(state_dir), "the group state")?
                .unwrap_or_default(),
        )
    }

    /// Writes it durably.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        crate::state::record::write(&Self::path(state_dir), self)
    }

    /// What `g` boots, if it has its own snapshot.
    pub fn current(&self, g: &GroupName) -> Option<&Target> {
        self.groups.get(g).and_then(|s| s.current.as_ref())
    }

    /// The groups whose entry names `tree@id`.
    pub fn using(&self, tree: &TreeName, id: &SnapshotId) -> Vec<GroupName> {
        self.groups
            .iter()
            .filter(|(_, s)| {
                s.current
                    .as_ref()
                    .is_some_and(|c| &c.tree == tree && &c.id == id)
            })
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// The state after making `t` current for `g` (a no-op when it is).
    pub fn with_published(&self, g: &GroupName, t: &Target) -> Groups {
        let mut next = self.clone();
        let s = next.groups.entry(g.clone()).or_default();
        if s.current.as_ref() == Some(t) {
            return next;
        }
        if let Some(old) = s.current.take() {
            s.previous.retain(|p| p != &old);
            s.previous.push(old);
        }
        s.previous.retain(|p| p != t);
        s.current = Some(t.clone());
        next
    }

    /// The state after `publish --rollback --group g`: the newest previous
    /// becomes current and leaves the history. `None` without history.
    pub fn with_rollback(&self, g: &GroupName) -> Option<(Target, Groups)> {
        let mut next = self.clone();
        let s = next.groups.get_mut(g)?;
        let back = s.previous.pop()?;
        s.current = Some(back.clone());
        Some((back, next))
    }

    /// The state after `unpublish --group g`: the group has no snapshot of its
    /// own any more (its history is kept for a later rollback).
    pub fn with_default(&self, g: &GroupName) -> Groups {
        let mut next = self.clone();
        if let Some(s) = next.groups.get_mut(g) {
            if let Some(old) = s.current.take() {
                s.previous.retain(|p| p != &old);
                s.previous.push(old);
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u32) -> Target {
        Target {
            tree: "lab".parse().unwrap(),
            id: format!("20261125T10150{id}Z").parse().unwrap(),
        }
    }

    #[test]
    fn publish_rollback_default_per_group() {
        let (c, r): (GroupName, GroupName) = ("canary".parse().unwrap(), "rest".parse().unwrap());
        let s = Groups::default()
            .with_published(&c, &t(1))
            .with_published(&r, &t(1))
            .with_published(&c, &t(2));
        assert_eq!(s.current(&c), Some(&t(2)));
        assert_eq!(s.current(&r), Some(&t(1)), "another group is untouched");
        assert_eq!(s.using(&t(1).tree, &t(1).id), std::slice::from_ref(&r));
        assert_eq!(
            s.with_published(&c, &t(2)),
            s,
            "publishing current again is a no-op"
        );
        let (back, s2) = s.with_rollback(&c).unwrap();
        assert_eq!((back, s2.current(&c)), (t(1), Some(&t(1))));
        assert!(s2.with_rollback(&c).is_none(), "history walked back");
        assert!(s.with_rollback(&r).is_none());
        let d = s.with_default(&c);
        assert_eq!(d.current(&c), None);
        assert_eq!(d.groups[&c].previous, [t(1), t(2)]);
        let v = serde_json::to_value(&s2).unwrap();
        assert_eq!(
            v["groups"]["canary"]["current"],
            serde_json::json!({"tree": "lab", "id": "20261125T101501Z"})
        );
        assert_eq!(t(1).to_string(), "lab@20261125T101501Z");
    }
}
