//! Finishing a run whose sidus was killed (or whose host crashed): part of the
//! recovery [`Store::write_lock`](crate::store::Store::write_lock) runs, so
//! every writing command on the tree does it first.

use super::{keep, roll_back, OnFailure, Phase, Record};
use crate::sandbox::mounts;
use crate::sandbox::paths::TreeRoot;
use crate::store::Store;
use crate::trees::recover::Recovered;
use anyhow::{Context, Result};
use sidus_backends::SnapshotKind;
use std::time::Duration;

/// How long processes left in the tree get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Finishes a run whose sidus died: kills what it left in the tree, then
/// keeps the tree (as a post snapshot) or rolls it back to `pre`, as the run's
/// policy and the command's status say. The caller holds the lock.
pub fn finish(store: &Store, record: &Record) -> Result<Recovered> {
    let tree = &record.tree;
    if !store.backend.list_trees()?.iter().any(|t| &t.name == tree) {
        return Ok(Recovered::Undone("the tree no longer exists".into()));
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
        // Killed before its pre snapshot was made: nothing had been run.
        return Ok(Recovered::Undone(format!(
            "the command had not started (no pre snapshot {})",
            record.pre
        )));
    }
    if let Some(post) = snaps
        .iter()
        .find(|s| s.kind == SnapshotKind::Post && s.pre.as_ref() == Some(&record.pre))
    {
        return Ok(Recovered::Finished(
            format!("it had completed (post snapshot {})", post.id),
            vec![record.pre.to_string(), post.id.to_string()],
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
        Ok(Recovered::Finished(
            format!("{how}; the tree is kept as post snapshot {}", post.id),
            vec![record.pre.to_string(), post.id.to_string()],
        ))
    } else {
        let why = match status {
            Some(s) => format!("the command had exited with status {s}"),
            None => "the command was interrupted".to_string(),
        };
        roll_back(store, record, &format!("`{}`: {why}", record.command))?;
        Ok(Recovered::Finished(
            format!("{why}; the tree is rolled back to {}", record.pre),
            vec![record.pre.to_string()],
        ))
    }
}
