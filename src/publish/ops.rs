//! `publish`, `publish --rollback` and `unpublish`: each one transaction under
//! the tree's lock and the store's publish lock, top to bottom, with an undo
//! stack so a failure leaves mounts, exports, boot entries and state as they were.
//!
//! Order of a publish, and why:
//! 1. checks that change nothing: `clients` is set (before recovery, which
//!    rewrites the exports file), the snapshot exists, its /boot has a kernel
//!    and it holds no secret nothing allows ([`super::secrets`]), nfsd can be
//!    told, the server address is known;
//! 2. the intent, durably: from here the ID is protected, and a crash is
//!    finished or undone by the next publisher (see [`super::recover`]);
//! 3. mount the snapshot read-only at `<root>/TREE/ID` (kept if already there);
//! 4. copy its kernel and initrd to `<boot_root>/sidus/TREE/ID/`;
//! 5. rewrite the exports file whole and `exportfs -ra` (old IDs stay exported);
//! 6. rewrite the iPXE script, then the PXELINUX entry: the switch, and the
//!    commit point: nodes are never sent to something not yet served;
//! 7. save the state, which then agrees with the entries.

use super::boot::{self, find_kernel};
use super::clients_policy;
use super::config::PublishConfig;
use super::exports::{fsid, serve_path};
use super::secrets::{self, Secret};
use super::state::PublishState;
use super::steps::{self, publish_lock};
use super::system::{self, Applied};
use super::undo::Undo;
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use crate::trees;
use crate::trees::recover::Recovered;
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
    /// Secret files the snapshot shares with every client, each with what
    /// allowed it (`--allow-secrets` or the tree's allow list); empty: none.
    pub secrets: Vec<Secret>,
}

/// `sidus publish TREE[@REF]` (REF defaults to `latest`); `allow_secrets`:
/// `--allow-secrets`.
pub fn publish(
    store: &Store,
    target: &TreeRef,
    start: Instant,
    allow_secrets: bool,
) -> Result<Published> {
    clients_policy::required(&store.config.publish())?;
    let _lock = store.write_lock(&target.tree)?;
    let _plock = publish_lock(store)?;
    super::recover::recover_publish(store, Some(&target.tree))?;
    let r = TreeRef {
        tree: target.tree.clone(),
        reference: Some(target.reference.clone().unwrap_or_else(|| "latest".into())),
    };
    let snap = trees::resolve_ref(store, &r)?;
    let state = PublishState::load(store.state_dir())?;
    let next = state.with_published(&snap.tree, &snap.id);
    switch(
        store,
        &snap.tree,
        &snap.id,
        state,
        next,
        start,
        allow_secrets,
    )
}

/// `sidus publish --rollback TREE`: back to the previously published ID.
pub fn rollback(
    store: &Store,
    tree: &TreeName,
    start: Instant,
    allow_secrets: bool,
) -> Result<Published> {
    clients_policy::required(&store.config.publish())?;
    let _lock = store.write_lock(tree)?;
    let _plock = publish_lock(store)?;
    super::recover::recover_publish(store, Some(tree))?;
    let state = PublishState::load(store.state_dir())?;
    let Some((id, next)) = state.with_rollback(tree) else {
        match state.trees.get(tree) {
            None => bail!("tree '{tree}' is not published (see `sidus status`)"),
            Some(_) => bail!("tree '{tree}' has no previously published snapshot to roll back to"),
        }
    };
    switch(store, tree, &id, state, next, start, allow_secrets)
}

/// Makes `id` current: the steps of the module doc.
fn switch(
    store: &Store,
    tree: &TreeName,
    id: &SnapshotId,
    state: PublishState,
    next: PublishState,
    start: Instant,
    allow_secrets: bool,
) -> Result<Published> {
    let cfg: PublishConfig = store.config.publish();
    let previous = state.trees.get(tree).and_then(|t| t.current.clone());
    let snap_root = store.backend.snapshot_path(tree, id)?;
    let kernel = find_kernel(&snap_root, &format!("{tree}@{id}"))?;
    // Refused before the manifest, which reads the whole snapshot.
    let secrets = secrets::check(&cfg, tree, id, &snap_root, allow_secrets)?;
    let manifest = root_hash(store, tree, id)?;
    system::check_can_apply(&cfg)?;
    let server = steps::server(&cfg)?;
    let others = super::served_by::fallbacks(store.state_dir(), tree, id)?;

    store.begin(
        Slot::Publish,
        Change::Publish {
            tree: tree.clone(),
            id: id.clone(),
        },
        None,
    )?;
    let mut undo = Undo::default();
    let result = (|| -> Result<(PathBuf, Applied)> {
        let path = steps::ensure_served(&mut undo, store, &cfg, tree, id)?;
        failpoint::hit("publish:after-serve");
        let dir = boot::boot_dir(&cfg.boot_root, tree, id);
        if system::copy_kernel(&kernel, &dir)? {
            let d = dir.clone();
            undo.push(format!("remove {}", d.display()), move || {
                std::fs::remove_dir_all(&d).map_err(Into::into)
            });
        }
        failpoint::hit("publish:after-kernel");
        let applied = steps::write_exports(&mut undo, &cfg, &next)?;
        failpoint::hit("publish:after-exports");
        steps::write_boot_entries(
            &mut undo,
            &cfg,
            &server,
            (tree, id),
            &kernel.version,
            &manifest,
            &others,
        )?;
        failpoint::hit("publish:after-entries");
        steps::save_state(&mut undo, store, state.clone(), &next)?;
        failpoint::hit("publish:after-state");
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
        secrets,
    })
}

