//! Publishing: every exported ID is in storage, mounted read-only at
//! `<root>/TREE/ID`, in the exports file with its fsid (and in nfsd's table
//! when sidus applies exports); the current ID is what the tree's boot
//! entries name, with its kernel copy; no boot entry names an ID that is not
//! served; nothing is mounted, exported or copied for an ID that is not
//! published. The caller holds the publish lock.

use super::repair::Action;
use super::scan::Scan;
use super::Problem;
use crate::publish::boot::{boot_dir, entry_paths};
use crate::publish::config::PublishConfig;
use crate::publish::exports::{self, export_options, serve_path, served_at};
use crate::publish::state::PublishState;
use crate::publish::steps::entry_names;
use crate::publish::system;
use anyhow::Result;
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const RESTORE: &str = "sidus restore";

/// Every publishing check.
pub fn check(scan: &Scan, out: &mut Vec<Problem>) -> Result<()> {
    let Some(state) = &scan.publish else {
        return Ok(());
    };
    let cfg = scan.store.config.publish();
    let text = std::fs::read_to_string(&cfg.exports_file).unwrap_or_default();
    let lines: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounted: BTreeSet<PathBuf> = system::mount_points(&mountinfo).into_iter().collect();
    let etab = (cfg.apply_exports && system::nfsd_running())
        .then(system::etab_paths)
        .flatten();
    let file = cfg.exports_file.display();
    let mut expected = BTreeSet::new();
    for (tree, ts) in state.trees.iter().filter(|(t, _)| scan.wants(t)) {
        for id in &ts.exported {
            let path = serve_path(&cfg.root, tree, id);
            let line = format!("{} {}", path.display(), export_options(&cfg, tree, id));
            let at = format!("{tree}@{id}");
            if !scan.has_snapshot(tree, id) {
                let fix = if ts.current.as_ref() == Some(id) {
                    format!("publish another snapshot (`sidus publish {tree}@REF`), then `sidus unpublish {at}`")
                } else {
                    format!("sidus unpublish {at}")
                };
                out.push(Problem::error(
                    "publish",
                    Some(tree),
                    format!("{at} is published but no longer in storage (removed outside sidus)"),
                    fix,
                ));
            } else if !mounted.contains(&path) {
                out.push(restore(
                    tree,
                    format!(
                        "{at} is published but not mounted at {} (after a reboot?)",
                        path.display()
                    ),
                ));
            } else if !system::is_read_only(&path).unwrap_or(false) {
                out.push(Problem::error(
                    "publish",
                    Some(tree),
                    format!(
                        "{at} is mounted writable at {}: nodes could change it",
                        path.display()
                    ),
                    format!("umount {}; {RESTORE}", path.display()),
                ));
            }
            if !lines.contains(line.as_str()) {
                out.push(restore(
                    tree,
                    format!(
                        "{at} is published but {file} does not export {} with fsid={}",
                        path.display(),
                        exports::fsid(tree, id)
                    ),
                ));
            } else if let Some(etab) = &etab {
                if !etab.iter().any(|p| Path::new(p) == path) {
                    out.push(restore(
                        tree,
                        format!("{at} is in {file} but nfsd does not export it"),
                    ));
                }
            }
            expected.insert(line);
        }
        if let Some(current) = &ts.current {
            check_current(&cfg, tree, current, out);
        }
    }
    for line in lines.iter().filter(|l| !expected.contains(**l)) {
        let path = line.split_whitespace().next().unwrap_or("");
        let tree = served_at(&cfg.root, Path::new(path)).map(|(t, _)| t);
        if tree.as_ref().is_some_and(|t| scan.wants(t)) || scan.only.is_none() {
            out.push(restore_opt(
                tree.as_ref(),
                format!("{file} has a line the publish state does not give: {line}"),
            ));
        }
    }
    stray_entries(scan, &cfg, state, out);
    stray_serves(scan, &cfg, state, &mounted, out);
    stray_kernels(scan, &cfg, state, out);
    Ok(())
}

