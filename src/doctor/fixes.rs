//! The fixes of `--repair` that are one file or one mount each: damaged
//! records moved aside and rebuilt, temp files, the publish intent,
//! `sidus restore`, stray serves and kernel copies, modes. Each takes the lock
//! the writers of what it changes take, and looks again under it.

use super::publish::rebuilt_state;
use super::repair::journal;
use crate::publish::exports::serve_path;
use crate::publish::state::PublishState;
use crate::publish::steps::publish_lock;
use crate::publish::{recover, restore, system};
use crate::state::atomic;
use crate::state::intent::TreeState;
use crate::store::Store;
use anyhow::{Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Renames a damaged record to `NAME.damaged-TIME`, durably.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = path
        .file_name()
        .context("a record has a name")?
        .to_string_lossy();
    let mut aside = path.with_file_name(format!("{name}.damaged-{stamp}"));
    for n in 1.. {
        if !aside.exists() {
            break;
        }
        aside = path.with_file_name(format!("{name}.damaged-{stamp}.{n}"));
    }
    atomic::rename_durable(path, &aside)?;
    Ok(aside)
}

/// Moves a damaged intent record aside, under the lock its writer takes.
pub(super) fn move_aside_locked(store: &Store, path: &Path) -> Result<String> {
    // A clone's record is written under the new tree's lock, the publish
    // intent under the publish lock.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _lock = match name
        .strip_prefix("clone-")
        .and_then(|n| n.strip_suffix(".json"))
        .and_then(|n| n.parse::<TreeName>().ok())
    {
        Some(t) => store.lock(&t)?,
        None => publish_lock(store)?,
    };
    let aside = move_aside(path)?;
    journal(
        store,
        "repair",
        None,
        vec![],
        format!(
            "ok: sidus doctor moved the damaged {} aside to {}",
            path.display(),
            aside.display()
        ),
    );
    Ok(format!(
        "moved {} aside to {}",
        path.display(),
        aside.display()
    ))
}

/// Writes the tree's state again with the newest ID it ever had, as far as
/// the journal and the storage know.
pub(super) fn rebuild_tree_state(store: &Store, tree: &TreeName, path: &Path) -> Result<String> {
    let _lock = store.lock(tree)?;
    let mut ids: Vec<SnapshotId> = store.backend.snapshot_ids(tree).unwrap_or_default();
    let named = super::journal::named(&store.journal.read(None)?.entries);
    ids.extend(
        named
            .iter()
            .filter(|(t, _)| t == tree.as_str())
            .filter_map(|(_, id)| id.parse().ok()),
    );
    let aside = move_aside(path)?;
    // A replica's mark is lost with the damaged file: the tree is this
    // store's own again (its primary's `replicate` then says so).
    let state = TreeState {
        last_id: ids.into_iter().max(),
        intent: None,
        replica: None,
    };
    state.save(store.state_dir(), tree)?;
    journal(
        store,
        "repair",
        Some(tree),
        vec![],
        format!(
            "ok: sidus doctor moved the damaged {} aside to {} and wrote it again",
            path.display(),
            aside.display()
        ),
    );
    Ok(format!(
        "tree '{tree}': rebuilt {} (the damaged one is {})",
        path.display(),
        aside.display()
    ))
}

/// Moves the damaged publish state aside and rebuilds it (see [`rebuilt_state`]).
pub(super) fn rebuild_publish_state(store: &Store, path: &Path) -> Result<String> {
    let _plock = publish_lock(store)?;
    let state = rebuilt_state(&store.config.publish());
    let aside = move_aside(path)?;
    state.save(store.state_dir())?;
    journal(
        store,
        "repair",
        None,
        vec![],
        format!(
            "ok: sidus doctor rebuilt the publish state; the damaged one is {}",
            aside.display()
        ),
    );
    Ok(format!(
        "rebuilt {} from the boot entries and the exports file (the damaged one is {})",
        path.display(),
        aside.display()
    ))
}

/// Removes a temp file an atomic write left.
pub(super) fn remove(path: &Path) -> Result<String> {
    Ok(if atomic::remove_durable(path)? {
        format!("removed {}", path.display())
    } else {
        String::new()
    })
}

/// Settles the publish intent of no tree (a restore), under the publish lock.
pub(super) fn settle_publish(store: &Store) -> Result<String> {
    let _plock = publish_lock(store)?;
    recover::recover_publish(store, None)?;
    Ok("settled the publish intent".into())
}

/// `sidus restore`, journaled as the command journals it.
pub(super) fn do_restore(store: &Store) -> Result<String> {
    let r = store.journaled("restore", None, || {
        let r = restore::restore(store)?;
        let ids = r.served.clone();
        Ok((r, ids))
    })?;
    Ok(format!(
        "restored: {} export(s) served, boot entries of {} tree(s) rewritten",
        r.served.len(),
        r.boot_entries_fixed.len()
    ))
}

/// Unmounts a serve of an ID that is neither published nor exported.
pub(super) fn unserve(
    store: &Store,
    tree: &TreeName,
    id: &SnapshotId,
    path: &Path,
) -> Result<String> {
    let _plock = publish_lock(store)?;
    let cfg = store.config.publish();
    let exports = std::fs::read_to_string(&cfg.exports_file).unwrap_or_default();
    let listed = crate::publish::exports::exported_in(&cfg.root, &exports)
        .contains(&(tree.clone(), id.clone()));
    if PublishState::load(store.state_dir())?.is_exported(tree, id)
        || listed
        || serve_path(&cfg.root, tree, id) != path
        || !system::is_mount_point(path)?
    {
        return Ok(String::new());
    }
    crate::publish::ops::unserve(store, tree, id, path)?;
    let _ = std::fs::remove_dir(path);
    Ok(format!("unmounted {}", path.display()))
}

/// Removes an empty mount point, or (`whole`) a kernel copy, of an ID that is not published.
pub(super) fn remove_dir(store: &Store, path: &Path, whole: bool) -> Result<String> {
    let _plock = publish_lock(store)?;
    // Looked at again under the lock: published meanwhile, it stays.
    let tree = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|t| t.to_str()?.parse::<TreeName>().ok());
    let id = path
        .file_name()
        .and_then(|i| i.to_str()?.parse::<SnapshotId>().ok());
    let published = match (tree, id) {
        (Some(t), Some(i)) => PublishState::load(store.state_dir())?.is_exported(&t, &i),
        _ => false,
    };
    if published || system::is_mount_point(path)? {
        return Ok(String::new());
    }
    match if whole {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_dir(path)
    } {
        // Recovery (or a publisher) removed it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        r => r.with_context(|| format!("remove {}", path.display()))?,
    }
    Ok(format!("removed {}", path.display()))
}

/// Gives `path` to root and takes group and world write off it.
pub(super) fn fix_mode(path: &Path) -> Result<String> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(String::new());
    }
    if meta.uid() != 0 {
        std::os::unix::fs::lchown(path, Some(0), None)
            .with_context(|| format!("chown {}", path.display()))?;
    }
    let mode = meta.mode() & 0o7777;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o022))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(format!(
        "{}: mode {:04o}, owner root",
        path.display(),
        mode & !0o022
    ))
}
