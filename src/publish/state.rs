//! What is published: `<state_dir>/publish/state.json`.
//!
//! The shape is a contract (prune and delete read it to protect published
//! snapshots): `{"trees": {"TREE": {"current": "ID", "previous": ["ID", ...],
//! "exported": ["ID", ...]}}}`. `exported` lists every ID still served, the
//! current one included; `previous` is the publish history, oldest first, that
//! `publish --rollback` walks back through.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The publish state of every tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishState {
    /// Per tree.
    #[serde(default)]
    pub trees: BTreeMap<TreeName, TreeState>,
}

/// One tree's publish state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TreeState {
    /// The ID nodes boot from now on (`null` after a forced unpublish of it).
    pub current: Option<SnapshotId>,
    /// IDs that were current before, oldest first.
    #[serde(default)]
    pub previous: Vec<SnapshotId>,
    /// Every ID still mounted and exported, current included, oldest first.
    #[serde(default)]
    pub exported: Vec<SnapshotId>,
}

impl PublishState {
    /// The state file of a store.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("publish").join("state.json")
    }

    /// Reads the state; empty when nothing was ever published.
    pub fn load(state_dir: &Path) -> Result<PublishState> {
        Ok(
            crate::state::record::read(&Self::path(state_dir), "the publish state")?
                .unwrap_or_default(),
        )
    }

    /// Writes the state atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        crate::state::record::write(&Self::path(state_dir), self)
    }

    /// Every exported (tree, ID), in a stable order.
    pub fn exported(&self) -> Vec<(TreeName, SnapshotId)> {
        self.trees
            .iter()
            .flat_map(|(t, s)| s.exported.iter().map(move |id| (t.clone(), id.clone())))
            .collect()
    }

    /// Whether `tree@id` is served.
    pub fn is_exported(&self, tree: &TreeName, id: &SnapshotId) -> bool {
        self.trees
            .get(tree)
            .is_some_and(|s| s.exported.contains(id))
    }

    /// The state after making `id` current: the old current joins the history,
    /// `id` joins the exported list. Publishing the current ID again changes nothing.
    pub fn with_published(&self, tree: &TreeName, id: &SnapshotId) -> PublishState {
        let mut next = self.clone();
        let t = next.trees.entry(tree.clone()).or_default();
        if t.current.as_ref() == Some(id) {
            return next;
        }
        if let Some(old) = t.current.take() {
            t.previous.retain(|p| p != &old);
            t.previous.push(old);
        }
        t.previous.retain(|p| p != id);
        t.current = Some(id.clone());
        if !t.exported.contains(id) {
            t.exported.push(id.clone());
            t.exported.sort();
        }
        next
    }

    /// The state with `tree@id` served (a group boots it) and the tree's
    /// current ID and history untouched.
    pub fn with_exported(&self, tree: &TreeName, id: &SnapshotId) -> PublishState {
        let mut next = self.clone();
        let t = next.trees.entry(tree.clone()).or_default();
        if !t.exported.contains(id) {
            t.exported.push(id.clone());
            t.exported.sort();
        }
        next
    }

    /// The state after `publish --rollback`: the newest previous ID becomes
    /// current and leaves the history; the replaced current stays exported but
    /// is not added to the history, so repeated rollbacks walk further back.
    /// `None` when there is no previous ID.
    pub fn with_rollback(&self, tree: &TreeName) -> Option<(SnapshotId, PublishState)> {
        let mut next = self.clone();
        let t = next.trees.get_mut(tree)?;
        let back = t.previous.pop()?;
        t.current = Some(back.clone());
        if !t.exported.contains(&back) {
            t.exported.push(back.clone());
            t.exported.sort();
        }
        Some((back, next))
    }

    /// The state after no longer serving `tree@id` (current included: the
    /// caller has checked `--force`). A tree with nothing left is dropped.
    pub fn with_unpublished(&self, tree: &TreeName, id: &SnapshotId) -> PublishState {
        let mut next = self.clone();
        if let Some(t) = next.trees.get_mut(tree) {
            t.exported.retain(|e| e != id);
            t.previous.retain(|e| e != id);
            if t.current.as_ref() == Some(id) {
                t.current = None;
            }
            if t.exported.is_empty() && t.current.is_none() {
                next.trees.remove(tree);
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TreeName {
        s.parse().unwrap()
    }
    fn i(n: u32) -> SnapshotId {
        format!("20261125T10150{n}Z").parse().unwrap()
    }

    #[test]
    fn json_shape_is_the_contract() {
        let s = PublishState::default()
            .with_published(&t("lab"), &i(1))
            .with_published(&t("lab"), &i(2));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"trees": {"lab": {
                "current": "20261125T101502Z",
                "previous": ["20261125T101501Z"],
                "exported": ["20261125T101501Z", "20261125T101502Z"]
            }}})
        );
        let back: PublishState = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn publish_rollback_unpublish_table() {
        let lab = t("lab");
        let s0 = PublishState::default();
        let s1 = s0.with_published(&lab, &i(1));
        assert_eq!(
            s1.with_published(&lab, &i(1)),
            s1,
            "publishing current again is a no-op"
        );
        let s3 = s1.with_published(&lab, &i(2)).with_published(&lab, &i(3));
        assert_eq!(s3.trees[&lab].previous, [i(1), i(2)]);
        assert_eq!(s3.exported().len(), 3);

        let (back, r1) = s3.with_rollback(&lab).unwrap();
        assert_eq!(back, i(2));
        assert_eq!(r1.trees[&lab].current, Some(i(2)));
        assert_eq!(r1.trees[&lab].previous, [i(1)]);
        assert_eq!(
            r1.trees[&lab].exported,
            [i(1), i(2), i(3)],
            "rollback unserves nothing"
        );
        let (back, r2) = r1.with_rollback(&lab).unwrap();
        assert_eq!(back, i(1));
        assert!(r2.with_rollback(&lab).is_none(), "no history left");
        assert!(s0.with_rollback(&lab).is_none());

        // republishing an old ID moves it out of the history
        let s4 = s3.with_published(&lab, &i(1));
        assert_eq!(s4.trees[&lab].previous, [i(2), i(3)]);

        let u = s3.with_unpublished(&lab, &i(1));
        assert_eq!(u.trees[&lab].exported, [i(2), i(3)]);
        assert_eq!(u.trees[&lab].previous, [i(2)]);
        let gone = s1.with_unpublished(&lab, &i(1));
        assert!(gone.trees.is_empty());

        // a group's ID is served without becoming the tree's
        let g = s1.with_exported(&lab, &i(5));
        assert_eq!(
            (
                g.trees[&lab].current.clone(),
                g.trees[&lab].exported.clone()
            ),
            (Some(i(1)), vec![i(1), i(5)])
        );
        assert_eq!(g.with_exported(&lab, &i(5)), g);
        assert!(s0.with_exported(&lab, &i(5)).trees[&lab].current.is_none());
    }

    #[test]
    fn missing_file_is_empty_and_save_load_round_trips() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            PublishState::load(d.path()).unwrap(),
            PublishState::default()
        );
        let s = PublishState::default().with_published(&t("a-b.c"), &i(1));
        s.save(d.path()).unwrap();
        assert_eq!(PublishState::load(d.path()).unwrap(), s);
        assert!(s.is_exported(&t("a-b.c"), &i(1)));
        assert!(!s.is_exported(&t("a-b.c"), &i(2)));
    }
}
