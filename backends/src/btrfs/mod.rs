//! btrfs backend: a tree is a subvolume, a snapshot a read-only subvolume, and its
//! metadata a small JSON sidecar beside it.
//!
//! Layout under the store root:
//! ```text
//! trees/<tree>                 working subvolume
//! snapshots/<tree>/<id>        read-only snapshot subvolume
//! snapshots/<tree>/<id>.json   its metadata
//! snapshots/<tree>/tree.json   the tree's origin, when it is a clone
//! snapshots/<tree>/.recv-<id>  marker: <id> is being received, not listed yet
//! .sidus/                      state kept by the sidus crate (journal, locks)
//! ```

use crate::fsutil::{read_json, write_json_atomic, write_json_xattr};
mod ioctl;
mod qgroup;
mod replicate;

use crate::runner::Runner;
use crate::{
    argv, Backend, BackendError, Capabilities, Origin, PoolUsage, Result, Snapshot, SnapshotId,
    TreeName, TreeRecord,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

/// A btrfs store rooted at a directory on a btrfs file system, optionally backed
/// by a loop file that sidus mounts itself.
#[derive(Debug, Clone)]
pub struct Btrfs {
    root: PathBuf,
    loop_file: Option<PathBuf>,
    runner: Runner,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TreeFile {
    origin: Option<Origin>,
}

impl Btrfs {
    /// A store at `root`; with `loop_file`, sidus mounts that image at `root`
    /// whenever it is not mounted (after a reboot, say).
    pub fn new(root: PathBuf, loop_file: Option<PathBuf>, runner: Runner) -> Btrfs {
        Btrfs {
            root,
            loop_file,
            runner,
        }
    }

    /// Creates a sparse loop image of `size` (as `truncate -s` takes it) with a
    /// fresh btrfs in it. Refuses to overwrite an existing file.
    pub fn make_loop_image(&self, size: &str) -> Result<()> {
        let file = self
            .loop_file
            .as_ref()
            .ok_or_else(|| BackendError::StoreUnavailable("no loop file configured".into()))?;
        if file.exists() {
            return Err(BackendError::StoreUnavailable(format!(
                "{} already exists; remove it or choose another --loop file",
                file.display()
            )));
        }
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(|e| BackendError::io("create directory", dir, e))?;
        }
        let result = self
            .runner
            .run(&argv!["truncate", "-s", size, file])
            .and_then(|_| self.runner.run(&argv!["mkfs.btrfs", "-q", file]));
        if let Err(e) = result {
            let _ = fs::remove_file(file);
            return Err(BackendError::command(
                format!("create loop image {}", file.display()),
                e,
            ));
        }
        Ok(())
    }

    fn trees_dir(&self) -> PathBuf {
        self.root.join("trees")
    }

    fn snaps_dir(&self, tree: &TreeName) -> PathBuf {
        self.root.join("snapshots").join(tree.as_str())
    }

    fn snap_dir(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.snaps_dir(tree).join(id.as_str())
    }

    fn meta_file(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.snaps_dir(tree).join(format!("{id}.json"))
    }

    fn working(&self, tree: &TreeName) -> PathBuf {
        self.trees_dir().join(tree.as_str())
    }

    /// Where a half-finished swap leaves the old or new working tree: hidden,
    /// because tree names never start with a dot.
    fn scratch(&self, tree: &TreeName) -> PathBuf {
        self.trees_dir().join(format!(".{tree}.swap"))
    }

    // f_type is i64 on x86_64 glibc but narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    fn is_btrfs(path: &Path) -> bool {
        nix::sys::statfs::statfs(path)
            .map(|s| s.filesystem_type().0 as i64 == BTRFS_SUPER_MAGIC)
            .unwrap_or(false)
    }

    fn require_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let path = self.working(tree);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(BackendError::TreeNotFound(tree.clone()))
        }
    }

    fn require_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf> {
        self.require_tree(tree)?;
        let path = self.snap_dir(tree, id);
        if path.is_dir() && !self.receiving(tree, id) {
            Ok(path)
        } else {
            Err(BackendError::SnapshotNotFound(tree.clone(), id.clone()))
        }
    }

    fn btrfs(&self, action: impl Into<String>, args: Vec<std::ffi::OsString>) -> Result<()> {
        let mut full = argv!["btrfs"];
        full.extend(args);
        self.runner.run(&full).map(drop).map_err(|e| {
            let action = action.into();
            if e.stderr.contains("No space left") {
                BackendError::PoolFull {
                    action,
                    detail: e.reason().to_string(),
                }
            } else {
                BackendError::command(action, e)
            }
        })
    }

    /// Snapshots subvolume `source` as `dest` (see [`ioctl::snapshot`]);
    /// a full file system is [`BackendError::PoolFull`].
    fn snapshot_subvolume(
        &self,
        action: impl Into<String>,
        source: &Path,
        dest: &Path,
        readonly: bool,
    ) -> Result<()> {
        ioctl::snapshot(source, dest, readonly).map_err(|e| {
            let action = action.into();
            if e.raw_os_error() == Some(libc::ENOSPC) {
                BackendError::PoolFull {
                    action,
                    detail: e.to_string(),
                }
            } else {
                BackendError::io(
                    &format!("{action}: snapshot {} as", source.display()),
                    dest,
                    e,
                )
            }
        })
    }

    fn delete_subvolumes(&self, action: &str, paths: &[PathBuf]) -> Result<()> {
        // One command for many subvolumes: destroying a tree with thousands of
        // snapshots must not fork thousands of times.
        for chunk in paths.chunks(512) {
            let mut args = argv!["subvolume", "delete"];
            args.extend(chunk.iter().map(|p| p.into()));
            self.btrfs(action, args)?;
        }
        Ok(())
    }

    fn read_snapshots(&self, tree: &TreeName, out: &mut Vec<Snapshot>) -> Result<()> {
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
        for id in listed_ids(&names) {
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

    /// Finishes a swap interrupted by a crash: the scratch subvolume is either the
    /// new copy (not yet swapped in) or the old working tree (already swapped out);
    /// in both cases the working tree is the one to keep. Returns whether there
    /// was one.
    fn clear_scratch(&self, tree: &TreeName) -> Result<bool> {
        let scratch = self.scratch(tree);
        if scratch.exists() && self.working(tree).exists() {
            self.delete_subvolumes(
                &format!("clean up interrupted rollback of '{tree}'"),
                &[scratch],
            )?;
            return Ok(true);
        }
        Ok(false)
    }

    fn tree_file(&self, tree: &TreeName) -> PathBuf {
        self.snaps_dir(tree).join("tree.json")
    }

    /// The marker of a snapshot being received (see the module doc): a
    /// received subvolume cannot be renamed into place from another directory
    /// once it is read-only, so it is received where it stays, hidden by this.
    fn receive_marker(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.snaps_dir(tree).join(format!(".recv-{id}"))
    }

    fn receiving(&self, tree: &TreeName, id: &SnapshotId) -> bool {
        self.receive_marker(tree, id).exists()
    }
}

/// The snapshot IDs among a snapshot directory's entry names: those that
/// parse as IDs and are not being received.
fn listed_ids(names: &[std::ffi::OsString]) -> Vec<SnapshotId> {
    let receiving: std::collections::HashSet<&str> = names
        .iter()
        .filter_map(|n| n.to_str()?.strip_prefix(".recv-"))
        .collect();
    names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| !receiving.contains(n))
        .filter_map(|n| n.parse::<SnapshotId>().ok())
        .collect()
}

