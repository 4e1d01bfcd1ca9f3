//! What sidus does to trees and snapshots, and what it refuses: the policy on top
//! of a backend's mechanism. Callers hold the tree's lock where noted.

pub mod debootstrap;
pub mod recover;
pub mod refs;

use crate::history::protect::{describe, Protections};
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use crate::trees::refs::TreeRef;
use anyhow::{bail, Context, Result};
use sidus_backends::{Runner, Snapshot, SnapshotId, SnapshotKind, TreeName, TreeRecord};
use std::path::{Path, PathBuf};

/// Extra facts a snapshot records about the run that made it.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// The `pre` snapshot of the same run.
    pub pre: Option<SnapshotId>,
    /// The command's exit status.
    pub status: Option<i32>,
    /// The command run, when it is not the sidus command line itself.
    pub command: Option<String>,
}

/// The tree's record, or a clear "no tree" error.
pub fn find_tree(store: &Store, tree: &TreeName) -> Result<TreeRecord> {
    store
        .backend
        .list_trees()?
        .into_iter()
        .find(|t| &t.name == tree)
        .ok_or_else(|| anyhow::anyhow!("no tree named '{tree}' (see `sidus list`)"))
}

/// Resolves `TREE@REF` (REF required) to a snapshot.
pub fn resolve_ref(store: &Store, r: &TreeRef) -> Result<Snapshot> {
    let snaps = store
        .backend
        .list_snapshots(Some(&r.tree))
        .map_err(not_found_hint)?;
    resolve_among(store, r, &snaps, |s| &s.id).cloned()
}

/// The ID `TREE@REF` (REF required) names, found among the IDs alone: where a
/// backend lists those cheaper than whole snapshots (ZFS reads .zfs/snapshot
/// instead of running `zfs list`), commands that need no metadata use this.
pub fn resolve_ref_id(store: &Store, r: &TreeRef) -> Result<SnapshotId> {
    let ids = store
        .backend
        .snapshot_ids(&r.tree)
        .map_err(not_found_hint)?;
    resolve_among(store, r, &ids, |i| i).cloned()
}

/// Resolves `r`'s REF among `items` (the tree's snapshots, or their IDs).
fn resolve_among<'a, T>(
    store: &Store,
    r: &TreeRef,
    items: &'a [T],
    id: impl Fn(&T) -> &SnapshotId + Copy,
) -> Result<&'a T> {
    let Some(reference) = &r.reference else {
        bail!("'{}' names no snapshot: use {0}@ID or {0}@latest", r.tree)
    };
    // A pin label is a REF too. Labels can never look like `latest` or an ID
    // prefix (see `pins::parse_label`), so IDs never need the pins file.
    if crate::history::pins::parse_label(reference).is_ok() {
        let pins = crate::history::pins::Pins::new(store.state_dir()).of_tree(&r.tree)?;
        if let Some(pin) = crate::history::pins::find_label(&pins, &r.tree, reference) {
            return items.iter().find(|s| id(s) == &pin.id).ok_or_else(|| {
                anyhow::anyhow!(
                    "label '{reference}' names {}@{}, which no longer exists (sidus unpin {0}@{reference})",
                    r.tree,
                    pin.id
                )
            });
        }
        bail!(
            "no snapshot or pin label '{reference}' in tree '{}' (see `sidus snapshots {0}` and `sidus pins {0}`)",
            r.tree
        );
    }
    crate::trees::refs::resolve_by(&r.tree, reference, items, id)
}

/// Turns "no tree" from a backend into a hint at `sidus list`.
pub(crate) fn not_found_hint(e: sidus_backends::BackendError) -> anyhow::Error {
    match e {
        sidus_backends::BackendError::NotFound(sidus_backends::Object::Tree(t)) => {
            anyhow::anyhow!("no tree named '{t}' (see `sidus list`)")
        }
        other => other.into(),
    }
}

/// Creates a tree, empty or as a copy of `from_dir` (owners, modes, xattrs, ACLs,
/// hard links and device nodes preserved). A failed copy removes the new tree.
pub fn create(store: &Store, tree: &TreeName, from_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = from_dir {
        if !dir.is_dir() {
            bail!("--from-dir {}: not a directory", dir.display());
        }
    }
    let _lock = store.write_lock(tree)?;
    // Checked under the lock, before the intent: recovery removes a tree its
    // create intent names, so that must only ever be a tree it made.
    if store.backend.tree_exists(tree)? {
        bail!("tree '{tree}' already exists");
    }
    store.begin(
        Slot::Tree(tree.clone()),
        Change::Create { tree: tree.clone() },
        None,
    )?;
    let path = store.backend.create_tree(tree)?;
    failpoint::hit("create:after-tree");
    if let Some(dir) = from_dir {
        let mut src = dir.as_os_str().to_owned();
        src.push("/.");
        let copied = Runner::new().run(&sidus_backends::argv![
            "cp",
            "-a",
            "--reflink=auto",
            src,
            &path
        ]);
        if let Err(e) = copied {
            let undo = store.backend.destroy_tree(tree);
            let mut err =
                anyhow::Error::new(e).context(format!("copy {} into tree '{tree}'", dir.display()));
            if let Err(u) = undo {
                err = err.context(format!("and removing the half-made tree failed too: {u}"));
            }
            return Err(err);
        }
    }
    failpoint::hit("create:after-copy");
    Ok(path)
}

