//! The run transaction, top to bottom: lock, `pre` snapshot, wrappers, the
//! command in its sandbox, then either a `post` snapshot or a rollback to `pre`.
//! A record in the store's state directory says how far a run got, so that the
//! next sidus command on the tree can finish one whose sidus was killed
//! ([`recover`]).

pub mod record;
pub mod recover;

pub use record::{OnFailure, Phase, Record};

use crate::sandbox::namespace::Outcome;
use crate::sandbox::paths::TreeRoot;
use crate::sandbox::{self, purge::purge, wrappers, Access, Resolv, Spec};
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::state::journal::Entry;
use crate::store::{Invocation, Store};
use crate::trees::{make_snapshot, take_snapshot, RunFacts};
use anyhow::{Context, Result};
use serde::Serialize;
use sidus_backends::{Snapshot, SnapshotId, SnapshotKind, TreeName};

/// The host file whose content the command resolves names with.
const HOST_RESOLV: &str = "/etc/resolv.conf";

/// A command to run in a tree.
#[derive(Debug, Clone)]
pub struct Request {
    /// The tree.
    pub tree: TreeName,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// The snapshots' message (default: the command).
    pub message: Option<String>,
    /// What to do when the command fails.
    pub on_failure: OnFailure,
    /// Variables added to the clean environment.
    pub extra_env: Vec<(String, String)>,
    /// The network and capabilities the command gets.
    pub access: Access,
}

/// What a finished run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The tree.
    pub tree: TreeName,
    /// The command, shell-quoted.
    pub command: String,
    /// Its status as a shell reports it (128 + N for signal N).
    pub status: i32,
    /// How it ended.
    pub outcome: Outcome,
    /// The snapshot taken before.
    pub pre: SnapshotId,
    /// The snapshot taken after, when the tree was kept.
    pub post: Option<SnapshotId>,
    /// Whether the tree was put back to `pre`.
    pub rolled_back: bool,
    /// Things the admin should know (a kept policy-rc.d, an unpurged /run...).
    pub warnings: Vec<String>,
}

/// The command failed: sidus exits with its status after saying what it did.
#[derive(Debug)]
pub struct CommandFailed {
    /// The exit status to give.
    pub code: u8,
    /// What happened, in one line.
    pub message: String,
    /// The snapshots it made or used (a failed run's `pre`, and the `post`
    /// `--keep-on-failure` kept), for the journal: a failure that made
    /// snapshots names them like a success does.
    pub snapshots: Vec<String>,
}

impl std::fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CommandFailed {}

