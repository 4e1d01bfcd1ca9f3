//! `sidus diff`: the files or Debian packages that differ between two sides.

use crate::cli::DiffArgs;
use crate::history::diff::{self, Change, Entry};
use crate::history::packages::{self, PackageDiff};
use crate::output::{json as print_json, or_dash, table};
use crate::store::Store;
use crate::trees;
use crate::trees::refs::TreeRef;
use crate::UsageError;
use anyhow::{bail, Context, Result};
use sidus_backends::{DiffSide, SnapshotId};
use std::path::PathBuf;

/// A side of a diff: its name as shown, where its content is, and the
/// snapshot it is (`None`: the working tree).
fn side(store: &Store, r: &TreeRef) -> Result<(String, PathBuf, Option<SnapshotId>)> {
    match &r.reference {
        None => Ok((
            format!("{} (working tree)", r.tree),
            trees::path(store, r)?,
            None,
        )),
        Some(_) => {
            let snap = trees::resolve_ref(store, r)?;
            let path = store.backend.snapshot_path(&snap.tree, &snap.id)?;
            Ok((format!("{}@{}", snap.tree, snap.id), path, Some(snap.id)))
        }
    }
}

/// The backend's name for a side.
fn diff_side<'a>(r: &'a TreeRef, id: &'a Option<SnapshotId>) -> DiffSide<'a> {
    match id {
        Some(id) => DiffSide::Snapshot(&r.tree, id),
        None => DiffSide::Working(&r.tree),
    }
}

pub fn diff(store: &Store, json: bool, a: &DiffArgs) -> Result<()> {
    if a.from.reference.is_none() {
        bail!(UsageError(format!(
            "'{}' names no snapshot: use {0}@ID, {0}@LABEL or {0}@latest",
            a.from.tree
        )));
    }
    let to = a.to.clone().unwrap_or_else(|| TreeRef {
        tree: a.from.tree.clone(),
        reference: None,
    });
    let (from_name, from_path, from_id) = side(store, &a.from)?;
    let (to_name, to_path, to_id) = side(store, &to)?;
    if a.packages {
        let old = packages::read_status_in(&from_path)
            .with_context(|| format!("read the package status of {from_name}"))?;
        let new = packages::read_status_in(&to_path)
            .with_context(|| format!("read the package status of {to_name}"))?;
        let (old, new) = match (old, new) {
            (None, None) => bail!(
                "neither {from_name} nor {to_name} has a dpkg status (var/lib/dpkg/status): not Debian trees"
            ),
            (o, n) => {
                for (name, s) in [(&from_name, &o), (&to_name, &n)] {
                    if s.is_none() {
                        eprintln!("sidus: note: {name} has no var/lib/dpkg/status; counted as no packages");
                    }
                }
                (o.unwrap_or_default(), n.unwrap_or_default())
            }
        };
        let d = packages::diff(&packages::parse_status(&old), &packages::parse_status(&new));
        if json {
            print_json(&PackagesReport {
                from: &from_name,
                to: &to_name,
                packages: &d,
            });
        } else if d.is_empty() {
            println!("no package differs between {from_name} and {to_name}");
        } else {
            print_packages(&d);
            println!(
                "{from_name} -> {to_name}: {} installed, {} removed, {} upgraded, {} downgraded",
                d.installed.len(),
                d.removed.len(),
                d.upgraded.len(),
                d.downgraded.len()
            );
        }
        return Ok(());
    }
    let entries = diff::diff_sides(
        store,
        (diff_side(&a.from, &from_id), &from_path),
        (diff_side(&to, &to_id), &to_path),
    )
    .with_context(|| format!("compare {from_name} with {to_name}"))?;
    if json {
        print_json(&FilesReport {
            from: &from_name,
            to: &to_name,
            files: &entries,
        });
    } else if entries.is_empty() {
        println!("no file differs between {from_name} and {to_name}");
    } else {
        print_files(&entries);
        let count = |c: Change| entries.iter().filter(|e| e.change == c).count();
        println!(
            "{from_name} -> {to_name}: {} added, {} removed, {} modified",
            count(Change::Added),
            count(Change::Removed),
            count(Change::Modified)
        );
    }
    Ok(())
}

/// `diff --json`: the two sides and what differs, in this order.
#[derive(serde::Serialize)]
struct FilesReport<'a> {
    from: &'a str,
    to: &'a str,
    files: &'a [Entry],
}

/// `diff --packages --json`.
#[derive(serde::Serialize)]
struct PackagesReport<'a> {
    from: &'a str,
    to: &'a str,
    packages: &'a PackageDiff,
}

fn print_packages(d: &PackageDiff) {
    let mut archs: std::collections::HashMap<&str, std::collections::HashSet<&str>> =
        Default::default();
    for p in d.installed.iter().chain(&d.removed) {
        archs.entry(&p.name).or_default().insert(&p.arch);
    }
    for c in d.upgraded.iter().chain(&d.downgraded) {
        archs.entry(&c.name).or_default().insert(&c.arch);
    }
    let name = |n: &str, a: &str| {
        if archs.get(n).is_some_and(|s| s.len() > 1) {
            format!("{n}:{a}")
        } else {
            n.to_string()
        }
    };
    let mut rows = Vec::new();
    for p in &d.installed {
        rows.push(vec![
            "installed".into(),
            name(&p.name, &p.arch),
            "-".into(),
            p.version.clone(),
        ]);
    }
    for p in &d.removed {
        rows.push(vec![
            "removed".into(),
            name(&p.name, &p.arch),
            p.version.clone(),
            "-".into(),
        ]);
    }
    for (what, list) in [("upgraded", &d.upgraded), ("downgraded", &d.downgraded)] {
        for c in list {
            rows.push(vec![
                what.into(),
                name(&c.name, &c.arch),
                c.old.clone(),
                c.new.clone(),
            ]);
        }
    }
    table(&["CHANGE", "PACKAGE", "OLD", "NEW"], rows);
}

fn print_files(entries: &[Entry]) {
    let rows = entries
        .iter()
        .map(|e| {
            let (sign, attrs) = match e.change {
                Change::Added => ("+", e.new.as_ref()),
                Change::Removed => ("-", e.old.as_ref()),
                Change::Modified => ("M", e.new.as_ref()),
            };
            let kind = attrs.map(|a| a.kind.as_str()).unwrap_or("?");
            vec![sign.into(), kind.into(), e.path.clone(), detail(e)]
        })
        .collect();
    table(&["CHANGE", "TYPE", "PATH", "DETAIL"], rows);
}

/// What changed in a modified entry, old -> new.
fn detail(e: &Entry) -> String {
    use crate::history::diff::Aspect;
    let (Some(o), Some(n)) = (&e.old, &e.new) else {
        return String::new();
    };
    e.what
        .iter()
        .map(|w| match w {
            Aspect::Type => format!("type {} -> {}", o.kind.as_str(), n.kind.as_str()),
            Aspect::Mode => format!("mode {} -> {}", o.mode, n.mode),
            Aspect::Owner => format!("owner {}:{} -> {}:{}", o.uid, o.gid, n.uid, n.gid),
            Aspect::Size => format!("size {} -> {}", or_dash(o.size), or_dash(n.size)),
            Aspect::Content => "content".into(),
            Aspect::Target => format!(
                "target {} -> {}",
                or_dash(o.target.as_ref()),
                or_dash(n.target.as_ref())
            ),
            Aspect::Device => format!(
                "device {} -> {}",
                or_dash(o.device.as_ref()),
                or_dash(n.device.as_ref())
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
