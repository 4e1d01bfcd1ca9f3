//! An in-memory backend for unit tests of orchestration (what sidus refuses,
//! which snapshots a rollback takes). It proves nothing about real storage:
//! the btrfs tests and the VM scenarios do that.

use crate::{
    Backend, BackendError, Capabilities, Origin, PoolUsage, Result, Snapshot, SnapshotId, TreeName,
    TreeRecord,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default)]
struct FakeTree {
    content: String,
    origin: Option<Origin>,
    snapshots: BTreeMap<SnapshotId, (Snapshot, String)>,
}

/// Trees whose "content" is one string, so tests can see what a rollback did.
#[derive(Debug)]
pub struct Fake {
    state_dir: PathBuf,
    trees: RefCell<BTreeMap<TreeName, FakeTree>>,
    /// Pool use reported to callers; `None` for a backend without a pool.
    pub usage: RefCell<Option<PoolUsage>>,
}

impl Fake {
    /// An empty store keeping sidus state in `state_dir`.
    pub fn new(state_dir: PathBuf) -> Fake {
        Fake {
            state_dir,
            trees: RefCell::default(),
            usage: RefCell::new(None),
        }
    }

    /// The working content of `tree`.
    pub fn content(&self, tree: &TreeName) -> String {
        self.trees.borrow()[tree].content.clone()
    }

    /// Replaces the working content of `tree`.
    pub fn write(&self, tree: &TreeName, content: &str) {
        self.trees
            .borrow_mut()
            .get_mut(tree)
            .expect("tree exists")
            .content = content.into();
    }

    fn with_tree<T>(
        &self,
        tree: &TreeName,
        f: impl FnOnce(&mut FakeTree) -> Result<T>,
    ) -> Result<T> {
        let mut trees = self.trees.borrow_mut();
        let t = trees
            .get_mut(tree)
            .ok_or_else(|| BackendError::tree_not_found(tree))?;
        f(t)
    }

    fn snapshot_content(&self, tree: &TreeName, id: &SnapshotId) -> Result<String> {
        self.with_tree(tree, |t| {
            t.snapshots
                .get(id)
                .map(|(_, c)| c.clone())
                .ok_or_else(|| BackendError::snapshot_not_found(tree, id))
        })
    }
}

impl Backend for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            pool_usage: self.usage.borrow().is_some(),
            ..Capabilities::default()
        }
    }
    fn init_store(&self, _opts: &crate::InitOptions) -> Result<()> {
        Ok(())
    }
    fn open(&self) -> Result<()> {
        Ok(())
    }
    fn state_dir(&self) -> PathBuf {
        self.state_dir.clone()
    }
    fn list_trees(&self) -> Result<Vec<TreeRecord>> {
        Ok(self
            .trees
            .borrow()
            .iter()
            .map(|(n, t)| TreeRecord {
                name: n.clone(),
                path: PathBuf::from("/fake").join(n.as_str()),
                origin: t.origin.clone(),
                damaged: None,
            })
            .collect())
    }
    fn list_snapshots(&self, tree: Option<&TreeName>) -> Result<Vec<Snapshot>> {
        let trees = self.trees.borrow();
        if let Some(t) = tree {
            if !trees.contains_key(t) {
                return Err(BackendError::tree_not_found(t));
            }
        }
        Ok(trees
            .iter()
            .filter(|(n, _)| tree.is_none_or(|t| t == *n))
            .flat_map(|(_, t)| t.snapshots.values().map(|(s, _)| s.clone()))
            .collect())
    }
    fn create_tree(&self, tree: &TreeName) -> Result<PathBuf> {
        let mut trees = self.trees.borrow_mut();
        if trees.contains_key(tree) {
            return Err(BackendError::tree_exists(tree));
        }
        trees.insert(tree.clone(), FakeTree::default());
        Ok(PathBuf::from("/fake").join(tree.as_str()))
    }
    fn destroy_tree(&self, tree: &TreeName) -> Result<()> {
        self.trees
            .borrow_mut()
            .remove(tree)
            .map(drop)
            .ok_or_else(|| BackendError::tree_not_found(tree))
    }
    fn tree_path(&self, tree: &TreeName) -> Result<PathBuf> {
        self.with_tree(tree, |_| Ok(PathBuf::from("/fake").join(tree.as_str())))
    }
    fn snapshot(&self, snap: &Snapshot) -> Result<()> {
        self.with_tree(&snap.tree, |t| {
            t.snapshots
                .insert(snap.id.clone(), (snap.clone(), t.content.clone()));
            Ok(())
        })
    }
    fn delete_snapshot(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        self.with_tree(tree, |t| {
            t.snapshots
                .remove(id)
                .map(drop)
                .ok_or_else(|| BackendError::snapshot_not_found(tree, id))
        })
    }
    fn snapshot_path(&self, tree: &TreeName, id: &SnapshotId) -> Result<PathBuf> {
        self.snapshot_content(tree, id)?;
        Ok(PathBuf::from("/fake").join(tree.as_str()).join(id.as_str()))
    }
    fn clone_tree(&self, tree: &TreeName, id: &SnapshotId, new: &TreeName) -> Result<PathBuf> {
        let content = self.snapshot_content(tree, id)?;
        let path = self.create_tree(new)?;
        self.with_tree(new, |t| {
            t.content = content;
            t.origin = Some(Origin {
                tree: tree.clone(),
                id: id.clone(),
            });
            Ok(path)
        })
    }
    fn replace_working(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let content = self.snapshot_content(tree, id)?;
        self.write(tree, &content);
        Ok(())
    }
    fn pool_usage(&self) -> Result<Option<PoolUsage>> {
        Ok(self.usage.borrow().clone())
    }
}
