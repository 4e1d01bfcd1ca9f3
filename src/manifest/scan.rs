//! Reading a tree into a manifest: a walk that stats every entry, then the
//! regular files hashed in parallel, one file per worker at a time (many small
//! files hash faster side by side than one by one with a parallel hash).
//!
//! The tree is treated as hostile, as in [`crate::history::diff`]: entries are
//! opened relative to their directory with `O_NOFOLLOW`, files by `openat2`
//! beneath the root with no symlinks and no mount crossing, and the walk does
//! not descend into other file systems. A file that changes between its stat
//! and its read is an error, not a wrong hash.
//!
//! With a [`Reference`] (a kept manifest of an earlier snapshot of the same
//! tree) an entry is reused instead of read when nothing says it changed:
//! - its stamp (inode, size, mtime, ctime) equals the reference's and its ctime
//!   is older than both snapshots by a margin. Any write, chmod, chown or
//!   setxattr sets ctime to the current time, and nothing can set it back, so a
//!   file changed after the reference was taken has a newer ctime; the margin
//!   covers the coarse clock file times use (racy-git's rule);
//! - otherwise, on one btrfs file system, a file of the same size mapping
//!   exactly the same extents as the reference's ([`crate::history::extents`];
//!   for a received snapshot only where its mtime is the reference's too).

use super::hashing::{self, Job};
use super::{Entry, Hash, Manifest, Stamp};
use crate::history::diff::Kind;
use crate::history::extents;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An earlier manifest of the same tree whose entries may be reused.
pub struct Reference<'a> {
    /// Where the reference snapshot's content is, for the extent comparison
    /// (only given where both are on btrfs).
    pub root: Option<PathBuf>,
    /// Its kept manifest, with stamps.
    pub manifest: &'a Manifest,
    /// Entries whose ctime is older than this (seconds, nanoseconds) are
    /// trusted by their stamp: the older of the two snapshots' creation times,
    /// less the margin.
    pub trusted_before: (i64, u32),
    /// Whether a file whose mtime is not the reference's is compared by its
    /// extents too (content kept through a `touch`, a reflink copy). Not for
    /// a receive, which has just written such files: their extents tell only
    /// once their dirty data is written back, which costs more than hashing
    /// it from the page cache.
    pub extents_of_retouched: bool,
}

/// How a scan got its hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    /// Entries in the manifest.
    pub entries: u64,
    /// Regular files.
    pub files: u64,
    /// Files read and hashed.
    pub hashed_files: u64,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Files reused from the reference by their stamp.
    pub reused_by_stamp: u64,
    /// Files reused from the reference because they share its extents.
    pub reused_by_extents: u64,
    /// Files reused from the reference because storage says they did not
    /// change ([`sidus_backends::Backend::snapshot_changes`]).
    pub reused_unchanged: u64,
}

/// Seconds of margin below a snapshot's creation time for trusting a stamp.
pub const TRUST_MARGIN_SECS: i64 = 2;

/// What is known of an entry's content before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prior {
    /// Nothing: the reference's stamps and extents are asked.
    Unknown,
    /// Storage says its data changed: a file is read.
    Changed,
    /// Storage says its data did not change: a file of this size has this hash.
    Same(Option<Hash>, Option<u64>),
}

/// A walk's findings: entries, and the files still to hash.
pub(super) struct Walk<'a> {
    pub reference: Option<&'a Reference<'a>>,
    pub one_btrfs: bool,
    pub entries: Vec<Entry>,
    pub jobs: Vec<Job>,
    pub stats: ScanStats,
    /// Inode numbers of the files met with more than one link.
    pub linked: Vec<u64>,
}

