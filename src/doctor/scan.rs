//! What every check reads, read once: the trees and snapshots in storage,
//! the backend's leftovers, the journal, the publish state.

use crate::publish::state::PublishState;
use crate::state::intent;
use crate::state::journal;
use crate::state::lock::{Probe, TreeLock};
use crate::state::record::DamagedRecord;
use crate::store::Store;
use anyhow::{bail, Result};
use sidus_backends::{Leftover, Snapshot, SnapshotId, TreeName, TreeRecord};
use std::collections::BTreeSet;

/// A lock doctor holds for the time of one tree's checks (nothing when the
/// lock was never taken: then no writer has ever worked on it).
pub struct Held(#[allow(dead_code)] Option<TreeLock>);

/// The store as the checks see it.
pub struct Scan<'a> {
    /// The store.
    pub store: &'a Store,
    /// The one tree asked about, if any.
    pub only: Option<TreeName>,
    /// Every tree in storage.
    pub listed: Vec<TreeRecord>,
    /// Every snapshot in storage.
    pub snapshots: Vec<Snapshot>,
    /// What the backend says interrupted steps left.
    pub leftovers: Vec<Leftover>,
    /// The trees to check: `only`, or every tree storage, state files,
    /// leftovers or the publish state know of.
    pub trees: Vec<TreeName>,
    /// The journal.
    pub journal: journal::Read,
    /// Every `(tree, id)` the journal names.
    pub journaled: BTreeSet<(String, String)>,
    /// The publish state; `None` when it is damaged (a record problem).
    pub publish: Option<PublishState>,
}

impl<'a> Scan<'a> {
    /// Reads the store.
    pub fn new(store: &'a Store, only: Option<&TreeName>) -> Result<Scan<'a>> {
        let listed = store.backend.list_trees()?;
        let snapshots = store.backend.list_snapshots(None)?;
        let leftovers = store.backend.leftovers()?;
        let publish = match PublishState::load(store.state_dir()) {
            Ok(s) => Some(s),
            Err(e) if e.downcast_ref::<DamagedRecord>().is_some() => None,
            Err(e) => return Err(e),
        };
        let mut known: BTreeSet<TreeName> = listed.iter().map(|t| t.name.clone()).collect();
        known.extend(intent::trees_with_state(store.state_dir())?);
        known.extend(leftovers.iter().filter_map(|l| l.tree.clone()));
        if let Some(p) = &publish {
            known.extend(p.trees.keys().cloned());
        }
        let trees = match only {
            Some(t) if !known.contains(t) => {
                bail!("no tree named '{t}', and nothing is left of one (see `sidus list`)")
            }
            Some(t) => vec![t.clone()],
            None => known.into_iter().collect(),
        };
        let journal = store.journal.read(None)?;
        Ok(Scan {
            journaled: super::journal::named(&journal.entries),
            journal,
            store,
            only: only.cloned(),
            listed,
            snapshots,
            leftovers,
            trees,
            publish,
        })
    }

    /// Whether checks of `tree` are wanted.
    pub fn wants(&self, tree: &TreeName) -> bool {
        self.only.as_ref().is_none_or(|o| o == tree)
    }

    /// Whether `tree` exists in storage.
    pub fn exists(&self, tree: &TreeName) -> bool {
        self.record(tree).is_some()
    }

    /// `tree`'s record in storage.
    pub fn record(&self, tree: &TreeName) -> Option<&TreeRecord> {
        self.listed.iter().find(|t| &t.name == tree)
    }

    /// Whether `tree@id` exists in storage.
    pub fn has_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> bool {
        self.snapshots
            .iter()
            .any(|s| &s.tree == tree && &s.id == id)
    }

    /// Takes `tree`'s lock if it is free now; `None` when a writer holds it.
    pub fn probe(&self, tree: &TreeName) -> Result<Option<Held>> {
        self.probe_name(tree.as_str())
    }

    /// Takes the publish lock if it is free now; `None` when a publisher holds it.
    pub fn probe_publish(&self) -> Result<Option<Held>> {
        self.probe_name(crate::publish::steps::PUBLISH_LOCK)
    }

    fn probe_name(&self, name: &str) -> Result<Option<Held>> {
        Ok(match TreeLock::probe(self.store.state_dir(), name)? {
            Probe::Busy => None,
            Probe::Free(l) => Some(Held(l)),
        })
    }

    /// How many snapshot IDs are published.
    pub fn published(&self) -> usize {
        self.publish.as_ref().map_or(0, |p| {
            p.exported().iter().filter(|(t, _)| self.wants(t)).count()
        })
    }
}
