//! Finishing a run whose sidus was killed (or whose host crashed): part of the
//! recovery [`Store::write_lock`](crate::store::Store::write_lock) runs, so
//! every writing command on the tree does it first.

use super::{keep, roll_back, OnFailure, Phase, Record};
use crate::sandbox::mounts;
use crate::sandbox::paths::TreeRoot;
use crate::state::intent::Intent;
use crate::store::{Invocation, Store};
use crate::trees::recover::Recovered;
use anyhow::{Context, Result};
use sidus_backends::SnapshotKind;
use std::time::Duration;

/// How long processes left in the tree get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Finishes a run whose sidus died: kills what it left in the tree, then
/// keeps the tree (as a post snapshot) or rolls it back to `pre`, as the run's
/// policy and the command's status say. The caller holds the lock.
pub fn finish(store: &Store, intent: &Intent, record: &Record) -> Result<Recovered> {
    let tree = &record.tree;
    if !store.backend.list_trees()?.iter().any(|t| &t.name == tree) {
        return Ok(Recovered::Failed(
            "the tree no longer exists".into(),
            vec![],
        ));
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
        return Ok(Recovered::Failed(
            format!(
                "the command had not started (no pre snapshot {})",
                record.pre
            ),
            vec![],
        ));
    }
    if let Some(post) = snaps
        .iter()
        .find(|s| s.kind == SnapshotKind::Post && s.pre.as_ref() == Some(&record.pre))
    {
        let what = format!("it had completed (post snapshot {})", post.id);
        let ids = vec![record.pre.to_string(), post.id.to_string()];
        return Ok(if post.status == Some(0) {
            Recovered::Finished(what, ids)
        } else {
            Recovered::Failed(what, ids)
        });
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
        let what = format!("{how}; the tree is kept as post snapshot {}", post.id);
        let ids = vec![record.pre.to_string(), post.id.to_string()];
        // Journaled as `sidus run` would have: a failure unless the command succeeded.
        Ok(if status == Some(0) {
            Recovered::Finished(what, ids)
        } else {
            Recovered::Failed(what, ids)
        })
    } else {
        let why = match status {
            Some(s) => format!("the command had exited with status {s}"),
            None => "the command was interrupted".to_string(),
        };
        let who = Invocation {
            user: intent.user.clone(),
            command: intent.command.clone(),
        };
        roll_back(store, record, &format!("`{}`: {why}", record.command), &who)?;
        Ok(Recovered::Failed(
            format!("{why}; the tree is rolled back to {}", record.pre),
            vec![record.pre.to_string()],
        ))
    }
}
