//! `replica promote TREE`: a replica becomes a tree of its own store.

use crate::state::intent::TreeState;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use sidus_backends::{SnapshotId, TreeName};

/// `replica promote TREE`: the replica becomes a tree of this store, its
/// working tree the newest snapshot received. Returns that snapshot.
pub fn promote(store: &Store, tree: &TreeName) -> Result<Option<SnapshotId>> {
    let _lock = store.write_lock(tree)?;
    store.journaled("replica promote", Some(tree), || {
        crate::trees::find_tree(store, tree)?;
        let mut st = TreeState::load(store.state_dir(), tree)?;
        let Some(of) = st.replica.clone() else {
            bail!("tree '{tree}' is not a replica: nothing to promote");
        };
        let repl = store.backend.replication();
        if let (Some(repl), Some(pending)) = (repl, &of.resumable) {
            repl.abort_receive(tree, pending)?;
        }
        let latest = store.backend.snapshot_ids(tree)?.into_iter().max();
        if let (Some(id), false) = (&latest, repl.is_some_and(|r| r.working_follows())) {
            store
                .backend
                .replace_working(tree, id)
                .with_context(|| format!("make {tree}@{id} the working tree"))?;
        }
        st.replica = None;
        st.save(store.state_dir(), tree)?;
        let ids = latest.iter().map(|i| i.to_string()).collect();
        Ok((latest, ids))
    })
}
