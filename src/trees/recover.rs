//! Recovery: what the next writer of a tree does first, holding its lock.
//! The sidus that wrote an intent found now is dead (it held the lock), so its
//! change is finished where it was decided (delete, prune, destroy, rollback
//! once its safety snapshot exists, clone) or undone where it is worthless
//! half done (create), and journaled under the dead process's command line,
//! once: an entry already journaled under the intent's ID is not written again.

use crate::state::intent::{clones_involving, Change, Intent, Slot};
use crate::state::journal::Entry;
use crate::state::lock::TreeLock;
use crate::store::Store;
use anyhow::{Context, Result};
use sidus_backends::TreeName;

/// What recovery made of an interrupted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The change is complete now: what was done, and the snapshots touched.
    Finished(String, Vec<String>),
    /// The change did not land as asked: it was taken back, had not begun,
    /// or (a run whose command was cut short) ended as a failure; what was
    /// done, and the snapshots touched.
    Failed(String, Vec<String>),
}

/// What the next writer of `tree` does first: when a change `tree` is part of
/// was interrupted (an intent is left), the backend's half-done steps are
/// finished or removed and the change is settled. With no intent (the common
/// case) it costs a few small file reads and changes nothing: every backend
/// step that can be cut short runs under an intent.
pub fn recover_pending(store: &Store, tree: &TreeName) -> Result<()> {
    let pending = Slot::Tree(tree.clone()).load(store.state_dir())?.is_some()
        || !clones_involving(store.state_dir(), tree)?.is_empty()
        || Slot::Publish
            .load(store.state_dir())?
            .is_some_and(|i| i.change.trees().contains(&tree));
    if pending {
        recover_tree(store, tree)?;
    }
    Ok(())
}

/// Finishes or undoes every interrupted change `tree` is part of, and what
/// the backend's own steps left (`sidus doctor --repair` calls this for
/// leftovers of older sidus versions too). The caller holds `tree`'s lock;
/// recovery takes the other locks a change needs.
pub fn recover_tree(store: &Store, tree: &TreeName) -> Result<()> {
    for note in store.backend.recover(tree)? {
        log::warn!("tree '{tree}': {note}");
    }
    let slot = Slot::Tree(tree.clone());
    if let Some(intent) = slot.load(store.state_dir())? {
        settle(store, &slot, &intent)?;
    }
    for (slot, intent) in clones_involving(store.state_dir(), tree)? {
        // The other tree's lock too: its writer may be alive (this clone is
        // then in progress, not interrupted) or waiting behind us.
        let others: Vec<TreeLock> = intent
            .change
            .trees()
            .into_iter()
            .filter(|t| *t != tree)
            .map(|t| store.lock(t))
            .collect::<Result<_>>()?;
        // Re-read: whoever held the other lock may have settled it.
        if let Some(intent) = slot.load(store.state_dir())? {
            settle(store, &slot, &intent)?;
        }
        drop(others);
    }
    crate::publish::recover::recover_for_tree(store, tree)
}

