//! A snapshot's manifest from an earlier snapshot's kept manifest and what
//! storage says changed between the two ([`SnapshotChanges`], btrfs send):
//! only the paths it names are read, so the cost follows the change, not the
//! tree.
//!
//! - A path `replaced` (made, renamed or linked there) is read with all that
//!   is under it, as a scan would.
//! - A directory whose `listing` changed is listed: names the earlier
//!   snapshot did not have are read like replaced ones, names it lost are
//!   dropped with what was under them.
//! - A path whose attributes or data changed is read again; a file's content
//!   only when its data changed, else it keeps the earlier hash (storage
//!   compares extents: unchanged data is shared data).
//! - Everything else is the earlier entry, stamp included.
//!
//! Storage names a changed file under one of its names; when a file read
//! here has other links, every name the earlier manifest has for its inode
//! is read again. Where the changes do not fit the snapshot (a named path
//! that is not there, a kept manifest without stamps to find links by),
//! this gives up (`None`) and the caller scans the snapshot.

use super::hashing;
use super::scan::{entry_of, fd_xattrs, join, names, Prior, ScanStats, Walk};
use super::{shown, Entry, Manifest};
use crate::history::diff::Kind;
use crate::progress::Progress;
use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use sidus_backends::SnapshotChanges;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::{CString, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why the changes cannot be applied (the caller then scans).
struct Mismatch(String);

type Built<T> = Result<std::result::Result<T, Mismatch>>;

/// Opens the directory at absolute `path` below `root` without following
/// links or leaving the file system; a mismatch when it is not one.
fn open_dir(root: &OwnedFd, path: &[u8]) -> Built<OwnedFd> {
    let rel = match &path[1..] {
        b"" => OsStr::new("."),
        rel => OsStr::from_bytes(rel),
    };
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => Ok(Ok(fd)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => Ok(Err(Mismatch(
            format!("{} is not a directory of the snapshot", shown(path)),
        ))),
        Err(e) => Err(e).with_context(|| format!("open {}", shown(path))),
    }
}

/// `path` split into its directory and its name (`/a/b` -> `/a`, `b`).
fn split(path: &[u8]) -> (&[u8], CString) {
    let i = path.iter().rposition(|b| *b == b'/').expect("absolute");
    let dir = if i == 0 { &b"/"[..] } else { &path[..i] };
    let name = CString::new(&path[i + 1..]).expect("no NUL in a path");
    (dir, name)
}

/// True when `path` or a directory above it is in `set`.
fn under(set: &BTreeSet<Vec<u8>>, path: &[u8]) -> bool {
    set.contains(path)
        || path
            .iter()
            .enumerate()
            .skip(1)
            .any(|(i, b)| *b == b'/' && set.contains(&path[..i]))
}

/// Index range of the entries strictly under `path` in sorted `entries`.
fn subtree(entries: &[Entry], path: &[u8]) -> std::ops::Range<usize> {
    let mut lo = path.to_vec();
    if lo != b"/" {
        lo.push(b'/');
    }
    let mut hi = lo.clone();
    *hi.last_mut().expect("not empty") += 1;
    // The root's subtree starts after the root itself.
    let start = entries.partition_point(|e| e.path.as_slice() < lo.as_slice() || e.path == path);
    start..entries.partition_point(|e| e.path.as_slice() < hi.as_slice())
}

fn index(entries: &[Entry], path: &[u8]) -> Option<usize> {
    entries
        .binary_search_by(|e| e.path.as_slice().cmp(path))
        .ok()
}

/// Paths to read: each with its subtree (`fresh`), or alone (`again`, with
/// whether its data changed); `gone` ones are dropped with their subtree.
#[derive(Default)]
struct Plan {
    fresh: Vec<Vec<u8>>,
    gone: Vec<Vec<u8>>,
    again: BTreeMap<Vec<u8>, bool>,
}

fn plan(root: &OwnedFd, earlier: &[Entry], changes: &SnapshotChanges) -> Built<Plan> {
    let mut plan = Plan::default();
    let mut covered = BTreeSet::new();
    for (path, touch) in &changes.paths {
        if under(&covered, path) {
            continue;
        }
        if touch.replaced {
            covered.insert(path.clone());
            plan.fresh.push(path.clone());
            continue;
        }
        if touch.listing {
            let dir = match open_dir(root, path)? {
                Ok(fd) => fd,
                Err(m) => return Ok(Err(m)),
            };
            let now: BTreeSet<Vec<u8>> = names(&dir, path)?
                .into_iter()
                .map(|n| n.into_bytes())
                .collect();
            let skip = if path.as_slice() == b"/" {
                1
            } else {
                path.len() + 1
            };
            let before: BTreeSet<&[u8]> = earlier[subtree(earlier, path)]
                .iter()
                .map(|e| &e.path[skip..])
                .filter(|rest| !rest.contains(&b'/'))
                .collect();
            for name in &now {
                if !before.contains(name.as_slice()) {
                    let p = join(path, name);
                    covered.insert(p.clone());
                    plan.fresh.push(p);
                }
            }
            for name in before {
                if !now.contains(name) {
                    let p = join(path, name);
                    covered.insert(p.clone());
                    plan.gone.push(p);
                }
            }
        }
        // A directory whose listing changed has other times too.
        plan.again.insert(path.clone(), touch.data);
    }
    Ok(Ok(plan))
}

/// Reads the entries `plan` names into `walk`.
fn read(
    walk: &mut Walk,
    root: &OwnedFd,
    earlier: &[Entry],
    plan: &Plan,
    progress: &Progress,
) -> Built<()> {
    let dev = rustix::fs::fstat(root).context("stat the snapshot")?.st_dev as u64;
    let mut open: Option<(Vec<u8>, OwnedFd)> = None;
    let mut one = |walk: &mut Walk, path: &[u8], prior: Prior, descend: bool| -> Built<()> {
        if path == b"/" {
            let st = rustix::fs::fstat(root).context("stat the snapshot")?;
            let mut e = entry_of(b"/".to_vec(), &st);
            e.xattrs = fd_xattrs(root).context("read xattrs of /")?;
            walk.entries.push(e);
            return Ok(Ok(()));
        }
        let (dir, name) = split(path);
        if open.as_ref().is_none_or(|(d, _)| d != dir) {
            match open_dir(root, dir)? {
                Ok(fd) => open = Some((dir.to_vec(), fd)),
                Err(m) => return Ok(Err(m)),
            }
        }
        let fd = &open.as_ref().expect("opened").1;
        if let Err(Errno::NOENT) = rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            return Ok(Err(Mismatch(format!(
                "{} is not in the snapshot",
                shown(path)
            ))));
        }
        walk.entry(fd, &name, path.to_vec(), dev, progress, prior, descend)?;
        Ok(Ok(()))
    };
    for path in &plan.fresh {
        if let Err(m) = one(walk, path, Prior::Unknown, true)? {
            return Ok(Err(m));
        }
    }
    for (path, data) in &plan.again {
        let prior = match (data, index(earlier, path)) {
            (true, _) => Prior::Changed,
            (false, Some(i)) => Prior::Same(earlier[i].hash, earlier[i].size),
            (false, None) => {
                let why = format!("{} changed but is not in the kept manifest", shown(path));
                return Ok(Err(Mismatch(why)));
            }
        };
        if let Err(m) = one(walk, path, prior, false)? {
            return Ok(Err(m));
        }
    }
    Ok(Ok(()))
}

