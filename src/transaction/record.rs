//! The record of a run in progress, kept as the tree's intent
//! ([`crate::state::intent::Change::Run`]): written before the `pre`
//! snapshot, updated when the command ends, cleared once the run is
//! journaled. Finding one while holding the tree's lock means the sidus that
//! wrote it died mid-run.

use crate::sandbox::wrappers::Plan;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};

/// What to do with the tree when the command fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Put the tree back to the `pre` snapshot.
    Rollback,
    /// Keep what the command did, as a `post` snapshot recording its status.
    Keep,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The wrappers may be in place and the command may be running.
    Running,
    /// The command ended with this status; the tree is being kept or rolled back.
    Finished {
        /// Its status, as a shell reports it.
        status: i32,
    },
}

/// One unfinished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The tree.
    pub tree: TreeName,
    /// Its `pre` snapshot.
    pub pre: SnapshotId,
    /// The policy the admin chose.
    pub on_failure: OnFailure,
    /// The command, shell-quoted.
    pub command: String,
    /// The snapshot message.
    pub message: String,
    /// The wrappers put in (or about to be put in) the tree.
    pub wrappers: Plan,
    /// The sandbox options that differ from the default (`--network none`,
    /// `--capability CAP_X`), recorded in the snapshots with the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sandbox: Vec<String>,
    /// Where the run is.
    pub phase: Phase,
    /// The sidus process running it.
    pub pid: u32,
    /// When it started.
    pub started: DateTime<Utc>,
}
