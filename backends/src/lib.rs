//! Storage backends of sidus: one small [`Backend`] trait with btrfs, ZFS and LVM-thin
//! implementations, plus an in-memory fake for orchestration tests.
//!
//! Backends are mechanism: they know how to create, snapshot, clone and swap a tree
//! on their storage. When to do it, and what is protected, is decided in the `sidus`
//! crate. Nothing here knows the CLI, the journal or publishing.

pub mod btrfs;
mod changes;
pub mod durable;
pub mod failpoint;
pub mod fake;
mod fsutil;
mod leftover;
pub mod lvm;
mod mount;
mod names;
pub mod ordered;
pub mod replicate;
pub mod runner;
mod snapshot;
pub mod zfs;

pub use changes::{ChangedPath, DiffSide, PathChange, SnapshotChanges, Touch};
pub use fsutil::unescape_mountinfo;
pub use leftover::Leftover;
pub use names::{Label, NameError, SnapshotId, TreeName};
pub use replicate::Replication;
pub use runner::{CommandError, Runner};
pub use snapshot::{Origin, Snapshot, SnapshotKind, TreeRecord};

use std::path::{Path, PathBuf};

/// The object a [`BackendError::NotFound`] or [`BackendError::Exists`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A tree.
    Tree(TreeName),
    /// A snapshot of a tree.
    Snapshot(TreeName, SnapshotId),
    /// Something of the storage that sidus has no name of its own for (a
    /// dataset, an LV, a hold), in the words of the action and of the tool.
    Storage {
        /// What was being done.
        action: String,
        /// The storage tool's own words.
        detail: String,
    },
}

impl Object {
    fn not_found(&self) -> String {
        match self {
            Object::Tree(t) => format!("no tree named '{t}'"),
            Object::Snapshot(t, id) => format!("no snapshot {id} in tree '{t}'"),
            Object::Storage { action, detail } => format!("{action}: {detail}"),
        }
    }

    fn exists(&self) -> String {
        match self {
            Object::Tree(t) => format!("tree '{t}' already exists"),
            Object::Snapshot(t, id) => format!("snapshot {t}@{id} already exists"),
            Object::Storage { action, detail } => format!("{action}: {detail}"),
        }
    }
}

/// What went wrong in a backend, naming the object and the action. Each
/// backend turns its tools' failures into these in one place (`errors.rs` of
/// its folder); callers match on the variants, never on message text.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The store itself is missing, not mounted, or of another kind.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The object does not exist.
    #[error("{}", .0.not_found())]
    NotFound(Object),
    /// The object already exists.
    #[error("{}", .0.exists())]
    Exists(Object),
    /// The object is busy for now (a process uses a mount, the kernel still
    /// holds it): trying again later may succeed.
    #[error("{what} is busy: {detail}")]
    Busy {
        /// The object, as a sysadmin knows it.
        what: String,
        /// Why, with what to do about it.
        detail: String,
    },
    /// The pool or file system has no room left for the operation.
    #[error("{action}: the pool is full: {detail}")]
    NoSpace {
        /// What was being done.
        action: String,
        /// The storage tool's own words.
        detail: String,
    },
    /// Something else depends on the object (a clone, a hold, a mount):
    /// it stays until that is removed.
    #[error("{what} is in use: {by}")]
    InUse {
        /// The object that cannot be removed.
        what: String,
        /// Who holds it.
        by: String,
    },
    /// The backend cannot do this (at all, or as the storage is set up).
    #[error("{what}: {why}")]
    Unsupported {
        /// What was asked.
        what: String,
        /// Why it cannot be done here, with what would make it possible.
        why: String,
    },
    /// An external command failed.
    #[error("{action}: {source}")]
    Command {
        /// What was being done, e.g. "snapshot tree 'lab'".
        action: String,
        /// The failed command with its stderr.
        source: CommandError,
    },
    /// A file-system call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A storage tool printed something we cannot parse.
    #[error("unexpected output from {tool}: {detail}")]
    UnexpectedOutput {
        /// The tool (zfs, lvs, ...).
        tool: String,
        /// What did not fit.
        detail: String,
    },
}

/// Result type of every backend operation.
pub type Result<T> = std::result::Result<T, BackendError>;

impl BackendError {
    /// Wraps an I/O error with the action and path.
    pub fn io(action: &str, path: impl Into<PathBuf>, source: std::io::Error) -> BackendError {
        BackendError::Io {
            action: action.to_string(),
            path: path.into(),
            source,
        }
    }

    /// Wraps a command failure with the action it was part of.
    pub fn command(action: impl Into<String>, source: CommandError) -> BackendError {
        BackendError::Command {
            action: action.into(),
            source,
        }
    }

    /// "no tree named 'X'".
    pub fn tree_not_found(tree: &TreeName) -> BackendError {
        BackendError::NotFound(Object::Tree(tree.clone()))
    }

    /// "no snapshot ID in tree 'X'".
    pub fn snapshot_not_found(tree: &TreeName, id: &SnapshotId) -> BackendError {
        BackendError::NotFound(Object::Snapshot(tree.clone(), id.clone()))
    }

