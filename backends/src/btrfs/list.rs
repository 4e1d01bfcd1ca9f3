//! Reading the store: trees from `trees/`, snapshots from `snapshots/<tree>/`
//! with their JSON sidecars.

use super::layout::TreeFile;
use super::Btrfs;
use crate::fsutil::read_json;
use crate::{BackendError, Result, Snapshot, SnapshotId, TreeName, TreeRecord};
use std::fs;
use std::io::ErrorKind;

impl Btrfs {
    /// Every tree, by name.
    pub(super) fn trees(&self) -> Result<Vec<TreeRecord>> {
        let dir = self.trees_dir();
        let entries = fs::read_dir(&dir).map_err(|e| BackendError::io("read", &dir, e))?;
        let mut trees = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| BackendError::io("read", &dir, e))?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<TreeName>().ok())
            else {
                continue;
            };
            // A damaged record affects its own tree only: it lists, with the
            // damage said, and every other tree works as before.
            let (origin, damaged) = match read_json::<TreeFile>(&self.tree_file(&name)) {
                Ok(t) => (t.and_then(|t| t.origin), None),
                Err(e) => (None, Some(e.to_string())),
            };
            trees.push(TreeRecord {
                path: entry.path(),
                name,
                origin,
                damaged,
            });
        }
        trees.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(trees)
    }

    /// Appends `tree`'s snapshots to `out`, oldest first.
    pub(super) fn read_snapshots(&self, tree: &TreeName, out: &mut Vec<Snapshot>) -> Result<()> {
        let dir = self.snaps_dir(tree);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(BackendError::io("read", dir, e)),
        };
        let start = out.len();
        let names = entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| BackendError::io("read", &dir, e))?;
        for id in super::layout::listed_ids(&names) {
            let meta = self.meta_file(tree, &id);
            // A damaged sidecar (power cut mid-write) must not hide the snapshot.
            let record = read_json::<Snapshot>(&meta).unwrap_or_else(|e| {
                log::warn!("ignoring damaged snapshot metadata: {e}");
                None
            });
            let snap = match record {
                Some(s) if s.id == id && &s.tree == tree => s,
                // A snapshot whose sidecar is missing still lists, dated by its ID.
                _ => Snapshot::from_properties(tree.clone(), id, |_| None).map_err(|detail| {
                    BackendError::UnexpectedOutput {
                        tool: "btrfs".into(),
                        detail,
                    }
                })?,
            };
            out.push(snap);
        }
        out[start..].sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    /// The IDs of `tree`'s snapshots, from the names in its snapshot directory.
    pub(super) fn ids(&self, tree: &TreeName) -> Result<Vec<SnapshotId>> {
        self.require_tree(tree)?;
        let dir = self.snaps_dir(tree);
        let names = fs::read_dir(&dir)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .map_err(|e| BackendError::io("read", &dir, e))?;
        Ok(super::layout::listed_ids(&names))
    }
}
