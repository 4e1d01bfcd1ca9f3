//! What the store holds, read with `zfs list` (or, on the hot paths, from
//! the mount table and `.zfs/snapshot`): datasets, trees, and where each
//! snapshot is after rollbacks moved it.

use super::errors::classify;
use super::mounts::zfs_mounts;
use super::props::{decode, fields, unexpected, PREFIX, SNAPSHOT_PROPS};
use super::Zfs;
use crate::{argv, BackendError, Result, Snapshot, SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

/// One snapshot found by [`Zfs::locate`]: its full ZFS name and the mountpoint
/// of the dataset holding it.
pub(super) struct Located {
    pub name: String,
    pub dataset_mountpoint: PathBuf,
}

impl Located {
    /// The dataset holding the snapshot.
    pub fn dataset(&self) -> &str {
        self.name.split_once('@').map_or(&self.name, |(d, _)| d)
    }
}

/// One dataset of the store that belongs to a tree.
pub(super) struct TreeDataset {
    pub name: String,
    pub tree: TreeName,
    pub origin: Option<String>,
    pub mountpoint: PathBuf,
}

impl Zfs {
    /// True when `name` exists.
    pub(super) fn exists(&self, name: &str) -> Result<bool> {
        if let Some(lzc) = self.lzc() {
            log::debug!("lzc_exists {name}");
            if let Ok(found) = lzc.exists(name) {
                return Ok(found);
            }
        }
        match self
            .runner
            .run(&argv!["zfs", "list", "-H", "-o", "name", name])
        {
            Ok(_) => Ok(true),
            Err(e) => match classify(format!("look up {name}"), e) {
                BackendError::NotFound(_) => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Every dataset under `parent` (children only) that belongs to a tree.
    pub(super) fn tree_datasets(&self, parent: &str) -> Result<Vec<TreeDataset>> {
        let cols = format!("name,{PREFIX}tree,{PREFIX}origin,mountpoint");
        let out = match self.runner.run_string(&argv![
            "zfs",
            "list",
            "-H",
            "-p",
            "-t",
            "filesystem",
            "-r",
            "-d",
            "1",
            "-o",
            cols,
            parent
        ]) {
            Ok(out) => out,
            Err(e) => match classify(format!("list datasets of {parent}"), e) {
                BackendError::NotFound(_) => return Ok(Vec::new()),
                e => return Err(e),
            },
        };
        let mut found = Vec::new();
        for line in out.lines() {
            let f = fields(line, 4).ok_or_else(|| unexpected(line))?;
            if f[0] == parent {
                continue;
            }
            let Some(tree) = decode(f[1]).and_then(|t| t.parse::<TreeName>().ok()) else {
                continue;
            };
            found.push(TreeDataset {
                name: f[0].to_string(),
                tree,
                origin: decode(f[2]),
                mountpoint: PathBuf::from(f[3]),
            });
        }
        Ok(found)
    }

    /// The working dataset of `tree`, or [`BackendError::NotFound`].
    pub(super) fn require_tree(&self, tree: &TreeName) -> Result<TreeDataset> {
        let name = self.working_ds(tree);
        let cols = format!("name,{PREFIX}tree,{PREFIX}origin,mountpoint");
        match self
            .runner
            .run_string(&argv!["zfs", "list", "-H", "-p", "-o", cols, &name])
        {
            Ok(out) => {
                let line = out.lines().next().unwrap_or("");
                let f = fields(line, 4).ok_or_else(|| unexpected(line))?;
                Ok(TreeDataset {
                    name,
                    tree: tree.clone(),
                    origin: decode(f[2]),
                    mountpoint: PathBuf::from(f[3]),
                })
            }
            Err(e) => Err(match classify(format!("look up tree '{tree}'"), e) {
                BackendError::NotFound(_) => BackendError::tree_not_found(tree),
                e => e,
            }),
        }
    }

    /// Every snapshot of the store as `(full name, fields...)` rows; `cols`
    /// are sidus properties (without the prefix) or `used`.
    pub(super) fn snapshot_rows(&self, cols: &[&str]) -> Result<Vec<Vec<String>>> {
        let mut list = String::from("name");
        for c in cols {
            list.push(',');
            if !c.contains(':') && *c != "used" {
                list.push_str(PREFIX);
            }
            list.push_str(c);
        }
        let out = self.zfs(
            "list snapshots",
            argv![
                "list",
                "-H",
                "-p",
                "-t",
                "snapshot",
                "-r",
                "-o",
                list,
                &self.dataset
            ],
        )?;
        out.lines()
            .map(|line| {
                fields(line, cols.len() + 1)
                    .map(|f| f.into_iter().map(str::to_string).collect())
                    .ok_or_else(|| unexpected(line))
            })
            .collect()
    }

    /// The snapshots of one tree (or all), with their metadata, oldest first per tree.
    pub(super) fn snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>> {
        if let Some(t) = tree {
            if !zfs_mounts().contains_key(&self.working_ds(t)) {
                self.require_tree(t)?;
            }
        }
        let mut out = Vec::new();
        for row in self.snapshot_rows(&SNAPSHOT_PROPS)? {
            let Some((_, id)) = row[0].split_once('@') else {
                continue;
            };
            let Some(owner) = decode(&row[1]).and_then(|t| t.parse::<TreeName>().ok()) else {
                continue;
            };
            if tree.is_some_and(|t| *t != owner) {
                continue;
            }
            // Snapshots made by hand with a name that is no sidus ID are not ours.
            let Ok(id) = id.parse::<SnapshotId>() else {
                continue;
            };
            let values: BTreeMap<&str, String> = SNAPSHOT_PROPS
                .iter()
                .zip(&row[1..])
                .filter_map(|(k, v)| decode(v).map(|v| (*k, v)))
                .collect();
            let snap = Snapshot::from_properties(owner, id, |k| values.get(k).map(String::as_str))
                .map_err(|detail| BackendError::UnexpectedOutput {
                    tool: "zfs".into(),
                    detail: format!("{}: {detail}", row[0]),
                })?;
            out.push(snap);
        }
        out.sort_by(|a, b| a.tree.cmp(&b.tree).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// IDs of `tree`'s snapshots from `.zfs/snapshot` of its mounted datasets,
    /// without running `zfs`; `None` when the working dataset is not mounted.
    pub(super) fn mounted_snapshot_ids(&self, tree: &TreeName) -> Result<Option<Vec<SnapshotId>>> {
        let Some(datasets) = self.mounted_tree(tree) else {
            return Ok(None);
        };
        let mut ids = Vec::new();
        for (_, mp) in datasets {
            let dir = mp.join(".zfs").join("snapshot");
            let entries = fs::read_dir(&dir).map_err(|e| BackendError::io("read", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| BackendError::io("read", &dir, e))?;
                if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                    ids.push(id);
                }
            }
        }
        Ok(Some(ids))
    }

    /// Finds `tree@id` wherever rollbacks moved it.
    pub(super) fn locate(&self, tree: &TreeName, id: &SnapshotId) -> Result<Located> {
        // Fast path: the snapshot's name under .zfs/snapshot of a mounted dataset
        // (lstat does not trigger its automount).
        if let Some(datasets) = self.mounted_tree(tree) {
            for (ds, mp) in datasets {
                let entry = mp.join(".zfs").join("snapshot").join(id.as_str());
                if fs::symlink_metadata(&entry).is_ok() {
                    return Ok(Located {
                        name: format!("{ds}@{id}"),
                        dataset_mountpoint: mp,
                    });
                }
            }
        }
        let working = self.require_tree(tree)?;
        for row in self.snapshot_rows(&["tree"])? {
            let Some((dataset, snap)) = row[0].split_once('@') else {
                continue;
            };
            if snap != id.as_str() || decode(&row[1]).as_deref() != Some(tree.as_str()) {
                continue;
            }
            let dataset_mountpoint = if dataset == working.name {
                working.mountpoint.clone()
            } else {
                self.mountpoint_of(dataset)?
            };
            return Ok(Located {
                name: row[0].clone(),
                dataset_mountpoint,
            });
        }
        Err(BackendError::snapshot_not_found(tree, id))
    }

    /// Where `dataset` is mounted (its `mountpoint` property).
    pub(super) fn mountpoint_of(&self, dataset: &str) -> Result<PathBuf> {
        let out = self.zfs(
            format!("read the mountpoint of {dataset}"),
            argv!["get", "-H", "-p", "-o", "value", "mountpoint", dataset],
        )?;
        Ok(PathBuf::from(out.trim()))
    }

    /// Bytes each of `tree`'s snapshots holds exclusively (`used`).
    pub(super) fn used_by_snapshots(&self, tree: &TreeName) -> Result<BTreeMap<SnapshotId, u64>> {
        self.require_tree(tree)?;
        let mut out = BTreeMap::new();
        for row in self.snapshot_rows(&["tree", "used"])? {
            if decode(&row[1]).as_deref() != Some(tree.as_str()) {
                continue;
            }
            let (Some(id), Ok(used)) = (
                row[0].split_once('@').and_then(|(_, i)| i.parse().ok()),
                row[2].parse::<u64>(),
            ) else {
                continue;
            };
            out.insert(id, used);
        }
        Ok(out)
    }
}
