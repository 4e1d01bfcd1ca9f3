//! Commands that only read: list, snapshots, show, path, log.

use super::tree_views;
use crate::cli::LogArgs;
use crate::output::{escape, json as print_json, or_dash, table};
use crate::store::Store;
use crate::trees;
use crate::trees::refs::TreeRef;
use anyhow::Result;
use sidus_backends::{Snapshot, TreeName};

pub fn list(store: &Store, json: bool) -> Result<()> {
    let views = tree_views(store, None)?;
    for v in views.iter().filter(|v| v.damaged.is_some()) {
        eprintln!(
            "sidus: warning: tree '{}': its origin is unknown: {} (see `sidus doctor {0}`)",
            v.name,
            v.damaged.as_deref().unwrap_or_default()
        );
    }
    if json {
        print_json(&views);
        return Ok(());
    }
    let rows = views
        .into_iter()
        .map(|v| {
            let origin = match (&v.origin, &v.damaged) {
                (None, Some(_)) => "(damaged record)".to_string(),
                _ => or_dash(v.origin),
            };
            vec![
                v.name.to_string(),
                v.backend.to_string(),
                v.snapshots.to_string(),
                or_dash(v.latest),
                origin,
                v.path.display().to_string(),
            ]
        })
        .collect();
    table(
        &["TREE", "BACKEND", "SNAPSHOTS", "LATEST", "ORIGIN", "PATH"],
        rows,
    );
    Ok(())
}

pub fn snapshots(store: &Store, json: bool, tree: &TreeName) -> Result<()> {
    // One backend query: it says itself when the tree does not exist.
    let snaps = store
        .backend
        .list_snapshots(Some(tree))
        .map_err(trees::not_found_hint)?;
    if json {
        print_json(&snaps);
        return Ok(());
    }
    let rows = snaps
        .into_iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                s.kind.to_string(),
                or_dash(s.parent),
                s.user,
                s.message,
            ]
        })
        .collect();
    table(
        &["ID", "CREATED", "KIND", "PARENT", "USER", "MESSAGE"],
        rows,
    );
    Ok(())
}

pub fn show(store: &Store, json: bool, target: &TreeRef) -> Result<()> {
    let snap = trees::resolve_ref(store, target)?;
    if json {
        print_json(&snap);
    } else {
        print_snapshot(&snap);
    }
    Ok(())
}

fn print_snapshot(s: &Snapshot) {
    println!("tree:     {}", s.tree);
    println!("id:       {}", s.id);
    println!(
        "created:  {}",
        s.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    println!("kind:     {}", s.kind);
    println!("message:  {}", escape(&s.message));
    println!("parent:   {}", or_dash(s.parent.as_ref()));
    println!("user:     {}", escape(&s.user));
    println!("command:  {}", escape(&s.command));
    if let Some(pre) = &s.pre {
        println!("pre:      {pre}");
    }
    if let Some(status) = s.status {
        println!("status:   {status}");
    }
}

pub fn path(store: &Store, json: bool, target: &TreeRef) -> Result<()> {
    let path = trees::path(store, target)?;
    if json {
        print_json(&serde_json::json!({ "path": path }));
    } else {
        // A value for scripts, like pwd's: printed as it is.
        println!("{}", path.display());
    }
    Ok(())
}

/// The snapshots of a journal entry as a table cell: a prune of hundreds is
/// summed up (`--json` has them all).
fn snapshot_column(ids: &[String]) -> String {
    const SHOWN: usize = 3;
    if ids.len() <= SHOWN {
        return ids.join(" ");
    }
    format!("{} ... (+{} more)", ids[..2].join(" "), ids.len() - 2)
}

pub fn log(store: &Store, json: bool, args: &LogArgs) -> Result<()> {
    let read = store.journal.read(args.tree.as_ref().map(|t| t.as_str()))?;
    if read.damaged > 0 {
        eprintln!(
            "sidus: warning: skipped {} damaged line(s) in the journal {} (left by a crash mid-write)",
            read.damaged,
            store.journal.path().display()
        );
    }
    let mut entries = read.entries;
    entries.reverse();
    if let Some(n) = args.limit {
        entries.truncate(n);
    }
    if json {
        print_json(&entries);
        return Ok(());
    }
    if entries.is_empty() {
        if args.limit == Some(0) {
            // Asked for none: the journal may well have entries.
            return Ok(());
        }
        match &args.tree {
            Some(t) => println!("no journal entry concerns tree '{t}'"),
            None => println!("the journal is empty"),
        }
        return Ok(());
    }
    let rows = entries
        .into_iter()
        .map(|e| {
            vec![
                e.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.user,
                e.action,
                or_dash(e.tree),
                snapshot_column(&e.snapshots),
                e.outcome,
            ]
        })
        .collect();
    table(
        &["TIME", "USER", "ACTION", "TREE", "SNAPSHOTS", "OUTCOME"],
        rows,
    );
    Ok(())
}
