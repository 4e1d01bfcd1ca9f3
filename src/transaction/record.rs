//! The in-progress file of a run: written once the `pre` snapshot exists,
//! updated when the command ends, removed when the run is finished. Finding one
//! while holding the tree's lock means the sidus that wrote it died mid-run.

use crate::sandbox::wrappers::Plan;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::{SnapshotId, TreeName};
use std::io::Write;
use std::path::{Path, PathBuf};

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

fn path(state_dir: &Path, tree: &TreeName) -> PathBuf {
    state_dir.join("runs").join(format!("{tree}.json"))
}

impl Record {
    /// Where this record lives.
    pub fn path(&self, state_dir: &Path) -> PathBuf {
        path(state_dir, &self.tree)
    }

    /// The unfinished run of `tree`, if there is one.
    pub fn load(state_dir: &Path, tree: &TreeName) -> Result<Option<Record>> {
        let p = path(state_dir, tree);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .with_context(|| format!("parse {} (an unfinished run's record)", p.display()))
    }

    /// Writes the record atomically (a crash leaves the old one or the new one).
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let p = self.path(state_dir);
        let dir = p.parent().expect("runs dir");
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = p.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).expect("record serializes"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)
        };
        write().with_context(|| format!("write {}", p.display()))
    }

    /// Removes the record: the run is finished.
    pub fn remove(&self, state_dir: &Path) -> Result<()> {
        let p = self.path(state_dir);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", p.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let tree: TreeName = "lab".parse().unwrap();
        assert_eq!(Record::load(dir.path(), &tree).unwrap(), None);
        let mut r = Record {
            tree: tree.clone(),
            pre: "20261125T101500Z".parse().unwrap(),
            on_failure: OnFailure::Keep,
            command: "apt-get install -y hello".into(),
            message: "hello".into(),
            wrappers: Plan {
                policy_dir: Some("usr/sbin".into()),
                policy_saved: false,
                ssd_dirs: vec!["usr/sbin".into()],
            },
            sandbox: vec!["--capability".into(), "CAP_SYS_TIME".into()],
            phase: Phase::Running,
            pid: 42,
            started: Utc::now(),
        };
        r.save(dir.path()).unwrap();
        r.phase = Phase::Finished { status: 3 };
        r.save(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path(), &tree).unwrap(), Some(r.clone()));
        r.remove(dir.path()).unwrap();
        r.remove(dir.path()).unwrap();
        assert_eq!(Record::load(dir.path(), &tree).unwrap(), None);
    }
}
