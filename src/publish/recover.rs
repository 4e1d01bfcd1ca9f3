//! Finishing a publish, unpublish or restore whose sidus died, under the
//! publish lock. A publish commits at its boot entries: when the tree's iPXE
//! entry names the new ID the publish is finished (the PXELINUX entry and the
//! state follow it), otherwise it is undone (the new ID's export, mount and
//! kernel copy go). An unpublish was decided before its first step and is
//! finished; a restore is done again. Group publishes commit at the group's
//! iPXE entry, inventory changes at the inventory file (see `super::fleet`).

use super::steps::publish_lock;
use crate::state::intent::{Change, Intent, Slot};
use crate::store::Store;
use crate::trees::recover::{settle, Recovered};
use anyhow::{bail, Result};
use sidus_backends::TreeName;

/// Settles the publish intent when it concerns `tree` (the caller holds
/// `tree`'s lock), taking the publish lock.
pub fn recover_for_tree(store: &Store, tree: &TreeName) -> Result<()> {
    let Some(intent) = Slot::Publish.load(store.state_dir())? else {
        return Ok(());
    };
    if !intent.change.trees().contains(&tree) {
        return Ok(());
    }
    let _plock = publish_lock(store)?;
    match Slot::Publish.load(store.state_dir())? {
        Some(intent) => settle(store, &Slot::Publish, &intent),
        None => Ok(()),
    }
}

/// Settles the publish intent, whatever tree it concerns; the caller holds
/// the publish lock (and its own tree's lock, `mine`). The intent's tree must
/// be free: its lock is only tried, never waited for, so two publishers never
/// wait on each other.
pub fn recover_publish(store: &Store, mine: Option<&TreeName>) -> Result<()> {
    let Some(intent) = Slot::Publish.load(store.state_dir())? else {
        return Ok(());
    };
    let _other = match intent.change.trees().first() {
        Some(t) if Some(*t) != mine => match store.try_lock(t)? {
            Some(l) => Some(l),
            None => bail!(
                "an interrupted `{}` of tree '{t}' is still to be finished and '{t}' is busy; try again",
                intent.command
            ),
        },
        _ => None,
    };
    settle(store, &Slot::Publish, &intent)
}

/// The recovery of a publish-family intent.
pub fn finish(store: &Store, intent: &Intent) -> Result<Recovered> {
    match &intent.change {
        Change::Publish { tree, id } => super::ops::recover_publish(store, tree, id),
        Change::Unpublish {
            tree,
            id,
            was_current,
        } => super::ops::recover_unpublish(store, tree, id, *was_current),
        Change::Restore => super::restore::restore_locked(store)
            .map(|r| Recovered::Finished(format!("restored {} export(s)", r.served.len()), vec![])),
        Change::Inventory { digest } => super::fleet::ops::recover(store, digest),
        Change::PublishGroup {
            group,
            tree,
            id,
            rollback,
        } => super::fleet::publish::recover_publish(
            store,
            group,
            &super::fleet::groups::Target {
                tree: tree.clone(),
                id: id.clone(),
            },
            *rollback,
        ),
        Change::UnpublishGroup { group } => super::fleet::publish::recover_default(store, group),
        _ => unreachable!("only publish intents are in the publish slot"),
    }
}
