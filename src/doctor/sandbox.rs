//! What a run can leave in a tree when it is not in progress (NOTES-chroot
//! lesson 12): mounts under the tree, processes whose root is the tree, the
//! policy-rc.d and start-stop-daemon diversions, and files in `/run` and
//! `/tmp` that every node booting the tree would see.

use super::repair::Action;
use super::scan::Scan;
use super::{repair_cmd, Problem};
use crate::sandbox::mounts::{mounts_under, processes_rooted_in};
use crate::sandbox::paths::TreeRoot;
use crate::sandbox::wrappers;
use anyhow::Result;
use rustix::fs::{Dir, OFlags};
use sidus_backends::TreeName;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `tree`'s checks; the caller holds its lock, so no run is in progress.
pub fn check_tree(scan: &Scan, tree: &TreeName, out: &mut Vec<Problem>) -> Result<()> {
    let Some(record) = scan.record(tree) else {
        return Ok(());
    };
    let path = &record.path;
    // An unmounted working tree is an empty directory of the parent file
    // system: every process on it would look "rooted in the tree".
    if !own_file_system(path) {
        return Ok(());
    }
    let repair = repair_cmd(Some(tree));
    for m in stray_mounts(path)? {
        out.push(
            Problem::error(
                "mount",
                Some(tree),
                format!(
                    "{} is mounted inside tree '{tree}' and no run is in progress",
                    m.display()
                ),
                format!("umount {} (or {repair})", m.display()),
            )
            .repaired_by(Action::Unmount(tree.clone(), m)),
        );
    }
    let root = TreeRoot::open(path)?;
    let pids = processes_rooted_in(&root)?;
    if !pids.is_empty() {
        let named: Vec<String> = pids.iter().map(|p| format!("{p} ({})", comm(*p))).collect();
        out.push(
            Problem::error(
                "process",
                Some(tree),
                format!(
                    "processes {} have their root in tree '{tree}' and no run is in progress: they can write into what nodes boot",
                    named.join(", ")
                ),
                format!(
                    "kill {} (or {repair}: SIGTERM, then SIGKILL after 5 s)",
                    pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
                ),
            )
            .repaired_by(Action::Kill(tree.clone())),
        );
    }
    let left = wrappers::left_behind(&root)?;
    if !left.found.is_empty() {
        out.push(
            Problem::error(
                "diversion",
                Some(tree),
                format!(
                    "{} in tree '{tree}': the daemon wrappers of a run that did not finish (`sidus run` refuses the tree, and no package script there can start a daemon)",
                    left.found.join(", ")
                ),
                repair.clone(),
            )
            .repaired_by(Action::Unwrap(tree.clone(), left.plan)),
        );
    }
    for f in left.foreign {
        let dir = f.rsplit_once('/').map_or("", |(d, _)| d);
        out.push(Problem::error(
            "diversion",
            Some(tree),
            format!(
                "{f} in tree '{tree}' beside a start-stop-daemon that is not sidus's: a chroot session of another tool (debootstrap, mmdebstrap...) that crashed"
            ),
            format!(
                "look at both; if {dir}/start-stop-daemon is a fake: mv {p}/{f} {p}/{dir}/start-stop-daemon",
                p = path.display()
            ),
        ));
    }
    for (dir, keep) in [("run", "lock"), ("tmp", "")] {
        let names = entries(&root, dir, keep);
        if !names.is_empty() {
            out.push(Problem::warning(
                "tree-files",
                Some(tree),
                format!(
                    "/{dir} in tree '{tree}' is not empty ({}): every node booting it sees that",
                    shorten(&names)
                ),
                format!("sidus run {tree} -- true (a run empties /run and /tmp when it ends)"),
            ));
        }
    }
    Ok(())
}

/// Whether `path` is the root of a file system of its own (a mounted tree,
/// a btrfs subvolume), not a directory of its parent's.
fn own_file_system(path: &Path) -> bool {
    match (std::fs::metadata(path), std::fs::metadata(path.join(".."))) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Mounts below `path`, deepest first, without ZFS's own snapshot automounts.
pub fn stray_mounts(path: &Path) -> Result<Vec<PathBuf>> {
    let zfs = path.join(".zfs");
    Ok(mounts_under(path)?
        .into_iter()
        .filter(|m| m != path && !m.starts_with(&zfs))
        .collect())
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The names in the tree's directory `rel` but `keep`, sorted; none when it
/// is missing or not a plain directory.
fn entries(root: &TreeRoot, rel: &str, keep: &str) -> Vec<String> {
    let Ok(fd) = root.open_no_links(rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
    else {
        return Vec::new();
    };
    let Ok(dir) = Dir::read_from(&fd) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .map(|e| String::from_utf8_lossy(e.file_name().to_bytes()).into_owned())
        .filter(|n| n != "." && n != ".." && n != keep)
        .collect();
    names.sort();
    names
}

fn shorten(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(" and {} more", names.len() - 5));
    }
    s
}
