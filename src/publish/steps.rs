//! The steps publish, unpublish and restore are made of, each pushing its own
//! undo: serve a snapshot at its export path, replace a file whole, write the
//! boot entries of a tree.

use super::boot::{self, Entry};
use super::config::PublishConfig;
use super::exports::serve_path;
use super::state::PublishState;
use super::system::{self, Applied};
use super::undo::Undo;
use crate::state::atomic::{remove_durable, write_atomic};
use crate::state::lock::{LockBusy, TreeLock};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::path::{Path, PathBuf};

/// The name of the store-wide publish lock. Tree names start with a letter
/// or digit, so it is never a tree's.
pub const PUBLISH_LOCK: &str = ".publish";

/// Takes the store-wide publish lock: the exports file and the state file are
/// shared by every tree. Always taken after the tree's own lock.
pub fn publish_lock(store: &Store) -> Result<TreeLock> {
    TreeLock::acquire(store.state_dir(), PUBLISH_LOCK, store.lock_timeout()).map_err(|e| {
        if e.downcast_ref::<LockBusy>().is_some() {
            anyhow::anyhow!("another sidus publish, unpublish or restore is running; try again")
        } else {
            e
        }
    })
}

/// The file's current content, to put back on undo (`None`: it did not exist).
pub fn read_old(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Puts back what [`read_old`] returned.
pub fn put_back(path: &Path, old: Option<&[u8]>, mode: u32) -> Result<()> {
    match old {
        Some(b) => write_atomic(path, b, mode),
        None => remove_durable(path).map(drop),
    }
}

/// Replaces `path` whole with `data`, undoable.
pub fn replace<'a>(undo: &mut Undo<'a>, path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let old = read_old(path)?;
    if old.as_deref() == Some(data) {
        return Ok(());
    }
    write_atomic(path, data, mode)?;
    let p = path.to_path_buf();
    undo.push(format!("restore {}", p.display()), move || {
        put_back(&p, old.as_deref(), mode)
    });
    Ok(())
}

/// Rewrites the exports file for `state` and re-syncs nfsd with it, undoably
/// (the undo puts the old file back, then re-syncs again).
pub fn write_exports<'a>(
    undo: &mut Undo<'a>,
    cfg: &'a PublishConfig,
    state: &PublishState,
) -> Result<Applied> {
    // Pushed first so that it runs last: after the old file is back.
    undo.push("re-apply the previous exports", move || {
        system::apply_exports(cfg).map(drop)
    });
    let text = super::exports::render(cfg, &state.exported());
    replace(undo, &cfg.exports_file, text.as_bytes(), 0o644)?;
    system::apply_exports(cfg)
}

/// Mounts `tree@id` read-only at its export path unless it is already there.
/// Returns the path.
pub fn ensure_served<'a>(
    undo: &mut Undo<'a>,
    store: &'a Store,
    cfg: &PublishConfig,
    tree: &TreeName,
    id: &SnapshotId,
) -> Result<PathBuf> {
    let target = serve_path(&cfg.root, tree, id);
    if system::is_mount_point(&target)? {
        return Ok(target);
    }
    if !target.exists() {
        crate::state::atomic::create_dir_all(&target)?;
        let t = target.clone();
        undo.push(format!("remove {}", t.display()), move || {
            std::fs::remove_dir(&t).with_context(|| format!("remove {}", t.display()))
        });
    }
    store.backend.serve(tree, id, &target)?;
    let (t, tr, i) = (target.clone(), tree.clone(), id.clone());
    undo.push(format!("unmount {}", t.display()), move || {
        Ok(store.backend.unserve(&tr, &i, &t)?)
    });
    if !system::is_read_only(&target)? {
        bail!(
            "{} is mounted writable after serving {tree}@{id}: refusing to export it",
            target.display()
        );
    }
    Ok(target)
}

/// The address nodes reach the server at.
pub fn server(cfg: &PublishConfig) -> Result<String> {
    match &cfg.server {
        Some(s) => Ok(s.clone()),
        None => system::default_server(),
    }
}

/// Writes the tree's iPXE script and PXELINUX entry for `id`, undoably, the
/// `fallbacks` listed after this server. The renames are the switch: a node
/// fetching either file gets one ID or the other.
pub fn write_boot_entries<'a>(
    undo: &mut Undo<'a>,
    cfg: &PublishConfig,
    server: &str,
    (tree, id): (&TreeName, &SnapshotId),
    kernel_version: &str,
    manifest: &str,
    fallbacks: &[super::fallback::Fallback],
) -> Result<()> {
    let nfs_path = serve_path(&cfg.root, tree, id);
    let entry = Entry {
        tree,
        id,
        server,
        nfs_path: &nfs_path,
        kernel_version,
        manifest,
        extra: &cfg.kernel_cmdline_extra,
        fallbacks,
    };
    replace(
        undo,
        &boot::ipxe_path(&cfg.boot_root, tree),
        entry.ipxe().as_bytes(),
        0o644,
    )?;
    crate::state::failpoint::hit("publish:after-ipxe");
    replace(
        undo,
        &boot::pxelinux_path(&cfg.boot_root, tree),
        entry.pxelinux().as_bytes(),
        0o644,
    )
}

/// Removes the tree's boot entries (after a forced unpublish of its current
/// ID, nodes must not be sent to an unexported path), undoably.
pub fn remove_boot_entries<'a>(
    undo: &mut Undo<'a>,
    cfg: &PublishConfig,
    tree: &TreeName,
) -> Result<()> {
    for path in [
        boot::ipxe_path(&cfg.boot_root, tree),
        boot::pxelinux_path(&cfg.boot_root, tree),
    ] {
        let old = read_old(&path)?;
        if old.is_some() {
            remove_durable(&path)?;
            undo.push(format!("restore {}", path.display()), move || {
                put_back(&path, old.as_deref(), 0o644)
            });
        }
    }
    Ok(())
}

/// The snapshot ID a boot entry file names (`sidus.snapshot=`), if any.
pub fn entry_names(path: &Path) -> Option<SnapshotId> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("sidus.snapshot="))
        .and_then(|id| id.parse().ok())
}

/// Saves `next` as the publish state, undoably (the undo saves `old`).
pub fn save_state<'a>(
    undo: &mut Undo<'a>,
    store: &'a Store,
    old: PublishState,
    next: &PublishState,
) -> Result<()> {
    next.save(store.state_dir())?;
    undo.push("restore the publish state", move || {
        old.save(store.state_dir())
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_undo_restores_old_content_or_absence() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("sub/b");
        std::fs::write(&a, "old").unwrap();
        let mut u = Undo::default();
        replace(&mut u, &a, b"new", 0o644).unwrap();
        replace(&mut u, &b, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        let e = u.unwind(anyhow::anyhow!("boom"));
        assert_eq!(format!("{e:#}"), "nothing was changed: boom");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert!(!b.exists());
    }

    #[test]
    fn entry_names_reads_the_snapshot_id() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lab.ipxe");
        assert_eq!(entry_names(&p), None);
        std::fs::write(
            &p,
            "kernel x sidus.tree=lab sidus.snapshot=20261125T101500Z ip=dhcp\n",
        )
        .unwrap();
        assert_eq!(
            entry_names(&p).map(|i| i.to_string()).as_deref(),
            Some("20261125T101500Z")
        );
    }
}