/// Every other name the earlier manifest has for the inodes of the files in
/// `linked` that `plan` does not read already.
fn other_links(earlier: &[Entry], linked: &[u64], plan: &Plan) -> Built<Vec<Vec<u8>>> {
    let inodes: HashSet<u64> = linked.iter().copied().collect();
    let covered: BTreeSet<Vec<u8>> = plan.fresh.iter().chain(&plan.gone).cloned().collect();
    let mut out = Vec::new();
    for e in earlier.iter().filter(|e| e.kind != Kind::Dir) {
        let Some(stamp) = e.stamp else {
            let why = format!("the kept manifest has no stamp for {}", shown(&e.path));
            return Ok(Err(Mismatch(why)));
        };
        if inodes.contains(&stamp.ino)
            && !plan.again.contains_key(&e.path)
            && !under(&covered, &e.path)
        {
            out.push(e.path.clone());
        }
    }
    Ok(Ok(out))
}

/// The manifest of the snapshot at `root` from `earlier`, the kept manifest
/// of an earlier snapshot, and `changes` from it (see the module doc); `None`
/// when they do not fit the snapshot. `earlier`'s entries are moved into
/// the result (it is left empty) only when there is one.
pub(super) fn build(
    root: &Path,
    earlier: &mut Manifest,
    changes: &SnapshotChanges,
    progress: &Progress,
) -> Result<Option<(Manifest, ScanStats)>> {
    let rootfd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root.display()))?;
    let give_up = |m: Mismatch| {
        log::debug!("{}: {}; reading the whole snapshot", root.display(), m.0);
        Ok(None)
    };
    progress.phase("reading changed entries", 0);
    let mut plan = match plan(&rootfd, &earlier.entries, changes)? {
        Ok(p) => p,
        Err(m) => return give_up(m),
    };
    let mut walk = Walk {
        // What is read here is new or changed: no reuse by stamp or extents.
        reference: None,
        one_btrfs: false,
        entries: Vec::new(),
        jobs: Vec::new(),
        stats: ScanStats::default(),
        linked: Vec::new(),
    };
    if let Err(m) = read(&mut walk, &rootfd, &earlier.entries, &plan, progress)? {
        return give_up(m);
    }
    if !walk.linked.is_empty() {
        let others = match other_links(&earlier.entries, &walk.linked, &plan)? {
            Ok(o) => o,
            Err(m) => return give_up(m),
        };
        let more = Plan {
            again: others.into_iter().map(|p| (p, true)).collect(),
            ..Plan::default()
        };
        if let Err(m) = read(&mut walk, &rootfd, &earlier.entries, &more, progress)? {
            return give_up(m);
        }
        plan.again.extend(more.again);
    }
    hashing::hash_jobs(&mut walk, &rootfd, None, progress)?;
    progress.finish();

    let earlier = std::mem::take(&mut earlier.entries);
    let mut keep = vec![true; earlier.len()];
    for path in plan.fresh.iter().chain(&plan.gone) {
        keep[subtree(&earlier, path)].fill(false);
        if let Some(i) = index(&earlier, path) {
            keep[i] = false;
        }
    }
    for path in plan.again.keys() {
        if let Some(i) = index(&earlier, path) {
            keep[i] = false;
        }
    }
    let mut entries: Vec<Entry> = earlier
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect();
    entries.append(&mut walk.entries);
    let m = Manifest::from_entries(entries);
    if let Some(w) = m.entries.windows(2).find(|w| w[0].path == w[1].path) {
        // A path read twice: the changes did not say what this expects.
        return give_up(Mismatch(format!("{} read twice", shown(&w[0].path))));
    }
    let mut stats = walk.stats;
    stats.entries = m.entries.len() as u64;
    stats.files = m.entries.iter().filter(|e| e.kind == Kind::File).count() as u64;
    stats.reused_unchanged = stats.files - stats.hashed_files - stats.reused_by_stamp;
    Ok(Some((m, stats)))
}
