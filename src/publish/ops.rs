//! `publish`, `publish --rollback` and `unpublish`: each one transaction under
//! the tree's lock and the store's publish lock, top to bottom, with an undo
//! stack so a failure leaves mounts, exports, boot entries and state as they were.
//!
//! Order of a publish, and why:
//! 1. checks that change nothing: the snapshot exists and its /boot has a
//!    kernel, nfsd can be told, the server address is known;
//! 2. mount the snapshot read-only at `<root>/TREE/ID` (kept if already there);
//! 3. copy its kernel and initrd to `<boot_root>/sidus/TREE/ID/`;
//! 4. rewrite the exports file whole and `exportfs -ra` (old IDs stay exported);
//! 5. save the state: from here prune and delete protect the new ID;
//! 6. rewrite the iPXE script and PXELINUX entry: the switch, last, so nodes are
//!    never sent to something not yet served and protected.

use super::boot::{self, find_kernel};
use super::clients::v3_clients;
use super::config::PublishConfig;
use super::exports::{fsid, serve_path};
use super::state::PublishState;
use super::steps::{self, publish_lock};
use super::system::{self, Applied};
use super::undo::Undo;
use crate::store::Store;
use crate::trees;
use crate::trees::refs::TreeRef;
use anyhow::{bail, Result};
use serde::Serialize;
use sidus_backends::{SnapshotId, TreeName};
use std::path::PathBuf;
use std::time::Instant;

/// What a publish did.
#[derive(Debug, Serialize)]
pub struct Published {
    /// The tree.
    pub tree: TreeName,
    /// The ID nodes boot from now on.
    pub id: SnapshotId,
    /// The ID they booted before (still exported).
    pub previous: Option<SnapshotId>,
    /// True when `id` was already current (everything was checked and kept).
    pub unchanged: bool,
    /// The exported path.
    pub path: PathBuf,
    /// Its NFS fsid.
    pub fsid: String,
    /// The kernel version nodes boot.
    pub kernel: String,
    /// The iPXE script.
    pub ipxe: PathBuf,
    /// The PXELINUX entry.
    pub pxelinux: PathBuf,
    /// Whether nfsd was told.
    pub exports: Applied,
    /// Milliseconds from the start of the command to the boot entries in place.
    pub boot_entry_ms: u128,
}

/// `sidus publish TREE[@REF]` (REF defaults to `latest`).
pub fn publish(store: &Store, target: &TreeRef, start: Instant) -> Result<Published> {
    let _lock = store.lock(&target.tree)?;
    let _plock = publish_lock(store)?;
    let r = TreeRef {
        tree: target.tree.clone(),
        reference: Some(target.reference.clone().unwrap_or_else(|| "latest".into())),
    };
    let snap = trees::resolve_ref(store, &r)?;
    let state = PublishState::load(store.state_dir())?;
    let next = state.with_published(&snap.tree, &snap.id);
    switch(store, &snap.tree, &snap.id, state, next, start)
}

/// `sidus publish --rollback TREE`: back to the previously published ID.
pub fn rollback(store: &Store, tree: &TreeName, start: Instant) -> Result<Published> {
    let _lock = store.lock(tree)?;
    let _plock = publish_lock(store)?;
    let state = PublishState::load(store.state_dir())?;
    let Some((id, next)) = state.with_rollback(tree) else {
        match state.trees.get(tree) {
            None => bail!("tree '{tree}' is not published (see `sidus status`)"),
            Some(_) => bail!("tree '{tree}' has no previously published snapshot to roll back to"),
        }
    };
    switch(store, tree, &id, state, next, start)
}

/// Makes `id` current: the six steps of the module doc.
fn switch(
    store: &Store,
    tree: &TreeName,
    id: &SnapshotId,
    state: PublishState,
    next: PublishState,
    start: Instant,
) -> Result<Published> {
    let cfg: PublishConfig = store.config.publish();
    let previous = state.trees.get(tree).and_then(|t| t.current.clone());
    let snap_root = store.backend.snapshot_path(tree, id)?;
    let kernel = find_kernel(&snap_root, &format!("{tree}@{id}"))?;
    system::check_can_apply(&cfg)?;
    let server = steps::server(&cfg)?;

    let mut undo = Undo::default();
    let result = (|| -> Result<(PathBuf, Applied)> {
        let path = steps::ensure_served(&mut undo, store, &cfg, tree, id)?;
        let dir = boot::boot_dir(&cfg.boot_root, tree, id);
        if system::copy_kernel(&kernel, &dir)? {
            let d = dir.clone();
            undo.push(format!("remove {}", d.display()), move || {
                std::fs::remove_dir_all(&d).map_err(Into::into)
            });
        }
        let applied = steps::write_exports(&mut undo, &cfg, &next)?;
        steps::save_state(&mut undo, store, state.clone(), &next)?;
        steps::write_boot_entries(&mut undo, &cfg, &server, tree, id, &kernel.version)?;
        Ok((path, applied))
    })();
    let (path, exports) = match result {
        Ok(v) => v,
        Err(e) => return Err(undo.unwind(e)),
    };
    Ok(Published {
        boot_entry_ms: start.elapsed().as_millis(),
        unchanged: previous.as_ref() == Some(id),
        tree: tree.clone(),
        id: id.clone(),
        previous,
        path,
        fsid: fsid(tree, id),
        kernel: kernel.version,
        ipxe: boot::ipxe_path(&cfg.boot_root, tree),
        pxelinux: boot::pxelinux_path(&cfg.boot_root, tree),
        exports,
    })
}

