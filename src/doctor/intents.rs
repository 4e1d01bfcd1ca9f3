//! Pending intents: a change whose sidus died before journaling it. Each is
//! named with the dead process, its command and when it started, and what the
//! next writer (or `--repair`) will do about it.

use super::repair::Action;
use super::scan::Scan;
use super::{repair_cmd, Problem};
use crate::state::intent::{clone_slots, Change, Intent, Slot};
use anyhow::Result;
use sidus_backends::TreeName;

/// The intent in `tree`'s own slot; doctor holds the tree's lock.
pub fn check_tree(scan: &Scan, tree: &TreeName, out: &mut Vec<Problem>) -> Result<()> {
    let slot = Slot::Tree(tree.clone());
    // A damaged record is a record problem, reported there.
    if let Ok(Some(intent)) = slot.load(scan.store.state_dir()) {
        out.push(problem(scan, &slot, &intent, Some(tree)));
    }
    Ok(())
}

/// Clone intents (they hold two trees' locks: both must be free).
pub fn check_clones(scan: &Scan, out: &mut Vec<Problem>, busy: &mut Vec<String>) -> Result<()> {
    for slot in clone_slots(scan.store.state_dir())? {
        check_slot(scan, &slot, out, busy)?;
    }
    Ok(())
}

/// The publish intent; doctor holds the publish lock.
pub fn check_publish(scan: &Scan, out: &mut Vec<Problem>, busy: &mut Vec<String>) -> Result<()> {
    check_slot(scan, &Slot::Publish, out, busy)
}

fn check_slot(
    scan: &Scan,
    slot: &Slot,
    out: &mut Vec<Problem>,
    busy: &mut Vec<String>,
) -> Result<()> {
    let state_dir = scan.store.state_dir();
    let Ok(Some(intent)) = slot.load(state_dir) else {
        return Ok(());
    };
    let trees = intent.change.trees();
    if scan.only.is_some() && !trees.iter().any(|t| scan.wants(t)) {
        return Ok(());
    }
    // Every tree it involves must be free: doctor holds those it checks,
    // and takes the others (a clone's source, with TREE) for the moment.
    let mut held = Vec::new();
    for t in trees.iter().filter(|t| !scan.trees.contains(t)) {
        match super::scan::probe(scan.store, t.as_str())? {
            Some(l) => held.push(l),
            None => {
                if !busy.contains(&t.to_string()) {
                    busy.push(t.to_string());
                }
                return Ok(());
            }
        }
    }
    // Read again under every lock: its writer may have just settled it.
    if let Ok(Some(intent)) = slot.load(state_dir) {
        let tree = intent.change.trees().last().map(|t| (*t).clone());
        out.push(problem(scan, slot, &intent, tree.as_ref()));
    }
    Ok(())
}

fn problem(scan: &Scan, slot: &Slot, intent: &Intent, tree: Option<&TreeName>) -> Problem {
    let file = slot.path(scan.store.state_dir());
    let alive = std::path::Path::new(&format!("/proc/{}", intent.pid)).exists();
    let what = format!(
        "an interrupted `{}` (by {}, started {}) left its {} unfinished: sidus pid {} {}; record {}; {}",
        intent.command,
        intent.user,
        intent.started.format("%Y-%m-%d %H:%M:%S UTC"),
        intent.action,
        intent.pid,
        if alive {
            "no longer holds the lock (the PID now names another process)"
        } else {
            "is dead"
        },
        file.display(),
        next_step(scan, &intent.change)
    );
    let action = match tree {
        Some(t) => Action::Settle(t.clone()),
        None => Action::SettlePublish,
    };
    Problem::error("intent", tree, what, repair_cmd(tree)).repaired_by(action)
}

/// What the next writer does about `change`, in words.
fn next_step(scan: &Scan, change: &Change) -> String {
    match change {
        Change::Create { tree } => format!("the next writer removes the half-made tree '{tree}'"),
        Change::Snapshot { tree, id } if scan.has_snapshot(tree, id) => {
            format!("snapshot {tree}@{id} was made; the next writer journals it")
        }
        Change::Snapshot { tree, id } => {
            format!("snapshot {tree}@{id} was not made; the next writer journals the failure")
        }
        Change::Delete { ids, .. } => format!(
            "the next writer finishes deleting the {} snapshot(s) it named",
            ids.len()
        ),
        Change::Destroy { tree } => format!("the next writer finishes destroying '{tree}'"),
        Change::Rollback {
            tree,
            target,
            safety,
        } if scan.has_snapshot(tree, safety) => format!(
            "its safety snapshot {safety} exists: the next writer finishes rolling '{tree}' back to {target}"
        ),
        Change::Rollback { .. } => {
            "no safety snapshot was made: the next writer journals that nothing changed".into()
        }
        Change::Clone {
            source, id, new, ..
        } => format!("the next writer finishes the clone of {source}@{id} to '{new}', or undoes it"),
        Change::Run(r) => format!(
            "the run of `{}` in '{}' (pre snapshot {}): the next writer ends what it left in the tree, then keeps it or rolls it back to pre, as the run's policy says",
            r.command, r.tree, r.pre
        ),
        Change::Publish { tree, id } => format!(
            "the next publisher finishes publishing {tree}@{id} if the boot entries name it, else undoes it \
             (the publishing checks run once it is settled)"
        ),
        Change::Unpublish { tree, id, .. } => {
            format!("the next publisher finishes unpublishing {tree}@{id}")
        }
        Change::Restore => "the next publisher runs the restore again".into(),
        Change::Inventory { .. } => {
            "the next inventory change keeps the new node list if it was written, else the old one".into()
        }
        Change::PublishGroup { group, tree, id, .. } => format!(
            "the next publisher finishes publishing {tree}@{id} to group '{group}' if its entry names it, else undoes it"
        ),
        Change::UnpublishGroup { group } => {
            format!("the next publisher finishes sending group '{group}' back to the default entry")
        }
        Change::Receive { tree, id, .. } => format!(
            "the next writer of '{tree}' lists the received {tree}@{id} if its stream was whole, else removes it \
             (ZFS keeps a resumable one for the next replicate)"
        ),
    }
}
