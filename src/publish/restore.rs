//! `sidus restore`: after a server reboot, mount every exported snapshot again,
//! rewrite the exports file from the state, put back boot entries that do not
//! name the current ID, and re-sync nfsd if it runs. Run by
//! contrib/sidus-restore.service before nfs-server starts, so nfs-server finds
//! every path mounted and every export in /etc/exports.d at its own start:
//! clients see the same paths with the same fsids and never a gap (ESTALE).
//!
//! One snapshot that cannot be served does not stop the others; it is left out
//! of the exports file (exporting its empty mount point under its fsid would
//! hand clients the wrong files) and the command fails at the end naming it.

use super::boot::{self, find_kernel};
use super::config::PublishConfig;
use super::state::PublishState;
use super::steps::{self, publish_lock};
use super::system::{self, Applied};
use super::undo::Undo;
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use anyhow::{bail, Result};
use serde::Serialize;
use sidus_backends::{SnapshotId, TreeName};

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct Restored {
    /// Snapshots mounted and exported, as TREE@ID.
    pub served: Vec<String>,
    /// Boot entries rewritten because they did not name the current ID.
    pub boot_entries_fixed: Vec<TreeName>,
    /// Whether nfsd was told (it may not run yet when restore runs at boot).
    pub exports: Applied,
    /// What could not be restored.
    pub failed: Vec<String>,
}

/// `sidus restore`.
pub fn restore(store: &Store) -> Result<Restored> {
    super::clients_policy::required(&store.config.publish())?;
    let _plock = publish_lock(store)?;
    super::recover::recover_publish(store, None)?;
    store.begin(Slot::Publish, Change::Restore, None)?;
    restore_locked(store)
}

/// [`restore`] for a caller holding the publish lock (its recovery).
pub fn restore_locked(store: &Store) -> Result<Restored> {
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let mut failed = Vec::new();
    let mut served_state = state.clone();
    let mut served = Vec::new();
    let mut fixed = Vec::new();
    for (tree, ts) in &state.trees {
        for id in &ts.exported {
            // Never unwound: a mount that worked stays for the others.
            let mut keep = Undo::default();
            match steps::ensure_served(&mut keep, store, &cfg, tree, id) {
                Ok(_) => served.push(format!("{tree}@{id}")),
                Err(e) => {
                    failed.push(format!("serve {tree}@{id}: {e:#}"));
                    if let Some(t) = served_state.trees.get_mut(tree) {
                        t.exported.retain(|x| x != id);
                    }
                }
            }
        }
        if let Some(current) = &ts.current {
            match fix_boot_entries(store, &cfg, tree, current) {
                Ok(true) => fixed.push(tree.clone()),
                Ok(false) => {}
                Err(e) => failed.push(format!("boot entries of '{tree}': {e:#}")),
            }
        }
    }
    failpoint::hit("restore:after-serve");
    let mut keep = Undo::default();
    let exports = steps::write_exports(&mut keep, &cfg, &served_state);
    let exports = exports?;
    if !failed.is_empty() {
        bail!(
            "restored {} export(s), but not: {}",
            served.len(),
            failed.join("; ")
        );
    }
    Ok(Restored {
        served,
        boot_entries_fixed: fixed,
        exports,
        failed,
    })
}

/// Rewrites the tree's boot entries when either does not name `current` (a
/// crash between saving the state and the switch), copying the kernel again
/// if its folder is gone. Returns whether anything was written.
fn fix_boot_entries(
    store: &Store,
    cfg: &PublishConfig,
    tree: &TreeName,
    current: &SnapshotId,
) -> Result<bool> {
    let ipxe = boot::ipxe_path(&cfg.boot_root, tree);
    let pxe = boot::pxelinux_path(&cfg.boot_root, tree);
    let dir = boot::boot_dir(&cfg.boot_root, tree, current);
    let good = |p| steps::entry_names(p).as_ref() == Some(current);
    if good(&ipxe) && good(&pxe) && dir.join("vmlinuz").is_file() {
        return Ok(false);
    }
    let root = store.backend.snapshot_path(tree, current)?;
    let kernel = find_kernel(&root, &format!("{tree}@{current}"))?;
    system::copy_kernel(&kernel, &dir)?;
    let server = steps::server(cfg)?;
    let manifest = super::ops::root_hash(store, tree, current)?;
    let mut keep = Undo::default();
    let r = steps::write_boot_entries(
        &mut keep,
        cfg,
        &server,
        (tree, current),
        &kernel.version,
        &manifest,
        &super::served_by::fallbacks(store.state_dir(), tree, current)?,
    );
    r.map(|()| true)
}