impl Backend for Btrfs {
    fn kind(&self) -> &'static str {
        "btrfs"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // When quotas are enabled; see qgroup.rs.
            snapshot_space: true,
            ..Capabilities::default()
        }
    }

    fn recover(&self, tree: &TreeName) -> Result<Vec<String>> {
        let mut done = Vec::new();
        if self.clear_scratch(tree)? {
            done.push(format!(
                "removed the scratch copy of an interrupted rollback of '{tree}'"
            ));
        }
        // A record whose tree is gone (a destroy cut short) would give the
        // next tree of that name a false origin.
        let record = self.tree_file(tree);
        if !self.working(tree).exists() && record.exists() {
            crate::durable::remove_durable(&record)
                .map_err(|e| BackendError::io("remove", &record, e))?;
            done.push(format!("removed the stale record {}", record.display()));
        }
        Ok(done)
    }

    fn init_store(&self) -> Result<()> {
        if !self.root.exists() {
            fs::create_dir_all(&self.root)
                .map_err(|e| BackendError::io("create", &self.root, e))?;
        }
        self.open()?;
        for dir in [
            self.trees_dir(),
            self.root.join("snapshots"),
            self.state_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| BackendError::io("create", &dir, e))?;
        }
        Ok(())
    }

    fn open(&self) -> Result<()> {
        if Self::is_btrfs(&self.root) {
            return Ok(());
        }
        let Some(file) = &self.loop_file else {
            return Err(BackendError::StoreUnavailable(format!(
                "{} is not on a btrfs file system (is it mounted?)",
                self.root.display()
            )));
        };
        if !file.exists() {
            return Err(BackendError::StoreUnavailable(format!(
                "loop image {} is missing (run `sidus init`)",
                file.display()
            )));
        }
        fs::create_dir_all(&self.root).map_err(|e| BackendError::io("create", &self.root, e))?;
        self.runner
            .run(&argv!["mount", "-o", "loop", file, &self.root])
            .map_err(|e| {
                BackendError::command(format!("mount store image {}", file.display()), e)
            })?;
        if Self::is_btrfs(&self.root) {
            Ok(())
        } else {
            Err(BackendError::StoreUnavailable(format!(
                "{} does not hold a btrfs file system",
                file.display()
            )))
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".sidus")
    }

    fn list_trees(&self) -> Result<Vec<TreeRecord>> {
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
            let tree_file = self.tree_file(&name);
            // A damaged record affects its own tree only: it lists, with the
            // damage said, and every other tree works as before.
            let (origin, damaged) = match read_json::<TreeFile>(&tree_file) {
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

    fn list_snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        match tree {
            Some(t) => {
                self.require_tree(t)?;
                self.read_snapshots(t, &mut out)?;
            }
            None => {
                for t in self.list_trees()? {
                    self.read_snapshots(&t.name, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    fn snapshot_ids(&self, tree: &TreeName) -> Result<Vec<SnapshotId>> {
        self.require_tree(tree)?;
        let dir = self.snaps_dir(tree);
        let names = fs::read_dir(&dir)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .map_err(|e| BackendError::io("read", &dir, e))?;
        Ok(listed_ids(&names))
    }

    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let path = self.working(tree);
        if path.exists() {
            return Err(BackendError::TreeExists(tree.clone()));
        }
        let snaps = self.snaps_dir(tree);
        fs::create_dir_all(&snaps).map_err(|e| BackendError::io("create", &snaps, e))?;
        // A new tree has no origin, whatever record an older tree of this name left.
        let record = self.tree_file(tree);
        crate::durable::remove_durable(&record)
            .map_err(|e| BackendError::io("remove", &record, e))?;
        self.btrfs(
            format!("create tree '{tree}'"),
            argv!["subvolume", "create", &path],
        )?;
        Ok(path)
    }

    fn destroy_tree(&self, tree: &TreeName) -> Result<()> {
        let working = self.working(tree);
        let dir = self.snaps_dir(tree);
        if !working.exists() && !dir.exists() {
            return Err(BackendError::TreeNotFound(tree.clone()));
        }
        self.clear_scratch(tree)?;
        let mut subvols: Vec<PathBuf> = Vec::new();
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    subvols.push(entry.path());
                }
            }
        }
        // The working tree last: while it exists the tree is listed, so a
        // destroy cut short is seen and finished (see `Backend::recover`).
        self.delete_subvolumes(&format!("destroy tree '{tree}'"), &subvols)?;
        if working.exists() {
            self.delete_subvolumes(&format!("destroy tree '{tree}'"), &[working])?;
        }
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(BackendError::io("remove", dir, e)),
            _ => Ok(()),
        }
    }

    fn tree_path(&self, tree: &TreeName) -> Result<PathBuf> {
        self.require_tree(tree)
    }

    fn snapshot(&self, snap: &Snapshot) -> Result<()> {
        let working = self.require_tree(&snap.tree)?;
        let target = self.snap_dir(&snap.tree, &snap.id);
        if target.exists() {
            return Err(BackendError::InUse {
                what: format!("snapshot ID {}", snap.id),
                by: format!("an existing snapshot of '{}'", snap.tree),
            });
        }
        // Metadata first: a crash in between leaves an orphan sidecar (ignored),
        // never a snapshot without its record.
        // No fsync needed: the snapshot's transaction commit persists the record.
        write_json_xattr(&self.meta_file(&snap.tree, &snap.id), snap)?;
        let made = self.snapshot_subvolume(
            format!("snapshot tree '{}'", snap.tree),
            &working,
            &target,
            true,
        );
        if made.is_err() {
            let _ = fs::remove_file(self.meta_file(&snap.tree, &snap.id));
        }
        made
    }

    fn delete_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let path = self.require_snapshot(tree, id)?;
        self.delete_subvolumes(&format!("delete snapshot {tree}@{id}"), &[path])?;
        let meta = self.meta_file(tree, id);
        match fs::remove_file(&meta) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(BackendError::io("remove", meta, e)),
            _ => Ok(()),
        }
    }

    fn delete_snapshots(&self, tree: &TreeName, ids: &[SnapshotId]) -> Result<()> {
        let paths = ids
            .iter()
            .map(|id| self.require_snapshot(tree, id))
            .collect::<Result<Vec<_>>>()?;
        let deleted = self.delete_subvolumes(
            &format!("delete {} snapshots of '{tree}'", ids.len()),
            &paths,
        );
        // Sidecars go with their subvolumes, also those a failed batch removed.
        for (id, path) in ids.iter().zip(&paths) {
            if !path.exists() {
                let meta = self.meta_file(tree, id);
                match fs::remove_file(&meta) {
                    Err(e) if e.kind() != ErrorKind::NotFound && deleted.is_ok() => {
                        return Err(BackendError::io("remove", meta, e))
                    }
                    _ => {}
                }
            }
        }
        deleted
    }

    fn snapshot_path(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf> {
        self.require_snapshot(tree, id)
    }

    fn clone_tree(&self, tree: &TreeName, id: &SnapshotId, new: &TreeName) -> Result<PathBuf> {
        let source = self.require_snapshot(tree, id)?;
        let target = self.working(new);
        if target.exists() {
            return Err(BackendError::TreeExists(new.clone()));
        }
        let snaps = self.snaps_dir(new);
        fs::create_dir_all(&snaps).map_err(|e| BackendError::io("create", &snaps, e))?;
        let origin = Origin {
            tree: tree.clone(),
            id: id.clone(),
        };
        write_json_atomic(
            &self.tree_file(new),
            &TreeFile {
                origin: Some(origin),
            },
        )?;
        let made = self.snapshot_subvolume(
            format!("clone {tree}@{id} to '{new}'"),
            &source,
            &target,
            false,
        );
        if made.is_err() {
            let _ = fs::remove_dir_all(&snaps);
        }
        made.map(|_| target)
    }

    fn replace_working(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let source = self.require_snapshot(tree, id)?;
        self.clear_scratch(tree)?;
        let working = self.working(tree);
        let scratch = self.scratch(tree);
        self.snapshot_subvolume(
            format!("copy {tree}@{id} for rollback"),
            &source,
            &scratch,
            false,
        )?;
        // One atomic exchange: at no instant is there no working tree.
        nix::fcntl::renameat2(
            None,
            &scratch,
            None,
            &working,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        )
        .map_err(|e| BackendError::io("swap in rollback copy at", &working, e.into()))?;
        self.delete_subvolumes(
            &format!("remove replaced working tree of '{tree}'"),
            &[scratch],
        )
    }

    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        Ok(None)
    }

    fn replication(&self) -> Option<&dyn crate::Replication> {
        Some(self)
    }

    fn snapshot_space(&self, tree: &TreeName) -> Result<BTreeMap<SnapshotId, u64>> {
        let working = self.require_tree(tree)?;
        let shown = self.runner.run_string(&argv![
            "btrfs", "--format", "json", "qgroup", "show", "--raw", "--sync", &self.root
        ]);
        let json = match shown {
            Ok(json) => json,
            // The admin has not enabled quotas: the space is unknown, not an error.
            Err(e) if e.stderr.contains("quotas not enabled") => return Ok(BTreeMap::new()),
            Err(e) => return Err(BackendError::command("read btrfs quota groups", e)),
        };
        let qgroups = qgroup::parse(&json).map_err(|detail| BackendError::UnexpectedOutput {
            tool: "btrfs qgroup show".into(),
            detail,
        })?;
        let rootid = self
            .runner
            .run_string(&argv!["btrfs", "inspect-internal", "rootid", &working])
            .map_err(|e| {
                BackendError::command(format!("find the subvolume of tree '{tree}'"), e)
            })?;
        let working_id = rootid
            .trim()
            .parse()
            .map_err(|_| BackendError::UnexpectedOutput {
                tool: "btrfs inspect-internal rootid".into(),
                detail: format!("not a subvolume ID: '{}'", rootid.trim()),
            })?;
        Ok(qgroup::snapshot_space(&qgroups, tree, working_id))
    }
}
