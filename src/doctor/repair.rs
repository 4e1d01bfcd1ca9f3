//! `sidus doctor --repair`: carries out the problems' fixes in an order that
//! lets each build on the last: damaged records first (recovery needs them
//! readable), then each tree opened for writing as the next writer would
//! (`Store::write_lock`: its intents and the backend's leftovers settled)
//! with what a run left in it, then the publish intent, `sidus restore` and
//! stray serves, last the modes. Every step looks again at what it fixes
//! under the lock it holds, so a problem a writer fixed meanwhile is left.
//! Nothing that holds data is removed.

use super::publish::rebuilt_state;
use crate::publish::exports::serve_path;
use crate::publish::state::PublishState;
use crate::publish::steps::publish_lock;
use crate::publish::{recover, restore, system};
use crate::sandbox::mounts::kill_rooted;
use crate::sandbox::paths::TreeRoot;
use crate::sandbox::wrappers::{self, Plan};
use crate::state::atomic;
use crate::state::intent::TreeState;
use crate::state::journal::Entry;
use crate::store::Store;
use anyhow::{Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `--repair` does about one problem.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open the tree for writing: its intents and leftovers are settled.
    Settle(TreeName),
    /// Settle the publish intent of no tree (a restore).
    SettlePublish,
    /// Move the tree's damaged state file aside and write it again.
    RebuildTreeState(TreeName, PathBuf),
    /// Move a damaged intent record aside.
    MoveAside(PathBuf),
    /// Move the damaged publish state aside and rebuild it.
    RebuildPublishState(PathBuf),
    /// Remove a temp file.
    Remove(PathBuf),
    /// Unmount a mount left in a tree.
    Unmount(TreeName, PathBuf),
    /// End the processes rooted in a tree.
    Kill(TreeName),
    /// Take a dead run's wrappers out of a tree.
    Unwrap(TreeName, Plan),
    /// Journal a snapshot no entry names.
    Adopt(TreeName, SnapshotId),
    /// `sidus restore`.
    Restore,
    /// Unmount a serve mount of an ID that is not published.
    Unserve(TreeName, SnapshotId, PathBuf),
    /// Remove an empty mount point.
    RemoveEmptyDir(PathBuf),
    /// Remove a kernel copy of an ID that is not published.
    RemoveTree(PathBuf),
    /// Take group and world write away, and give the file to root.
    Mode(PathBuf),
}

/// Carries out the repairs of `problems`; returns what was done and what failed.
pub fn run(store: &Store, problems: &[super::Problem]) -> Vec<String> {
    let actions: Vec<&Action> = problems.iter().filter_map(|p| p.repair.as_ref()).collect();
    let mut said = Vec::new();
    let mut say = |what: &str, r: Result<String>| match r {
        Ok(done) if done.is_empty() => {}
        Ok(done) => said.push(done),
        Err(e) => said.push(format!("could not {what}: {e:#}")),
    };
    for a in &actions {
        match a {
            Action::RebuildTreeState(t, p) => say(
                &format!("rebuild the state of '{t}'"),
                rebuild_tree_state(store, t, p),
            ),
            Action::MoveAside(p) => say("move a damaged record aside", move_aside_locked(store, p)),
            Action::RebuildPublishState(p) => {
                say("rebuild the publish state", rebuild_publish_state(store, p))
            }
            Action::Remove(p) => say("remove a temp file", remove(p)),
            _ => {}
        }
    }
    let mut per_tree: BTreeMap<&TreeName, Vec<&Action>> = BTreeMap::new();
    for a in &actions {
        match a {
            Action::Settle(t)
            | Action::Unmount(t, _)
            | Action::Kill(t)
            | Action::Unwrap(t, _)
            | Action::Adopt(t, _) => per_tree.entry(t).or_default().push(a),
            _ => {}
        }
    }
    for (tree, acts) in per_tree {
        say(
            &format!("repair tree '{tree}'"),
            repair_tree(store, tree, &acts),
        );
    }
    if actions.iter().any(|a| matches!(a, Action::SettlePublish)) {
        say("settle the publish intent", settle_publish(store));
    }
    if actions.iter().any(|a| matches!(a, Action::Restore)) {
        say("restore", do_restore(store));
    }
    for a in &actions {
        match a {
            Action::Unserve(t, id, p) => say("unmount a stray serve", unserve(store, t, id, p)),
            Action::RemoveEmptyDir(p) => {
                say("remove an empty mount point", remove_dir(store, p, false))
            }
            Action::RemoveTree(p) => say("remove a stray kernel copy", remove_dir(store, p, true)),
            Action::Mode(p) => say("fix a mode", fix_mode(p)),
            _ => {}
        }
    }
    said
}

