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
//! them, in one `zfs list`. Rollback never uses `zfs rollback`: it clones the
//! target, swaps the clone in by renames and promotes it, so snapshots newer
//! than the target stay listed and usable.

mod mounts;
mod props;
mod replicate;

use crate::runner::{CommandError, Runner};
use crate::{
    argv, Backend, BackendError, Capabilities, Origin, PoolUsage, Result, Snapshot, SnapshotId,
    TreeName, TreeRecord,
};
use mounts::zfs_mounts;
use props::{decode, encode, fields, PREFIX};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// Snapshot properties read back by one `zfs list`, in column order after `name`.
const SNAPSHOT_PROPS: [&str; 9] = [
    "tree", "created", "kind", "message", "parent", "user", "command", "pre", "status",
];

/// A ZFS store under a parent dataset.
#[derive(Debug, Clone)]
pub struct Zfs {
    dataset: String,
    mountpoint: PathBuf,
    runner: Runner,
}

/// One snapshot found by [`Zfs::locate`]: its full ZFS name and the mountpoint
/// of the dataset holding it.
struct Located {
    name: String,
    dataset_mountpoint: PathBuf,
}

/// One dataset of the store that belongs to a tree.
struct TreeDataset {
    name: String,
    tree: TreeName,
    origin: Option<String>,
    mountpoint: PathBuf,
}

impl Zfs {
    /// A store in `dataset` (e.g. `tank/sidus`), which is (or, on `init_store`,
    /// will be) mounted at `mountpoint`.
    pub fn new(dataset: String, mountpoint: PathBuf, runner: Runner) -> Zfs {
        Zfs {
            dataset,
            mountpoint,
            runner,
        }
    }

    fn trees_ds(&self) -> String {
        format!("{}/trees", self.dataset)
    }

    fn history_ds(&self) -> String {
        format!("{}/history", self.dataset)
    }

    fn working_ds(&self, tree: &TreeName) -> String {
        format!("{}/trees/{tree}", self.dataset)
    }

    fn swap_ds(&self, tree: &TreeName) -> String {
        format!("{}/swap/{tree}", self.dataset)
    }

    fn prop(key: &str, value: &str) -> OsString {
        format!("{PREFIX}{key}={}", encode(value)).into()
    }

    /// Runs `zfs ARGS`, mapping ZFS's own words to typed errors.
    fn zfs(&self, action: impl Into<String>, args: Vec<OsString>) -> Result<String> {
        let mut full = argv!["zfs"];
        full.extend(args);
        self.runner
            .run_string(&full)
            .map_err(|e| Self::classify(action.into(), e))
    }

    fn classify(action: String, e: CommandError) -> BackendError {
        let reason = e.reason().to_string();
        if e.status.is_none() && e.stderr.contains("No such file") {
            BackendError::StoreUnavailable(format!("the zfs command is not installed ({action})"))
        } else if e.stderr.contains("out of space") || e.stderr.contains("No space left") {
            BackendError::PoolFull {
                action,
                detail: reason,
            }
        } else if e.stderr.contains("has dependent clones") {
            BackendError::InUse {
                what: action,
                by: "a ZFS clone depends on it (a clone of another tree, or the snapshots \
                     kept from before a rollback); delete those first"
                    .into(),
            }
        } else if e.stderr.contains("dataset is busy") || e.stderr.contains("target is busy") {
            BackendError::InUse {
                what: action,
                by: format!("it is busy (mounted or held): {reason}"),
            }
        } else {
            BackendError::command(action, e)
        }
    }

    /// True when `name` exists.
    fn exists(&self, name: &str) -> Result<bool> {
        match self
            .runner
            .run(&argv!["zfs", "list", "-H", "-o", "name", name])
        {
            Ok(_) => Ok(true),
            Err(e) if e.stderr.contains("does not exist") => Ok(false),
            Err(e) => Err(Self::classify(format!("look up {name}"), e)),
        }
    }

