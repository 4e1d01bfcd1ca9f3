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

/// A lock doctor holds for the time of its checks (nothing when the lock
/// was never taken: then no writer has ever worked on it).
pub struct Held(#[allow(dead_code)] Option<TreeLock>);

/// Takes lock `name` if it is free now; `None` when a writer holds it.
pub fn probe(store: &Store, name: &str) -> Result<Option<Held>> {
    Ok(match TreeLock::probe(store.state_dir(), name)? {
        Probe::Busy => None,
        Probe::Free(l) => Some(Held(l)),
    })
}

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
    /// leftovers or the publish state know of; none a writer holds.
    pub trees: Vec<TreeName>,
    /// The journal.
    pub journal: journal::Read,
    /// Every `(tree, id)` the journal names.
    pub journaled: BTreeSet<(String, String)>,
    /// The publish state; `None` when it is damaged (a record problem) or
    /// a publisher is at work.
    pub publish: Option<PublishState>,
    /// A publisher holds the publish lock: publishing is not checked.
    pub publish_busy: bool,
    /// What a writer holds: trees, and `(publish)`.
    pub busy: Vec<String>,
    _held: Vec<Held>,
}

impl<'a> Scan<'a> {
    /// Reads the store, holding (for the time of the checks) the lock of
    /// every tree it checks and the publish lock, each taken only if free:
    /// what is read then is no writer's step in progress. A tree a writer
    /// holds is left out, as busy.
    pub fn new(store: &'a Store, only: Option<&TreeName>) -> Result<Scan<'a>> {
        let state_dir = store.state_dir();
        let mut held = Vec::new();
        let mut busy = Vec::new();
        let publish = match probe(store, crate::publish::steps::PUBLISH_LOCK)? {
            None => {
                busy.push("(publish)".to_string());
                None
            }
            Some(l) => {
                held.push(l);
                match PublishState::load(state_dir) {
                    Ok(s) => Some(s),
                    Err(e) if e.downcast_ref::<DamagedRecord>().is_some() => None,
                    Err(e) => return Err(e),
                }
            }
        };
        let publish_busy = !busy.is_empty();
        let listed = store.backend.list_trees()?;
        let mut known: BTreeSet<TreeName> = listed.iter().map(|t| t.name.clone()).collect();
        known.extend(intent::trees_with_state(state_dir)?);
        if let Some(p) = &publish {
            known.extend(p.trees.keys().cloned());
        }
        let mut locked = BTreeSet::new();
        let mut take = |t: &TreeName, held: &mut Vec<Held>, busy: &mut Vec<String>| -> Result<()> {
            if locked.contains(t) || busy.contains(&t.to_string()) {
                return Ok(());
            }
            match probe(store, t.as_str())? {
                Some(l) => {
                    held.push(l);
                    locked.insert(t.clone());
                }
                None => busy.push(t.to_string()),
            }
            Ok(())
        };
        for t in known.iter().filter(|t| only.is_none_or(|o| o == *t)) {
            take(t, &mut held, &mut busy)?;
        }
        // Read under the locks.
        let snapshots = store.backend.list_snapshots(None)?;
        let leftovers = store.backend.leftovers()?;
        let journal = store.journal.read(None)?;
        for t in leftovers.iter().filter_map(|l| l.tree.as_ref()) {
            known.insert(t.clone());
            if only.is_none_or(|o| o == t) {
                take(t, &mut held, &mut busy)?;
            }
        }
        let trees = match only {
            Some(t) if !known.contains(t) => {
                bail!("no tree named '{t}', and nothing is left of one (see `sidus list`)")
            }
            Some(t) => vec![t.clone()],
            None => known.into_iter().collect(),
        };
        let trees = trees
            .into_iter()
            .filter(|t| !busy.contains(&t.to_string()))
            .collect();
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
            publish_busy,
            busy,
            _held: held,
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

    /// Whether a writer holds `tree`'s lock (it was not checked).
    pub fn is_busy(&self, tree: &TreeName) -> bool {
        self.busy.contains(&tree.to_string())
    }

    /// How many snapshot IDs are published.
    pub fn published(&self) -> usize {
        self.publish.as_ref().map_or(0, |p| {
            p.exported().iter().filter(|(t, _)| self.wants(t)).count()
        })
    }
}
