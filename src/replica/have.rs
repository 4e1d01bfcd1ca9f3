//! `replica-have TREE...`: what a store has of some trees, for a primary
//! deciding what to send (reading only: it changes nothing).

use super::receive::tree_exists;
use super::wire::{Have, HaveTree, Resume, PROTOCOL};
use crate::state::intent::{Change, TreeState};
use crate::store::Store;
use anyhow::Result;
use sidus_backends::TreeName;

/// `replica-have TREE...`: what this store has of each tree.
pub fn have(store: &Store, trees: &[TreeName]) -> Result<Have> {
    let repl = store.backend.replication();
    let mut out = Vec::new();
    for tree in trees {
        let exists = tree_exists(store, tree)?;
        let st = TreeState::load(store.state_dir(), tree)?;
        let mut ids = if exists {
            store.backend.snapshot_ids(tree)?
        } else {
            Vec::new()
        };
        ids.sort();
        // A receive whose sidus died and was not settled yet is as resumable
        // as a settled one: reading changes nothing, it only reports.
        let pending = st.intent.as_ref().and_then(|i| match &i.change {
            Change::Receive { id, .. } => Some(id.clone()),
            _ => None,
        });
        let resumable = st.replica.as_ref().and_then(|r| r.resumable.clone());
        let resume = match (resumable.or(pending), repl) {
            (Some(id), Some(r)) => r.resume_token(tree)?.map(|token| Resume { id, token }),
            _ => None,
        };
        out.push(HaveTree {
            tree: tree.clone(),
            exists,
            replica: st.replica.is_some(),
            format: st.replica.as_ref().and_then(|r| r.format.clone()),
            ids,
            resume,
        });
    }
    Ok(Have {
        protocol: PROTOCOL,
        backend: store.backend.kind().to_string(),
        format: repl.map(|r| r.format().to_string()),
        trees: out,
    })
}
