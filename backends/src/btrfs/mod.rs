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
//! By concern: [`layout`] (paths), [`errors`] (failures as typed errors),
//! [`image`] (the loop image), [`list`] (reading the store), [`swap`]
//! (rollback), [`ioctl`] (snapshots by the kernel call), [`qgroup`] (space),
//! [`replicate`] (send and receive), [`send_stream`] (what changed between
//! two snapshots).

mod errors;
mod image;
mod ioctl;
mod layout;
mod leftovers;
mod list;
mod qgroup;
mod replicate;
mod send_stream;
mod swap;

use crate::fsutil::write_json_xattr;
use crate::runner::Runner;
use crate::{
    argv, Backend, BackendError, Capabilities, InitOptions, Object, Origin, PoolUsage, Result,
    Snapshot, SnapshotChanges, SnapshotId, TreeName, TreeRecord,
};
use layout::TreeFile;
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A btrfs store rooted at a directory on a btrfs file system, optionally backed
/// by a loop file that sidus mounts itself.
#[derive(Debug, Clone)]
pub struct Btrfs {
    root: PathBuf,
    loop_file: Option<PathBuf>,
    runner: Runner,
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

    /// Runs `btrfs ARGS`; failures become typed errors in [`errors::classify`].
    fn btrfs(&self, action: impl Into<String>, args: Vec<std::ffi::OsString>) -> Result<()> {
        let mut full = argv!["btrfs"];
        full.extend(args);
        self.runner
            .run(&full)
            .map(drop)
            .map_err(|e| errors::classify(action.into(), e))
    }

    /// Snapshots subvolume `source` as `dest` (see [`ioctl::snapshot`]).
    fn snapshot_subvolume(
        &self,
        action: impl Into<String>,
        source: &Path,
        dest: &Path,
        readonly: bool,
    ) -> Result<()> {
        ioctl::snapshot(source, dest, readonly).map_err(|e| {
            let action = action.into();
            match errors::classify_io(action.clone(), dest, e) {
                BackendError::Io { source: e, .. } => BackendError::io(
                    &format!("{action}: snapshot {} as", source.display()),
                    dest,
                    e,
                ),
                other => other,
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

    /// Creates the store's directories on a mounted btrfs.
    fn create_dirs(&self) -> Result<()> {
        if !self.root.exists() {
            crate::durable::create_dir_all(&self.root)
                .map_err(|e| BackendError::io("create", &self.root, e))?;
        }
        self.mount_store()?;
        for dir in [
            self.trees_dir(),
            self.root.join("snapshots"),
            self.state_dir(),
        ] {
            crate::durable::create_dir_all(&dir)
                .map_err(|e| BackendError::io("create", &dir, e))?;
        }
        Ok(())
    }
}

impl Backend for Btrfs {
    fn kind(&self) -> &'static str {
        "btrfs"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // When quotas are enabled; see qgroup.rs.
            snapshot_space: true,
            // The state directory is on the store's btrfs.
            orders_state: true,
            // By a metadata-only send stream; see send_stream.rs.
            snapshot_changes: true,
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
        done.extend(self.remove_leftovers(tree)?);
        Ok(done)
    }

    fn leftovers(&self) -> Result<Vec<crate::Leftover>> {
        self.find_leftovers()
    }

    fn init_store(&self, opts: &InitOptions) -> Result<()> {
        let made = self.make_missing_image(opts.image_size.as_deref())?;
        let prepared = self.create_dirs();
        if let (Err(_), true, Some(file)) = (&prepared, made, &self.loop_file) {
            let _ = fs::remove_file(file);
        }
        prepared
    }

    fn open(&self) -> Result<()> {
        self.mount_store()
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".sidus")
    }

    fn list_trees(&self) -> Result<Vec<TreeRecord>> {
        self.trees()
    }

    fn list_snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        match tree {
            Some(t) => {
                self.require_tree(t)?;
                self.read_snapshots(t, &mut out)?;
            }
            None => {
                for t in self.trees()? {
                    self.read_snapshots(&t.name, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    fn snapshot_ids(&self, tree: &TreeName) -> Result<Vec<SnapshotId>> {
        self.ids(tree)
    }

    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let path = self.working(tree);
        if path.exists() {
            return Err(BackendError::tree_exists(tree));
        }
        let snaps = self.snaps_dir(tree);
        crate::durable::create_dir_all(&snaps)
            .map_err(|e| BackendError::io("create", &snaps, e))?;
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
            return Err(BackendError::tree_not_found(tree));
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
            return Err(BackendError::Exists(Object::Snapshot(
                snap.tree.clone(),
                snap.id.clone(),
            )));
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
            return Err(BackendError::tree_exists(new));
        }
        let snaps = self.snaps_dir(new);
        crate::durable::create_dir_all(&snaps)
            .map_err(|e| BackendError::io("create", &snaps, e))?;
        let origin = Origin {
            tree: tree.clone(),
            id: id.clone(),
        };
        // Committed by the snapshot below, like a snapshot's sidecar.
        write_json_xattr(
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
        self.swap_in_copy(tree, id)
    }

    fn replication(&self) -> Option<&dyn crate::Replication> {
        Some(self)
    }

    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        Ok(None)
    }

    fn snapshot_changes(
        &self,
        tree: &TreeName,
        from: &SnapshotId,
        to: &SnapshotId,
    ) -> Result<SnapshotChanges> {
        let action = format!("list what changed from {tree}@{from} to {tree}@{to}");
        let (a, b) = (
            self.require_snapshot(tree, from)?,
            self.require_snapshot(tree, to)?,
        );
        let stream =
            ioctl::send_no_data(&a, &b).map_err(|e| errors::classify_io(action.clone(), &b, e))?;
        send_stream::changes(&stream).map_err(|why| BackendError::UnexpectedOutput {
            tool: "btrfs send".into(),
            detail: format!("{action}: {why}"),
        })
    }

    fn snapshot_space(&self, tree: &TreeName) -> Result<BTreeMap<SnapshotId, u64>> {
        self.space(tree)
    }
}