    /// "tree 'X' already exists".
    pub fn tree_exists(tree: &TreeName) -> BackendError {
        BackendError::Exists(Object::Tree(tree.clone()))
    }

    /// An operation this backend does not have.
    pub fn unsupported(what: impl Into<String>, why: impl Into<String>) -> BackendError {
        BackendError::Unsupported {
            what: what.into(),
            why: why.into(),
        }
    }
}

/// What `sidus init` asks of a new store beyond its config.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Size of a storage image the backend creates itself when it is missing
    /// (btrfs: its loop file), as `truncate -s` takes it.
    pub image_size: Option<String>,
}

/// What a backend can do beyond the common operations; callers branch on these,
/// never on the backend's name.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Capabilities {
    /// It can report the space each snapshot holds exclusively (btrfs: only
    /// when quotas are enabled); snapshots missing from
    /// [`Backend::snapshot_space`] are of unknown size.
    pub snapshot_space: bool,
    /// It can put a hold on a snapshot that storage itself enforces (zfs
    /// hold): pins call [`Backend::hold`] and [`Backend::release`] only then.
    pub holds: bool,
    /// Storage tracks what changed between two states of a tree (zfs diff):
    /// [`Backend::changed_paths`] lists it without reading the trees.
    pub native_diff: bool,
    /// It has a shared pool that can overfill (LVM thin): callers check its use.
    pub pool_usage: bool,
    /// Its storage steps (snapshot, clone, delete, rollback) become durable
    /// only together with, or after, every metadata change made before them
    /// to the file system of [`Backend::state_dir`] (btrfs: that file system
    /// is the store's, and a step is one transaction, a snapshot commits it;
    /// ZFS: the state is in the store's pool, and a step is a sync task of
    /// one txg). A state record written by [`ordered::write_ordered`] just
    /// before such a step then needs no fsync of its own.
    pub orders_state: bool,
    /// Storage computes what changed between two snapshots of a tree
    /// (btrfs send): [`Backend::snapshot_changes`] tells it without reading
    /// the trees.
    pub snapshot_changes: bool,
}

/// How full a shared pool is, in percent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolUsage {
    /// The pool's name as the storage tool knows it.
    pub name: String,
    /// Data use, 0-100.
    pub data_percent: f64,
    /// Metadata use, 0-100, where there is such a thing.
    pub metadata_percent: Option<f64>,
}

