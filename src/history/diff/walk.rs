//! The comparison itself: both trees walked side by side, or (for
//! [`super::changed`]) single paths looked up on both sides, with the same
//! rules either way.

use super::{Aspect, Attrs, Change, Entry, Kind};
use anyhow::{Context, Result};
use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An entry of a walked directory: its stat and, for symlinks, the target.
pub(super) struct Node {
    pub name: OsString,
    pub st: FileStat,
    pub target: Option<OsString>,
}

impl Node {
    pub fn kind(&self) -> Kind {
        Kind::of(&self.st)
    }

    fn attrs(&self) -> Attrs {
        let kind = self.kind();
        let dev = self.st.st_rdev;
        Attrs {
            kind,
            mode: format!("{:04o}", self.st.st_mode & 0o7777),
            uid: self.st.st_uid,
            gid: self.st.st_gid,
            size: (kind == Kind::File).then_some(self.st.st_size as u64),
            target: self
                .target
                .as_ref()
                .map(|t| t.to_string_lossy().into_owned()),
            device: matches!(kind, Kind::Char | Kind::Block)
                .then(|| format!("{}:{}", libc::major(dev), libc::minor(dev))),
        }
    }
}

/// One side of the walk: the directory being read and the file system it is on.
pub(super) struct Side {
    pub fd: OwnedFd,
    pub dev: u64,
}

fn open_dir(parent: Option<&OwnedFd>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(parent.map(|p| p.as_raw_fd()), name, flags, Mode::empty())?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_file(parent: &OwnedFd, name: &OsStr) -> nix::Result<File> {
    // O_NONBLOCK: if the file was swapped for a FIFO since its stat, do not hang.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = openat(Some(parent.as_raw_fd()), name, flags, Mode::empty())?;
    // SAFETY: as above.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The entry `name` of `dir`, `None` when there is none.
pub(super) fn read_node(dir: &OwnedFd, at: &[u8], name: &OsStr) -> Result<Option<Node>> {
    let st = match fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("stat {}", show(&join(at, name)))),
    };
    let target = if Kind::of(&st) == Kind::Symlink {
        Some(
            readlinkat(Some(dir.as_raw_fd()), name)
                .with_context(|| format!("read link {}", show(&join(at, name))))?,
        )
    } else {
        None
    };
    Ok(Some(Node {
        name: name.to_owned(),
        st,
        target,
    }))
}

/// The entries of `dir`, sorted by name bytes.
fn read_nodes(dir: &OwnedFd, at: &[u8]) -> Result<Vec<Node>> {
    let fd = nix::unistd::dup(dir.as_raw_fd()).with_context(|| format!("read {}", show(at)))?;
    let mut d = Dir::from_fd(fd).with_context(|| format!("read {}", show(at)))?;
    let mut nodes = Vec::new();
    for entry in d.iter() {
        let entry = entry.with_context(|| format!("read {}", show(at)))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        // Gone since the listing: as if it had never been listed.
        if let Some(node) = read_node(dir, at, name)? {
            nodes.push(node);
        }
    }
    nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(nodes)
}

