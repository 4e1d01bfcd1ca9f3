//! `publish TREE@REF --group G`, `publish --rollback --group G` and
//! `unpublish --group G`: one group's nodes move, the others stay.
//!
//! A group publish is a tree publish with another commit point: the
//! snapshot is served and its kernel copied, the tree's exports gain the ID
//! (the tree's own current ID and entries are untouched), then the group's
//! iPXE entry is renamed in: the switch of every node of the group at once,
//! and the commit; the PXELINUX entry and the states follow. A failure
//! undoes every step; a crash is finished by the next publisher when the
//! group's iPXE entry names the new ID, else undone.

use super::entries::{self, group_ipxe, group_pxelinux};
use super::groups::{Groups, Target};
use super::inventory::{GroupName, Inventory};
use crate::publish::boot::{self, find_kernel, Entry};
use crate::publish::config::PublishConfig;
use crate::publish::exports::{fsid, serve_path};
use crate::publish::state::PublishState;
use crate::publish::steps::{self, publish_lock};
use crate::publish::system::{self, Applied};
use crate::publish::undo::Undo;
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use crate::trees;
use crate::trees::recover::Recovered;
use crate::trees::refs::TreeRef;
use anyhow::{bail, Result};
use serde::Serialize;
use sidus_backends::TreeName;
use std::path::PathBuf;
use std::time::Instant;

/// What a group publish did.
#[derive(Debug, Serialize)]
pub struct GroupPublished {
    /// The group.
    pub group: GroupName,
    /// The tree.
    pub tree: TreeName,
    /// The ID the group's nodes boot from now on.
    pub id: sidus_backends::SnapshotId,
    /// What they booted before (`null`: the default entry).
    pub previous: Option<String>,
    /// True when it was already the group's.
    pub unchanged: bool,
    /// How many nodes the group has.
    pub nodes: usize,
    /// The exported path.
    pub path: PathBuf,
    /// Its NFS fsid.
    pub fsid: String,
    /// The kernel version the group boots.
    pub kernel: String,
    /// The group's iPXE entry.
    pub ipxe: PathBuf,
    /// The group's PXELINUX entry.
    pub pxelinux: PathBuf,
    /// Whether nfsd was told.
    pub exports: Applied,
    /// Milliseconds from the start of the command to the group's entries in place.
    pub boot_entry_ms: u128,
}

/// Refuses a group no node is in and nothing was published to.
fn known(inv: &Inventory, groups: &Groups, g: &GroupName) -> Result<usize> {
    let n = inv.in_group(g).count();
    if n == 0 && !groups.groups.contains_key(g) {
        let all: Vec<String> = inv.groups().into_keys().map(|g| g.to_string()).collect();
        let known = if all.is_empty() {
            "none yet".into()
        } else {
            all.join(", ")
        };
        bail!("unknown group '{g}': no node is in it (groups: {known}; `sidus node set NODE --group {g}` adds one)");
    }
    Ok(n)
}

/// `sidus publish TREE[@REF] --group G`.
pub fn publish(
    store: &Store,
    g: &GroupName,
    target: &TreeRef,
    start: Instant,
    allow_secrets: bool,
) -> Result<GroupPublished> {
    let _lock = store.write_lock(&target.tree)?;
    let _plock = publish_lock(store)?;
    crate::publish::recover::recover_publish(store, Some(&target.tree))?;
    let inv = Inventory::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    let nodes = known(&inv, &groups, g)?;
    let r = TreeRef {
        tree: target.tree.clone(),
        reference: Some(target.reference.clone().unwrap_or_else(|| "latest".into())),
    };
    let snap = trees::resolve_ref(store, &r)?;
    let t = Target {
        tree: snap.tree,
        id: snap.id,
    };
    let next = groups.with_published(g, &t);
    switch(
        store,
        g,
        &t,
        false,
        (groups, next),
        nodes,
        start,
        allow_secrets,
    )
}

