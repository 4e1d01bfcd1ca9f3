//! The records backends store and return: snapshot metadata and tree records.

use crate::{SnapshotId, TreeName};
use chrono::{DateTime, Utc};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// `sidus snapshot` by hand.
    Manual,
    /// Before a `sidus run`.
    Pre,
    /// After a successful `sidus run`.
    Post,
    /// The state a rollback replaced.
    Safety,
    /// The state a `sidus clone TREE NEW` (no REF) copied.
    Clone,
}

impl SnapshotKind {
    /// The kind as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Manual => "manual",
            SnapshotKind::Pre => "pre",
            SnapshotKind::Post => "post",
            SnapshotKind::Safety => "safety",
            SnapshotKind::Clone => "clone",
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "manual" => SnapshotKind::Manual,
            "pre" => SnapshotKind::Pre,
            "post" => SnapshotKind::Post,
            "safety" => SnapshotKind::Safety,
            "clone" => SnapshotKind::Clone,
            other => return Err(format!("unknown snapshot kind '{other}'")),
        })
    }
}

/// One snapshot and everything recorded about it. Field names are the `--json`
/// contract scripts rely on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The tree it belongs to.
    pub tree: TreeName,
    /// Its ID.
    pub id: SnapshotId,
    /// When it was taken.
    pub created: DateTime<Utc>,
    /// Why it was taken.
    pub kind: SnapshotKind,
    /// The admin's message, possibly empty.
    #[serde(default)]
    pub message: String,
    /// The tree's latest snapshot when this one was taken.
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    /// Who ran the command (login name or uid).
    #[serde(default)]
    pub user: String,
    /// The sidus command line that made it.
    #[serde(default)]
    pub command: String,
    /// For a `post` snapshot: the `pre` snapshot of the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<SnapshotId>,
    /// For a `post` snapshot: the exit status of the command run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
}

impl Snapshot {
    /// The metadata as `(key, value)` pairs, for backends that store properties
    /// or tags rather than a document. Empty values are left out.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            (
                "created",
                self.created
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            ("kind", self.kind.to_string()),
            ("message", self.message.clone()),
            ("user", self.user.clone()),
            ("command", self.command.clone()),
        ];
        if let Some(parent) = &self.parent {
            p.push(("parent", parent.to_string()));
        }
        if let Some(pre) = &self.pre {
            p.push(("pre", pre.to_string()));
        }
        if let Some(status) = self.status {
            p.push(("status", status.to_string()));
        }
        p.retain(|(_, v)| !v.is_empty());
        p
    }

    /// Rebuilds a snapshot from [`Snapshot::properties`] pairs; `lookup` returns a
    /// property's value or `None` when it is unset.
    pub fn from_properties<'a>(
        tree: TreeName,
        id: SnapshotId,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Snapshot, String> {
        let created = match lookup("created") {
            Some(c) => DateTime::parse_from_rfc3339(c)
                .map_err(|e| format!("bad created '{c}': {e}"))?
                .with_timezone(&Utc),
            // Snapshots made outside sidus still list, dated by their ID.
            None => id.time(),
        };
        let kind = match lookup("kind") {
            Some(k) => k.parse()?,
            None => SnapshotKind::Manual,
        };
        let parse_id = |key: &str| -> Result<Option<SnapshotId>, String> {
            lookup(key)
                .map(|v| v.parse().map_err(|e| format!("{key}: {e}")))
                .transpose()
        };
        Ok(Snapshot {
            tree,
            created,
            kind,
            message: lookup("message").unwrap_or_default().to_string(),
            parent: parse_id("parent")?,
            user: lookup("user").unwrap_or_default().to_string(),
            command: lookup("command").unwrap_or_default().to_string(),
            pre: parse_id("pre")?,
            status: lookup("status")
                .map(|s| s.parse().map_err(|e| format!("status: {e}")))
                .transpose()?,
            id,
        })
    }
}

/// Where a cloned tree came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The source tree.
    pub tree: TreeName,
    /// The source snapshot.
    pub id: SnapshotId,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.tree, self.id)
    }
}

/// A working tree in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TreeRecord {
    /// Its name.
    pub name: TreeName,
    /// Where the working tree is mounted.
    pub path: PathBuf,
    /// The snapshot it was cloned from, if any.
    pub origin: Option<Origin>,
    /// Why its record could not be read (its origin is then unknown), naming
    /// the file; the tree still lists and can be destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let snap = Snapshot {
            tree: "lab".parse().unwrap(),
            id: "20261125T101500Z.1".parse().unwrap(),
            created: "2026-11-25T10:15:00Z".parse().unwrap(),
            kind: SnapshotKind::Post,
            message: "apt: install hello; ça marche".into(),
            parent: Some("20261125T101500Z".parse().unwrap()),
            user: "root".into(),
            command: "sidus run lab -- apt-get install hello".into(),
            pre: Some("20261125T101500Z".parse().unwrap()),
            status: Some(0),
        };
        let props = snap.properties();
        let back = Snapshot::from_properties(snap.tree.clone(), snap.id.clone(), |k| {
            props.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
        })
        .unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn foreign_snapshot_gets_defaults_from_its_id() {
        let s = Snapshot::from_properties(
            "t".parse().unwrap(),
            "20261125T101500Z".parse().unwrap(),
            |_| None,
        )
        .unwrap();
        assert_eq!(s.kind, SnapshotKind::Manual);
        assert_eq!(s.created, s.id.time());
    }
}