/// `dir/name`, as the bytes of a path absolute within the tree.
pub(super) fn join(dir: &[u8], name: &OsStr) -> Vec<u8> {
    let mut p = dir.to_vec();
    if p != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

/// A raw path as shown (names that are not UTF-8 with U+FFFD).
pub(super) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// True when the two open files have the same bytes (their sizes are equal).
fn same_content(mut a: File, mut b: File) -> std::io::Result<bool> {
    const CHUNK: usize = 128 * 1024;
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let na = read_full(&mut a, &mut ba)?;
        let nb = read_full(&mut b, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na < CHUNK {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The comparison: differences found so far, each with its raw path.
pub(super) struct Walk {
    pub out: Vec<(Vec<u8>, Entry)>,
    /// Both trees are on one btrfs file system: files mapping the same extents
    /// are equal without reading them (see [`crate::history::extents`]).
    pub one_btrfs: bool,
    /// Whether comparing a directory also compares what is in it (a walk);
    /// off when only the paths storage named are compared.
    pub recurse: bool,
}

impl Walk {
    fn push(&mut self, path: &[u8], entry: Entry) {
        self.out.push((path.to_vec(), entry));
    }

    /// Compares `old` and `new`, both entries named `name` of the directories
    /// `po` and `pn`, shown at `path`.
    pub fn compare(&mut self, path: &[u8], po: (&Side, &Node), pn: (&Side, &Node)) -> Result<()> {
        let (so, o) = po;
        let (sn, n) = pn;
        let shown = show(path);
        let (ko, kn) = (o.kind(), n.kind());
        let mut what = Vec::new();
        if ko != kn {
            what.push(Aspect::Type);
        } else {
            if o.st.st_mode & 0o7777 != n.st.st_mode & 0o7777 && ko != Kind::Symlink {
                what.push(Aspect::Mode);
            }
            if (o.st.st_uid, o.st.st_gid) != (n.st.st_uid, n.st.st_gid) {
                what.push(Aspect::Owner);
            }
            match ko {
                Kind::File if o.st.st_size != n.st.st_size => {
                    what.extend([Aspect::Size, Aspect::Content])
                }
                Kind::File => {
                    let fo =
                        open_file(&so.fd, &o.name).with_context(|| format!("open old {shown}"))?;
                    let fnew =
                        open_file(&sn.fd, &n.name).with_context(|| format!("open new {shown}"))?;
                    let shared =
                        self.one_btrfs && crate::history::extents::share_all_extents(&fo, &fnew);
                    if !shared
                        && !same_content(fo, fnew).with_context(|| format!("compare {shown}"))?
                    {
                        what.push(Aspect::Content);
                    }
                }
                Kind::Symlink if o.target != n.target => what.push(Aspect::Target),
                Kind::Char | Kind::Block if o.st.st_rdev != n.st.st_rdev => {
                    what.push(Aspect::Device)
                }
                _ => {}
            }
        }
        if !what.is_empty() {
            self.push(
                path,
                Entry {
                    path: shown,
                    change: Change::Modified,
                    what,
                    old: Some(o.attrs()),
                    new: Some(n.attrs()),
                },
            );
        }
        if !self.recurse {
            return Ok(());
        }
        match (ko == Kind::Dir, kn == Kind::Dir) {
            (true, true) => {
                let co = self.enter(so, o, path)?;
                let cn = self.enter(sn, n, path)?;
                match (co, cn) {
                    (Some(co), Some(cn)) => self.dirs(path, &co, &cn)?,
                    (Some(co), None) => self.all(path, &co, Change::Removed)?,
                    (None, Some(cn)) => self.all(path, &cn, Change::Added)?,
                    (None, None) => {}
                }
            }
            (true, false) => {
                if let Some(co) = self.enter(so, o, path)? {
                    self.all(path, &co, Change::Removed)?;
                }
            }
            (false, true) => {
                if let Some(cn) = self.enter(sn, n, path)? {
                    self.all(path, &cn, Change::Added)?;
                }
            }
            (false, false) => {}
        }
        Ok(())
    }

    /// Opens the directory `node` of `side`, unless it is on another file system.
    pub fn enter(&self, side: &Side, node: &Node, path: &[u8]) -> Result<Option<Side>> {
        if node.st.st_dev != side.dev {
            return Ok(None);
        }
        let fd =
            open_dir(Some(&side.fd), &node.name).with_context(|| format!("open {}", show(path)))?;
        Ok(Some(Side { fd, dev: side.dev }))
    }

    /// Compares two directories' contents.
    pub fn dirs(&mut self, at: &[u8], so: &Side, sn: &Side) -> Result<()> {
        let old = read_nodes(&so.fd, at)?;
        let new = read_nodes(&sn.fd, at)?;
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let ord = match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) => o.name.as_bytes().cmp(n.name.as_bytes()),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    self.one(at, so, &old[i], Change::Removed)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.one(at, sn, &new[j], Change::Added)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let path = join(at, &old[i].name);
                    self.compare(&path, (so, &old[i]), (sn, &new[j]))?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    /// Records `node` (and, for a directory, everything under it when
    /// recursing) as added or removed.
    pub fn one(&mut self, at: &[u8], side: &Side, node: &Node, change: Change) -> Result<()> {
        let path = join(at, &node.name);
        let attrs = Some(node.attrs());
        let (old, new) = match change {
            Change::Removed => (attrs, None),
            _ => (None, attrs),
        };
        self.push(
            &path,
            Entry {
                path: show(&path),
                change,
                what: Vec::new(),
                old,
                new,
            },
        );
        if self.recurse && node.kind() == Kind::Dir {
            if let Some(child) = self.enter(side, node, &path)? {
                self.all(&path, &child, change)?;
            }
        }
        Ok(())
    }

    /// Records everything under the directory `side` as added or removed.
    fn all(&mut self, at: &[u8], side: &Side, change: Change) -> Result<()> {
        for node in read_nodes(&side.fd, at)? {
            self.one(at, side, &node, change)?;
        }
        Ok(())
    }

    /// Compares the two roots' own attributes (mode, owner).
    pub fn roots(&mut self, (_, no): &(Side, Node), (_, nn): &(Side, Node)) {
        let mut what = Vec::new();
        if no.st.st_mode & 0o7777 != nn.st.st_mode & 0o7777 {
            what.push(Aspect::Mode);
        }
        if (no.st.st_uid, no.st.st_gid) != (nn.st.st_uid, nn.st.st_gid) {
            what.push(Aspect::Owner);
        }
        if !what.is_empty() {
            self.push(
                b"/",
                Entry {
                    path: "/".into(),
                    change: Change::Modified,
                    what,
                    old: Some(no.attrs()),
                    new: Some(nn.attrs()),
                },
            );
        }
    }
}

/// The tree at `dir`, opened: its root directory and its own stat.
pub(super) fn root_side(dir: &Path) -> Result<(Side, Node)> {
    let fd = open_dir(None, dir.as_os_str()).with_context(|| format!("open {}", dir.display()))?;
    let st =
        nix::sys::stat::fstat(fd.as_raw_fd()).with_context(|| format!("stat {}", dir.display()))?;
    let node = Node {
        name: OsString::from("."),
        st,
        target: None,
    };
    Ok((Side { fd, dev: st.st_dev }, node))
}

/// Opens directory `name` of `side` for a lookup: `None` when it is not a
/// directory there (missing, a symlink, another type) or is on another file
/// system, as the walk would not enter it either.
pub(super) fn open_child_dir(side: &Side, name: &OsStr) -> Result<Option<Side>> {
    match open_dir(Some(&side.fd), name) {
        Ok(fd) => {
            let st = nix::sys::stat::fstat(fd.as_raw_fd()).context("stat a directory")?;
            Ok((st.st_dev == side.dev).then_some(Side { fd, dev: side.dev }))
        }
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP) => {
            Ok(None)
        }
        Err(e) => Err(e).context("open a directory"),
    }
}

/// Every difference from the tree at `old` to the tree at `new`, directories
/// before their content, siblings by name.
pub fn diff_trees(old: &Path, new: &Path) -> Result<Vec<Entry>> {
    let o = root_side(old)?;
    let n = root_side(new)?;
    let fsid = |s: &Side| crate::history::extents::btrfs_fsid(&s.fd);
    let one_btrfs = fsid(&o.0).is_some_and(|a| Some(a) == fsid(&n.0));
    let mut walk = Walk {
        out: Vec::new(),
        one_btrfs,
        recurse: true,
    };
    walk.roots(&o, &n);
    walk.dirs(b"/", &o.0, &n.0)?;
    Ok(walk.out.into_iter().map(|(_, e)| e).collect())
}