    /// Every dataset under `parent` (children only) that belongs to a tree.
    fn tree_datasets(&self, parent: &str) -> Result<Vec<TreeDataset>> {
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
            Err(e) if e.stderr.contains("does not exist") => return Ok(Vec::new()),
            Err(e) => return Err(Self::classify(format!("list datasets of {parent}"), e)),
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

    fn require_tree(&self, tree: &TreeName) -> Result<TreeDataset> {
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
            Err(e) if e.stderr.contains("does not exist") => {
                Err(BackendError::TreeNotFound(tree.clone()))
            }
            Err(e) => Err(Self::classify(format!("look up tree '{tree}'"), e)),
        }
    }

    /// Every snapshot of the store as `(full name, tree, fields...)` rows.
    fn snapshot_rows(&self, cols: &[&str]) -> Result<Vec<Vec<String>>> {
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

    /// The tree a history dataset belongs to: `D/history/<tree>.<stamp>[.N]`.
    fn history_owner<'a>(&self, dataset: &'a str) -> Option<&'a str> {
        let name = dataset.strip_prefix(&format!("{}/", self.history_ds()))?;
        let is_stamp = |p: &str| {
            p.len() == 16
                && p.as_bytes()[8] == b'T'
                && p.ends_with('Z')
                && p[..8]
                    .bytes()
                    .chain(p[9..15].bytes())
                    .all(|b| b.is_ascii_digit())
        };
        let (rest, last) = name.rsplit_once('.')?;
        if is_stamp(last) {
            return Some(rest);
        }
        let (tree, stamp) = rest.rsplit_once('.')?;
        (last.bytes().all(|b| b.is_ascii_digit()) && is_stamp(stamp)).then_some(tree)
    }

    /// The mounted datasets holding `tree`'s snapshots (working one first), read
    /// from the mount table; `None` when the working dataset is not mounted.
    fn mounted_tree(&self, tree: &TreeName) -> Option<Vec<(String, PathBuf)>> {
        let mut mounts = zfs_mounts();
        let working = self.working_ds(tree);
        let mp = mounts.remove(&working)?;
        let mut out = vec![(working, mp)];
        out.extend(
            mounts
                .into_iter()
                .filter(|(ds, _)| self.history_owner(ds) == Some(tree.as_str())),
        );
        Some(out)
    }

    /// Finds `tree@id` wherever rollbacks moved it.
    fn locate(&self, tree: &TreeName, id: &SnapshotId) -> Result<Located> {
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
        Err(BackendError::SnapshotNotFound(tree.clone(), id.clone()))
    }

    fn mountpoint_of(&self, dataset: &str) -> Result<PathBuf> {
        let out = self.zfs(
            format!("read the mountpoint of {dataset}"),
            argv!["get", "-H", "-p", "-o", "value", "mountpoint", dataset],
        )?;
        Ok(PathBuf::from(out.trim()))
    }

    /// Finishes or undoes a rollback interrupted between its steps. The swap
    /// dataset is either a fresh clone not yet swapped in (the working tree is
    /// still there: drop the clone; it has no snapshots of its own) or the new
    /// working tree whose rename did not happen (no working tree: finish it).
    fn clear_swap(&self, tree: &TreeName) -> Result<bool> {
        let swap = self.swap_ds(tree);
        if !self.exists(&swap)? {
            return Ok(false);
        }
        let working = self.working_ds(tree);
        if self.exists(&working)? {
            // No -r: should the swap hold snapshots after all, this fails
            // rather than destroying them.
            self.zfs(
                format!("clean up an interrupted rollback of '{tree}'"),
                argv!["destroy", &swap],
            )?;
        } else {
            self.zfs(
                format!("finish an interrupted rollback of '{tree}'"),
                argv!["rename", &swap, &working],
            )?;
            self.promote(&working);
        }
        Ok(true)
    }

    /// Promotes a rollback's clone so the history dataset it came from can be
    /// destroyed once its snapshots are. Failure costs only that, so it is logged.
    fn promote(&self, dataset: &str) {
        if let Err(e) = self.runner.run(&argv!["zfs", "promote", dataset]) {
            log::warn!("zfs promote {dataset} failed (the rollback itself succeeded): {e}");
        }
    }

    /// Destroys a history dataset left without snapshots, so rollbacks do not
    /// leave empty datasets behind. Anything still depending on it keeps it.
    fn collect_history(&self, dataset: &str) {
        if !dataset.starts_with(&format!("{}/", self.history_ds())) {
            return;
        }
        let snaps = self.runner.run_string(&argv![
            "zfs", "list", "-H", "-t", "snapshot", "-d", "1", "-o", "name", dataset
        ]);
        if matches!(snaps, Ok(ref s) if s.trim().is_empty()) {
            if let Err(e) = self.runner.run(&argv!["zfs", "destroy", dataset]) {
                log::info!("keeping {dataset}: {e}");
            }
        }
    }

    /// Names the sidus snapshots that keep `snapshot` alive: those held by the
    /// datasets cloned from it. Falls back to `err` when there are none to name.
    fn explain_dependents(
        &self,
        snapshot: &str,
        action: String,
        err: BackendError,
    ) -> BackendError {
        let Ok(clones) = self.runner.run_string(&argv![
            "zfs", "get", "-H", "-p", "-o", "value", "clones", snapshot
        ]) else {
            return err;
        };
        let clones: Vec<&str> = clones
            .trim()
            .split(',')
            .filter(|c| !c.is_empty() && *c != "-")
            .collect();
        let Ok(rows) = self.snapshot_rows(&["tree"]) else {
            return err;
        };
        let mut names = Vec::new();
        for row in &rows {
            if let (Some((ds, id)), Some(tree)) = (row[0].split_once('@'), decode(&row[1])) {
                if clones.contains(&ds) {
                    names.push(format!("{tree}@{id}"));
                }
            }
        }
        for ds in &clones {
            if ds.starts_with(&format!("{}/", self.trees_ds())) {
                names.push(format!("tree {}", ds.rsplit('/').next().unwrap_or(ds)));
            }
        }
        if names.is_empty() {
            return err;
        }
        BackendError::InUse {
            what: action,
            by: format!(
                "on ZFS these are stored as a clone of it: {}; delete them first",
                names.join(", ")
            ),
        }
    }

    /// A history dataset name for `tree` that is not taken yet.
    fn history_name(&self, tree: &TreeName) -> Result<String> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let base = format!("{}/{tree}.{stamp}", self.history_ds());
        let mut name = base.clone();
        let mut n = 1;
        while self.exists(&name)? {
            name = format!("{base}.{n}");
            n += 1;
        }
        Ok(name)
    }
}