/// `sidus publish --rollback --group G [TREE]`: the group's previous snapshot.
pub fn rollback(
    store: &Store,
    g: &GroupName,
    tree: Option<&TreeName>,
    start: Instant,
    allow_secrets: bool,
) -> Result<GroupPublished> {
    let find = || -> Result<(Target, Groups, Groups, usize)> {
        let inv = Inventory::load(store.state_dir())?;
        let groups = Groups::load(store.state_dir())?;
        let nodes = known(&inv, &groups, g)?;
        let Some((t, next)) = groups.with_rollback(g) else {
            match groups.current(g) {
                Some(c) => bail!(
                    "group '{g}' booted the default entry before {c}: `sidus unpublish --group {g}` sends it back there"
                ),
                None => bail!("group '{g}' has no previously published snapshot to roll back to (see `sidus groups`)"),
            }
        };
        Ok((t, groups, next, nodes))
    };
    // The tree to lock is the one rolled back to; look, lock, look again.
    let (t, ..) = find()?;
    if let Some(tree) = tree.filter(|tr| *tr != &t.tree) {
        bail!("group '{g}' rolls back to {t}, not to a snapshot of '{tree}'");
    }
    let _lock = store.write_lock(&t.tree)?;
    let _plock = publish_lock(store)?;
    crate::publish::recover::recover_publish(store, Some(&t.tree))?;
    let (again, groups, next, nodes) = find()?;
    if again != t {
        bail!("group '{g}' changed while sidus waited for the lock; try again");
    }
    switch(
        store,
        g,
        &t,
        true,
        (groups, next),
        nodes,
        start,
        allow_secrets,
    )
}

/// The boot entries of group `g` for `t`: iPXE (the switch) first; the
/// `fallbacks` listed after this server.
pub(crate) fn write_entries<'a>(
    undo: &mut Undo<'a>,
    cfg: &PublishConfig,
    g: &GroupName,
    t: &Target,
    (kernel, server, manifest): (&str, &str, &str),
    fallbacks: &[crate::publish::fallback::Fallback],
) -> Result<()> {
    let nfs_path = serve_path(&cfg.root, &t.tree, &t.id);
    let e = Entry {
        tree: &t.tree,
        id: &t.id,
        server,
        nfs_path: &nfs_path,
        kernel_version: kernel,
        extra: &cfg.kernel_cmdline_extra,
        manifest,
        fallbacks,
    };
    steps::replace(
        undo,
        &group_ipxe(&cfg.boot_root, g),
        entries::group_ipxe_text(g, &e).as_bytes(),
        0o644,
    )?;
    failpoint::hit("publish:group-after-ipxe");
    steps::replace(
        undo,
        &group_pxelinux(&cfg.boot_root, g),
        entries::group_pxelinux_text(g, &e).as_bytes(),
        0o644,
    )
}

