//! A diff from what storage says changed: only the paths it names are looked
//! up on both sides and compared by the walk's rules, so the answer is the
//! walk's, read from a fraction of the tree.
//!
//! Storage names objects, not every path the walk would report, in two cases:
//! - a renamed directory is one change, not one per entry under it: its old
//!   and new paths are compared with everything below them;
//! - a hard link's other names: ZFS reports a changed file under one name
//!   only. When a named file has more than one link, or storage says a link
//!   count changed, this gives up (`None`) and the caller walks the trees.

use super::walk::{join, open_child_dir, read_node, root_side, Node, Side, Walk};
use super::{Change, Entry, Kind};
use anyhow::Result;
use sidus_backends::{ChangedPath, PathChange};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Every difference from the tree at `old` to the tree at `new` among the
/// paths `changes` names, in the walk's order; `None` when hard links make
/// the list incomplete (see the module doc).
pub fn diff_changed(old: &Path, new: &Path, changes: &[ChangedPath]) -> Result<Option<Vec<Entry>>> {
    if changes.iter().any(|c| c.links_changed) {
        return Ok(None);
    }
    // Raw path -> whether what is under it is compared too.
    let mut paths: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    for c in changes {
        let subtree = c.change == PathChange::Renamed && c.dir;
        for p in std::iter::once(&c.path).chain(&c.to) {
            let entry = paths.entry(p.as_os_str().as_bytes().to_vec()).or_default();
            *entry |= subtree;
        }
    }
    let o = root_side(old)?;
    let n = root_side(new)?;
    let mut walk = Walk {
        out: Vec::new(),
        one_btrfs: false,
        recurse: false,
    };
    for (path, subtree) in &paths {
        if path.as_slice() == b"/" {
            walk.roots(&o, &n);
            continue;
        }
        let old_side = lookup(&o.0, path)?;
        let new_side = lookup(&n.0, path)?;
        let linked = |s: &Option<(Side, Node)>| {
            s.as_ref()
                .is_some_and(|(_, node)| node.kind() != Kind::Dir && node.st.st_nlink > 1)
        };
        if linked(&old_side) || linked(&new_side) {
            return Ok(None);
        }
        walk.recurse = *subtree;
        let parent = parent_of(path);
        match (&old_side, &new_side) {
            (Some((so, no)), Some((sn, nn))) => walk.compare(path, (so, no), (sn, nn))?,
            (Some((so, no)), None) => walk.one(parent, so, no, Change::Removed)?,
            (None, Some((sn, nn))) => walk.one(parent, sn, nn, Change::Added)?,
            (None, None) => {}
        }
    }
    // One entry per path (a renamed directory's walk may meet a path storage
    // named too), in the walk's order: by path components, bytewise.
    let mut found: BTreeMap<Vec<&[u8]>, Entry> = BTreeMap::new();
    for (raw, entry) in &walk.out {
        found
            .entry(raw.split(|b| *b == b'/').collect())
            .or_insert_with(|| entry.clone());
    }
    Ok(Some(found.into_values().collect()))
}

/// The directory holding `path` (`/a/b` -> `/a`, `/a` -> `/`).
fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &path[..i],
    }
}

/// Looks `path` up under `root` the way the walk would reach it: every
/// directory on the way opened without following links and on the same file
/// system. Returns the directory holding it with its entry; `None` when it is
/// not there, or a directory on the way is not one on this side (so the walk
/// would not meet it either).
fn lookup(root: &Side, path: &[u8]) -> Result<Option<(Side, Node)>> {
    let names: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|n| !n.is_empty())
        .collect();
    let Some((last, dirs)) = names.split_last() else {
        return Ok(None);
    };
    let mut at: Vec<u8> = b"/".to_vec();
    let mut dir: Option<Side> = None;
    for name in dirs {
        let name = OsStr::from_bytes(name);
        let current = dir.as_ref().unwrap_or(root);
        match open_child_dir(current, name)? {
            Some(next) => dir = Some(next),
            None => return Ok(None),
        }
        at = join(&at, name);
    }
    let holder = match dir {
        Some(d) => d,
        None => Side {
            fd: root.fd.try_clone()?,
            dev: root.dev,
        },
    };
    Ok(read_node(&holder.fd, &at, OsStr::from_bytes(last))?.map(|node| (holder, node)))
}