/// Makes snapshot `id` of `tree`'s working state, with `parent` as its
/// parent; the caller holds the lock and has recorded `id` as the tree's
/// `last_id` (see [`Store::begin`] and [`take_snapshot`]).
pub fn make_snapshot(
    store: &Store,
    tree: &TreeName,
    (id, parent): (SnapshotId, Option<SnapshotId>),
    kind: SnapshotKind,
    message: &str,
    facts: RunFacts,
) -> Result<Snapshot> {
    store.check_pool_room(&format!("snapshot tree '{tree}'"))?;
    let snap = Snapshot {
        tree: tree.clone(),
        created: chrono::Utc::now(),
        kind,
        message: message.to_string(),
        parent,
        user: store.invocation.user.clone(),
        command: facts
            .command
            .unwrap_or_else(|| store.invocation.command.clone()),
        pre: facts.pre,
        status: facts.status,
        id,
    };
    store.backend.snapshot(&snap)?;
    Ok(snap)
}

/// Takes a snapshot of `tree`'s working state as one step of a change whose
/// intent is already written: its ID is recorded durably first, so it is
/// never given again. The caller holds the lock.
pub fn take_snapshot(
    store: &Store,
    tree: &TreeName,
    kind: SnapshotKind,
    message: &str,
    facts: RunFacts,
) -> Result<Snapshot> {
    let next = store.reserve_id(tree)?;
    make_snapshot(store, tree, next, kind, message, facts)
}

/// `sidus snapshot`: one snapshot of the working tree, under its own intent.
pub fn snapshot(store: &Store, tree: &TreeName, message: &str) -> Result<Snapshot> {
    let _lock = store.write_lock(tree)?;
    store.check_pool_room(&format!("snapshot tree '{tree}'"))?;
    let next = store.next_id(tree)?;
    store.begin(
        Slot::Tree(tree.clone()),
        Change::Snapshot {
            tree: tree.clone(),
            id: next.0.clone(),
        },
        Some(&next.0),
    )?;
    let snap = make_snapshot(
        store,
        tree,
        next,
        SnapshotKind::Manual,
        message,
        RunFacts::default(),
    )?;
    failpoint::hit("snapshot:after-snapshot");
    Ok(snap)
}

/// Clones `src` (a snapshot, or the working state via a new `clone` snapshot)
/// into a new tree. Returns the new tree's path and the snapshot it came from.
pub fn clone(store: &Store, src: &TreeRef, new: &TreeName) -> Result<(PathBuf, SnapshotId)> {
    if store.backend.tree_exists(new)? {
        bail!("tree '{new}' already exists");
    }
    let _lock = store.write_lock(&src.tree)?;
    let _new_lock = store.write_lock(new)?;
    if store.backend.tree_exists(new)? {
        bail!("tree '{new}' already exists");
    }
    let (origin, parent, takes_snapshot) = match &src.reference {
        Some(_) => (resolve_ref_id(store, src)?, None, false),
        None => {
            let (id, parent) = store.reserve_id(&src.tree)?;
            (id, parent, true)
        }
    };
    store.check_pool_room(&format!("clone to '{new}'"))?;
    store.begin(
        Slot::Clone(new.clone()),
        Change::Clone {
            source: src.tree.clone(),
            id: origin.clone(),
            takes_snapshot,
            new: new.clone(),
        },
        None,
    )?;
    if takes_snapshot {
        make_snapshot(
            store,
            &src.tree,
            (origin.clone(), parent),
            SnapshotKind::Clone,
            &format!("cloned to {new}"),
            RunFacts::default(),
        )?;
        failpoint::hit("clone:after-snapshot");
    }
    let path = store.backend.clone_tree(&src.tree, &origin, new)?;
    failpoint::hit("clone:after-clone");
    Ok((path, origin))
}

