//! What interrupted steps leave in a btrfs store: a rollback's scratch copy
//! (`trees/.T.swap`), the snapshot folder of a tree that is gone (records, a
//! stale `tree.json`, or snapshots nobody lists any more), sidecars whose
//! snapshot is gone, and half-written sidecar temp files.

use super::Btrfs;
use crate::{BackendError, Leftover, Result, SnapshotId, TreeName};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// One leftover and how [`Btrfs::remove_leftovers`] removes it.
enum Found {
    /// A scratch subvolume: [`Btrfs::clear_scratch`]'s business.
    Scratch,
    /// A file with no data of its own.
    File(PathBuf),
    /// The snapshot folder of a gone tree, without any subvolume in it.
    Folder(PathBuf),
    /// Kept: it holds data.
    Kept,
}

impl Btrfs {
    /// Every leftover of the store, with how to remove it.
    fn scan(&self) -> Result<Vec<(Found, Leftover)>> {
        let mut out = Vec::new();
        for name in names(&self.trees_dir())? {
            let Some(tree) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".swap"))
                .and_then(|n| n.parse::<TreeName>().ok())
            else {
                continue;
            };
            let path = self.scratch(&tree);
            let working = self.working(&tree).exists();
            out.push((
                if working { Found::Scratch } else { Found::Kept },
                Leftover {
                    what: if working {
                        "the scratch copy of an interrupted rollback".into()
                    } else {
                        "the scratch copy of an interrupted rollback, and the tree has no working subvolume: it may be the tree itself".into()
                    },
                    object: path.display().to_string(),
                    tree: Some(tree.clone()),
                    holds_data: !working,
                    recover: working,
                    by_hand: if working {
                        format!("btrfs subvolume delete {}", path.display())
                    } else {
                        format!(
                            "mv {} {}",
                            path.display(),
                            self.working(&tree).display()
                        )
                    },
                },
            ));
        }
        for name in names(&self.root.join("snapshots"))? {
            let Ok(tree) = name.parse::<TreeName>() else {
                continue;
            };
            self.scan_tree(&tree, &mut out)?;
        }
        Ok(out)
    }

    fn scan_tree(&self, tree: &TreeName, out: &mut Vec<(Found, Leftover)>) -> Result<()> {
        let dir = self.snaps_dir(tree);
        let working = self.working(tree).exists();
        let mut snapshots = Vec::new();
        let mut files = Vec::new();
        for name in names(&dir)? {
            let path = dir.join(&name);
            if name.parse::<SnapshotId>().is_ok() && path.is_dir() {
                snapshots.push(path);
            } else {
                files.push((name, path));
            }
        }
        if !working {
            for path in &snapshots {
                out.push((
                    Found::Kept,
                    Leftover {
                        what: format!("a snapshot of tree '{tree}', which no longer exists"),
                        object: path.display().to_string(),
                        tree: Some(tree.clone()),
                        holds_data: true,
                        recover: false,
                        by_hand: format!("btrfs subvolume delete {}", path.display()),
                    },
                ));
            }
            if snapshots.is_empty() {
                out.push((
                    Found::Folder(dir.clone()),
                    Leftover {
                        what: format!(
                            "the snapshot records of tree '{tree}', which no longer exists (a destroy, create or clone cut short)"
                        ),
                        object: dir.display().to_string(),
                        tree: Some(tree.clone()),
                        holds_data: false,
                        recover: true,
                        by_hand: format!("rm -r {}", dir.display()),
                    },
                ));
            }
            return Ok(());
        }
        for (name, path) in files {
            let what = if let Some(id) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<SnapshotId>().ok())
            {
                if self.snap_dir(tree, &id).exists() {
                    continue;
                }
                format!("the metadata of snapshot {tree}@{id}, which does not exist")
            } else if name
                .strip_suffix(".tmp")
                .is_some_and(|n| n.parse::<SnapshotId>().is_ok())
                || crate::durable::temp_writer(&name).is_some()
            {
                "a half-written snapshot record".to_string()
            } else {
                continue;
            };
            out.push((
                Found::File(path.clone()),
                Leftover {
                    what,
                    object: path.display().to_string(),
                    tree: Some(tree.clone()),
                    holds_data: false,
                    recover: true,
                    by_hand: format!("rm {}", path.display()),
                },
            ));
        }
        Ok(())
    }

    /// The store's leftovers (see [`crate::Backend::leftovers`]).
    pub(super) fn find_leftovers(&self) -> Result<Vec<Leftover>> {
        Ok(self.scan()?.into_iter().map(|(_, l)| l).collect())
    }

    /// Removes `tree`'s leftovers that hold no data, except the scratch copy
    /// ([`Btrfs::clear_scratch`] has run first). Returns what it did.
    pub(super) fn remove_leftovers(&self, tree: &TreeName) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (found, l) in self.scan()? {
            if l.tree.as_ref() != Some(tree) {
                continue;
            }
            match found {
                Found::File(p) => {
                    crate::durable::remove_durable(&p)
                        .map_err(|e| BackendError::io("remove", &p, e))?;
                }
                Found::Folder(p) => match fs::remove_dir_all(&p) {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        return Err(BackendError::io("remove", p, e))
                    }
                    _ => {}
                },
                Found::Scratch | Found::Kept => continue,
            }
            done.push(format!("removed {}: {}", l.object, l.what));
        }
        Ok(done)
    }
}

