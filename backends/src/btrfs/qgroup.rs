//! The space each btrfs snapshot holds exclusively, from quota groups.
//!
//! btrfs only knows it when quotas are enabled on the file system (`btrfs quota
//! enable PATH`); sidus never enables them itself, because full qgroup
//! accounting makes deleting snapshots much slower on file systems with
//! thousands of them. Without quotas the space is reported as unknown.
//!
//! `btrfs --format json qgroup show --raw` (btrfs-progs 6.x) gives, for each
//! level-0 qgroup `0/<subvolume id>`, its exclusive bytes and its path relative
//! to the file system's top level. The store may sit anywhere in that file
//! system, so the prefix of its paths is learnt from the working tree's
//! subvolume ID (`btrfs inspect-internal rootid`).

use super::errors::classify;
use super::Btrfs;
use crate::{argv, BackendError, SnapshotId, TreeName};
use std::collections::BTreeMap;

impl Btrfs {
    /// The exclusive bytes of `tree`'s snapshots; [`BackendError::Unsupported`]
    /// when quotas are off.
    pub(super) fn space(&self, tree: &TreeName) -> crate::Result<BTreeMap<SnapshotId, u64>> {
        let working = self.require_tree(tree)?;
        let json = self
            .runner
            .run_string(&argv![
                "btrfs", "--format", "json", "qgroup", "show", "--raw", "--sync", &self.root
            ])
            .map_err(|e| match classify("read btrfs quota groups".into(), e) {
                BackendError::Unsupported { .. } => BackendError::unsupported(
                    "show the space snapshots hold",
                    format!(
                        "btrfs reports it only with quotas enabled: btrfs quota enable {}",
                        self.root.display()
                    ),
                ),
                e => e,
            })?;
        let qgroups = parse(&json).map_err(|detail| BackendError::UnexpectedOutput {
            tool: "btrfs qgroup show".into(),
            detail,
        })?;
        let rootid = self
            .runner
            .run_string(&argv!["btrfs", "inspect-internal", "rootid", &working])
            .map_err(|e| classify(format!("find the subvolume of tree '{tree}'"), e))?;
        let working_id = rootid
            .trim()
            .parse()
            .map_err(|_| BackendError::UnexpectedOutput {
                tool: "btrfs inspect-internal rootid".into(),
                detail: format!("not a subvolume ID: '{}'", rootid.trim()),
            })?;
        Ok(snapshot_space(&qgroups, tree, working_id))
    }
}

/// One level-0 qgroup: a subvolume's ID, path and exclusive bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Qgroup {
    pub id: u64,
    pub path: String,
    pub exclusive: u64,
}

#[derive(serde::Deserialize)]
struct Show {
    #[serde(rename = "qgroup-show")]
    qgroups: Vec<Raw>,
}

#[derive(serde::Deserialize)]
struct Raw {
    qgroupid: String,
    exclusive: String,
    #[serde(default)]
    path: Option<String>,
}

/// Parses `btrfs --format json qgroup show --raw`; higher-level qgroups and
/// stale ones (no path) are left out.
pub(crate) fn parse(json: &str) -> Result<Vec<Qgroup>, String> {
    let show: Show = serde_json::from_str(json).map_err(|e| format!("qgroup show: {e}"))?;
    let mut out = Vec::new();
    for q in show.qgroups {
        let Some(id) = q.qgroupid.strip_prefix("0/") else {
            continue;
        };
        let id = id
            .parse()
            .map_err(|_| format!("qgroup show: bad qgroupid '{}'", q.qgroupid))?;
        let exclusive = q
            .exclusive
            .parse()
            .map_err(|_| format!("qgroup show: bad exclusive '{}'", q.exclusive))?;
        let path = q.path.unwrap_or_default();
        if path.is_empty() || path.starts_with('<') {
            continue;
        }
        out.push(Qgroup {
            id,
            path,
            exclusive,
        });
    }
    Ok(out)
}

/// The exclusive bytes of `tree`'s snapshots, given the qgroups and the subvolume
/// ID of the tree's working subvolume (which fixes where the store is).
pub(crate) fn snapshot_space(
    qgroups: &[Qgroup],
    tree: &TreeName,
    working_id: u64,
) -> BTreeMap<SnapshotId, u64> {
    let mut out = BTreeMap::new();
    let working_suffix = format!("trees/{tree}");
    let Some(prefix) = qgroups
        .iter()
        .find(|q| q.id == working_id)
        .and_then(|q| q.path.strip_suffix(&working_suffix))
    else {
        return out;
    };
    let dir = format!("{prefix}snapshots/{tree}/");
    for q in qgroups {
        if let Some(id) = q
            .path
            .strip_prefix(&dir)
            .and_then(|n| n.parse::<SnapshotId>().ok())
        {
            out.insert(id, q.exclusive);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from btrfs-progs 6.2 on a store nested in `pool/` of its file system.
    const SHOW: &str = r#"{
  "__header": { "version": "1" },
  "qgroup-show": [
    { "qgroupid": "0/5", "referenced": "57344", "max_referenced": "none",
      "exclusive": "57344", "max_exclusive": "none", "path": "", "parents": [], "children": [] },
    { "qgroupid": "0/256", "referenced": "839680", "max_referenced": "none",
      "exclusive": "839680", "max_exclusive": "none", "path": "pool/trees/lab", "parents": [], "children": [] },
    { "qgroupid": "0/257", "referenced": "839680", "max_referenced": "none",
      "exclusive": "16384", "max_exclusive": "none", "path": "pool/snapshots/lab/20261125T090232Z", "parents": [], "children": [] },
    { "qgroupid": "0/258", "referenced": "839680", "max_referenced": "none",
      "exclusive": "1064960", "max_exclusive": "none", "path": "pool/snapshots/lab/20261125T090232Z.1", "parents": [], "children": [] },
    { "qgroupid": "0/259", "referenced": "839680", "max_referenced": "none",
      "exclusive": "16384", "max_exclusive": "none", "path": "pool/trees/replay", "parents": [], "children": [] },
    { "qgroupid": "0/260", "referenced": "1", "max_referenced": "none",
      "exclusive": "99", "max_exclusive": "none", "path": "other/snapshots/lab/20261125T090232Z", "parents": [], "children": [] },
    { "qgroupid": "0/261", "referenced": "0", "max_referenced": "none",
      "exclusive": "0", "max_exclusive": "none", "path": "<stale>", "parents": [], "children": [] },
    { "qgroupid": "1/100", "referenced": "0", "max_referenced": "none",
      "exclusive": "0", "max_exclusive": "none", "path": "", "parents": [], "children": [] }
  ]
}"#;

    #[test]
    fn exclusive_space_is_matched_to_this_stores_snapshots() {
        let q = parse(SHOW).unwrap();
        assert_eq!(q.len(), 5, "{q:?}");
        let lab: TreeName = "lab".parse().unwrap();
        let got: Vec<(String, u64)> = snapshot_space(&q, &lab, 256)
            .into_iter()
            .map(|(id, b)| (id.to_string(), b))
            .collect();
        assert_eq!(
            got,
            [
                ("20261125T090232Z".to_string(), 16384),
                ("20261125T090232Z.1".to_string(), 1064960)
            ]
        );
        // An unknown working subvolume: nothing is guessed.
        assert!(snapshot_space(&q, &lab, 999).is_empty());
        assert!(parse("not json").is_err());
    }
}
