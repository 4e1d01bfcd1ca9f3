//! ZFS backend: a tree is a dataset, a snapshot a ZFS snapshot carrying its
//! metadata as `sidus:*` user properties, a clone a ZFS clone.
//!
//! Layout under the store's parent dataset `D` (mounted at the configured
//! mountpoint `M`):
//! ```text
//! D/trees/<tree>        working dataset, mounted at M/trees/<tree>
//! D/history/<tree>.<t>  a working dataset a rollback replaced; it keeps the
//!                       snapshots taken after the rollback target
//! D/swap/<tree>         a rollback's new working dataset while it is swapped in
//! D/recv/<tree>         a replica's first snapshot while it is received
//! M/.sidus/             state kept by the sidus crate (journal, locks)
//! ```
//! Every dataset and snapshot carries `sidus:tree`, so a tree's snapshots are
//! found wherever rollbacks (and the `zfs promote` that follows them) moved
//! them, in one `zfs list`. Rollback never uses `zfs rollback` (see
//! [`rollback`]), so snapshots newer than the target stay listed and usable.
//!
//! By concern: [`naming`] (dataset names), [`errors`] (ZFS's failures as
//! typed errors), [`props`] (metadata as user properties), [`query`] (what
//! the store holds), [`mounts`] (the mount table), [`store`] (init and open),
//! [`rollback`] (the swap), [`diff`] (`zfs diff`), [`lzc`] (libzfs_core),
//! [`replicate`] (send and receive).
//!
//! Snapshot, clone and the existence checks call libzfs_core directly when
//! it can be loaded (see [`lzc`]), and run the `zfs` command otherwise or
//! when `SIDUS_ZFS_CLI=1` is set; everything else runs `zfs`.

mod diff;
mod errors;
mod leftovers;
mod lzc;
mod mounts;
mod naming;
mod props;
mod query;
mod replicate;
mod rollback;
mod store;

use crate::runner::Runner;
use crate::{
    argv, Backend, BackendError, Capabilities, ChangedPath, DiffSide, InitOptions, Object,
    PoolUsage, Result, Snapshot, SnapshotId, TreeName, TreeRecord,
};
use mounts::zfs_mounts;
use naming::parse_origin;
use props::{prop, prop_pair};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A ZFS store under a parent dataset.
#[derive(Debug, Clone)]
pub struct Zfs {
    dataset: String,
    mountpoint: PathBuf,
    runner: Runner,
    /// libzfs_core, loaded on first use; `None` inside when it cannot be, or
    /// must not be (`SIDUS_ZFS_CLI`).
    lzc: Arc<OnceLock<Option<lzc::Lzc>>>,
    use_lzc: bool,
}

impl Zfs {
    /// A store in `dataset` (e.g. `tank/sidus`), which is (or, on `init_store`,
    /// will be) mounted at `mountpoint`.
    pub fn new(dataset: String, mountpoint: PathBuf, runner: Runner) -> Zfs {
        Zfs {
            dataset,
            mountpoint,
            runner,
            lzc: Arc::default(),
            use_lzc: std::env::var_os("SIDUS_ZFS_CLI").is_none_or(|v| v == "0"),
        }
    }

    /// The same store, always through the `zfs` command.
    pub fn cli_only(mut self) -> Zfs {
        self.use_lzc = false;
        self
    }

    /// libzfs_core, when it is loaded and to be used.
    fn lzc(&self) -> Option<&lzc::Lzc> {
        if !self.use_lzc {
            return None;
        }
        self.lzc.get_or_init(lzc::Lzc::load).as_ref()
    }

    /// Mounts `dataset`, the new clone of tree `tree`, where it inherits its
    /// mountpoint from `D/trees`, as `zfs clone` would have. Without the
    /// parent's mount to go by, `zfs mount` does it; should neither work,
    /// the clone is destroyed again, so a failed clone leaves nothing.
    fn mount_new(&self, dataset: &str, tree: &TreeName, action: &str) -> Result<()> {
        let mounted = match zfs_mounts().get(&self.trees_ds()) {
            Some(parent) => mounts::mount_dataset(dataset, &parent.join(tree.as_str())),
            None => self.zfs(action, argv!["mount", dataset]).map(drop),
        };
        if let Err(e) = &mounted {
            if let Err(u) = self.zfs(action, argv!["destroy", dataset]) {
                log::warn!("{e}; and removing the unmounted clone failed too: {u}");
            }
        }
        mounted
    }

    /// Runs `zfs ARGS`; failures become typed errors in [`errors::classify`].
    fn zfs(&self, action: impl Into<String>, args: Vec<OsString>) -> Result<String> {
        let mut full = argv!["zfs"];
        full.extend(args);
        self.runner
            .run_string(&full)
            .map_err(|e| errors::classify(action.into(), e))
    }
}