/// The names in `dir`, none when it does not exist.
fn names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackendError::io("read", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BackendError::io("read", dir, e))?;
        if let Some(n) = entry.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runner;

    /// The scan is plain directory reading: a temp dir stands in for the
    /// store (no subvolumes, so snapshot folders are plain directories).
    #[test]
    fn leftovers_are_found_and_only_dataless_ones_removed() {
        let d = tempfile::tempdir().unwrap();
        let b = Btrfs::new(d.path().to_path_buf(), None, Runner::new());
        let mk = |p: &str| fs::create_dir_all(d.path().join(p)).unwrap();
        let touch = |p: &str| fs::write(d.path().join(p), "{}").unwrap();
        mk("trees/lab");
        mk("snapshots/lab/20261125T101500Z");
        touch("snapshots/lab/20261125T101500Z.json");
        touch("snapshots/lab/20261125T101600Z.json");
        touch("snapshots/lab/20261125T101700Z.tmp");
        touch("snapshots/lab/.tree.json.sidus-tmp.77");
        touch("snapshots/lab/tree.json");
        mk("snapshots/gone");
        touch("snapshots/gone/tree.json");
        mk("snapshots/lost/20261125T101500Z");
        mk("trees/.other.swap");
        let found = b.find_leftovers().unwrap();
        let objs: Vec<(String, bool, bool)> = found
            .iter()
            .map(|l| {
                let rel = l.object.strip_prefix(&*d.path().to_string_lossy()).unwrap();
                (rel.to_string(), l.holds_data, l.recover)
            })
            .collect();
        assert_eq!(
            objs,
            [
                ("/trees/.other.swap".to_string(), true, false),
                ("/snapshots/gone".into(), false, true),
                ("/snapshots/lab/.tree.json.sidus-tmp.77".into(), false, true),
                ("/snapshots/lab/20261125T101600Z.json".into(), false, true),
                ("/snapshots/lab/20261125T101700Z.tmp".into(), false, true),
                ("/snapshots/lost/20261125T101500Z".into(), true, false),
            ]
        );
        let lab: TreeName = "lab".parse().unwrap();
        assert_eq!(b.remove_leftovers(&lab).unwrap().len(), 3);
        assert!(d.path().join("snapshots/lab/tree.json").exists());
        assert!(d
            .path()
            .join("snapshots/lab/20261125T101500Z.json")
            .exists());
        b.remove_leftovers(&"gone".parse().unwrap()).unwrap();
        b.remove_leftovers(&"lost".parse().unwrap()).unwrap();
        b.remove_leftovers(&"other".parse().unwrap()).unwrap();
        let left: Vec<_> = b.find_leftovers().unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|l| l.holds_data));
    }
}
