//! What interrupted steps leave in a ZFS store: a rollback's swap dataset
//! (`D/swap/T`), history datasets whose snapshots are all gone, and history
//! datasets of a tree that no longer exists. Recovery reads the mount table
//! and `.zfs/snapshot` (no `zfs` command when there is nothing to do), since
//! every writer runs it before its change.

use super::mounts::zfs_mounts;
use super::Zfs;
use crate::{argv, Backend, Leftover, Result, TreeName};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

impl Zfs {
    /// The store's leftovers (see [`crate::Backend::leftovers`]), from one
    /// `zfs list` of the swap and history datasets and their snapshots.
    pub(super) fn find_leftovers(&self) -> Result<Vec<Leftover>> {
        let swap_parent = format!("{}/swap", self.dataset);
        let out = match self.runner.run_string(&argv![
            "zfs",
            "list",
            "-H",
            "-p",
            "-t",
            "filesystem,snapshot",
            "-r",
            "-d",
            "2",
            "-o",
            format!("name,{}tree", super::props::PREFIX),
            &swap_parent,
            self.history_ds()
        ]) {
            Ok(out) => out,
            // A store made before swap/ existed: nothing can be left there.
            Err(e) if e.stderr.contains("does not exist") => String::new(),
            Err(e) => return Err(Self::classify("list swap and history datasets".into(), e)),
        };
        let rows = parse_rows(&out);
        let trees: BTreeSet<TreeName> = self.list_trees()?.into_iter().map(|t| t.name).collect();
        let mounted = zfs_mounts();
        let mut found = Vec::new();
        for (ds, (tree, snaps)) in &rows {
            let Some(tree) = tree else { continue };
            let exists = trees.contains(tree);
            let visible = mounted.contains_key(ds);
            let leftover = if ds.starts_with(&format!("{swap_parent}/")) {
                if exists && *snaps == 0 {
                    Leftover {
                        what: "the copy an interrupted rollback had not swapped in yet".into(),
                        object: ds.clone(),
                        tree: Some(tree.clone()),
                        holds_data: false,
                        recover: visible,
                        by_hand: format!("zfs destroy {ds}"),
                    }
                } else if exists {
                    Leftover {
                        what: format!(
                            "a rollback's swap dataset with {snaps} snapshot(s) of its own"
                        ),
                        object: ds.clone(),
                        tree: Some(tree.clone()),
                        holds_data: true,
                        recover: false,
                        by_hand: format!("zfs list -t snapshot -r {ds}; then zfs destroy -r {ds}"),
                    }
                } else {
                    Leftover {
                        what: "the new working dataset of a rollback cut between its renames"
                            .into(),
                        object: ds.clone(),
                        tree: Some(tree.clone()),
                        holds_data: true,
                        recover: visible,
                        by_hand: format!("zfs rename {ds} {}", self.working_ds(tree)),
                    }
                }
            } else if self.history_owner(ds).is_none() {
                continue;
            } else if *snaps == 0 {
                Leftover {
                    what: "a history dataset whose snapshots are all deleted".into(),
                    object: ds.clone(),
                    tree: Some(tree.clone()),
                    holds_data: false,
                    recover: visible && exists,
                    by_hand: format!("zfs destroy {ds}"),
                }
            } else if !exists {
                Leftover {
                    what: format!(
                        "a history dataset of tree '{tree}', which no longer exists, with {snaps} snapshot(s)"
                    ),
                    object: ds.clone(),
                    tree: Some(tree.clone()),
                    holds_data: true,
                    recover: false,
                    by_hand: format!("zfs destroy -r {ds}"),
                }
            } else {
                continue;
            };
            found.push(leftover);
        }
        Ok(found)
    }

    /// Settles what an interrupted rollback of `tree` left (see
    /// [`Zfs::clear_swap`]) and destroys its emptied history datasets.
    pub(super) fn recover_tree(&self, tree: &TreeName) -> Result<Vec<String>> {
        let mounted = zfs_mounts();
        let mut done = Vec::new();
        let swap = self.swap_ds(tree);
        if mounted.contains_key(&swap) {
            self.clear_swap(tree)?;
            done.push(format!("settled {swap}, left by an interrupted rollback"));
        }
        for (ds, mp) in &mounted {
            if self.history_owner(ds) != Some(tree.as_str()) || has_snapshots(mp) {
                continue;
            }
            // No data in it: a failure (it is busy) must not stop the
            // tree's writers; doctor keeps naming it.
            done.push(
                match self.zfs(
                    format!("remove the emptied history dataset {ds}"),
                    argv!["destroy", ds],
                ) {
                    Ok(_) => format!("removed the emptied history dataset {ds}"),
                    Err(e) => format!("could not remove {ds}: {e}"),
                },
            );
        }
        Ok(done)
    }
}

/// Whether the dataset mounted at `mp` has snapshots (listing `.zfs/snapshot`
/// mounts none of them). Unreadable counts as having some.
fn has_snapshots(mp: &Path) -> bool {
    std::fs::read_dir(mp.join(".zfs").join("snapshot"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(true)
}

/// `name<TAB>sidus:tree` rows into dataset -> (tree, snapshot count).
fn parse_rows(out: &str) -> BTreeMap<String, (Option<TreeName>, usize)> {
    let mut rows: BTreeMap<String, (Option<TreeName>, usize)> = BTreeMap::new();
    for line in out.lines() {
        let mut f = line.split('\t');
        let (Some(name), Some(tree)) = (f.next(), f.next()) else {
            continue;
        };
        match name.split_once('@') {
            Some((ds, _)) => rows.entry(ds.to_string()).or_default().1 += 1,
            None => {
                rows.entry(name.to_string()).or_default().0 =
                    super::props::decode(tree).and_then(|t| t.parse().ok())
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_snapshots_per_dataset() {
        let out = "tank/s/swap\t-\n\
                   tank/s/swap/lab\tlab\n\
                   tank/s/history\t-\n\
                   tank/s/history/lab.20261125T101500Z\tlab\n\
                   tank/s/history/lab.20261125T101500Z@20261125T101600Z\tlab\n\
                   tank/s/history/lab.20261125T101500Z@20261125T101700Z\tlab\n";
        let rows = parse_rows(out);
        let lab: TreeName = "lab".parse().unwrap();
        assert_eq!(rows["tank/s/swap/lab"], (Some(lab.clone()), 0));
        assert_eq!(rows["tank/s/history/lab.20261125T101500Z"], (Some(lab), 2));
        assert_eq!(rows["tank/s/swap"], (None, 0));
    }
}