/// What an unpublish did.
#[derive(Debug, Serialize)]
pub struct Unpublished {
    /// The tree.
    pub tree: TreeName,
    /// The ID no longer served.
    pub id: SnapshotId,
    /// True when it was the current ID (only with `--force`): the tree's boot
    /// entries were removed.
    pub was_current: bool,
    /// NFS clients that still had it mounted (only with `--force`).
    pub cut_off_clients: Vec<String>,
    /// Whether nfsd was told.
    pub exports: Applied,
    /// Clean-up that failed after the change was made, for the admin.
    pub warnings: Vec<String>,
}

/// Finds the exported ID `target` names: an exported ID (even one whose
/// snapshot was removed behind sidus's back) or any REF of the tree.
fn exported_id(store: &Store, state: &PublishState, target: &TreeRef) -> Result<SnapshotId> {
    let Some(reference) = &target.reference else {
        bail!(
            "'{}' names no snapshot: use {0}@ID (see `sidus status {0}`)",
            target.tree
        );
    };
    let exported = state
        .trees
        .get(&target.tree)
        .map(|t| t.exported.as_slice())
        .unwrap_or_default();
    if let Some(id) = exported.iter().find(|i| i.as_str() == reference) {
        return Ok(id.clone());
    }
    let id = trees::resolve_ref(store, target)?.id;
    if !exported.contains(&id) {
        bail!(
            "{}@{id} is not published (see `sidus status {0}`)",
            target.tree
        );
    }
    Ok(id)
}

/// `sidus unpublish TREE@REF [--force]`.
pub fn unpublish(store: &Store, target: &TreeRef, force: bool) -> Result<Unpublished> {
    let tree = &target.tree;
    let _lock = store.lock(tree)?;
    let _plock = publish_lock(store)?;
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let id = exported_id(store, &state, target)?;
    let path = serve_path(&cfg.root, tree, &id);
    let was_current = state.trees[tree].current.as_ref() == Some(&id);
    if was_current && !force {
        bail!(
            "refusing to unpublish {tree}@{id}: it is the published snapshot nodes boot; publish another one first (or --force, which also removes the tree's boot entries)"
        );
    }
    let clients = v3_clients(&path);
    if !clients.is_empty() && !force {
        bail!(
            "refusing to unpublish {tree}@{id}: NFS clients still mount it ({}); they would get ESTALE. Reboot them onto the current snapshot first (or --force)",
            clients.join(", ")
        );
    }
    system::check_can_apply(&cfg)?;
    let next = state.with_unpublished(tree, &id);

    let mut undo = Undo::default();
    let result = (|| -> Result<Applied> {
        let applied = steps::write_exports(&mut undo, &cfg, &next)?;
        if system::is_mount_point(&path)? {
            // nfsd keeps a reference until its export cache is flushed.
            system::flush_exports();
            // ...and drops it a moment after the flush: retry a busy unmount
            // for up to 3 s before giving up (nothing is changed then).
            let mut tries = 0;
            while let Err(e) = store.backend.unserve(tree, &id, &path) {
                tries += 1;
                if !matches!(e, sidus_backends::BackendError::Busy { .. }) {
                    return Err(e.into());
                }
                if tries >= 15 {
                    // The export is gone and no client mounts it: only nfsd's
                    // own reference is left, so detach now and let the kernel
                    // free the mount when nfsd lets go.
                    sidus_backends::Runner::new()
                        .run(&sidus_backends::argv!["umount", "-l", &path])
                        .map_err(|le| anyhow::anyhow!("{e}; lazy unmount failed too: {le}"))?;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            let (t, i, p) = (tree.clone(), id.clone(), path.clone());
            undo.push(format!("mount {} again", p.display()), move || {
                Ok(store.backend.serve(&t, &i, &p)?)
            });
        }
        if was_current {
            steps::remove_boot_entries(&mut undo, &cfg, tree)?;
        }
        steps::save_state(&mut undo, store, state.clone(), &next)?;
        Ok(applied)
    })();
    let exports = match result {
        Ok(a) => a,
        Err(e) => return Err(undo.unwind(e)),
    };
    // Leftovers that serve nothing any more: failures are warnings, not errors.
    let mut warnings = Vec::new();
    let dir = boot::boot_dir(&cfg.boot_root, tree, &id);
    for (what, r) in [
        (dir.clone(), std::fs::remove_dir_all(&dir)),
        (path.clone(), std::fs::remove_dir(&path)),
    ] {
        if let Err(e) = r.or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }) {
            warnings.push(format!("could not remove {}: {e}", what.display()));
        }
    }
    Ok(Unpublished {
        tree: tree.clone(),
        id,
        was_current,
        cut_off_clients: clients,
        exports,
        warnings,
    })
}