/// A failed libzfs_core call on `name`, as a typed error.
fn lzc_error(action: String, name: &str, e: lzc::Failed) -> BackendError {
    match e {
        lzc::Failed::Errno(errno) => errors::classify_errno(action, name, errno),
        lzc::Failed::Nul => BackendError::Io {
            action,
            path: name.into(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        },
    }
}

impl Backend for Zfs {
    fn recover(&self, tree: &TreeName) -> Result<Vec<String>> {
        let mut done = if self.clear_swap(tree)? {
            vec![format!(
                "finished or cleaned up an interrupted rollback of '{tree}'"
            )]
        } else {
            vec![]
        };
        done.extend(self.collect_emptied_history(tree)?);
        Ok(done)
    }

    fn kind(&self) -> &'static str {
        "zfs"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshot_space: true,
            holds: true,
            native_diff: true,
            pool_usage: false,
            // The state directory is in the store's dataset.
            orders_state: true,
            snapshot_changes: false,
        }
    }

    fn leftovers(&self) -> Result<Vec<crate::Leftover>> {
        self.find_leftovers()
    }

    fn init_store(&self, _opts: &InitOptions) -> Result<()> {
        self.create_store()
    }

    fn open(&self) -> Result<()> {
        self.open_store()
    }

    fn state_dir(&self) -> PathBuf {
        self.mountpoint.join(".sidus")
    }

    fn list_trees(&self) -> Result<Vec<TreeRecord>> {
        let mut trees: Vec<TreeRecord> = self
            .tree_datasets(&self.trees_ds())?
            .into_iter()
            .map(|d| TreeRecord {
                name: d.tree,
                path: d.mountpoint,
                origin: d.origin.as_deref().and_then(parse_origin),
                damaged: None,
            })
            .collect();
        trees.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(trees)
    }

    fn list_snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>> {
        self.snapshots(tree)
    }

    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let name = self.working_ds(tree);
        if self.exists(&name)? {
            return Err(BackendError::tree_exists(tree));
        }
        self.zfs(
            format!("create tree '{tree}'"),
            argv!["create", "-o", prop("tree", tree.as_str()), &name],
        )?;
        Ok(self.require_tree(tree)?.mountpoint)
    }

    fn destroy_tree(&self, tree: &TreeName) -> Result<()> {
        self.require_tree(tree)?;
        self.clear_swap(tree)?;
        // History datasets first: after a promote they are clones of the
        // working dataset's snapshots. No -R: that would also destroy clones
        // belonging to other trees, which sidus refuses before calling us.
        let mut pending: Vec<String> = self
            .tree_datasets(&self.history_ds())?
            .into_iter()
            .filter(|d| d.tree == *tree)
            .map(|d| d.name)
            .collect();
        pending.push(self.working_ds(tree));
        // An unpromoted rollback reverses the dependency; retry until no progress.
        loop {
            let mut last_err = None;
            let before = pending.len();
            pending.retain(|ds| {
                match self.zfs(
                    format!("destroy tree '{tree}' ({ds})"),
                    argv!["destroy", "-r", ds],
                ) {
                    Ok(_) => false,
                    Err(e) => {
                        last_err = Some(e);
                        true
                    }
                }
            });
            match last_err {
                None => return Ok(()),
                Some(e) if pending.len() == before => return Err(e),
                Some(_) => continue,
            }
        }
    }

    fn tree_exists(&self, tree: &TreeName) -> Result<bool> {
        // Working datasets are mounted while the store is open.
        if zfs_mounts().contains_key(&self.working_ds(tree)) {
            return Ok(true);
        }
        self.exists(&self.working_ds(tree))
    }

    fn tree_path(&self, tree: &TreeName) -> Result<PathBuf> {
        match zfs_mounts().remove(&self.working_ds(tree)) {
            Some(mp) => Ok(mp),
            None => Ok(self.require_tree(tree)?.mountpoint),
        }
    }

    fn snapshot_ids(&self, tree: &TreeName) -> Result<Vec<SnapshotId>> {
        match self.mounted_snapshot_ids(tree)? {
            Some(ids) => Ok(ids),
            None => Ok(self
                .snapshots(Some(tree))?
                .into_iter()
                .map(|s| s.id)
                .collect()),
        }
    }

    fn snapshot(&self, snap: &Snapshot) -> Result<()> {
        // One call carrying the metadata, and no query: ZFS itself says when
        // the tree is missing or the ID taken.
        let name = format!("{}@{}", self.working_ds(&snap.tree), snap.id);
        let action = format!("snapshot tree '{}'", snap.tree);
        let made = match self.lzc() {
            Some(lzc) => {
                let mut props = vec![prop_pair("tree", snap.tree.as_str())];
                props.extend(snap.properties().into_iter().map(|(k, v)| prop_pair(k, &v)));
                log::debug!("lzc_snapshot {name}");
                lzc.snapshot(&name, &props)
                    .map_err(|e| lzc_error(action, &name, e))
            }
            None => {
                let mut args = argv!["snapshot", "-o", prop("tree", snap.tree.as_str())];
                for (key, value) in snap.properties() {
                    args.push("-o".into());
                    args.push(prop(key, &value));
                }
                args.push(name.into());
                self.zfs(action, args).map(drop)
            }
        };
        match made {
            Ok(()) => Ok(()),
            Err(BackendError::NotFound(_)) => Err(BackendError::tree_not_found(&snap.tree)),
            Err(BackendError::Exists(_)) => Err(BackendError::Exists(Object::Snapshot(
                snap.tree.clone(),
                snap.id.clone(),
            ))),
            Err(e) => Err(e),
        }
    }

    fn delete_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let found = self.locate(tree, id)?;
        let action = format!("snapshot {tree}@{id}");
        if let Err(e) = self.zfs(&action, argv!["destroy", &found.name]) {
            return Err(match e {
                BackendError::InUse { .. } => self.explain_dependents(&found.name, action, e),
                e => e,
            });
        }
        self.collect_history(found.dataset());
        Ok(())
    }

    fn snapshot_path(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf> {
        let found = self.locate(tree, id)?;
        // .zfs/snapshot/<id> is mounted by ZFS on first access.
        Ok(found
            .dataset_mountpoint
            .join(".zfs")
            .join("snapshot")
            .join(id.as_str()))
    }

    fn clone_tree(&self, tree: &TreeName, id: &SnapshotId, new: &TreeName) -> Result<PathBuf> {
        let found = self.locate(tree, id)?;
        let target = self.working_ds(new);
        let action = format!("clone {tree}@{id} to '{new}'");
        let origin = format!("{tree}@{id}");
        let made = match self.lzc() {
            Some(lzc) => {
                let props = [
                    prop_pair("tree", new.as_str()),
                    prop_pair("origin", &origin),
                ];
                log::debug!("lzc_clone {} {target}", found.name);
                lzc.clone(&target, &found.name, &props)
                    .map_err(|e| lzc_error(action.clone(), &target, e))
                    .and_then(|()| self.mount_new(&target, new, &action))
            }
            None => self
                .zfs(
                    &action,
                    argv![
                        "clone",
                        "-o",
                        prop("tree", new.as_str()),
                        "-o",
                        prop("origin", &origin),
                        &found.name,
                        &target
                    ],
                )
                .map(drop),
        };
        match made {
            Err(BackendError::Exists(_)) => Err(BackendError::tree_exists(new)),
            Err(BackendError::NotFound(_)) => Err(BackendError::snapshot_not_found(tree, id)),
            Err(e) => Err(e),
            Ok(()) => self.tree_path(new),
        }
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

    fn hold(&self, tree: &TreeName, id: &SnapshotId, tag: &str) -> Result<()> {
        let found = self.locate(tree, id)?;
        match self.zfs(format!("hold {tree}@{id}"), argv!["hold", tag, &found.name]) {
            // The tag is there already.
            Ok(_) | Err(BackendError::Exists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn release(&self, tree: &TreeName, id: &SnapshotId, tag: &str) -> Result<()> {
        let found = self.locate(tree, id)?;
        match self.zfs(
            format!("release {tree}@{id}"),
            argv!["release", tag, &found.name],
        ) {
            // No such tag (or the snapshot went since it was located).
            Ok(_) | Err(BackendError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn changed_paths(&self, from: DiffSide<'_>, to: DiffSide<'_>) -> Result<Vec<ChangedPath>> {
        self.diff(from, to)
    }

    fn serve(&self, tree: &TreeName, id: &SnapshotId, target: &Path) -> Result<()> {
        // A mount of its own, not a bind of the .zfs automount, which ZFS
        // unmounts when it expires or when the dataset is renamed.
        let found = self.locate(tree, id)?;
        crate::mount::run(
            &self.runner,
            argv!["mount", "-t", "zfs", "-o", "ro", &found.name, target],
            &format!("serve {tree}@{id} at {}", target.display()),
        )
    }

    fn snapshot_space(&self, tree: &TreeName) -> Result<BTreeMap<SnapshotId, u64>> {
        self.used_by_snapshots(tree)
    }
}