/// Settles a publish of `tree@id` whose sidus died: finished when the iPXE
/// entry (the commit) names `id`, else undone. Holds the publish lock.
pub fn recover_publish(store: &Store, tree: &TreeName, id: &SnapshotId) -> Result<Recovered> {
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let mut keep = Undo::default();
    if steps::entry_names(&boot::ipxe_path(&cfg.boot_root, tree)).as_ref() == Some(id) {
        let next = state.with_published(tree, id);
        steps::ensure_served(&mut keep, store, &cfg, tree, id)?;
        let root = store.backend.snapshot_path(tree, id)?;
        let kernel = find_kernel(&root, &format!("{tree}@{id}"))?;
        system::copy_kernel(&kernel, &boot::boot_dir(&cfg.boot_root, tree, id))?;
        steps::write_exports(&mut keep, &cfg, &next)?;
        let server = steps::server(&cfg)?;
        let manifest = root_hash(store, tree, id)?;
        steps::write_boot_entries(
            &mut keep,
            &cfg,
            &server,
            (tree, id),
            &kernel.version,
            &manifest,
            &super::served_by::fallbacks(store.state_dir(), tree, id)?,
        )?;
        next.save(store.state_dir())?;
        return Ok(Recovered::Finished(
            format!("its boot entries name {tree}@{id}: it is published"),
            vec![id.to_string()],
        ));
    }
    // Not committed: serve exactly what the state says.
    if !state.is_exported(tree, id) {
        let path = serve_path(&cfg.root, tree, id);
        if system::is_mount_point(&path)? {
            system::flush_exports();
            steps::write_exports(&mut keep, &cfg, &state)?;
            store.backend.unserve(tree, id, &path)?;
        }
        let _ = std::fs::remove_dir(&path);
        let dir = boot::boot_dir(&cfg.boot_root, tree, id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    steps::write_exports(&mut keep, &cfg, &state)?;
    Ok(Recovered::Failed(
        format!(
            "its boot entries do not name {tree}@{id}: nodes still boot what they booted before"
        ),
        vec![],
    ))
}

/// The content root hash of `tree@id`, which the boot entries name
/// (`sidus.manifest=`) so a node can show and check what it booted.
pub(crate) fn root_hash(store: &Store, tree: &TreeName, id: &SnapshotId) -> Result<String> {
    let what = format!("{tree}@{id}");
    let snap = trees::resolve_ref(
        store,
        &TreeRef {
            tree: tree.clone(),
            reference: Some(id.to_string()),
        },
    )?;
    let (m, _) =
        crate::manifest::kept::of_snapshot(store, &snap, &crate::progress::Progress::new(&what))
            .map_err(|e| e.context(format!("manifest of {what}")))?;
    Ok(m.root_hash())
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
    clients_policy::required(&store.config.publish())?;
    let tree = &target.tree;
    let _lock = store.write_lock(tree)?;
    let _plock = publish_lock(store)?;
    super::recover::recover_publish(store, Some(tree))?;
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let id = exported_id(store, &state, target)?;
    let path = serve_path(&cfg.root, tree, &id);
    let named_by: Vec<PathBuf> = boot::entry_paths(&cfg.boot_root, tree)
        .into_iter()
        .filter(|p| steps::entry_names(p).as_ref() == Some(&id))
        .collect();
    let groups = super::fleet::publish::groups_using(store, &cfg, tree, &id)?;
    if !groups.is_empty() {
        bail!(
            "refusing to unpublish {tree}@{id}: it is what group(s) {} boot; publish another snapshot to them first (`sidus publish {tree}@REF --group G`) or send them to the default entry (`sidus unpublish --group G`)",
            groups.join(", ")
        );
    }
    let was_current = state.trees[tree].current.as_ref() == Some(&id) || !named_by.is_empty();
    if was_current && !force {
        bail!(
            "refusing to unpublish {tree}@{id}: it is the published snapshot nodes boot; publish another one first (or --force, which also removes the tree's boot entries)"
        );
    }
    let clients = super::fleet::view::users_of(store, tree, &id)?;
    if !clients.is_empty() && !force {
        bail!(
            "refusing to unpublish {tree}@{id}: NFS clients still mount it ({}); they would get ESTALE. Reboot them onto the current snapshot first (or --force)",
            clients.join(", ")
        );
    }
    system::check_can_apply(&cfg)?;
    let next = state.with_unpublished(tree, &id);

    store.begin(
        Slot::Publish,
        Change::Unpublish {
            tree: tree.clone(),
            id: id.clone(),
            was_current,
        },
        None,
    )?;
    let mut undo = Undo::default();
    let result = (|| -> Result<Applied> {
        // Entries first: no node is sent to an export that is going away.
        if was_current {
            steps::remove_boot_entries(&mut undo, &cfg, tree)?;
            failpoint::hit("unpublish:after-entries");
        }
        let applied = steps::write_exports(&mut undo, &cfg, &next)?;
        failpoint::hit("unpublish:after-exports");
        if system::is_mount_point(&path)? {
            unserve(store, tree, &id, &path)?;
            let (t, i, p) = (tree.clone(), id.clone(), path.clone());
            undo.push(format!("mount {} again", p.display()), move || {
                Ok(store.backend.serve(&t, &i, &p)?)
            });
        }
        failpoint::hit("unpublish:after-unmount");
        steps::save_state(&mut undo, store, state.clone(), &next)?;
        failpoint::hit("unpublish:after-state");
        Ok(applied)
    })();
    let exports = match result {
        Ok(a) => a,
        Err(e) => return Err(undo.unwind(e)),
    };
    let mut warnings = tidy_unpublished(&cfg, tree, &id);
    // The other servers of an ID no longer served here are no one's business.
    if let Err(e) = super::served_by::update(store, |s| s.set(tree, &id, Vec::new())) {
        warnings.push(format!("the servers of {tree}@{id} stay recorded: {e:#}"));
    }
    Ok(Unpublished {
        tree: tree.clone(),
        warnings,
        id,
        was_current,
        cut_off_clients: clients,
        exports,
    })
}

/// Unmounts a served snapshot whose export is gone. nfsd keeps a reference
/// until its export cache is flushed, and drops it a moment after the flush:
/// a busy unmount is retried for up to 3 s, then detached lazily (no client
/// mounts it any more; the kernel frees it when nfsd lets go).
pub(crate) fn unserve(
    store: &Store,
    tree: &TreeName,
    id: &SnapshotId,
    path: &std::path::Path,
) -> Result<()> {
    // nfsd keeps a reference until its export cache is flushed, and drops it
    // a moment after: a busy unmount is retried for up to 3 s.
    system::flush_exports();
    let mut tries = 0;
    while let Err(e) = store.backend.unserve(tree, id, path) {
        tries += 1;
        if !matches!(e, sidus_backends::BackendError::Busy { .. }) {
            return Err(e.into());
        }
        if tries >= 15 {
            // The export is gone and no client mounts it: only nfsd's own
            // reference is left, so detach now and let the kernel free the
            // mount when nfsd lets go.
            sidus_backends::Runner::new()
                .run(&sidus_backends::argv!["umount", "-l", path])
                .map_err(|le| anyhow::anyhow!("{e}; lazy unmount failed too: {le}"))?;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

/// Removes what an unpublished ID leaves that serves nothing any more (its
/// kernel copy, its empty mount point); failures are warnings, not errors.
fn tidy_unpublished(cfg: &PublishConfig, tree: &TreeName, id: &SnapshotId) -> Vec<String> {
    let mut warnings = Vec::new();
    let dir = boot::boot_dir(&cfg.boot_root, tree, id);
    let path = serve_path(&cfg.root, tree, id);
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
    warnings
}

/// Finishes an unpublish of `tree@id` whose sidus died (it was decided before
/// its first step). Holds the publish lock.
pub fn recover_unpublish(
    store: &Store,
    tree: &TreeName,
    id: &SnapshotId,
    was_current: bool,
) -> Result<Recovered> {
    let cfg: PublishConfig = store.config.publish();
    let next = PublishState::load(store.state_dir())?.with_unpublished(tree, id);
    let mut keep = Undo::default();
    if was_current {
        steps::remove_boot_entries(&mut keep, &cfg, tree)?;
    }
    steps::write_exports(&mut keep, &cfg, &next)?;
    let path = serve_path(&cfg.root, tree, id);
    if system::is_mount_point(&path)? {
        unserve(store, tree, id, &path)?;
    }
    next.save(store.state_dir())?;
    for w in tidy_unpublished(&cfg, tree, id) {
        log::warn!("{w}");
    }
    Ok(Recovered::Finished(
        format!("{tree}@{id} is no longer served"),
        vec![id.to_string()],
    ))
}
