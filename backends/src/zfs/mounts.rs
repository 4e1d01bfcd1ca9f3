//! Which ZFS datasets are mounted where, from /proc/self/mountinfo: reading a
//! file costs microseconds where a `zfs list` costs a process and a pool
//! walk, so the hot paths (snapshot, path, clone) ask here first.

use super::Zfs;
use crate::TreeName;
use std::collections::HashMap;
use std::path::PathBuf;

impl Zfs {
    /// The mounted datasets holding `tree`'s snapshots (working one first), read
    /// from the mount table; `None` when the working dataset is not mounted.
    pub(super) fn mounted_tree(&self, tree: &TreeName) -> Option<Vec<(String, PathBuf)>> {
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
}

/// Mounts `dataset` at `target` (created if missing) as `zfs mount` does on
/// Linux (libzfs `do_mount`, OpenZFS 2.1): `mount(2)` of type `zfs` with
/// `zfsutil` (a mount by the ZFS tools, not by fstab) and `mntpoint=`, which
/// the kernel keeps to find where `.zfs/snapshot` automounts go.
pub(crate) fn mount_dataset(dataset: &str, target: &std::path::Path) -> crate::Result<()> {
    use crate::BackendError;
    std::fs::create_dir_all(target).map_err(|e| BackendError::io("create", target, e))?;
    let data = format!("zfsutil,mntpoint={}", target.display());
    log::debug!("mount -t zfs -o {data} {dataset} {}", target.display());
    nix::mount::mount(
        Some(dataset),
        target,
        Some("zfs"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| BackendError::io(&format!("mount {dataset} at"), target, e.into()))
}

/// Mounted ZFS file systems: dataset name to mountpoint (the first mount seen).
pub(crate) fn zfs_mounts() -> HashMap<String, PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse(&text)
}

fn parse(text: &str) -> HashMap<String, PathBuf> {
    let mut out = HashMap::new();
    for line in text.lines() {
        // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        if r.next() != Some("zfs") {
            continue;
        }
        let (Some(source), Some(target)) = (r.next(), left.split(' ').nth(4)) else {
            continue;
        };
        out.entry(unescape(source))
            .or_insert_with(|| PathBuf::from(unescape(target)));
    }
    out
}

/// Undoes the kernel's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&crate::fsutil::unescape_mountinfo(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_zfs_mounts_only() {
        let text = "\
22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
95 1 0:45 / /var/lib/sidus/zfs rw,relatime shared:40 - zfs tank/sidus rw,xattr,noacl
96 95 0:46 / /var/lib/sidus/zfs/trees/my\\040tree rw,relatime shared:41 - zfs tank/sidus/trees/t1 rw
97 95 0:47 / /snap rw - zfs tank/sidus/trees/t1@20261125T101500Z ro
";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m["tank/sidus"], PathBuf::from("/var/lib/sidus/zfs"));
        assert_eq!(
            m["tank/sidus/trees/t1"],
            PathBuf::from("/var/lib/sidus/zfs/trees/my tree")
        );
    }
}
