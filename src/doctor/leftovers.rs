//! What interrupted steps left in storage (the backend says what, see
//! `sidus_backends::Leftover`), and clone origins that are not true.

use super::repair::Action;
use super::scan::Scan;
use super::{repair_cmd, Problem};
use sidus_backends::TreeName;

/// `tree`'s leftovers; the caller holds the tree's lock.
pub fn check_tree(scan: &Scan, tree: &TreeName, out: &mut Vec<Problem>) {
    for l in scan
        .leftovers
        .iter()
        .filter(|l| l.tree.as_ref() == Some(tree))
    {
        let what = format!(
            "{}: {}{}",
            l.object,
            l.what,
            if l.holds_data { " (it holds data)" } else { "" }
        );
        out.push(if l.recover {
            Problem::error("leftover", Some(tree), what, repair_cmd(Some(tree)))
                .repaired_by(Action::Settle(tree.clone()))
        } else {
            let fix = if l.holds_data {
                format!("by hand, after copying out what you need: {}", l.by_hand)
            } else {
                l.by_hand.clone()
            };
            Problem::error("leftover", Some(tree), what, fix)
        });
    }
}

/// Whether the origin `tree` records (it is a clone) exists.
pub fn check_origin(scan: &Scan, tree: &TreeName, out: &mut Vec<Problem>) {
    let Some(origin) = scan.record(tree).and_then(|r| r.origin.as_ref()) else {
        return;
    };
    let why = if !scan.exists(&origin.tree) {
        format!("tree '{}' does not exist", origin.tree)
    } else if !scan.has_snapshot(&origin.tree, &origin.id) {
        format!("'{}' has no snapshot {}", origin.tree, origin.id)
    } else {
        return;
    };
    out.push(Problem::error(
        "origin",
        Some(tree),
        format!("'{tree}' is recorded as a clone of {origin}, but {why} (removed outside sidus?): `sidus list` shows a false ORIGIN"),
        format!(
            "nothing depends on the origin any more: mend the record of '{tree}' in the storage by hand \
             (btrfs: snapshots/{tree}/tree.json; zfs: `zfs inherit sidus:origin`; lvm: `lvchange --deltag`)"
        ),
    ));
}