/// The operations every storage backend has. Paths returned are mounted and
/// usable when the call returns.
pub trait Backend {
    /// The backend's name as written in the config: `btrfs`, `zfs` or `lvm`.
    fn kind(&self) -> &'static str;
    /// What this backend can do beyond the common operations.
    fn capabilities(&self) -> Capabilities;
    /// Drops what the backend remembers of the storage from earlier calls in
    /// this process; called once a tree's lock is held, when another sidus may
    /// have changed the store while this one waited.
    fn forget_cached(&self) {}
    /// Finishes or removes what an interrupted step of this backend left for
    /// `tree` (a rollback's scratch copy, a swap cut between two renames, a
    /// record that outlived its tree). Called only by a writer holding the
    /// tree's lock, never on a read path. Returns what it did, for the journal.
    fn recover(&self, _tree: &TreeName) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// What interrupted steps left in storage, for every tree (see
    /// [`Leftover`]); reads only, changes nothing, takes no lock.
    fn leftovers(&self) -> Result<Vec<Leftover>> {
        Ok(Vec::new())
    }
    /// Creates the store's structure; succeeds if it is already there. What
    /// it created itself (a loop image) is removed again when it fails.
    fn init_store(&self, opts: &InitOptions) -> Result<()>;
    /// Checks the store is present, mounted and of the right kind, mounting what
    /// the backend owns (a loop file, thin LVs) when it is not.
    fn open(&self) -> Result<()>;
    /// A directory the `sidus` crate may keep its journal and locks in.
    fn state_dir(&self) -> PathBuf;
    /// Every tree in the store.
    fn list_trees(&self) -> Result<Vec<TreeRecord>>;
    /// Snapshots of one tree, or of every tree when `tree` is `None`, in one
    /// storage query, oldest first per tree.
    fn list_snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>>;
    /// IDs of one tree's snapshots, without their metadata; backends override it
    /// where that is cheaper than [`Backend::list_snapshots`].
    fn snapshot_ids(&self, tree: &TreeName) -> Result<Vec<SnapshotId>> {
        Ok(self
            .list_snapshots(Some(tree))?
            .into_iter()
            .map(|s| s.id)
            .collect())
    }
    /// Whether `tree` exists; backends override it where that is cheaper
    /// than [`Backend::list_trees`].
    fn tree_exists(&self, tree: &TreeName) -> Result<bool> {
        Ok(self.list_trees()?.iter().any(|t| &t.name == tree))
    }
    /// Creates an empty, mounted working tree.
    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf>;
    /// Removes a working tree and all of its snapshots; also finishes a
    /// destroy a crash interrupted (whatever is left of the tree goes).
    fn destroy_tree(&self, tree: &TreeName) -> Result<()>;
    /// The mounted working tree.
    fn tree_path(&self, tree: &TreeName) -> Result<PathBuf>;
    /// Takes a read-only snapshot of the working tree with this metadata.
    fn snapshot(&self, snap: &Snapshot) -> Result<()>;
    /// Deletes one snapshot.
    fn delete_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<()>;
    /// Deletes several snapshots of one tree (a prune); backends override it
    /// where one storage command can remove many. When it fails, some may be
    /// gone already: the caller lists the snapshots again to know which.
    fn delete_snapshots(&self, tree: &TreeName, ids: &[SnapshotId]) -> Result<()> {
        for id in ids {
            self.delete_snapshot(tree, id)?;
        }
        Ok(())
    }
    /// A read-only view of a snapshot's content, mounted if needed.
    fn snapshot_path(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf>;
    /// Creates `new` as a writable copy of `tree@id`, in time independent of size,
    /// and records `tree@id` as its origin.
    fn clone_tree(&self, tree: &TreeName, id: &SnapshotId, new: &TreeName) -> Result<PathBuf>;
    /// Replaces the working tree with a writable copy of `tree@id`. Snapshots are
    /// untouched: the caller has already saved the current state as a snapshot.
    fn replace_working(&self, tree: &TreeName, id: &SnapshotId) -> Result<()>;
    /// The shared pool's use, for backends with [`Capabilities::pool_usage`].
    fn pool_usage(&self) -> Result<Option<PoolUsage>>;
    /// Puts a storage-enforced hold named `tag` on a snapshot; only for
    /// backends with [`Capabilities::holds`] (the others refuse: sidus
    /// enforces pins itself). Holding a snapshot twice succeeds.
    fn hold(&self, _tree: &TreeName, _id: &SnapshotId, _tag: &str) -> Result<()> {
        Err(BackendError::unsupported(
            "put a storage hold on a snapshot",
            format!("the {} backend has no holds", self.kind()),
        ))
    }
    /// Releases a hold made by [`Backend::hold`]; releasing a missing hold succeeds.
    fn release(&self, _tree: &TreeName, _id: &SnapshotId, _tag: &str) -> Result<()> {
        Err(BackendError::unsupported(
            "release a storage hold on a snapshot",
            format!("the {} backend has no holds", self.kind()),
        ))
    }
    /// The paths storage says may differ from `from` to `to` (both of one
    /// tree's history, or a clone's and its origin's), for backends with
    /// [`Capabilities::native_diff`]. [`BackendError::Unsupported`] when
    /// storage cannot tell for this pair: the caller then compares the trees.
    fn changed_paths(&self, _from: DiffSide<'_>, _to: DiffSide<'_>) -> Result<Vec<ChangedPath>> {
        Err(BackendError::unsupported(
            "list changed paths",
            format!("the {} backend does not track changes", self.kind()),
        ))
    }
    /// What changed from snapshot `from` of `tree` to its snapshot `to`, as
    /// storage computes it, for backends with
    /// [`Capabilities::snapshot_changes`]; an error when storage cannot tell
    /// for this pair (the caller then reads the snapshot).
    fn snapshot_changes(
        &self,
        _tree: &TreeName,
        _from: &SnapshotId,
        _to: &SnapshotId,
    ) -> Result<SnapshotChanges> {
        Err(BackendError::unsupported(
            "list what changed between two snapshots",
            format!("the {} backend cannot tell", self.kind()),
        ))
    }
    /// Mounts a read-only view of `tree@id` at `target` (an existing empty
    /// directory) for serving over NFS; it stays mounted until [`Backend::unserve`].
    /// The default is a read-only bind mount of [`Backend::snapshot_path`].
    fn serve(&self, tree: &TreeName, id: &SnapshotId, target: &Path) -> Result<()> {
        let source = self.snapshot_path(tree, id)?;
        mount::run(
            &Runner::new(),
            argv!["mount", "--bind", "-o", "ro", &source, target],
            &format!("serve {tree}@{id} at {}", target.display()),
        )
    }
    /// Undoes [`Backend::serve`]; [`BackendError::Busy`] while something
    /// (nfsd, a process) still uses the mount.
    fn unserve(&self, tree: &TreeName, id: &SnapshotId, target: &Path) -> Result<()> {
        mount::unmount(target, &format!("snapshot {tree}@{id}"))
    }
    /// Its native snapshot streams, for replication to another store of the
    /// same kind; `None` where it has none (the archive stream is used then).
    fn replication(&self) -> Option<&dyn Replication> {
        None
    }
    /// Bytes each snapshot of `tree` holds exclusively, for backends with
    /// [`Capabilities::snapshot_space`]; a snapshot left out is of unknown size
    /// (every one, for the other backends).
    fn snapshot_space(
        &self,
        _tree: &TreeName,
    ) -> Result<std::collections::BTreeMap<SnapshotId, u64>> {
        Ok(Default::default())
    }
}
