//! Changing the inventory (`node add`, `node set`, `node remove`, `node
//! import`), under the publish lock: the new inventory is checked whole,
//! the intent records its digest, the inventory file is replaced (the
//! commit), then the node entries follow it ([`super::sync::sync`]). A
//! failure after the commit puts the old inventory and its entries back; a
//! crash is settled by the next publisher: the change landed when the
//! inventory on disk has the intent's digest, and either way the entries are
//! made to follow the inventory on disk.

use super::groups::Groups;
use super::inventory::{GroupName, Inventory};
use super::sync::{self, Synced};
use crate::publish::steps::publish_lock;
use crate::publish::undo::Undo;
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use crate::trees::recover::Recovered;
use anyhow::Result;
use serde::Serialize;

/// What an inventory change did.
#[derive(Debug, Serialize)]
pub struct InventoryChanged {
    /// Nodes in the inventory now.
    pub nodes: usize,
    /// Nodes added, by name.
    pub added: Vec<String>,
    /// Nodes removed, by name.
    pub removed: Vec<String>,
    /// Nodes whose MAC, address or group changed, by name.
    pub changed: Vec<String>,
    /// Groups no node was in before.
    pub new_groups: Vec<GroupName>,
    /// Boot entry files written and removed.
    pub entries: Synced,
}

/// Applies `edit` to the inventory as one change (see the module doc).
pub fn change(
    store: &Store,
    edit: impl FnOnce(&Inventory) -> Result<Inventory>,
) -> Result<InventoryChanged> {
    let _plock = publish_lock(store)?;
    crate::publish::recover::recover_publish(store, None)?;
    let old = Inventory::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    let next = edit(&old)?;
    let boot_root = store.config.publish().boot_root;
    let diff = describe(&old, &next);
    store.begin(
        Slot::Publish,
        Change::Inventory {
            digest: next.digest(),
        },
        None,
    )?;
    let mut undo = Undo::default();
    let result = (|| -> Result<Synced> {
        next.save(store.state_dir())?;
        let (o, r, g) = (&old, &boot_root, &groups);
        undo.push(
            "put back the previous inventory and its entries",
            move || {
                o.save(store.state_dir())?;
                sync::sync(r, o, g).map(drop)
            },
        );
        failpoint::hit("node:after-inventory");
        let synced = sync::sync(&boot_root, &next, &groups)?;
        failpoint::hit("node:after-entries");
        Ok(synced)
    })();
    match result {
        Ok(entries) => Ok(InventoryChanged { entries, ..diff }),
        Err(e) => Err(undo.unwind(e)),
    }
}

/// Who was added, removed and changed between two inventories.
fn describe(old: &Inventory, next: &Inventory) -> InventoryChanged {
    let mut out = InventoryChanged {
        nodes: next.nodes.len(),
        added: vec![],
        removed: vec![],
        changed: vec![],
        new_groups: vec![],
        entries: Synced::default(),
    };
    for n in &next.nodes {
        match old.get(&n.name) {
            None => out.added.push(n.name.to_string()),
            Some(o) if o != n => out.changed.push(n.name.to_string()),
            Some(_) => {}
        }
    }
    for n in &old.nodes {
        if next.get(&n.name).is_none() {
            out.removed.push(n.name.to_string());
        }
    }
    let before = old.groups();
    out.new_groups = next
        .groups()
        .into_keys()
        .filter(|g| !before.contains_key(g))
        .collect();
    out
}

/// Settles an inventory change whose sidus died; holds the publish lock.
pub fn recover(store: &Store, digest: &str) -> Result<Recovered> {
    let inv = Inventory::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    let s = sync::sync(&store.config.publish().boot_root, &inv, &groups)?;
    let fixed = format!("{} entry file(s) written, {} removed", s.written, s.removed);
    Ok(if inv.digest() == digest {
        Recovered::Finished(
            format!("the inventory has the change; node entries follow it ({fixed})"),
            vec![],
        )
    } else {
        Recovered::Failed(
            format!("the inventory was not changed; node entries follow it ({fixed})"),
            vec![],
        )
    })
}