fn unexpected(line: &str) -> BackendError {
    BackendError::UnexpectedOutput {
        tool: "zfs list".into(),
        detail: format!("row {line:?}"),
    }
}

fn parse_origin(text: &str) -> Option<Origin> {
    let (tree, id) = text.split_once('@')?;
    Some(Origin {
        tree: tree.parse().ok()?,
        id: id.parse().ok()?,
    })
}

impl Backend for Zfs {
    fn recover(&self, tree: &TreeName) -> Result<Vec<String>> {
        Ok(if self.clear_swap(tree)? {
            vec![format!(
                "finished or cleaned up an interrupted rollback of '{tree}'"
            )]
        } else {
            vec![]
        })
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
        }
    }

    fn init_store(&self) -> Result<()> {
        if !self.exists(&self.dataset)? {
            let mut mp = OsString::from("mountpoint=");
            mp.push(&self.mountpoint);
            self.zfs(
                format!("create the store dataset {}", self.dataset),
                argv!["create", "-p", "-o", mp, &self.dataset],
            )?;
        }
        self.open()?;
        for child in [
            self.trees_ds(),
            self.history_ds(),
            format!("{}/swap", self.dataset),
        ] {
            if !self.exists(&child)? {
                self.zfs(format!("create {child}"), argv!["create", &child])?;
            }
        }
        let state = self.state_dir();
        fs::create_dir_all(&state).map_err(|e| BackendError::io("create", &state, e))
    }

    fn open(&self) -> Result<()> {
        if zfs_mounts().get(&self.dataset) == Some(&self.mountpoint) {
            return Ok(());
        }
        let out = match self.runner.run_string(&argv![
            "zfs",
            "list",
            "-H",
            "-p",
            "-o",
            "mountpoint,mounted",
            &self.dataset
        ]) {
            Ok(out) => out,
            Err(e) if e.stderr.contains("does not exist") => {
                return Err(BackendError::StoreUnavailable(format!(
                    "ZFS dataset {} does not exist (run `sidus init --backend zfs --dataset {}`)",
                    self.dataset, self.dataset
                )))
            }
            Err(e) => {
                return Err(
                    match Self::classify(format!("open store {}", self.dataset), e) {
                        BackendError::StoreUnavailable(m) => BackendError::StoreUnavailable(m),
                        other => BackendError::StoreUnavailable(other.to_string()),
                    },
                )
            }
        };
        let f = fields(out.trim_end(), 2).ok_or_else(|| unexpected(&out))?;
        if Path::new(f[0]) != self.mountpoint {
            return Err(BackendError::StoreUnavailable(format!(
                "ZFS dataset {} is mounted at {}, but the config says {}",
                self.dataset,
                f[0],
                self.mountpoint.display()
            )));
        }
        if f[1] != "yes" {
            // After an import without automount: mount the store and every
            // dataset below it that should be.
            let out = self.zfs(
                format!("list datasets of {}", self.dataset),
                argv![
                    "list",
                    "-H",
                    "-o",
                    "name,canmount,mounted",
                    "-t",
                    "filesystem",
                    "-r",
                    &self.dataset
                ],
            )?;
            for line in out.lines() {
                if let Some([name, "on", "no"]) = fields(line, 3).as_deref() {
                    self.zfs(format!("mount {name}"), argv!["mount", *name])?;
                }
            }
        }
        Ok(())
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

    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let name = self.working_ds(tree);
        if self.exists(&name)? {
            return Err(BackendError::TreeExists(tree.clone()));
        }
        self.zfs(
            format!("create tree '{tree}'"),
            argv!["create", "-o", Self::prop("tree", tree.as_str()), &name],
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

    fn tree_path(&self, tree: &TreeName) -> Result<PathBuf> {
        match zfs_mounts().remove(&self.working_ds(tree)) {
            Some(mp) => Ok(mp),
            None => Ok(self.require_tree(tree)?.mountpoint),
        }
    }

    fn snapshot_ids(&self, tree: &TreeName) -> Result<Vec<SnapshotId>> {
        let Some(datasets) = self.mounted_tree(tree) else {
            return Ok(self
                .list_snapshots(Some(tree))?
                .into_iter()
                .map(|s| s.id)
                .collect());
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
        Ok(ids)
    }

    fn snapshot(&self, snap: &Snapshot) -> Result<()> {
        let working = self.working_ds(&snap.tree);
        let mut args = argv!["snapshot", "-o", Self::prop("tree", snap.tree.as_str())];
        for (key, value) in snap.properties() {
            args.push("-o".into());
            args.push(Self::prop(key, &value));
        }
        args.push(format!("{working}@{}", snap.id).into());
        match self.zfs(format!("snapshot tree '{}'", snap.tree), args) {
            Ok(_) => Ok(()),
            Err(BackendError::Command { source, .. })
                if source.stderr.contains("dataset does not exist") =>
            {
                Err(BackendError::TreeNotFound(snap.tree.clone()))
            }
            Err(BackendError::Command { action, source })
                if source.stderr.contains("dataset already exists") =>
            {
                Err(BackendError::InUse {
                    what: format!("snapshot ID {}", snap.id),
                    by: format!("an existing snapshot ({action}: {})", source.reason()),
                })
            }
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
        if let Some((dataset, _)) = found.name.split_once('@') {
            self.collect_history(dataset);
        }
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
        let made = self.zfs(
            format!("clone {tree}@{id} to '{new}'"),
            argv![
                "clone",
                "-o",
                Self::prop("tree", new.as_str()),
                "-o",
                Self::prop("origin", &format!("{tree}@{id}")),
                &found.name,
                &target
            ],
        );
        match made {
            Err(BackendError::Command { source, .. })
                if source.stderr.contains("dataset already exists") =>
            {
                Err(BackendError::TreeExists(new.clone()))
            }
            Err(e) => Err(e),
            Ok(_) => self.tree_path(new),
        }
    }

    fn replace_working(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        self.clear_swap(tree)?;
        let working = self.require_tree(tree)?;
        let found = self.locate(tree, id)?;
        let swap = self.swap_ds(tree);
        let mut args = argv!["clone", "-o", Self::prop("tree", tree.as_str())];
        if let Some(origin) = &working.origin {
            // A clone of another tree stays one after its rollback.
            args.extend(argv!["-o", Self::prop("origin", origin)]);
        }
        args.extend(argv![&found.name, &swap]);
        self.zfs(format!("copy {tree}@{id} for rollback"), args)?;
        let history = self.history_name(tree)?;
        if let Err(e) = self.zfs(
            format!("move the replaced working tree of '{tree}' aside"),
            argv!["rename", &working.name, &history],
        ) {
            let _ = self.runner.run(&argv!["zfs", "destroy", &swap]);
            return Err(e);
        }
        // From here a crash leaves no working dataset but a swap one, which
        // clear_swap renames into place.
        self.zfs(
            format!("swap in the rollback copy of '{tree}'"),
            argv!["rename", &swap, &working.name],
        )?;
        self.promote(&working.name);
        Ok(())
    }

    fn replication(&self) -> Option<&dyn crate::Replication> {
        Some(self)
    }

    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        Ok(None)
    }

    fn hold(&self, tree: &TreeName, id: &SnapshotId, tag: &str) -> Result<()> {
        let found = self.locate(tree, id)?;
        match self.runner.run(&argv!["zfs", "hold", tag, &found.name]) {
            Ok(_) => Ok(()),
            Err(e) if e.stderr.contains("tag already exists") => Ok(()),
            Err(e) => Err(Self::classify(format!("hold {tree}@{id}"), e)),
        }
    }

    fn release(&self, tree: &TreeName, id: &SnapshotId, tag: &str) -> Result<()> {
        let found = self.locate(tree, id)?;
        match self.runner.run(&argv!["zfs", "release", tag, &found.name]) {
            Ok(_) => Ok(()),
            Err(e) if e.stderr.contains("no such tag") => Ok(()),
            Err(e) => Err(Self::classify(format!("release {tree}@{id}"), e)),
        }
    }

    fn serve(&self, tree: &TreeName, id: &SnapshotId, target: &Path) -> Result<()> {
        // A mount of its own, not a bind of the .zfs automount, which ZFS
        // unmounts when it expires or when the dataset is renamed.
        let found = self.locate(tree, id)?;
        self.runner
            .run(&argv![
                "mount",
                "-t",
                "zfs",
                "-o",
                "ro",
                &found.name,
                target
            ])
            .map(drop)
            .map_err(|e| {
                BackendError::command(format!("serve {tree}@{id} at {}", target.display()), e)
            })
    }

    fn snapshot_space(&self, tree: &TreeName) -> Result<BTreeMap<SnapshotId, u64>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_datasets_name_their_tree() {
        let z = Zfs::new("tank/sidus".into(), "/m".into(), Runner::new());
        let owner = |ds: &str| z.history_owner(ds).map(str::to_string);
        assert_eq!(
            owner("tank/sidus/history/lab.20261125T101500Z").as_deref(),
            Some("lab")
        );
        assert_eq!(
            owner("tank/sidus/history/a.b.20261125T101500Z.3").as_deref(),
            Some("a.b")
        );
        assert_eq!(owner("tank/sidus/history/lab.2026"), None);
        assert_eq!(owner("tank/sidus/trees/lab.20261125T101500Z"), None);
        assert_eq!(owner("tank/other/history/lab.20261125T101500Z"), None);
    }
}
