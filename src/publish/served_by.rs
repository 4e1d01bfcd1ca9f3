//! Which other boot servers serve each TREE@ID, for the boot entries'
//! fallbacks: `<state_dir>/publish/servers.json`, `{"trees": {"TREE": {"ID":
//! [{"server": "10.0.0.2", "path": "/srv/sidus/TREE/ID", "remote": "boot2"}]}}}`.
//!
//! Filled by `publish --on REMOTE` on the store that asks (for each remote
//! with a `--server`), and by `publish --fallback SERVER:PATH` on the
//! server that publishes (which `publish --on` passes to each remote: this
//! server and the other remotes that serve the ID); dropped when the ID is
//! unpublished here. A record is a hint for rendering: a server that
//! stopped serving the ID only costs nodes a failed download before the
//! next one.

use super::boot;
use super::config::PublishConfig;
use super::fallback::Fallback;
use super::fleet::groups::{Groups, Target};
use super::state::PublishState;
use super::steps::{self, publish_lock};
use super::undo::Undo;
use crate::state::lock::TreeLock;
use crate::state::record;
use crate::store::Store;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lock serializing writers of the file (no tree name starts with `-`).
const LOCK: &str = "-servers";

/// The servers file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServedBy {
    /// Per tree and ID, the other servers, in the order nodes try them.
    #[serde(default)]
    pub trees: BTreeMap<TreeName, BTreeMap<SnapshotId, Vec<Fallback>>>,
}

fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("publish").join("servers.json")
}

impl ServedBy {
    /// Reads the file; empty when there is none.
    pub fn load(state_dir: &Path) -> Result<ServedBy> {
        Ok(record::read(&file(state_dir), "the servers file")?.unwrap_or_default())
    }

    /// The other servers of `tree@id`.
    pub fn of(&self, tree: &TreeName, id: &SnapshotId) -> Vec<Fallback> {
        self.trees
            .get(tree)
            .and_then(|t| t.get(id))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds or replaces (by address) one server of `tree@id`, keeping the order.
    pub fn add(&mut self, tree: &TreeName, id: &SnapshotId, f: Fallback) {
        let list = self
            .trees
            .entry(tree.clone())
            .or_default()
            .entry(id.clone())
            .or_default();
        match list.iter_mut().find(|o| o.server == f.server) {
            Some(o) => *o = f,
            None => list.push(f),
        }
    }

    /// Replaces the list of `tree@id` (empty: none).
    pub fn set(&mut self, tree: &TreeName, id: &SnapshotId, list: Vec<Fallback>) {
        let t = self.trees.entry(tree.clone()).or_default();
        if list.is_empty() {
            t.remove(id);
        } else {
            t.insert(id.clone(), list);
        }
        if t.is_empty() {
            self.trees.remove(tree);
        }
    }
}

/// The other servers of `tree@id` recorded in this store.
pub fn fallbacks(state_dir: &Path, tree: &TreeName, id: &SnapshotId) -> Result<Vec<Fallback>> {
    Ok(ServedBy::load(state_dir)?.of(tree, id))
}

/// Changes the file under its lock, durably; returns what `f` returns.
pub fn update<T>(store: &Store, f: impl FnOnce(&mut ServedBy) -> T) -> Result<T> {
    let _lock = TreeLock::acquire(store.state_dir(), LOCK, store.lock_timeout())?;
    let mut all = ServedBy::load(store.state_dir())?;
    let out = f(&mut all);
    record::write(&file(store.state_dir()), &all)?;
    Ok(out)
}

/// Rewrites this server's boot entries that name `tree@id` (the tree's,
/// when it is current, and each group's) with the servers recorded now.
/// Returns the files rewritten.
pub fn refresh_entries(store: &Store, tree: &TreeName, id: &SnapshotId) -> Result<Vec<PathBuf>> {
    let state = PublishState::load(store.state_dir())?;
    if !state.is_exported(tree, id) {
        return Ok(Vec::new());
    }
    let _lock = store.write_lock(tree)?;
    let _plock = publish_lock(store)?;
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let target = Target {
        tree: tree.clone(),
        id: id.clone(),
    };
    let groups: Vec<_> = Groups::load(store.state_dir())?
        .groups
        .into_iter()
        .filter(|(_, s)| s.current.as_ref() == Some(&target))
        .map(|(g, _)| g)
        .collect();
    let current = state.trees.get(tree).and_then(|t| t.current.as_ref()) == Some(id);
    if !current && groups.is_empty() {
        return Ok(Vec::new());
    }
    let root = store.backend.snapshot_path(tree, id)?;
    let kernel = boot::find_kernel(&root, &target.to_string())?;
    let manifest = super::ops::root_hash(store, tree, id)?;
    let server = steps::server(&cfg)?;
    let others = fallbacks(store.state_dir(), tree, id)?;
    let mut undo = Undo::default();
    let mut written = Vec::new();
    let r = (|| -> Result<()> {
        if current {
            steps::write_boot_entries(
                &mut undo,
                &cfg,
                &server,
                (tree, id),
                &kernel.version,
                &manifest,
                &others,
            )?;
            written.push(boot::ipxe_path(&cfg.boot_root, tree));
        }
        for g in &groups {
            super::fleet::publish::write_entries(
                &mut undo,
                &cfg,
                g,
                &target,
                (&kernel.version, &server, &manifest),
                &others,
            )?;
            written.push(super::fleet::entries::group_ipxe(&cfg.boot_root, g));
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(written),
        Err(e) => Err(undo.unwind(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_kept_per_id_in_order_and_replaced_by_address() {
        let (t, a, b): (TreeName, SnapshotId, SnapshotId) = (
            "lab".parse().unwrap(),
            "20261125T101500Z".parse().unwrap(),
            "20261126T101500Z".parse().unwrap(),
        );
        let f = |s: &str, p: &str| Fallback::parse(&format!("{s}:{p}")).unwrap();
        let mut s = ServedBy::default();
        s.add(&t, &a, f("10.0.0.2", "/x"));
        s.add(&t, &a, f("10.0.0.3", "/y"));
        s.add(&t, &a, f("10.0.0.2", "/z"));
        let got: Vec<String> = s.of(&t, &a).iter().map(Fallback::arg).collect();
        assert_eq!(got, ["10.0.0.2:/z", "10.0.0.3:/y"]);
        assert!(s.of(&t, &b).is_empty(), "another ID has its own list");
        s.set(&t, &a, vec![]);
        assert_eq!(
            s,
            ServedBy::default(),
            "an empty list leaves nothing behind"
        );
    }
}
