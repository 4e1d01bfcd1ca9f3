//! Every reason a snapshot must not be deleted, in one place: `delete`, `prune`
//! and `destroy` all ask here.
//!
//! Sources, all read at the moment of the decision:
//! - clone origins, from the backend's tree records;
//! - pins, from `<state_dir>/pins.json` ([`crate::history::pins`]);
//! - publishing, from `<state_dir>/publish/state.json` when it exists, written by
//!   the publish feature in exactly this shape (unknown fields are ignored):
//!   ```json
//!   {"trees": {"TREE": {"current": "ID", "exported": ["ID", "..."]}}}
//!   ```
//!   `current` is the snapshot clients boot now; `exported` every snapshot an
//!   export (NFS or otherwise) still serves. Both are protected.
//! - an unfinished `sidus run`, from its in-progress file when it exists,
//!   holding at least `{"pre": "ID"}`: that `pre` snapshot is what the run
//!   rolls back to, so it stays while the file does. `sidus run` writes
//!   `<state_dir>/runs/<tree>.json` (src/transaction/record.rs);
//!   `<state_dir>/sessions/<tree>.json`, the name first agreed, is read too.
//!
//! A state file that exists but cannot be read fails the decision: when in doubt,
//! nothing is deleted.

use crate::history::pins::{Pin, Pins};
use crate::store::Store;
use anyhow::{Context, Result};
use serde::Deserialize;
use sidus_backends::{SnapshotId, TreeName, TreeRecord};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// One reason a snapshot is protected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Protection {
    /// `sidus pin`, with its label if any.
    Pinned {
        /// The pin's label.
        label: Option<String>,
    },
    /// Served to clients by the publish feature.
    Published {
        /// True for the tree's current published snapshot.
        current: bool,
    },
    /// A tree was cloned from it.
    CloneOrigin {
        /// The clone.
        clone: TreeName,
    },
    /// The `pre` snapshot of a `sidus run` that has not finished.
    RunPre,
}

impl fmt::Display for Protection {
    /// Reads after "it is ": "it is pinned as 'paper', the origin of clone 'x'".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::Pinned { label: Some(l) } => write!(f, "pinned as '{l}'"),
            Protection::Pinned { label: None } => f.write_str("pinned"),
            Protection::Published { current: true } => f.write_str("published (current)"),
            Protection::Published { current: false } => f.write_str("published"),
            Protection::CloneOrigin { clone } => write!(f, "the origin of clone '{clone}'"),
            Protection::RunPre => f.write_str("the pre snapshot of an unfinished `sidus run`"),
        }
    }
}

/// The published snapshots of one tree, as the publish feature records them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Published {
    /// The snapshot clients boot now.
    #[serde(default)]
    pub current: Option<SnapshotId>,
    /// Every snapshot still exported.
    #[serde(default)]
    pub exported: Vec<SnapshotId>,
}

#[derive(Debug, Default, Deserialize)]
struct PublishState {
    #[serde(default)]
    trees: BTreeMap<String, Published>,
}

#[derive(Debug, Deserialize)]
struct Session {
    #[serde(default)]
    pre: Option<SnapshotId>,
}

/// The protections of one tree's snapshots.
#[derive(Debug, Clone, Default)]
pub struct Protections {
    by_id: HashMap<SnapshotId, Vec<Protection>>,
}

impl Protections {
    /// Gathers the protections of `tree`'s snapshots from the store's state now.
    pub fn load(store: &Store, tree: &TreeName) -> Result<Protections> {
        let trees = store.backend.list_trees()?;
        let pins = Pins::new(store.state_dir()).of_tree(tree)?;
        let published = published(store.state_dir(), tree)?;
        let pre = run_pre(store.state_dir(), tree)?;
        Ok(Protections::from_parts(
            tree, &trees, &pins, &published, &pre,
        ))
    }

    /// Builds the protections from their sources (pure).
    pub fn from_parts(
        tree: &TreeName,
        trees: &[TreeRecord],
        pins: &[Pin],
        published: &Published,
        run_pre: &[SnapshotId],
    ) -> Protections {
        let mut p = Protections::default();
        for pin in pins.iter().filter(|p| &p.tree == tree) {
            p.add(
                &pin.id,
                Protection::Pinned {
                    label: pin.label.as_ref().map(|l| l.to_string()),
                },
            );
        }
        if let Some(current) = &published.current {
            p.add(current, Protection::Published { current: true });
        }
        for id in &published.exported {
            if published.current.as_ref() != Some(id) {
                p.add(id, Protection::Published { current: false });
            }
        }
        for t in trees {
            if let Some(o) = t.origin.as_ref().filter(|o| &o.tree == tree) {
                p.add(
                    &o.id,
                    Protection::CloneOrigin {
                        clone: t.name.clone(),
                    },
                );
            }
        }
        for id in run_pre {
            p.add(id, Protection::RunPre);
        }
        p
    }

    fn add(&mut self, id: &SnapshotId, why: Protection) {
        let list = self.by_id.entry(id.clone()).or_default();
        if !list.contains(&why) {
            list.push(why);
        }
    }