/// Opens `tree` for writing (recovery runs), then fixes what a run left.
fn repair_tree(store: &Store, tree: &TreeName, acts: &[&Action]) -> Result<String> {
    let _lock = store.write_lock(tree)?;
    let mut done = Vec::new();
    if acts.iter().any(|a| {
        matches!(
            a,
            Action::Kill(_) | Action::Unmount(..) | Action::Unwrap(..)
        )
    }) {
        if let Some(path) = store
            .backend
            .list_trees()?
            .into_iter()
            .find(|t| &t.name == tree)
            .map(|t| t.path)
        {
            let root = TreeRoot::open(&path)?;
            if acts.iter().any(|a| matches!(a, Action::Kill(_))) {
                let killed = kill_rooted(&root, Duration::from_secs(5))?;
                if !killed.is_empty() {
                    done.push(format!("ended processes {killed:?}"));
                }
            }
            for m in super::sandbox::stray_mounts(&path)? {
                rustix::mount::unmount(&m, rustix::mount::UnmountFlags::NOFOLLOW)
                    .with_context(|| format!("unmount {}", m.display()))?;
                done.push(format!("unmounted {}", m.display()));
            }
            // Looked at again: recovery may have taken them out already.
            let left = wrappers::left_behind(&root)?;
            if !left.found.is_empty() {
                for w in wrappers::restore(&root, &left.plan)? {
                    eprintln!("sidus: warning: {w}");
                }
                done.push(format!("took the wrappers out ({})", left.found.join(", ")));
            }
        }
    }
    if !done.is_empty() {
        journal(
            store,
            "repair",
            Some(tree),
            vec![],
            format!("ok: sidus doctor {}", done.join("; ")),
        );
    }
    let named = super::journal::named(&store.journal.read(None)?.entries);
    let present = store.backend.snapshot_ids(tree).unwrap_or_default();
    for a in acts {
        if let Action::Adopt(t, id) = a {
            if present.contains(id) && !named.contains(&(t.to_string(), id.to_string())) {
                journal(
                    store,
                    "adopt",
                    Some(t),
                    vec![id.to_string()],
                    "ok: found in storage with no journal entry; adopted by sidus doctor --repair"
                        .into(),
                );
                done.push(format!("journaled {t}@{id}"));
            }
        }
    }
    let settled = acts.iter().any(|a| matches!(a, Action::Settle(_)));
    Ok(match (done.is_empty(), settled) {
        (true, true) => format!("tree '{tree}': settled what was interrupted"),
        (true, false) => String::new(),
        (false, _) => format!("tree '{tree}': {}", done.join("; ")),
    })
}

fn journal(
    store: &Store,
    action: &str,
    tree: Option<&TreeName>,
    snapshots: Vec<String>,
    outcome: String,
) {
    let entry = Entry {
        time: chrono::Utc::now(),
        user: store.invocation.user.clone(),
        command: store.invocation.command.clone(),
        action: action.into(),
        tree: tree.map(|t| t.to_string()),
        snapshots,
        outcome,
        intent: None,
    };
    if let Err(e) = store.journal.append(&entry) {
        eprintln!("sidus: warning: {e:#}");
    }
}

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
    std::fs::rename(path, &aside)
        .with_context(|| format!("rename {} to {}", path.display(), aside.display()))?;
    atomic::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(aside)
}

fn move_aside_locked(store: &Store, path: &Path) -> Result<String> {
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
fn rebuild_tree_state(store: &Store, tree: &TreeName, path: &Path) -> Result<String> {
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
    let state = TreeState {
        last_id: ids.into_iter().max(),
        intent: None,
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

fn rebuild_publish_state(store: &Store, path: &Path) -> Result<String> {
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

fn remove(path: &Path) -> Result<String> {
    Ok(if atomic::remove_durable(path)? {
        format!("removed {}", path.display())
    } else {
        String::new()
    })
}

fn settle_publish(store: &Store) -> Result<String> {
    let _plock = publish_lock(store)?;
    recover::recover_publish(store, None)?;
    Ok("settled the publish intent".into())
}

fn do_restore(store: &Store) -> Result<String> {
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

fn unserve(store: &Store, tree: &TreeName, id: &SnapshotId, path: &Path) -> Result<String> {
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

fn remove_dir(store: &Store, path: &Path, whole: bool) -> Result<String> {
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

fn fix_mode(path: &Path) -> Result<String> {
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
