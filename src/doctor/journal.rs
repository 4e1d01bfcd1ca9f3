//! The journal against the storage: every snapshot in storage is named by
//! some entry (`snapshots` holds `ID` under the tree's entry, or `TREE@ID`);
//! damaged lines are counted.

use super::repair::Action;
use super::scan::Scan;
use super::{repair_cmd, Problem};
use crate::state::journal::Entry;
use sidus_backends::TreeName;
use std::collections::BTreeSet;

/// Every `(tree, id)` some entry names.
pub fn named(entries: &[Entry]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for e in entries {
        for s in &e.snapshots {
            match s.split_once('@') {
                Some((t, id)) => out.insert((t.to_string(), id.to_string())),
                None => match &e.tree {
                    Some(t) => out.insert((t.clone(), s.clone())),
                    None => false,
                },
            };
        }
    }
    out
}

/// `tree`'s snapshots that no entry names; the caller holds its lock and
/// has found no pending intent (whose settling journals its snapshot).
pub fn check_tree(scan: &Scan, tree: &TreeName, out: &mut Vec<Problem>) {
    for s in scan.snapshots.iter().filter(|s| &s.tree == tree) {
        if scan
            .journaled
            .contains(&(tree.to_string(), s.id.to_string()))
        {
            continue;
        }
        out.push(
            Problem::error(
                "journal",
                Some(tree),
                format!(
                    "snapshot {tree}@{} ({}, made {} by `{}`) is in storage, but no journal entry names it",
                    s.id,
                    s.kind,
                    s.created.format("%Y-%m-%d %H:%M:%S UTC"),
                    s.command
                ),
                format!("{}: journals an \"adopt\" entry for it", repair_cmd(Some(tree))),
            )
            .repaired_by(Action::Adopt(tree.clone(), s.id.clone())),
        );
    }
}

/// Damaged lines: skipped by every reader, so only worth a warning.
pub fn check_store(scan: &Scan, out: &mut Vec<Problem>) {
    let n = scan.journal.damaged;
    if n > 0 {
        out.push(Problem::warning(
            "journal",
            None,
            format!(
                "{} has {n} damaged line(s) (a crash mid-write, NUL padding or bad bytes): every reader skips them",
                scan.store.journal.path().display()
            ),
            "nothing to do: the entries around them are intact".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_named_bare_under_the_tree_or_as_tree_at_id() {
        let entry = |tree: Option<&str>, snaps: &[&str]| Entry {
            time: chrono::Utc::now(),
            user: "root".into(),
            command: "sidus x".into(),
            action: "x".into(),
            tree: tree.map(str::to_string),
            snapshots: snaps.iter().map(|s| s.to_string()).collect(),
            outcome: "ok".into(),
            intent: None,
        };
        let n = named(&[
            entry(Some("lab"), &["20261125T101500Z"]),
            entry(Some("copy"), &["lab@20261125T101600Z"]),
            entry(None, &["orphan"]),
        ]);
        let want: BTreeSet<(String, String)> =
            [("lab", "20261125T101500Z"), ("lab", "20261125T101600Z")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        assert_eq!(n, want);
    }
}