/// Finishes or undoes `intent`, journals it and clears `slot`.
pub fn settle(store: &Store, slot: &Slot, intent: &Intent) -> Result<()> {
    if store.journal.has_intent(&intent.id)? {
        // It had completed and been journaled; only the clearing was lost.
        return slot.clear(store.state_dir());
    }
    let file = slot.path(store.state_dir());
    let result = finish(store, intent).with_context(|| {
        format!(
            "an interrupted `{}` (sidus pid {}, started {}) could not be finished; its record is {}; \
             see `sidus doctor`",
            intent.command,
            intent.pid,
            intent.started.format("%Y-%m-%d %H:%M:%S UTC"),
            file.display()
        )
    });
    let died = format!(
        "sidus pid {} died during it (started {})",
        intent.pid,
        intent.started.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let (outcome, snapshots, said) = match &result {
        Ok(Recovered::Finished(what, ids)) => (
            format!("ok: {died}; recovery finished it: {what}"),
            ids.clone(),
            format!("finished the interrupted {}: {what}", intent.action),
        ),
        Ok(Recovered::Failed(what, ids)) => (
            format!("failed: {died}; recovery ended it: {what}"),
            ids.clone(),
            format!("ended the interrupted {} as failed: {what}", intent.action),
        ),
        Err(e) => (
            format!("failed: {died}; recovery failed: {e:#}"),
            vec![],
            String::new(),
        ),
    };
    let entry = Entry {
        time: chrono::Utc::now(),
        user: intent.user.clone(),
        command: intent.command.clone(),
        action: intent.action.clone(),
        tree: intent.change.trees().last().map(|t| t.to_string()),
        snapshots,
        outcome,
        intent: Some(intent.id.clone()),
    };
    store.journal.append(&entry)?;
    result?;
    eprintln!("sidus: {said}");
    slot.clear(store.state_dir())
}

/// The recovery of each kind of change.
fn finish(store: &Store, intent: &Intent) -> Result<Recovered> {
    let backend = &store.backend;
    Ok(match &intent.change {
        Change::Create { tree } => {
            if backend.list_trees()?.iter().any(|t| &t.name == tree) {
                backend.destroy_tree(tree)?;
                Recovered::Failed(format!("removed the half-made tree '{tree}'"), vec![])
            } else {
                Recovered::Failed("nothing had been made".into(), vec![])
            }
        }
        Change::Snapshot { tree, id } => {
            if backend.snapshot_ids(tree)?.contains(id) {
                Recovered::Finished(format!("snapshot {tree}@{id} exists"), vec![id.to_string()])
            } else {
                Recovered::Failed(format!("snapshot {tree}@{id} had not been made"), vec![])
            }
        }
        Change::Delete { tree, ids } => {
            let left = backend.snapshot_ids(tree)?;
            let doomed: Vec<_> = ids.iter().filter(|i| left.contains(i)).cloned().collect();
            backend.delete_snapshots(tree, &doomed)?;
            for id in ids {
                crate::manifest::kept::forget(store.state_dir(), tree, Some(id));
            }
            Recovered::Finished(
                format!(
                    "removed the {} snapshot(s) left of {}",
                    doomed.len(),
                    ids.len()
                ),
                ids.iter().map(|i| i.to_string()).collect(),
            )
        }
        Change::Destroy { tree } => {
            match backend.destroy_tree(tree) {
                Ok(())
                | Err(sidus_backends::BackendError::NotFound(sidus_backends::Object::Tree(_))) => {}
                Err(e) => return Err(e.into()),
            }
            crate::manifest::kept::forget(store.state_dir(), tree, None);
            crate::replica::forget(store.state_dir(), tree)?;
            Recovered::Finished(format!("removed what was left of tree '{tree}'"), vec![])
        }
        Change::Rollback {
            tree,
            target,
            safety,
        } => {
            if backend.snapshot_ids(tree)?.contains(safety) {
                super::replace_working(store, tree, target, safety)?;
                Recovered::Finished(
                    format!("'{tree}' is rolled back to {target}; its previous state is {safety}"),
                    vec![target.to_string(), safety.to_string()],
                )
            } else {
                Recovered::Failed("nothing had been changed".into(), vec![])
            }
        }
        Change::Clone {
            source,
            id,
            new,
            takes_snapshot,
        } => {
            if backend.list_trees()?.iter().any(|t| &t.name == new) {
                Recovered::Finished(
                    format!("'{new}' exists, cloned from {source}@{id}"),
                    vec![format!("{source}@{id}")],
                )
            } else if backend.snapshot_ids(source)?.contains(id) {
                for note in backend.recover(new)? {
                    log::warn!("tree '{new}': {note}");
                }
                backend.clone_tree(source, id, new)?;
                Recovered::Finished(
                    format!("cloned {source}@{id} to '{new}'"),
                    vec![format!("{source}@{id}")],
                )
            } else {
                debug_assert!(*takes_snapshot, "a clone of an existing snapshot");
                Recovered::Failed(format!("snapshot {source}@{id} had not been made"), vec![])
            }
        }
        Change::Run(record) => crate::transaction::recover::finish(store, intent, record)?,
        Change::Receive { tree, id, archive } => {
            crate::replica::receive::recover(store, tree, id, *archive)?
        }
        Change::Publish { .. }
        | Change::Unpublish { .. }
        | Change::Restore
        | Change::Inventory { .. }
        | Change::PublishGroup { .. }
        | Change::UnpublishGroup { .. } => crate::publish::recover::finish(store, intent)?,
    })
}
