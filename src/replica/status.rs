//! `sidus remote status`: per remote and tree, how far the replica is behind.

use super::remotes::Remotes;
use super::send::{have, plan};
use crate::store::Store;
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sidus_backends::{SnapshotId, TreeName};

/// One row of `remote status`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The remote.
    pub remote: String,
    /// The tree.
    pub tree: TreeName,
    /// The newest snapshot both have.
    pub newest_common: Option<SnapshotId>,
    /// Snapshots the remote lacks after it.
    pub behind: usize,
    /// Bytes the next `replicate` would send, as the backend estimates them.
    pub bytes: Option<u64>,
    /// When the tree was last replicated there.
    pub last_replicated: Option<DateTime<Utc>>,
    /// Why the remote could not be asked or replicated into, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rows for `names` (every remote when empty) and `tree` (every tree
/// of this store that is not itself a replica, when `None`).
pub fn status(store: &Store, names: &[String], tree: Option<&TreeName>) -> Result<Vec<Row>> {
    let remotes = Remotes::load(store.state_dir())?.pick(names)?;
    let trees: Vec<TreeName> = match tree {
        Some(t) => vec![crate::trees::find_tree(store, t)?.name],
        None => {
            let mut v = Vec::new();
            for t in store.backend.list_trees()? {
                if super::replica_of(store.state_dir(), &t.name)?.is_none() {
                    v.push(t.name);
                }
            }
            v
        }
    };
    let repl = store.backend.replication();
    let mut rows = Vec::new();
    for remote in &remotes {
        let row = |tree: &TreeName| Row {
            remote: remote.name.clone(),
            tree: tree.clone(),
            newest_common: None,
            behind: 0,
            bytes: None,
            last_replicated: remote.trees.get(tree).map(|r| r.time),
            error: None,
        };
        let answer = match have(remote, &trees) {
            Ok(h) => h,
            Err(e) => {
                rows.extend(trees.iter().map(|t| Row {
                    error: Some(crate::error_chain(&e)),
                    ..row(t)
                }));
                continue;
            }
        };
        let native = repl.filter(|r| answer.format.as_deref() == Some(r.format()));
        for (tree, there) in trees.iter().zip(&answer.trees) {
            let mut r = row(tree);
            let mut local = store.backend.list_snapshots(Some(tree))?;
            local.sort_by(|a, b| a.id.cmp(&b.id));
            match plan(tree, &local, there) {
                Ok(p) => {
                    r.behind = p.send.len();
                    r.bytes = match (native, p.send.last()) {
                        (Some(n), Some(newest))
                            if n.can_send(tree, &newest.id, p.common.as_ref())? =>
                        {
                            // The size is a hint: a failed estimate (btrfs
                            // send can refuse a snapshot taken a moment ago)
                            // leaves it unknown, not the whole status.
                            match n.estimate(tree, &newest.id, p.common.as_ref()) {
                                Ok(b) => b,
                                Err(e) => {
                                    eprintln!(
                                        "sidus: warning: bytes to send unknown: {}",
                                        crate::error_chain(&e.into())
                                    );
                                    None
                                }
                            }
                        }
                        (_, None) => Some(0),
                        _ => None,
                    };
                    r.newest_common = p.common;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
            rows.push(r);
        }
    }
    Ok(rows)
}