    /// Why `id` must stay; empty when it may go.
    pub fn of(&self, id: &SnapshotId) -> &[Protection] {
        self.by_id.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every protected snapshot with its reasons.
    pub fn iter(&self) -> impl Iterator<Item = (&SnapshotId, &[Protection])> {
        self.by_id.iter().map(|(id, r)| (id, r.as_slice()))
    }
}

/// The reasons as one phrase: "pinned as 'x', the origin of clone 'y'".
pub fn describe(reasons: &[Protection]) -> String {
    reasons
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The published snapshots of `tree`, from `<state_dir>/publish/state.json`.
pub fn published(state_dir: &Path, tree: &TreeName) -> Result<Published> {
    let path = state_dir.join("publish").join("state.json");
    let Some(state) = read_optional::<PublishState>(&path)? else {
        return Ok(Published::default());
    };
    Ok(state.trees.get(tree.as_str()).cloned().unwrap_or_default())
}

/// Where an unfinished run of a tree keeps its state, relative to the state
/// directory: where `sidus run` writes it, and the name first agreed.
const RUN_FILES: [&str; 2] = ["runs", "sessions"];

/// The `pre` snapshots of `tree`'s unfinished run, from its in-progress files.
pub fn run_pre(state_dir: &Path, tree: &TreeName) -> Result<Vec<SnapshotId>> {
    let mut out = Vec::new();
    for dir in RUN_FILES {
        let path = state_dir.join(dir).join(format!("{tree}.json"));
        if let Some(pre) = read_optional::<Session>(&path)?.and_then(|s| s.pre) {
            if !out.contains(&pre) {
                out.push(pre);
            }
        }
    }
    Ok(out)
}

fn read_optional<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "read {} (needed to know which snapshots are protected)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sidus_backends::Origin;

    fn id(s: &str) -> SnapshotId {
        s.parse().unwrap()
    }

    const A: &str = "20261125T101500Z";
    const B: &str = "20261125T101501Z";
    const C: &str = "20261125T101502Z";
    const D: &str = "20261125T101503Z";
    const E: &str = "20261125T101504Z";

    fn record(name: &str, origin: Option<(&str, &str)>) -> TreeRecord {
        TreeRecord {
            name: name.parse().unwrap(),
            path: "/x".into(),
            origin: origin.map(|(t, i)| Origin {
                tree: t.parse().unwrap(),
                id: id(i),
            }),
        }
    }

    #[test]
    fn every_source_is_gathered_and_worded() {
        let lab: TreeName = "lab".parse().unwrap();
        let trees = [
            record("lab", None),
            record("paper", Some(("lab", A))),
            record("elsewhere", Some(("other", B))),
        ];
        let pins = [Pin {
            tree: lab.clone(),
            id: id(A),
            label: Some("paper-2026".parse().unwrap()),
            note: String::new(),
            user: String::new(),
            pinned_at: chrono::Utc::now(),
            manifest: None,
        }];
        let published = Published {
            current: Some(id(B)),
            exported: vec![id(B), id(C)],
        };
        let p = Protections::from_parts(&lab, &trees, &pins, &published, &[id(D)]);
        assert_eq!(
            describe(p.of(&id(A))),
            "pinned as 'paper-2026', the origin of clone 'paper'"
        );
        assert_eq!(describe(p.of(&id(B))), "published (current)");
        assert_eq!(describe(p.of(&id(C))), "published");
        assert_eq!(
            describe(p.of(&id(D))),
            "the pre snapshot of an unfinished `sidus run`"
        );
        assert!(p.of(&id(E)).is_empty());
        // Another tree's origins and pins do not protect this tree's IDs.
        let other: TreeName = "other".parse().unwrap();
        let q = Protections::from_parts(&other, &trees, &pins, &Published::default(), &[]);
        assert_eq!(describe(q.of(&id(B))), "the origin of clone 'elsewhere'");
        assert!(q.of(&id(A)).is_empty());
    }

    #[test]
    fn state_files_are_optional_but_must_parse() {
        let dir = tempfile::tempdir().unwrap();
        let lab: TreeName = "lab".parse().unwrap();
        assert_eq!(published(dir.path(), &lab).unwrap(), Published::default());
        assert!(run_pre(dir.path(), &lab).unwrap().is_empty());
        std::fs::create_dir_all(dir.path().join("publish")).unwrap();
        std::fs::create_dir_all(dir.path().join("sessions")).unwrap();
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        std::fs::write(
            dir.path().join("publish/state.json"),
            format!(
                r#"{{"trees": {{"lab": {{"current": "{A}", "exported": ["{B}"], "extra": 1}}}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sessions/lab.json"),
            format!(r#"{{"pre": "{C}", "pid": 42}}"#),
        )
        .unwrap();
        let p = published(dir.path(), &lab).unwrap();
        assert_eq!((p.current, p.exported), (Some(id(A)), vec![id(B)]));
        assert_eq!(run_pre(dir.path(), &lab).unwrap(), [id(C)]);
        // The record `sidus run` writes (src/transaction/record.rs), trimmed.
        std::fs::write(
            dir.path().join("runs/lab.json"),
            format!(
                r#"{{"tree": "lab", "pre": "{D}", "on_failure": "rollback", "phase": "running", "pid": 7}}"#
            ),
        )
        .unwrap();
        assert_eq!(run_pre(dir.path(), &lab).unwrap(), [id(D), id(C)]);
        std::fs::write(dir.path().join("sessions/lab.json"), "{trunc").unwrap();
        let e = run_pre(dir.path(), &lab).unwrap_err();
        assert!(format!("{e:#}").contains("needed to know which snapshots are protected"));
    }
}