fn restore(tree: &TreeName, what: String) -> Problem {
    restore_opt(Some(tree), what)
}

fn restore_opt(tree: Option<&TreeName>, what: String) -> Problem {
    Problem::error("publish", tree, what, RESTORE.into()).repaired_by(Action::Restore)
}

/// The boot entries and kernel copy of the current ID.
fn check_current(
    cfg: &PublishConfig,
    tree: &TreeName,
    current: &SnapshotId,
    out: &mut Vec<Problem>,
) {
    for p in entry_paths(&cfg.boot_root, tree) {
        let named = entry_names(&p);
        if named.as_ref() != Some(current) {
            let says = named.map_or("nothing (missing or unreadable)".to_string(), |n| {
                n.to_string()
            });
            out.push(restore(
                tree,
                format!(
                    "the boot entry {} names {says}, but the published ID of '{tree}' is {current}",
                    p.display()
                ),
            ));
        }
    }
    let dir = boot_dir(&cfg.boot_root, tree, current);
    if !(dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file()) {
        out.push(restore(
            tree,
            format!(
                "the kernel copy of {tree}@{current} ({}) is missing: nodes cannot boot it",
                dir.display()
            ),
        ));
    }
}

/// Boot entries of trees with no current ID in the state.
fn stray_entries(scan: &Scan, cfg: &PublishConfig, state: &PublishState, out: &mut Vec<Problem>) {
    let mut trees: BTreeSet<TreeName> = BTreeSet::new();
    for (dir, prefix, suffix) in [("sidus", "", ".ipxe"), ("pxelinux.cfg", "sidus-", "")] {
        // Files only: the fleet's directories (`pxelinux.cfg/sidus-groups/`)
        // hold group and node entries, not a tree's.
        for name in names(&cfg.boot_root.join(dir))
            .into_iter()
            .filter(|n| cfg.boot_root.join(dir).join(n).is_file())
        {
            if let Some(t) = name
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(suffix))
                .and_then(|n| n.parse().ok())
            {
                trees.insert(t);
            }
        }
    }
    for tree in trees.iter().filter(|t| scan.wants(t)) {
        let ts = state.trees.get(tree);
        if ts.is_some_and(|t| t.current.is_some()) {
            continue;
        }
        for p in entry_paths(&cfg.boot_root, tree)
            .iter()
            .filter(|p| p.exists())
        {
            let named = entry_names(p);
            let served = named
                .as_ref()
                .is_some_and(|id| ts.is_some_and(|t| t.exported.contains(id)));
            let at = named.map_or("no snapshot".to_string(), |id| format!("{tree}@{id}"));
            out.push(Problem::error(
                "publish",
                Some(tree),
                format!(
                    "the boot entry {} names {at}, but '{tree}' has no published ID: {}",
                    p.display(),
                    if served {
                        "it is served, but the state does not say nodes boot it"
                    } else {
                        "nodes booting it are sent to an export that does not exist"
                    }
                ),
                format!("sidus publish {tree}@REF (or remove {})", p.display()),
            ));
        }
    }
}

/// Mounts at `<root>/TREE/ID` for an ID that is not published.
fn stray_serves(
    scan: &Scan,
    cfg: &PublishConfig,
    state: &PublishState,
    mounted: &BTreeSet<PathBuf>,
    out: &mut Vec<Problem>,
) {
    for m in mounted {
        let Some((tree, id)) = served_at(&cfg.root, m) else {
            continue;
        };
        if scan.wants(&tree) && !state.is_exported(&tree, &id) {
            out.push(
                Problem::error(
                    "publish",
                    Some(&tree),
                    format!(
                        "{tree}@{id} is mounted at {} but not published",
                        m.display()
                    ),
                    format!("umount {}", m.display()),
                )
                .repaired_by(Action::Unserve(tree.clone(), id.clone(), m.clone())),
            );
        }
    }
    for tree in names(&cfg.root)
        .iter()
        .filter_map(|t| t.parse::<TreeName>().ok())
    {
        for id in names(&cfg.root.join(tree.as_str()))
            .iter()
            .filter_map(|i| i.parse::<SnapshotId>().ok())
        {
            let path = serve_path(&cfg.root, &tree, &id);
            if scan.wants(&tree) && !state.is_exported(&tree, &id) && !mounted.contains(&path) {
                out.push(
                    Problem::warning(
                        "publish",
                        Some(&tree),
                        format!(
                            "{} is the empty mount point of {tree}@{id}, which is not published",
                            path.display()
                        ),
                        format!("rmdir {}", path.display()),
                    )
                    .repaired_by(Action::RemoveEmptyDir(path)),
                );
            }
        }
    }
}

