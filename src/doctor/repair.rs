//! `sidus doctor --repair`: carries out the problems' fixes in an order that
//! lets each build on the last: damaged records first (recovery needs them
//! readable), then each tree opened for writing as the next writer would
//! (`Store::write_lock`: its intents and the backend's leftovers settled)
//! with what a run left in it, then the publish intent, `sidus restore` and
//! stray serves, last the modes. Every step looks again at what it fixes
//! under the lock it holds, so a problem a writer fixed meanwhile is left.
//! Nothing that holds data is removed.

use super::fixes::*;
use crate::sandbox::mounts::kill_rooted;
use crate::sandbox::paths::TreeRoot;
use crate::sandbox::wrappers::{self, Plan};
use crate::state::journal::Entry;
use crate::store::Store;
use anyhow::{Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    if acts.iter().any(|a| matches!(a, Action::Settle(_))) {
        // Also with no intent left: the backend's leftovers (of an older
        // sidus, or made by hand) are settled the same way.
        crate::trees::recover::recover_tree(store, tree)?;
    }
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

/// Journals what doctor itself did (recovery journals its own).
pub(super) fn journal(
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
