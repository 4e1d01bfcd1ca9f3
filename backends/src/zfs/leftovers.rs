//! What interrupted steps leave in a ZFS store: a rollback's swap dataset
//! (`D/swap/T`), history datasets whose snapshots are all gone, and history
//! datasets of a tree that no longer exists. The tree's recovery
//! ([`crate::Backend::recover`]) settles the swap and removes emptied history.

use super::Zfs;
use crate::{argv, Backend, Leftover, Result, TreeName};
use std::collections::{BTreeMap, BTreeSet};

impl Zfs {
    /// The swap and history datasets with their tree and snapshot count, from
    /// one `zfs list`.
    fn swap_and_history(&self) -> Result<BTreeMap<String, (Option<TreeName>, usize)>> {
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
            format!("{}/swap", self.dataset),
            self.history_ds()
        ]) {
            Ok(out) => out,
            // A store made before swap/ existed: nothing can be left there.
            Err(e) if e.stderr.contains("does not exist") => String::new(),
            Err(e) => {
                return Err(super::errors::classify(
                    "list swap and history datasets".into(),
                    e,
                ))
            }
        };
        Ok(parse_rows(&out))
    }

    /// The store's leftovers (see [`crate::Backend::leftovers`]).
    pub(super) fn find_leftovers(&self) -> Result<Vec<Leftover>> {
        let swap_parent = format!("{}/swap", self.dataset);
        let rows = self.swap_and_history()?;
        let trees: BTreeSet<TreeName> = self.list_trees()?.into_iter().map(|t| t.name).collect();
        let mut found = Vec::new();
        for (ds, (tree, snaps)) in &rows {
            let Some(tree) = tree else { continue };
            let exists = trees.contains(tree);
            let leftover = if ds.starts_with(&format!("{swap_parent}/")) {
                if exists && *snaps == 0 {
                    Leftover {
                        what: "the copy an interrupted rollback had not swapped in yet".into(),
                        object: ds.clone(),
                        tree: Some(tree.clone()),
                        holds_data: false,
                        recover: true,
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
                        recover: true,
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
                    recover: exists,
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

    /// Destroys `tree`'s history datasets that have no snapshot left (see
    /// [`Zfs::collect_history`]). Says what it did.
    pub(super) fn collect_emptied_history(&self, tree: &TreeName) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (ds, (owner, snaps)) in self.swap_and_history()? {
            if owner.as_ref() != Some(tree) || snaps > 0 || self.history_owner(&ds).is_none() {
                continue;
            }
            self.zfs(
                format!("remove the emptied history dataset {ds}"),
                argv!["destroy", &ds],
            )?;
            done.push(format!("removed the emptied history dataset {ds}"));
        }
        Ok(done)
    }
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
