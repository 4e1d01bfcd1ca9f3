//! LVM-thin backend: a tree is an ext4 thin LV, a snapshot a read-only thin
//! snapshot of it (kept inactive until its view is asked for), and its metadata
//! LV tags. Listing is one `lvs` query whatever the number of snapshots.
//!
//! ```text
//! VG/sidus.state               ext4, mounted at <mount_root>/state (journal, locks)
//! VG/sidus.t.<tree>            working tree, mounted at <mount_root>/trees/<tree>
//! VG/sidus.s.<tree>.<id>       snapshot, mounted read-only at
//!                              <mount_root>/snapshots/<tree>/<id> on demand
//! VG/sidus.n.<tree>            rollback copy about to be swapped in
//! VG/sidus.o.<tree>            working LV a rollback swapped out, about to go
//! ```
//! Names only give an LV its role (see [`naming`]); which tree and snapshot it
//! holds is read from its tags (see [`tags`]).

mod commands;
mod dm;
mod errors;
mod leftovers;
mod mountinfo;
mod mounts;
mod naming;
mod pool;
mod query;
mod report;
mod swap;
mod tags;

use crate::runner::Runner;
use crate::{
    argv, Backend, BackendError, Capabilities, InitOptions, Object, Origin, PoolUsage, Result,
    Snapshot, SnapshotId, TreeName, TreeRecord,
};
use naming::Role;
use report::Lv;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Size of the state LV (journal, locks, publish state), in MiB. It is fully
/// provisioned at init, so sidus can still journal and lock when trees have
/// filled the pool (a full pool turns ext4 read-only on unprovisioned writes).
const STATE_MIB: usize = 128;

/// A store of thin LVs in one thin pool of one VG.
#[derive(Debug, Clone)]
pub struct Lvm {
    vg: String,
    pool: String,
    mount_root: PathBuf,
    tree_size: String,
    runner: Runner,
    /// The store's LVs as this process's last `lvs` reported them. One sidus
    /// command looks them up several times (resolve a ref, check the tree,
    /// act), and under load each `lvs` costs a device scan; every lvm2 change
    /// goes through [`Lvm::run_changing`], which empties it, and so does
    /// [`Backend::forget_cached`] once a tree's lock is held.
    lvs_cache: Arc<Mutex<Option<Vec<Lv>>>>,
}

impl Lvm {
    /// A store in thin pool `vg/thinpool`, mounting trees, snapshot views and the
    /// state LV under `mount_root`; new trees get `tree_size` (as `lvcreate -V`
    /// takes it) of virtual size.
    pub fn new(
        vg: String,
        thinpool: String,
        mount_root: PathBuf,
        tree_size: String,
        runner: Runner,
    ) -> Lvm {
        Lvm {
            vg,
            pool: thinpool,
            mount_root,
            tree_size,
            runner,
            lvs_cache: Arc::default(),
        }
    }

    pub(super) fn cached_lvs(&self) -> std::sync::MutexGuard<'_, Option<Vec<Lv>>> {
        // A panic elsewhere cannot leave a half-written list: take it as is.
        self.lvs_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn working_dir(&self, tree: &TreeName) -> PathBuf {
        self.mount_root.join("trees").join(tree.as_str())
    }

    fn view_dir(&self, tree: &TreeName, id: &SnapshotId) -> PathBuf {
        self.mount_root
            .join("snapshots")
            .join(tree.as_str())
            .join(id.as_str())
    }

    fn working_lv(&self, tree: &TreeName) -> String {
        naming::working(&self.vg, tree)
    }

    /// `VG/LV`, as lvm2 commands take it.
    fn full(&self, lv: &str) -> String {
        format!("{}/{lv}", self.vg)
    }

    /// `--addtag` arguments for a tree's working LV (and its rollback copies):
    /// the tree, and its origin (already escaped) when it is a clone.
    fn tree_tags(tree: &TreeName, escaped_origin: Option<&str>) -> Vec<OsString> {
        let mut args = argv!["--addtag", tags::tag(tags::TREE, tree.as_str())];
        if let Some(o) = escaped_origin {
            args.extend(argv![
                "--addtag",
                format!("{}{}={o}", tags::PREFIX, tags::ORIGIN)
            ]);
        }
        args
    }

