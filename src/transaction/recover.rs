//! Finishing a run whose sidus was killed (or whose host crashed): called by
//! [`Store::lock`](crate::store::Store::lock) once it holds the tree's lock, so
//! every writing command on the tree does it first.

use super::{journal, keep, roll_back, OnFailure, Phase, Record};
use crate::sandbox::mounts;
use crate::sandbox::paths::TreeRoot;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use sidus_backends::{SnapshotKind, TreeName};
use std::time::Duration;

/// How long processes left in the tree get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Finishes `tree`'s unfinished run, if it has one. The caller holds the lock.
pub fn recover(store: &Store, tree: &TreeName) -> Result<()> {
    let Some(record) = Record::load(store.state_dir(), tree)? else {
        return Ok(());
    };
    match finish(store, &record) {
        Ok((what, ids)) => {
            record.remove(store.state_dir())?;
            let note = format!(
                "finished the interrupted run of `{}` (sidus pid {}, started {}): {what}",
                record.command,
                record.pid,
                record.started.format("%Y-%m-%d %H:%M:%S UTC")
            );
            journal(store, "recover", tree, ids, format!("ok: {note}"));
            eprintln!("sidus: tree '{tree}': {note}");
            Ok(())
        }
        Err(e) => {
            journal(store, "recover", tree, vec![], format!("failed: {e:#}"));
            Err(e.context(format!(
                "tree '{tree}' has an unfinished run of `{}` that could not be finished \
                 (its record is {})",
                record.command,
                record.path(store.state_dir()).display()
            )))
        }
    }
}

fn finish(store: &Store, record: &Record) -> Result<(String, Vec<String>)> {
    let tree = &record.tree;
    if !store.backend.list_trees()?.iter().any(|t| &t.name == tree) {
        return Ok(("the tree no longer exists".into(), vec![]));
    }
    let path = store.backend.tree_path(tree)?;
    {
        // The sandbox dies with its sidus; this is the second line of defence
        // (a process in uninterruptible sleep, a sandbox from an older sidus).
        let root = TreeRoot::open(&path)?;
        let killed = mounts::kill_rooted(&root, GRACE)?;
        if !killed.is_empty() {
            log::warn!("ended processes left in tree '{tree}': {killed:?}");
        }
        mounts::unmount_under(&path)?;
    }
    let snaps = store.backend.list_snapshots(Some(tree))?;
    if !snaps.iter().any(|s| s.id == record.pre) {
        bail!(
            "its pre snapshot {} is gone: check the tree by hand, then remove the record",
            record.pre
        );
    }
    if let Some(post) = snaps
        .iter()
        .find(|s| s.kind == SnapshotKind::Post && s.pre.as_ref() == Some(&record.pre))
    {
        return Ok((
            format!("it had completed (post snapshot {})", post.id),
            vec![post.id.to_string()],
        ));
    }
    let status = match record.phase {
        Phase::Finished { status } => Some(status),
        Phase::Running => None,
    };
    if status == Some(0) || record.on_failure == OnFailure::Keep {
        let root = TreeRoot::open(&path)?;
        let (post, warnings) = keep(store, &root, record, status)
            .with_context(|| format!("keep the state of '{tree}' after the interrupted run"))?;
        for w in warnings {
            eprintln!("sidus: warning: {w}");
        }
        let how = match status {
            Some(s) => format!("the command had ended with status {s}"),
            None => "the command was interrupted".into(),
        };
        Ok((
            format!("{how}; the tree is kept as post snapshot {}", post.id),
            vec![record.pre.to_string(), post.id.to_string()],
        ))
    } else {
        let why = match status {
            Some(s) => format!("the command had exited with status {s}"),
            None => "the command was interrupted".to_string(),
        };
        roll_back(store, record, &format!("`{}`: {why}", record.command))?;
        Ok((
            format!("{why}; the tree is rolled back to {}", record.pre),
            vec![record.pre.to_string()],
        ))
    }
}