/// Kernel copies of IDs that are not published, and copies cut short.
fn stray_kernels(scan: &Scan, cfg: &PublishConfig, state: &PublishState, out: &mut Vec<Problem>) {
    let root = cfg.boot_root.join("sidus");
    for tree in names(&root)
        .iter()
        .filter_map(|t| t.parse::<TreeName>().ok())
    {
        if !scan.wants(&tree) || !root.join(tree.as_str()).is_dir() {
            continue;
        }
        for name in names(&root.join(tree.as_str())) {
            let path = root.join(tree.as_str()).join(&name);
            let what = match name.parse::<SnapshotId>() {
                Ok(id) if state.is_exported(&tree, &id) => continue,
                Ok(id) => format!(
                    "{} is the kernel copy of {tree}@{id}, which is not published",
                    path.display()
                ),
                Err(_) if name.starts_with('.') && name.ends_with(".partial") => {
                    format!("{} is a kernel copy cut short", path.display())
                }
                Err(_) => continue,
            };
            out.push(
                Problem::error(
                    "publish",
                    Some(&tree),
                    what,
                    format!("rm -r {}", path.display()),
                )
                .repaired_by(Action::RemoveTree(path)),
            );
        }
    }
}

/// The names in `dir`, sorted; none when it cannot be read.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A publish state rebuilt from what serves nodes: the IDs the exports file
/// exports, and as each tree's current ID the one its iPXE entry names.
/// The history `publish --rollback` walks is not recoverable.
pub fn rebuilt_state(cfg: &PublishConfig) -> PublishState {
    let text = std::fs::read_to_string(&cfg.exports_file).unwrap_or_default();
    rebuild(exports::exported_in(&cfg.root, &text), |tree| {
        entry_names(&entry_paths(&cfg.boot_root, tree)[0])
    })
}

fn rebuild(
    exported: Vec<(TreeName, SnapshotId)>,
    current: impl Fn(&TreeName) -> Option<SnapshotId>,
) -> PublishState {
    let mut state = PublishState::default();
    for (tree, id) in exported {
        let t = state.trees.entry(tree).or_default();
        if !t.exported.contains(&id) {
            t.exported.push(id);
        }
    }
    for (tree, t) in state.trees.iter_mut() {
        t.exported.sort();
        t.current = current(tree).filter(|c| t.exported.contains(c));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_rebuilt_from_exports_and_entries() {
        let t = |s: &str| s.parse::<TreeName>().unwrap();
        let i = |s: &str| s.parse::<SnapshotId>().unwrap();
        let (a, b) = (i("20261125T101500Z"), i("20261125T111500Z"));
        let s = rebuild(
            vec![
                (t("lab"), b.clone()),
                (t("lab"), a.clone()),
                (t("other"), a.clone()),
            ],
            |tree| (tree.as_str() == "lab").then(|| b.clone()),
        );
        assert_eq!(s.trees[&t("lab")].exported, [a.clone(), b.clone()]);
        assert_eq!(s.trees[&t("lab")].current, Some(b));
        assert_eq!(s.trees[&t("other")].current, None);
        assert!(s.trees[&t("lab")].previous.is_empty());
    }
}