/// Runs `req` as one transaction. `Ok` whether the command succeeded or not
/// (see [`Report::outcome`]); `Err` when sidus itself failed, the tree then
/// being as it was before.
pub fn run(store: &Store, req: &Request) -> Result<Report> {
    let tree = &req.tree;
    let _lock = store.write_lock(tree)?;
    let path = store.backend.tree_path(tree)?;
    let command = req
        .argv
        .iter()
        .map(|a| crate::store::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let message = req.message.clone().unwrap_or_else(|| command.clone());
    // Everything that can be refused is decided before the tree is touched.
    let root = TreeRoot::open(&path)?;
    let plan = wrappers::plan(&root)?;
    let host_resolv = std::fs::read(HOST_RESOLV).ok();
    let extra: Vec<(&str, &str)> = req
        .extra_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let spec = Spec {
        argv: req.argv.clone(),
        env: sandbox::clean_env(std::env::var("TERM").ok(), &extra),
        resolv: sandbox::plan_resolv(&root, host_resolv.is_some())?,
        host_resolv: (HOST_RESOLV.into(), host_resolv.unwrap_or_default()),
        access: req.access.clone(),
    };
    if let Resolv::Off(why) = &spec.resolv {
        log::info!("name resolution not set up in the run: {why}");
    }

    store.check_pool_room(&format!("snapshot tree '{tree}'"))?;
    let next = store.next_id(tree)?;
    let mut record = Record {
        tree: tree.clone(),
        pre: next.0.clone(),
        on_failure: req.on_failure,
        command: command.clone(),
        message: message.clone(),
        wrappers: plan.clone(),
        sandbox: req.access.flags(),
        phase: Phase::Running,
        pid: std::process::id(),
        started: chrono::Utc::now(),
    };
    store.begin(
        Slot::Tree(tree.clone()),
        Change::Run(record.clone()),
        Some(&record.pre),
    )?;
    let pre = make_snapshot(
        store,
        tree,
        next,
        SnapshotKind::Pre,
        &message,
        RunFacts {
            command: Some(req.access.describe(&command)),
            ..RunFacts::default()
        },
    )?;
    failpoint::hit("run:after-pre");

    let ran = wrappers::install(&root, &plan).and_then(|()| sandbox::run(&root, &spec));
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(e) => {
            drop(root);
            return Err(undo_setup(store, &record, e));
        }
    };
    record.phase = Phase::Finished {
        status: outcome.code(),
    };
    store.update_intent(Change::Run(record.clone()), None)?;
    failpoint::hit("run:after-command");
    let mut report = Report {
        tree: tree.clone(),
        command,
        status: outcome.code(),
        outcome,
        pre: pre.id.clone(),
        post: None,
        rolled_back: false,
        warnings: Vec::new(),
    };
    if outcome.success() || req.on_failure == OnFailure::Keep {
        let (post, warnings) = keep(store, &root, &record, Some(outcome.code()))?;
        failpoint::hit("run:after-post");
        report.post = Some(post.id);
        report.warnings = warnings;
    } else {
        drop(root);
        let why = format!("`{}` {outcome}", record.command);
        roll_back(store, &record, &why, &store.invocation)?;
        report.rolled_back = true;
    }
    Ok(report)
}

/// The sandbox could not be built, so the command never ran: put the tree back
/// as it was and drop the `pre` snapshot, leaving no trace but the journal.
fn undo_setup(store: &Store, record: &Record, err: anyhow::Error) -> anyhow::Error {
    match store.backend.replace_working(&record.tree, &record.pre) {
        Ok(()) => {
            let _ = store.backend.delete_snapshot(&record.tree, &record.pre);
            err.context(format!("cannot run in tree '{}'", record.tree))
        }
        Err(u) => err.context(format!(
            "cannot run in tree '{}', and putting it back to {} failed too ({u:#}); \
             the tree keeps what the failed setup left",
            record.tree, record.pre
        )),
    }
}

/// Keeps the tree: takes the wrappers out, empties `run` and `tmp`, and takes
/// the `post` snapshot. Returns it with warnings for the admin.
fn keep(
    store: &Store,
    root: &TreeRoot,
    record: &Record,
    status: Option<i32>,
) -> Result<(Snapshot, Vec<String>)> {
    let mut warnings = wrappers::restore(root, &record.wrappers)?;
    for (dir, keep) in [("run", &["lock"][..]), ("tmp", &[][..])] {
        warnings.extend(purge(root, dir, keep)?);
    }
    let post = take_snapshot(
        store,
        &record.tree,
        SnapshotKind::Post,
        &record.message,
        RunFacts {
            pre: Some(record.pre.clone()),
            status,
            command: Some(sandbox::access::describe(&record.command, &record.sandbox)),
        },
    )?;
    Ok((post, warnings))
}

/// Puts the tree back to the run's `pre` snapshot, and journals it as done by
/// `who` (the run's own command line, also when recovery does it).
fn roll_back(store: &Store, record: &Record, why: &str, who: &Invocation) -> Result<()> {
    store
        .backend
        .replace_working(&record.tree, &record.pre)
        .with_context(|| {
            format!(
                "roll '{}' back to {} after the failed run",
                record.tree, record.pre
            )
        })?;
    let entry = Entry {
        time: chrono::Utc::now(),
        user: who.user.clone(),
        command: who.command.clone(),
        action: "rollback".into(),
        tree: Some(record.tree.to_string()),
        snapshots: vec![record.pre.to_string()],
        outcome: format!("ok: {why}, rolled back to pre"),
        intent: None,
    };
    // A run's outcome matters more than this entry: a failure is only logged.
    if let Err(e) = store.journal.append(&entry) {
        log::warn!("{e:#}");
    }
    Ok(())
}