/// Makes the working tree the content of `r`, after a `safety` snapshot of the
/// current state; every snapshot stays. Returns (safety, target ID): only
/// the ID is resolved, so a backend that lists IDs cheaper than whole
/// snapshots (ZFS) runs no listing query on the way.
pub fn rollback(store: &Store, r: &TreeRef) -> Result<(Snapshot, SnapshotId)> {
    let _lock = store.write_lock(&r.tree)?;
    let target = resolve_ref_id(store, r)?;
    store.check_pool_room(&format!("snapshot tree '{}'", r.tree))?;
    let next = store.next_id(&r.tree)?;
    store.begin(
        Slot::Tree(r.tree.clone()),
        Change::Rollback {
            tree: r.tree.clone(),
            target: target.clone(),
            safety: next.0.clone(),
        },
        Some(&next.0),
    )?;
    let safety = make_snapshot(
        store,
        &r.tree,
        next,
        SnapshotKind::Safety,
        &format!("before rollback to {target}"),
        RunFacts::default(),
    )?;
    failpoint::hit("rollback:after-safety");
    replace_working(store, &r.tree, &target, &safety.id)?;
    failpoint::hit("rollback:after-replace");
    Ok((safety, target))
}

/// The rollback's second step: the working tree becomes a copy of `target`.
pub fn replace_working(
    store: &Store,
    tree: &TreeName,
    target: &SnapshotId,
    safety: &SnapshotId,
) -> Result<()> {
    store
        .backend
        .replace_working(tree, target)
        .with_context(|| {
            format!("roll back '{tree}' to {target} (the previous state is kept as {safety})")
        })
}

/// Deletes one snapshot unless something protects it (see [`crate::history::protect`]):
/// a pin, publishing, a clone made from it, an unfinished run.
pub fn delete(store: &Store, r: &TreeRef) -> Result<Snapshot> {
    let _lock = store.write_lock(&r.tree)?;
    let snap = resolve_ref(store, r)?;
    let protections = Protections::load(store, &snap.tree)?;
    let reasons = protections.of(&snap.id);
    if !reasons.is_empty() {
        bail!(
            "refusing to delete {}@{}: it is {}",
            snap.tree,
            snap.id,
            describe(reasons)
        );
    }
    store.begin(
        Slot::Tree(snap.tree.clone()),
        Change::Delete {
            tree: snap.tree.clone(),
            ids: vec![snap.id.clone()],
        },
        None,
    )?;
    store.backend.delete_snapshot(&snap.tree, &snap.id)?;
    crate::manifest::kept::forget(store.state_dir(), &snap.tree, Some(&snap.id));
    failpoint::hit("delete:after-delete");
    Ok(snap)
}

/// Removes a tree and all its snapshots unless another tree was cloned from it
/// or one of its snapshots is otherwise protected (pinned, published, the `pre`
/// of an unfinished run).
pub fn destroy(store: &Store, tree: &TreeName) -> Result<()> {
    let _lock = store.write_lock(tree)?;
    let trees = store.backend.list_trees()?;
    if !trees.iter().any(|t| &t.name == tree) {
        bail!("no tree named '{tree}' (see `sidus list`)");
    }
    let dependents: Vec<String> = trees
        .iter()
        .filter(|t| t.origin.as_ref().is_some_and(|o| &o.tree == tree))
        .map(|t| {
            format!(
                "'{}' (from {})",
                t.name,
                t.origin.as_ref().expect("filtered")
            )
        })
        .collect();
    if !dependents.is_empty() {
        bail!(
            "refusing to destroy tree '{tree}': clones depend on it: {}",
            dependents.join(", ")
        );
    }
    let protections = Protections::load(store, tree)?;
    let mut protected: Vec<String> = protections
        .iter()
        .map(|(id, why)| format!("{tree}@{id} is {}", describe(why)))
        .collect();
    if !protected.is_empty() {
        protected.sort();
        bail!(
            "refusing to destroy tree '{tree}': {}",
            protected.join("; ")
        );
    }
    store.begin(
        Slot::Tree(tree.clone()),
        Change::Destroy { tree: tree.clone() },
        None,
    )?;
    store.backend.destroy_tree(tree)?;
    crate::manifest::kept::forget(store.state_dir(), tree, None);
    crate::replica::forget(store.state_dir(), tree)?;
    failpoint::hit("destroy:after-storage");
    Ok(())
}

/// Where `r` is: the working tree, or a read-only view of a snapshot.
pub fn path(store: &Store, r: &TreeRef) -> Result<PathBuf> {
    match &r.reference {
        None => store.backend.tree_path(&r.tree).map_err(not_found_hint),
        Some(_) => {
            let snap = resolve_ref(store, r)?;
            Ok(store.backend.snapshot_path(&snap.tree, &snap.id)?)
        }
    }
}