#[allow(clippy::too_many_arguments)]
fn switch(
    store: &Store,
    g: &GroupName,
    t: &Target,
    rollback: bool,
    (groups, next): (Groups, Groups),
    nodes: usize,
    start: Instant,
    allow_secrets: bool,
) -> Result<GroupPublished> {
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let next_state = state.with_exported(&t.tree, &t.id);
    let previous = groups.current(g).cloned();
    let root = store.backend.snapshot_path(&t.tree, &t.id)?;
    let kernel = find_kernel(&root, &t.to_string())?;
    // The group's nodes read it like any other export's: the same refusal.
    crate::publish::secrets::check(&cfg, &t.tree, &t.id, &root, allow_secrets)?;
    let manifest = crate::publish::ops::root_hash(store, &t.tree, &t.id)?;
    system::check_can_apply(&cfg)?;
    let server = steps::server(&cfg)?;
    let others = crate::publish::served_by::fallbacks(store.state_dir(), &t.tree, &t.id)?;

    store.begin(
        Slot::Publish,
        Change::PublishGroup {
            group: g.clone(),
            tree: t.tree.clone(),
            id: t.id.clone(),
            rollback,
        },
        None,
    )?;
    let mut undo = Undo::default();
    let result = (|| -> Result<(PathBuf, Applied)> {
        let path = steps::ensure_served(&mut undo, store, &cfg, &t.tree, &t.id)?;
        failpoint::hit("publish:group-after-serve");
        let dir = boot::boot_dir(&cfg.boot_root, &t.tree, &t.id);
        if system::copy_kernel(&kernel, &dir)? {
            let d = dir.clone();
            undo.push(format!("remove {}", d.display()), move || {
                std::fs::remove_dir_all(&d).map_err(Into::into)
            });
        }
        failpoint::hit("publish:group-after-kernel");
        let applied = steps::write_exports(&mut undo, &cfg, &next_state)?;
        failpoint::hit("publish:group-after-exports");
        write_entries(
            &mut undo,
            &cfg,
            g,
            t,
            (&kernel.version, &server, &manifest),
            &others,
        )?;
        failpoint::hit("publish:group-after-entries");
        steps::save_state(&mut undo, store, state.clone(), &next_state)?;
        next.save(store.state_dir())?;
        let old = groups.clone();
        undo.push("restore the group state", move || {
            old.save(store.state_dir())
        });
        failpoint::hit("publish:group-after-state");
        Ok((path, applied))
    })();
    let (path, exports) = match result {
        Ok(v) => v,
        Err(e) => return Err(undo.unwind(e)),
    };
    Ok(GroupPublished {
        boot_entry_ms: start.elapsed().as_millis(),
        unchanged: previous.as_ref() == Some(t),
        previous: previous.map(|p| p.to_string()),
        group: g.clone(),
        tree: t.tree.clone(),
        id: t.id.clone(),
        nodes,
        path,
        fsid: fsid(&t.tree, &t.id),
        kernel: kernel.version,
        ipxe: group_ipxe(&cfg.boot_root, g),
        pxelinux: group_pxelinux(&cfg.boot_root, g),
        exports,
    })
}