pub(super) fn open_dir_at(dir: impl AsFd, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Reads the xattrs through `list` and `get`, sorted by name; none where the
/// file system has no xattrs.
fn read_xattrs(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&CStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 256];
    let n = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).expect("split at NUL");
        let mut value = vec![0u8; 256];
        loop {
            match get(&cname, &mut value) {
                Ok(len) => {
                    value.truncate(len);
                    break;
                }
                Err(Errno::RANGE) => value.resize(value.len() * 4, 0),
                // Removed between list and get: it is not there.
                Err(Errno::NODATA) => {
                    value.clear();
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// The xattrs of an open file or directory.
pub(crate) fn fd_xattrs(fd: impl AsFd) -> rustix::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let fd = fd.as_fd();
    read_xattrs(
        |b| rustix::fs::flistxattr(fd, b),
        |n, b| rustix::fs::fgetxattr(fd, n, b),
    )
}

/// The xattrs of `name` in `dir`, not following a symlink: through the
/// directory's /proc/self/fd link, since symlinks and devices are not opened.
pub(crate) fn entry_xattrs(
    dir: impl AsFd,
    name: &CStr,
) -> rustix::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = std::ffi::CString::new(path).expect("no NUL in a file name");
    read_xattrs(
        |b| rustix::fs::llistxattr(path.as_c_str(), b),
        |n, b| rustix::fs::lgetxattr(path.as_c_str(), n, b),
    )
}

fn stamp_of(st: &rustix::fs::Stat) -> Stamp {
    Stamp {
        ino: st.st_ino,
        mtime: (st.st_mtime, st.st_mtime_nsec as u32),
        ctime: (st.st_ctime, st.st_ctime_nsec as u32),
    }
}

/// The entry `st` describes at `path`, without hash, target or xattrs.
pub(crate) fn entry_of(path: Vec<u8>, st: &rustix::fs::Stat) -> Entry {
    let kind = Kind::from_mode(st.st_mode);
    Entry {
        path,
        kind,
        mode: if kind == Kind::Symlink {
            0
        } else {
            st.st_mode & 0o7777
        },
        uid: st.st_uid,
        gid: st.st_gid,
        size: (kind == Kind::File).then_some(st.st_size as u64),
        hash: None,
        target: None,
        device: matches!(kind, Kind::Char | Kind::Block).then(|| {
            let d = st.st_rdev;
            (
                u64::from(rustix::fs::major(d)),
                u64::from(rustix::fs::minor(d)),
            )
        }),
        xattrs: Vec::new(),
        stamp: Some(stamp_of(st)),
    }
}

pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + name.len() + 1);
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl Walk<'_> {
    /// The reference's entry at `path`, if it has one.
    fn reference_entry(&self, path: &[u8]) -> Option<&Entry> {
        let m = self.reference?.manifest;
        m.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
            .map(|i| &m.entries[i])
    }

    /// The reference's entry when its stamp proves `e` unchanged.
    fn trusted(&self, e: &Entry) -> Option<&Entry> {
        let r = self.reference_entry(&e.path)?;
        let stamp = e.stamp?;
        let trusted_before = self.reference?.trusted_before;
        (r.kind == e.kind
            && r.size == e.size
            && r.stamp == Some(stamp)
            && stamp.ctime < trusted_before)
            .then_some(r)
    }

    /// Reads every entry of the directory open as `fd` at `path`, and what
    /// is under them.
    pub(super) fn dir(
        &mut self,
        fd: &OwnedFd,
        path: &[u8],
        dev: u64,
        progress: &Progress,
    ) -> Result<()> {
        for name in names(fd, path)? {
            let path = join(path, name.to_bytes());
            self.entry(fd, &name, path, dev, progress, Prior::Unknown, true)?;
        }
        Ok(())
    }

    /// Reads the entry `name` of the directory open as `fd`, at `path` in
    /// the tree, and with `descend` what is under it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn entry(
        &mut self,
        fd: &OwnedFd,
        name: &CStr,
        path: Vec<u8>,
        dev: u64,
        progress: &Progress,
        prior: Prior,
        descend: bool,
    ) -> Result<()> {
        let at = || super::shown(&path);
        let st = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat {}", at()))?;
        let mut e = entry_of(path.clone(), &st);
        progress.add(1);
        let trusted = match prior {
            Prior::Unknown => self
                .trusted(&e)
                .map(|r| (r.hash, r.xattrs.clone(), r.target.clone())),
            _ => None,
        };
        if e.kind != Kind::Dir && st.st_nlink > 1 {
            self.linked.push(st.st_ino as u64);
        }
        match e.kind {
            Kind::Socket => return Ok(()),
            Kind::Dir if st.st_dev as u64 != dev => {
                // A mount point: recorded as seen, never entered.
            }
            Kind::Dir => {
                let child = open_dir_at(fd, name).with_context(|| format!("open {}", at()))?;
                if path == b"/lost+found" && is_empty(&child)? {
                    // ext4's own (LVM trees): the file system's, not content.
                    return Ok(());
                }
                let cst = rustix::fs::fstat(&child).with_context(|| format!("stat {}", at()))?;
                if cst.st_ino != st.st_ino {
                    bail!("{} changed while being read", at());
                }
                e.xattrs = fd_xattrs(&child).with_context(|| format!("read xattrs of {}", at()))?;
                self.entries.push(e);
                if descend {
                    self.dir(&child, &path, dev, progress)?;
                }
                return Ok(());
            }
            Kind::File => {
                self.stats.files += 1;
                match (trusted, prior) {
                    (Some((hash, xattrs, _)), _) => {
                        e.hash = hash;
                        e.xattrs = xattrs;
                        self.stats.reused_by_stamp += 1;
                    }
                    (None, Prior::Same(Some(hash), size)) if size == e.size => {
                        e.hash = Some(hash);
                        e.xattrs = entry_xattrs(fd, name)
                            .with_context(|| format!("read xattrs of {}", at()))?;
                    }
                    _ => {
                        let retouched = self.reference.is_some_and(|r| r.extents_of_retouched);
                        let same_extents_as = if self.one_btrfs && prior == Prior::Unknown {
                            self.reference_entry(&path)
                                .filter(|r| r.kind == Kind::File && r.size == e.size)
                                .filter(|r| {
                                    retouched
                                        || r.stamp.map(|s| s.mtime) == e.stamp.map(|s| s.mtime)
                                })
                                .and_then(|r| r.hash)
                        } else {
                            None
                        };
                        self.jobs.push(Job {
                            entry: self.entries.len(),
                            rel: path[1..].to_vec(),
                            ino: st.st_ino as u64,
                            size: st.st_size as u64,
                            same_extents_as,
                        });
                    }
                }
            }
            _ => {
                if e.kind == Kind::Symlink {
                    e.target = Some(match &trusted {
                        Some((_, _, Some(t))) => t.clone(),
                        _ => rustix::fs::readlinkat(fd, name, Vec::new())
                            .with_context(|| format!("read link {}", at()))?
                            .into_bytes(),
                    });
                }
                e.xattrs = match trusted {
                    Some((_, xattrs, _)) => xattrs,
                    None => entry_xattrs(fd, name)
                        .with_context(|| format!("read xattrs of {}", at()))?,
                };
            }
        }
        self.entries.push(e);
        Ok(())
    }
}

