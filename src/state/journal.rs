//! The store's journal: one JSON line per change, appended with one `write`
//! on an `O_APPEND` file and fsynced before the command reports success.
//!
//! A crash can leave a torn last line, NUL padding where the size grew but the
//! data did not land, or garbage. Reading skips every line that is not a whole
//! entry and says how many it skipped, once; appending first ends a torn tail
//! with a newline, so the damage never swallows the next good entry.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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
    /// The intent record the change was made under (see
    /// [`crate::state::intent`]), so recovery never journals a change twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
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

/// What [`Journal::read`] found.
#[derive(Debug, Default)]
pub struct Read {
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
    /// Lines that were not whole entries (a crash mid-write, NUL padding, bad bytes).
    pub damaged: usize,
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

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry durably: one `write` (concurrent writers never
    /// interleave within a line), then fsync.
    pub fn append(&self, entry: &Entry) -> Result<()> {
        crate::state::failpoint::hit("journal:before-append");
        let mut line = serde_json::to_vec(entry).expect("entry serializes");
        line.push(b'\n');
        let what = || format!("append to journal {}", self.path.display());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o644)
            .open(&self.path)
            .with_context(what)?;
        // The tail check and the write must not interleave with another
        // appender's, or its line could be taken for a torn tail.
        let file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(what)?;
        let len = file.metadata().with_context(what)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1).with_context(what)?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        (&*file).write_all(&line).with_context(what)?;
        file.sync_data().with_context(what)
    }

    /// Every entry, oldest first, optionally only those that concern `tree`,
    /// and how many damaged lines were skipped.
    pub fn read(&self, tree: Option<&str>) -> Result<Read> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
            Err(e) => {
                return Err(e).with_context(|| format!("read journal {}", self.path.display()))
            }
        };
        let mut out = Read::default();
        for line in bytes.split(|b| *b == b'\n') {
            let line = trim_nul(line);
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Entry>(line) {
                Ok(entry) => {
                    if tree.is_none_or(|t| entry.concerns(t)) {
                        out.entries.push(entry);
                    }
                }
                Err(_) => out.damaged += 1,
            }
        }
        Ok(out)
    }

    /// Whether an entry made under intent `id` is among the last entries
    /// (recovery's check before journaling a change a second time).
    pub fn has_intent(&self, id: &str) -> Result<bool> {
        Ok(self
            .read(None)?
            .entries
            .iter()
            .rev()
            .any(|e| e.intent.as_deref() == Some(id)))
    }
}

/// A line without the NUL padding a crash can leave around it.
fn trim_nul(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| *b != 0).unwrap_or(line.len());
    let end = line.iter().rposition(|b| *b != 0).map_or(start, |e| e + 1);
    &line[start..end]
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
            intent: None,
        }
    }

    fn raw(dir: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    #[test]
    fn append_then_filter_by_tree_skipping_damage() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&entry("a", "create")).unwrap();
        raw(dir.path(), b"{\"time\": trunc\n");
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
            .entries
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(a, ["create", "snapshot", "clone"]);
        let all = j.read(None).unwrap();
        assert_eq!((all.entries.len(), all.damaged), (5, 1));
        assert_eq!(j.read(Some("copy")).unwrap().entries.len(), 1);
    }

    #[test]
    fn torn_tail_nul_padding_and_bad_bytes_never_swallow_a_good_entry() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.append(&entry("a", "one")).unwrap();
        // A torn last line without its newline: the next entry must survive.
        raw(dir.path(), b"{\"time\":\"2026-");
        j.append(&entry("a", "two")).unwrap();
        // NUL padding, then an entry written after the crash.
        raw(dir.path(), &[0u8; 64]);
        j.append(&entry("a", "three")).unwrap();
        // A line with a byte that is not UTF-8.
        raw(dir.path(), b"{\"time\": \"\xff\"}\n");
        j.append(&entry("a", "four")).unwrap();
        let r = j.read(None).unwrap();
        let actions: Vec<_> = r.entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["one", "two", "three", "four"]);
        assert_eq!(r.damaged, 2, "the torn line and the bad-byte line");
    }

    #[test]
    fn intent_ids_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert!(!j.has_intent("x").unwrap());
        let mut e = entry("a", "snapshot");
        e.intent = Some("x".into());
        j.append(&e).unwrap();
        assert!(j.has_intent("x").unwrap());
        assert!(!j.has_intent("y").unwrap());
    }
}