/// Settles a group publish whose sidus died: finished when the group's iPXE
/// entry names `t`, else undone. Holds the publish lock.
pub fn recover_publish(
    store: &Store,
    g: &GroupName,
    t: &Target,
    rollback: bool,
) -> Result<Recovered> {
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    let mut keep = Undo::default();
    if entries::entry_target(&group_ipxe(&cfg.boot_root, g)).as_ref() == Some(t) {
        let next_state = state.with_exported(&t.tree, &t.id);
        steps::ensure_served(&mut keep, store, &cfg, &t.tree, &t.id)?;
        let root = store.backend.snapshot_path(&t.tree, &t.id)?;
        let kernel = find_kernel(&root, &t.to_string())?;
        system::copy_kernel(&kernel, &boot::boot_dir(&cfg.boot_root, &t.tree, &t.id))?;
        steps::write_exports(&mut keep, &cfg, &next_state)?;
        let manifest = crate::publish::ops::root_hash(store, &t.tree, &t.id)?;
        write_entries(
            &mut keep,
            &cfg,
            g,
            t,
            (&kernel.version, &steps::server(&cfg)?, &manifest),
            &crate::publish::served_by::fallbacks(store.state_dir(), &t.tree, &t.id)?,
        )?;
        next_state.save(store.state_dir())?;
        let next = match groups.with_rollback(g) {
            Some((back, next)) if rollback && &back == t => next,
            _ => groups.with_published(g, t),
        };
        next.save(store.state_dir())?;
        return Ok(Recovered::Finished(
            format!("the entry of group '{g}' names {t}: it is published"),
            vec![t.id.to_string()],
        ));
    }
    // Not committed: serve exactly what the state says.
    if !state.is_exported(&t.tree, &t.id) {
        let path = serve_path(&cfg.root, &t.tree, &t.id);
        if system::is_mount_point(&path)? {
            system::flush_exports();
            steps::write_exports(&mut keep, &cfg, &state)?;
            store.backend.unserve(&t.tree, &t.id, &path)?;
        }
        let _ = std::fs::remove_dir(&path);
        let dir = boot::boot_dir(&cfg.boot_root, &t.tree, &t.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    steps::write_exports(&mut keep, &cfg, &state)?;
    Ok(Recovered::Failed(
        format!("the entry of group '{g}' does not name {t}: its nodes still boot what they booted before"),
        vec![],
    ))
}

/// The groups that boot `tree@id`, by their state or their entries on disk.
pub fn groups_using(
    store: &Store,
    cfg: &PublishConfig,
    tree: &TreeName,
    id: &sidus_backends::SnapshotId,
) -> Result<Vec<String>> {
    let mut out: Vec<String> = Groups::load(store.state_dir())?
        .using(tree, id)
        .iter()
        .map(|g| g.to_string())
        .collect();
    for (t, path) in entries::group_entries_on_disk(&cfg.boot_root) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".ipxe").to_string());
        if (&t.tree, &t.id) == (tree, id) {
            if let Some(n) = name.filter(|n| !out.contains(n)) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// What `unpublish --group` did.
#[derive(Debug, Serialize)]
pub struct GroupDefaulted {
    /// The group.
    pub group: GroupName,
    /// What it booted until now (still exported).
    pub was: String,
    /// The group's iPXE entry, now handing over to the default entry.
    pub ipxe: PathBuf,
}

/// `sidus unpublish --group G`: the group's nodes boot the default entry
/// again; its snapshot stays exported (unpublish it as usual).
pub fn to_default(store: &Store, g: &GroupName) -> Result<GroupDefaulted> {
    let _plock = publish_lock(store)?;
    crate::publish::recover::recover_publish(store, None)?;
    let inv = Inventory::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    known(&inv, &groups, g)?;
    let Some(was) = groups.current(g).cloned() else {
        bail!("group '{g}' has no snapshot of its own: its nodes already boot the default entry");
    };
    let cfg = store.config.publish();
    store.begin(
        Slot::Publish,
        Change::UnpublishGroup { group: g.clone() },
        None,
    )?;
    let mut undo = Undo::default();
    let result = (|| -> Result<()> {
        default_entries(&mut undo, &cfg, g)?;
        failpoint::hit("unpublish:group-after-entries");
        groups.with_default(g).save(store.state_dir())?;
        failpoint::hit("unpublish:group-after-state");
        Ok(())
    })();
    if let Err(e) = result {
        return Err(undo.unwind(e));
    }
    Ok(GroupDefaulted {
        group: g.clone(),
        was: was.to_string(),
        ipxe: group_ipxe(&cfg.boot_root, g),
    })
}

fn default_entries<'a>(undo: &mut Undo<'a>, cfg: &PublishConfig, g: &GroupName) -> Result<()> {
    steps::replace(
        undo,
        &group_ipxe(&cfg.boot_root, g),
        entries::group_ipxe_default(g).as_bytes(),
        0o644,
    )?;
    steps::replace(
        undo,
        &group_pxelinux(&cfg.boot_root, g),
        entries::group_pxelinux_default(g).as_bytes(),
        0o644,
    )
}

/// Finishes an `unpublish --group` whose sidus died (decided before its
/// first step). Holds the publish lock.
pub fn recover_default(store: &Store, g: &GroupName) -> Result<Recovered> {
    let cfg = store.config.publish();
    default_entries(&mut Undo::default(), &cfg, g)?;
    Groups::load(store.state_dir())?
        .with_default(g)
        .save(store.state_dir())?;
    Ok(Recovered::Finished(
        format!("group '{g}' boots the default entry"),
        vec![],
    ))
}