/// The names in the directory open as `fd` (at `path`), sorted.
pub(super) fn names(fd: &OwnedFd, path: &[u8]) -> Result<Vec<std::ffi::CString>> {
    let shown = || super::shown(path);
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd).with_context(|| format!("read {}", shown()))? {
        let entry = entry.with_context(|| format!("read {}", shown()))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// True when the open directory has no entries.
fn is_empty(fd: &OwnedFd) -> Result<bool> {
    for entry in rustix::fs::Dir::read_from(fd).context("read /lost+found")? {
        let name = entry.context("read /lost+found")?.file_name().to_owned();
        if name.as_c_str() != c"." && name.as_c_str() != c".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Opens `rel` below `root` as a regular file: no symlink, no mount crossing.
pub(crate) fn open_beneath(root: impl AsFd, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        OsStr::from_bytes(rel),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
    )
}

/// Reads the tree at `root` into a manifest, reusing `reference` where it can.
pub fn scan(
    root: &Path,
    reference: Option<&Reference>,
    progress: &Progress,
) -> Result<(Manifest, ScanStats)> {
    let rootfd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root.display()))?;
    let st = rustix::fs::fstat(&rootfd).with_context(|| format!("stat {}", root.display()))?;
    let reffd = match reference.and_then(|r| r.root.as_ref()) {
        Some(dir) => Some(
            rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("open {}", dir.display()))?,
        ),
        None => None,
    };
    let one_btrfs = match &reffd {
        Some(r) => extents::btrfs_fsid(&rootfd).is_some_and(|a| Some(a) == extents::btrfs_fsid(r)),
        None => false,
    };
    let mut walk = Walk {
        reference,
        one_btrfs,
        entries: Vec::new(),
        jobs: Vec::new(),
        stats: ScanStats::default(),
        linked: Vec::new(),
    };
    let mut top = entry_of(b"/".to_vec(), &st);
    top.xattrs =
        fd_xattrs(&rootfd).with_context(|| format!("read xattrs of {}", root.display()))?;
    walk.entries.push(top);
    progress.phase("reading entries", 0);
    walk.dir(&rootfd, b"/", st.st_dev as u64, progress)?;

    hashing::hash_jobs(&mut walk, &rootfd, reffd.as_ref(), progress)?;
    progress.finish();
    walk.stats.entries = walk.entries.len() as u64;
    Ok((Manifest::from_entries(walk.entries), walk.stats))
}
