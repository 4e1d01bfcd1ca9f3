//! The store's journal: one JSON line per state-changing command, appended.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the command finished.
    pub time: DateTime<Utc>,
    /// Who ran it.
    pub user: String,
    /// The sidus command line.
    pub command: String,
    /// What it did, e.g. `snapshot`, `rollback`.
    pub action: String,
    /// The tree it acted on, if any.
    #[serde(default)]
    pub tree: Option<String>,
    /// Snapshot IDs it made, used or removed.
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// `ok`, or `failed: <reason>`.
    pub outcome: String,
}

impl Entry {
    /// True when the entry acted on `tree`, or used one of its snapshots
    /// (`clone lab@ID copy` is journaled under `copy` and concerns `lab` too).
    pub fn concerns(&self, tree: &str) -> bool {
        self.tree.as_deref() == Some(tree)
            || self.snapshots.iter().any(|s| {
                s.strip_prefix(tree)
                    .is_some_and(|rest| rest.starts_with('@'))
            })
    }
}

/// The journal file of a store.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal in `state_dir`.
    pub fn new(state_dir: &Path) -> Journal {
        Journal {
            path: state_dir.join("journal.jsonl"),
        }
    }

    /// Appends one entry as a single write, so concurrent writers never interleave
    /// within a line.
    pub fn append(&self, entry: &Entry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).expect("entry serializes");
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("open journal {}", self.path.display()))?;
        f.write_all(&line)
            .with_context(|| format!("append to journal {}", self.path.display()))
    }

    /// Every entry, oldest first, optionally only those that concern `tree`. A damaged line
    /// (a crash mid-write) is skipped rather than hiding the rest.
    pub fn read(&self, tree: Option<&str>) -> Result<Vec<Entry>> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("read journal {}", self.path.display()))
            }
        };
        let mut out = Vec::new();
        for line in BufReader::new(f).lines() {
            let line = line.with_context(|| format!("read journal {}", self.path.display()))?;
            if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
                if tree.is_none_or(|t| entry.concerns(t)) {
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tree: &str, action: &str) -> Entry {
        Entry {
            time: Utc::now(),
            user: "root".into(),
            command: "sidus x".into(),
            action: action.into(),
            tree: Some(tree.into()),
            snapshots: vec![],
            outcome: "ok".into(),
        }
    }

    #[test]
    fn append_then_filter_by_tree_skipping_damage() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&entry("a", "create")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap()
            .write_all(b"{\"time\": trunc\n")
            .unwrap();
        j.append(&entry("b", "create")).unwrap();
        j.append(&entry("a", "snapshot")).unwrap();
        let mut clone = entry("copy", "clone");
        clone.snapshots = vec!["a@20261125T101500Z".into()];
        j.append(&clone).unwrap();
        let mut other = entry("ab", "clone");
        other.snapshots = vec!["abc@20261125T101500Z".into()];
        j.append(&other).unwrap();
        let a: Vec<_> = j
            .read(Some("a"))
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(a, ["create", "snapshot", "clone"]);
        assert_eq!(j.read(None).unwrap().len(), 5);
        assert_eq!(j.read(Some("copy")).unwrap().len(), 1);
    }
}
