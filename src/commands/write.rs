//! Commands that change the store; each is journaled.

use super::tree_views;
use crate::cli::{CloneArgs, CreateArgs, SnapshotArgs};
use crate::output::json as print_json;
use crate::store::Store;
use crate::trees;
use crate::trees::refs::TreeRef;
use anyhow::Result;
use sidus_backends::TreeName;

fn print_tree(store: &Store, tree: &TreeName) -> Result<()> {
    let views = tree_views(store, Some(tree))?;
    print_json(&views.first());
    Ok(())
}

pub fn create(store: &Store, json: bool, a: &CreateArgs) -> Result<()> {
    let path = store.journaled("create", Some(&a.tree), || {
        Ok((
            trees::create(store, &a.tree, a.from_dir.as_deref())?,
            vec![],
        ))
    })?;
    if json {
        print_tree(store, &a.tree)
    } else {
        println!("created tree '{}' at {}", a.tree, path.display());
        Ok(())
    }
}

pub fn snapshot(store: &Store, json: bool, a: &SnapshotArgs) -> Result<()> {
    let snap = store.journaled("snapshot", Some(&a.tree), || {
        let s = trees::snapshot(store, &a.tree, &a.message)?;
        let ids = vec![s.id.to_string()];
        Ok((s, ids))
    })?;
    if json {
        print_json(&snap);
    } else {
        println!("{}", snap.id);
    }
    Ok(())
}

pub fn delete(store: &Store, json: bool, target: &TreeRef) -> Result<()> {
    let snap = store.journaled("delete", Some(&target.tree), || {
        let s = trees::delete(store, target)?;
        let ids = vec![s.id.to_string()];
        Ok((s, ids))
    })?;
    if json {
        print_json(&snap);
    } else {
        println!("deleted {}@{}", snap.tree, snap.id);
    }
    Ok(())
}

pub fn destroy(store: &Store, json: bool, tree: &TreeName) -> Result<()> {
    store.journaled("destroy", Some(tree), || {
        Ok((trees::destroy(store, tree)?, vec![]))
    })?;
    if json {
        print_json(&serde_json::json!({ "destroyed": tree }));
    } else {
        println!("destroyed tree '{tree}'");
    }
    Ok(())
}

pub fn clone(store: &Store, json: bool, a: &CloneArgs) -> Result<()> {
    let (path, origin) = store.journaled("clone", Some(&a.new), || {
        let (path, origin) = trees::clone(store, &a.source, &a.new)?;
        let ids = vec![format!("{}@{origin}", a.source.tree)];
        Ok(((path, origin), ids))
    })?;
    if json {
        print_tree(store, &a.new)
    } else {
        println!(
            "cloned {}@{} to '{}' at {}",
            a.source.tree,
            origin,
            a.new,
            path.display()
        );
        Ok(())
    }
}

pub fn rollback(store: &Store, json: bool, target: &TreeRef) -> Result<()> {
    let (safety, to) = store.journaled("rollback", Some(&target.tree), || {
        let (safety, to) = trees::rollback(store, target)?;
        let ids = vec![to.to_string(), safety.id.to_string()];
        Ok(((safety, to), ids))
    })?;
    let tree = &target.tree;
    if json {
        // The whole record only when asked for: listing it costs a query on ZFS.
        let to = store
            .backend
            .list_snapshots(Some(tree))?
            .into_iter()
            .find(|s| s.id == to);
        print_json(&serde_json::json!({ "tree": tree, "rolled_back_to": to, "safety": safety }));
    } else {
        println!(
            "rolled '{tree}' back to {to}; the previous state is snapshot {} (sidus rollback {tree}@{} undoes this)",
            safety.id, safety.id
        );
    }
    Ok(())
}