    fn origin_of(lv: &Lv) -> Option<Origin> {
        let value = tags::decode(tags::get(&lv.tags, tags::ORIGIN)?)?;
        let (tree, id) = value.split_once(':')?;
        Some(Origin {
            tree: tree.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

impl Backend for Lvm {
    fn kind(&self) -> &'static str {
        "lvm"
    }

    fn forget_cached(&self) {
        self.cached_lvs().take();
    }

    fn recover(&self, tree: &TreeName) -> Result<Vec<String>> {
        let mut done = Vec::new();
        let lvs = self.list_lvs()?;
        if let Some(what) = self.recover_swap(&lvs, tree)? {
            done.push(what);
            self.forget_cached();
        }
        let lvs = self.list_lvs()?;
        if let Some(lv) = Self::find(&lvs, Role::Working, tree) {
            self.ensure_mounted(lv, &self.working_dir(tree), mounts::RW)?;
        }
        if Self::find(&lvs, Role::Working, tree).is_some() && self.has_leftovers(&lvs, tree) {
            self.clear_leftovers(&lvs, tree)?;
            self.forget_cached();
            done.push(format!(
                "removed the copies an interrupted rollback of '{tree}' left"
            ));
        }
        Ok(done)
    }

    fn leftovers(&self) -> Result<Vec<crate::Leftover>> {
        self.find_leftovers()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            pool_usage: true,
            ..Capabilities::default()
        }
    }

    fn init_store(&self, _opts: &InitOptions) -> Result<()> {
        self.check_pool()?;
        let lvs = self.query()?;
        if !lvs.iter().any(|l| l.role == Role::State) {
            self.create_fs_lv(
                "create the state volume",
                naming::STATE_LV,
                &format!("{STATE_MIB}M"),
                &[],
                Some(STATE_MIB),
            )?;
        }
        self.open()?;
        for dir in [
            self.mount_root.join("trees"),
            self.mount_root.join("snapshots"),
        ] {
            crate::durable::create_dir_all(&dir)
                .map_err(|e| BackendError::io("create", &dir, e))?;
        }
        Ok(())
    }

    fn open(&self) -> Result<()> {
        if self.state_is_mounted() {
            return Ok(());
        }
        self.check_pool()?;
        self.mount_all()
    }

    fn state_dir(&self) -> PathBuf {
        self.mount_root.join("state")
    }

    fn list_trees(&self) -> Result<Vec<TreeRecord>> {
        let lvs = self.query()?;
        let mut trees: Vec<TreeRecord> = lvs
            .iter()
            .filter(|l| {
                // A tree whose rollback a crash cut between its renames still
                // lists (its next writer finishes the swap).
                l.role == Role::Working
                    || (l.role == Role::Outgoing
                        && l.tree
                            .as_ref()
                            .is_some_and(|t| Self::find(&lvs, Role::Working, t).is_none()))
            })
            .filter_map(|l| {
                let name = l.tree.clone()?;
                Some(TreeRecord {
                    path: self.working_dir(&name),
                    origin: Self::origin_of(l),
                    damaged: None,
                    name,
                })
            })
            .collect();
        trees.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(trees)
    }

    fn list_snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>> {
        let lvs = self.query()?;
        if let Some(t) = tree {
            self.require_working(&lvs, t)?;
        }
        let mut out: Vec<Snapshot> = lvs
            .into_iter()
            .filter(|l| l.role == Role::Snapshot)
            .filter(|l| tree.is_none() || l.tree.as_ref() == tree)
            .filter_map(|l| {
                let (t, id) = (l.tree?, l.id?);
                // Damaged metadata must not hide the snapshot: list it by its ID.
                let snap = tags::snapshot_from_tags(t.clone(), id.clone(), &l.tags)
                    .or_else(|e| {
                        log::warn!("snapshot LV {}: {e}", l.name);
                        Snapshot::from_properties(t, id, |_| None)
                    })
                    .ok()?;
                Some(snap)
            })
            .collect();
        out.sort_by(|a, b| a.tree.cmp(&b.tree).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let lvs = self.query()?;
        if lvs.iter().any(|l| l.tree.as_ref() == Some(tree)) {
            return Err(BackendError::tree_exists(tree));
        }
        let name = self.working_lv(tree);
        let tags = Self::tree_tags(tree, None);
        self.create_fs_lv(
            &format!("create tree '{tree}'"),
            &name,
            &self.tree_size,
            &tags,
            None,
        )?;
        let path = self.working_dir(tree);
        if let Err(e) = self.mount(&name, &path, mounts::RW) {
            self.remove_quietly(&name);
            return Err(e);
        }
        Ok(path)
    }

    fn destroy_tree(&self, tree: &TreeName) -> Result<()> {
        let lvs = self.query()?;
        self.require_working(&lvs, tree)?;
        let mine: Vec<&Lv> = lvs
            .iter()
            .filter(|l| l.tree.as_ref() == Some(tree))
            .collect();
        let views: Vec<(&Lv, PathBuf)> = mine
            .iter()
            .map(|l| {
                let dir = match (&l.role, &l.id) {
                    (Role::Snapshot, Some(id)) => self.view_dir(tree, id),
                    _ => self.working_dir(tree),
                };
                (*l, dir)
            })
            .collect();
        // Refuse before touching anything when a device is used elsewhere (an
        // NFS export's bind mount, an admin's mount).
        self.check_not_used_elsewhere(&views)?;
        for (lv, dir) in &views {
            self.unmount_if_mounted(lv, dir)?;
        }
        let names: Vec<&str> = mine.iter().map(|l| l.name.as_str()).collect();
        self.lvremove(&format!("destroy tree '{tree}'"), &names)?;
        for (_, dir) in &views {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir(self.mount_root.join("snapshots").join(tree.as_str()));
        Ok(())
    }

    fn tree_path(&self, tree: &TreeName) -> Result<PathBuf> {
        let lvs = self.query()?;
        let lv = self.require_working(&lvs, tree)?;
        let path = self.working_dir(tree);
        self.ensure_mounted(lv, &path, mounts::RW)?;
        Ok(path)
    }

    fn snapshot(&self, snap: &Snapshot) -> Result<()> {
        // No `lvs` here: names are derived, and lvcreate itself says when the
        // tree is missing or the ID taken. Snapshots are the hot path.
        let tree = &snap.tree;
        let working = self.working_lv(tree);
        let name = naming::snapshot(&self.vg, tree, &snap.id);
        // lvcreate suspends the origin with the file system frozen (dm lockfs),
        // which makes the snapshot consistent; syncing first keeps that freeze
        // short. An explicit fsfreeze would make the suspend fail (EBUSY).
        self.sync_if_mounted(&working, &self.working_dir(tree))?;
        let mut args = argv!["-s", "-k", "y", "-p", "r"];
        for t in tags::snapshot_tags(snap) {
            args.extend(argv!["--addtag", t]);
        }
        args.push(self.full(&working).into());
        self.lvcreate(&format!("snapshot tree '{tree}'"), &name, args)
            .map_err(|f| {
                f.into_error(
                    BackendError::Exists(Object::Snapshot(tree.clone(), snap.id.clone())),
                    BackendError::tree_not_found(tree),
                )
            })
    }

    fn delete_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let lvs = self.query()?;
        let lv = self.require_snapshot(&lvs, tree, id)?;
        let view = self.view_dir(tree, id);
        self.check_not_used_elsewhere(&[(lv, view.clone())])?;
        self.unmount_if_mounted(lv, &view)?;
        self.lvremove(&format!("delete snapshot {tree}@{id}"), &[&lv.name])?;
        let _ = std::fs::remove_dir(&view);
        Ok(())
    }

    fn snapshot_path(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf> {
        let lvs = self.query()?;
        let lv = self.require_snapshot(&lvs, tree, id)?;
        let view = self.view_dir(tree, id);
        self.ensure_mounted(lv, &view, mounts::RO)?;
        Ok(view)
    }

    fn clone_tree(&self, tree: &TreeName, id: &SnapshotId, new: &TreeName) -> Result<PathBuf> {
        // Like `snapshot`: no `lvs`, lvcreate reports a missing source or a
        // taken name (the only LV a tree has when it has no snapshots).
        let source = naming::snapshot(&self.vg, tree, id);
        let name = self.working_lv(new);
        let origin = tags::encode(&tags::origin_value(tree, id));
        let mut args = argv!["-s", "-k", "n", "-p", "rw"];
        args.extend(Self::tree_tags(new, Some(&origin)));
        args.push(self.full(&source).into());
        self.lvcreate(&format!("clone {tree}@{id} to '{new}'"), &name, args)
            .map_err(|f| {
                f.into_error(
                    BackendError::tree_exists(new),
                    BackendError::snapshot_not_found(tree, id),
                )
            })?;
        let path = self.working_dir(new);
        if let Err(e) = self.mount(&name, &path, mounts::RW) {
            self.remove_quietly(&name);
            return Err(e);
        }
        Ok(path)
    }

    fn replace_working(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let lvs = self.query()?;
        let source = self.require_snapshot(&lvs, tree, id)?;
        let working = self.require_working(&lvs, tree)?;
        self.clear_leftovers(&lvs, tree)?;
        let incoming = naming::incoming(&self.vg, tree);
        let outgoing = naming::outgoing(&self.vg, tree);
        // The copy keeps the tree's lineage: a rolled-back clone is still a clone.
        let origin = tags::get(&working.tags, tags::ORIGIN).map(str::to_string);
        let mut args = argv!["-s", "-k", "n", "-p", "rw"];
        args.extend(Self::tree_tags(tree, origin.as_deref()));
        args.push(self.full(&source.name).into());
        self.lvcreate(&format!("copy {tree}@{id} for rollback"), &incoming, args)
            .map_err(|f| {
                f.into_error(
                    BackendError::InUse {
                        what: format!("the rollback copy {}", self.full(&incoming)),
                        by: "another rollback of the tree".into(),
                    },
                    BackendError::snapshot_not_found(tree, id),
                )
            })?;
        self.swap_in(tree, working, &incoming, &outgoing)
    }

    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        if let Some(usage) = self.pool_usage_from_dm() {
            return Ok(Some(usage));
        }
        let row = self.pool_row()?;
        let bad = |detail| BackendError::UnexpectedOutput {
            tool: "lvs".into(),
            detail,
        };
        let data = report::percent(&row.data_percent)
            .map_err(bad)?
            .ok_or_else(|| bad(format!("no data_percent for {}", self.full(&self.pool))))?;
        Ok(Some(PoolUsage {
            name: self.full(&self.pool),
            data_percent: data,
            metadata_percent: report::percent(&row.metadata_percent).map_err(bad)?,
        }))
    }
}
