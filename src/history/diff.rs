//! What differs between two directory trees: a walk of both, side by side.
//!
//! Both trees are treated as hostile: every entry is opened relative to its
//! parent's descriptor with `O_NOFOLLOW`, symlinks are compared by target and
//! never followed, and the walk does not descend into other file systems (a
//! mount, a nested btrfs subvolume). Compared: type, permission bits (with
//! setuid/setgid/sticky), owner, size, content (byte by byte, only when sizes are
//! equal), symlink target and device number. Not compared: times, xattrs, hard
//! link structure, directory sizes.
//!
//! Equal-sized files are read side by side, except on one btrfs file system
//! where both map exactly the same extents ([`crate::history::extents`]): then they are
//! equal without reading, so two snapshots of a big tree compare in the time
//! of a metadata walk.

use anyhow::{Context, Result};
use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use serde::Serialize;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The type of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

impl Kind {
    fn of(st: &FileStat) -> Kind {
        Kind::from_mode(st.st_mode)
    }

    /// The type a `st_mode` names.
    pub(crate) fn from_mode(mode: u32) -> Kind {
        match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Symlink,
            SFlag::S_IFCHR => Kind::Char,
            SFlag::S_IFBLK => Kind::Block,
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFSOCK => Kind::Socket,
            _ => Kind::File,
        }
    }

    /// The short name used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// What is recorded of one side of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attrs {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky, in octal (`0644`).
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes, for regular files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Target, for symlinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `major:minor`, for devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// How an entry changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new tree.
    Added,
    /// Only in the old tree.
    Removed,
    /// In both, different.
    Modified,
}

/// An aspect of an entry that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// File type.
    Type,
    /// Permission bits.
    Mode,
    /// uid or gid.
    Owner,
    /// Size of a regular file.
    Size,
    /// Bytes of a regular file.
    Content,
    /// Symlink target.
    Target,
    /// Device number.
    Device,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The path, absolute within the tree (`/etc/motd`). Names that are not UTF-8
    /// are shown with U+FFFD.
    pub path: String,
    /// Added, removed or modified.
    pub change: Change,
    /// For `modified`: what differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<Aspect>,
    /// The old side, unless added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Attrs>,
    /// The new side, unless removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Attrs>,
}

/// An entry of a walked directory: its stat and, for symlinks, the target.
struct Node {
    name: OsString,
    st: FileStat,
    target: Option<OsString>,
}

impl Node {
    fn kind(&self) -> Kind {
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
struct Side {
    fd: OwnedFd,
    dev: u64,
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

/// The entries of `dir`, sorted by name bytes.
fn read_nodes(dir: &OwnedFd, at: &str) -> Result<Vec<Node>> {
    let fd = nix::unistd::dup(dir.as_raw_fd()).with_context(|| format!("read {at}"))?;
    let mut d = Dir::from_fd(fd).with_context(|| format!("read {at}"))?;
    let mut nodes = Vec::new();
    for entry in d.iter() {
        let entry = entry.with_context(|| format!("read {at}"))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let st = fstatat(
            Some(dir.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("stat {}", join(at, name)))?;
        let target = if Kind::of(&st) == Kind::Symlink {
            Some(
                readlinkat(Some(dir.as_raw_fd()), name)
                    .with_context(|| format!("read link {}", join(at, name)))?,
            )
        } else {
            None
        };
        nodes.push(Node {
            name: name.to_owned(),
            st,
            target,
        });
    }
    nodes.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(nodes)
}

fn join(dir: &str, name: &OsStr) -> String {
    let name = name.to_string_lossy();
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
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

struct Walk {
    out: Vec<Entry>,
    /// Both trees are on one btrfs file system: files mapping the same extents
    /// are equal without reading them (see [`crate::history::extents`]).
    one_btrfs: bool,
}

impl Walk {
    /// Compares `old` and `new`, both entries named `name` of the directories
    /// `po` and `pn`, shown at `path`.
    fn compare(&mut self, path: &str, po: (&Side, &Node), pn: (&Side, &Node)) -> Result<()> {
        let (so, o) = po;
        let (sn, n) = pn;
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
                        open_file(&so.fd, &o.name).with_context(|| format!("open old {path}"))?;
                    let fnew =
                        open_file(&sn.fd, &n.name).with_context(|| format!("open new {path}"))?;
                    let shared =
                        self.one_btrfs && crate::history::extents::share_all_extents(&fo, &fnew);
                    if !shared
                        && !same_content(fo, fnew).with_context(|| format!("compare {path}"))?
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
            self.out.push(Entry {
                path: path.to_string(),
                change: Change::Modified,
                what,
                old: Some(o.attrs()),
                new: Some(n.attrs()),
            });
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
    fn enter(&self, side: &Side, node: &Node, path: &str) -> Result<Option<Side>> {
        if node.st.st_dev != side.dev {
            return Ok(None);
        }
        let fd = open_dir(Some(&side.fd), &node.name).with_context(|| format!("open {path}"))?;
        Ok(Some(Side { fd, dev: side.dev }))
    }

    /// Compares two directories' contents.
    fn dirs(&mut self, at: &str, so: &Side, sn: &Side) -> Result<()> {
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

    /// Records `node` (and, for a directory, everything under it) as added or removed.
    fn one(&mut self, at: &str, side: &Side, node: &Node, change: Change) -> Result<()> {
        let path = join(at, &node.name);
        let attrs = Some(node.attrs());
        let (old, new) = match change {
            Change::Removed => (attrs, None),
            _ => (None, attrs),
        };
        self.out.push(Entry {
            path: path.clone(),
            change,
            what: Vec::new(),
            old,
            new,
        });
        if node.kind() == Kind::Dir {
            if let Some(child) = self.enter(side, node, &path)? {
                self.all(&path, &child, change)?;
            }
        }
        Ok(())
    }

    /// Records everything under the directory `side` as added or removed.
    fn all(&mut self, at: &str, side: &Side, change: Change) -> Result<()> {
        for node in read_nodes(&side.fd, at)? {
            self.one(at, side, &node, change)?;
        }
        Ok(())
    }
}

fn root_side(dir: &Path) -> Result<(Side, Node)> {
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

/// Every difference from the tree at `old` to the tree at `new`, directories
/// before their content, siblings by name.
pub fn diff_trees(old: &Path, new: &Path) -> Result<Vec<Entry>> {
    let (so, no) = root_side(old)?;
    let (sn, nn) = root_side(new)?;
    let fsid = |s: &Side| crate::history::extents::btrfs_fsid(&s.fd);
    let one_btrfs = fsid(&so).is_some_and(|a| Some(a) == fsid(&sn));
    let mut walk = Walk {
        out: Vec::new(),
        one_btrfs,
    };
    let mut what = Vec::new();
    if no.st.st_mode & 0o7777 != nn.st.st_mode & 0o7777 {
        what.push(Aspect::Mode);
    }
    if (no.st.st_uid, no.st.st_gid) != (nn.st.st_uid, nn.st.st_gid) {
        what.push(Aspect::Owner);
    }
    if !what.is_empty() {
        walk.out.push(Entry {
            path: "/".into(),
            change: Change::Modified,
            what,
            old: Some(no.attrs()),
            new: Some(nn.attrs()),
        });
    }
    walk.dirs("/", &so, &sn)?;
    Ok(walk.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn summary(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                let what: Vec<String> = e
                    .what
                    .iter()
                    .map(|a| format!("{a:?}").to_lowercase())
                    .collect();
                format!("{:?} {} {}", e.change, e.path, what.join(","))
                    .trim()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn walk_reports_each_kind_of_change_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            fs::create_dir_all(d.join("etc/sub")).unwrap();
            fs::write(d.join("etc/same"), "same").unwrap();
            fs::write(d.join("etc/sub/deep"), "x").unwrap();
        }
        fs::write(a.join("etc/motd"), "hello\n").unwrap();
        fs::write(b.join("etc/motd"), "HELLO\n").unwrap(); // same size, new bytes
        fs::write(a.join("etc/grow"), "1").unwrap();
        fs::write(b.join("etc/grow"), "12").unwrap();
        fs::write(a.join("etc/run"), "#!").unwrap();
        fs::write(b.join("etc/run"), "#!").unwrap();
        fs::set_permissions(b.join("etc/run"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::write(a.join("removed"), "bye").unwrap();
        fs::create_dir_all(b.join("added/dir")).unwrap();
        fs::write(b.join("added/dir/f"), "new").unwrap();
        symlink("/etc/same", a.join("link")).unwrap();
        symlink("/etc/motd", b.join("link")).unwrap();
        // A link to a directory outside the tree is never walked into.
        symlink("/", a.join("escape")).unwrap();
        symlink("/", b.join("escape")).unwrap();
        fs::write(a.join("etc/sub/became-link"), "f").unwrap();
        symlink("deep", b.join("etc/sub/became-link")).unwrap();

        let got = summary(&diff_trees(&a, &b).unwrap());
        assert_eq!(
            got,
            [
                "Added /added",
                "Added /added/dir",
                "Added /added/dir/f",
                "Modified /etc/grow size,content",
                "Modified /etc/motd content",
                "Modified /etc/run mode",
                "Modified /etc/sub/became-link type",
                "Modified /link target",
                "Removed /removed",
            ]
        );
        assert!(diff_trees(&a, &a).unwrap().is_empty());
        let reverse = summary(&diff_trees(&b, &a).unwrap());
        assert_eq!(reverse[0], "Removed /added");
        let e = diff_trees(&a, &b).unwrap();
        let run = e.iter().find(|e| e.path == "/etc/run").unwrap();
        assert_eq!(run.old.as_ref().unwrap().mode, "0644");
        assert_eq!(run.new.as_ref().unwrap().mode, "4755");
        let link = e.iter().find(|e| e.path == "/link").unwrap();
        assert_eq!(
            link.new.as_ref().unwrap().target.as_deref(),
            Some("/etc/motd")
        );
    }

    #[test]
    fn a_directory_replaced_by_a_file_lists_its_old_content_as_removed() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::create_dir_all(a.join("x/y")).unwrap();
        fs::write(a.join("x/y/z"), "").unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("x"), "").unwrap();
        assert_eq!(
            summary(&diff_trees(&a, &b).unwrap()),
            ["Modified /x type", "Removed /x/y", "Removed /x/y/z"]
        );
    }

    #[test]
    fn big_files_differing_late_are_found() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        let mut data = vec![7u8; 300 * 1024 + 5];
        fs::write(a.join("big"), &data).unwrap();
        *data.last_mut().unwrap() = 8;
        fs::write(b.join("big"), &data).unwrap();
        assert_eq!(
            summary(&diff_trees(&a, &b).unwrap()),
            ["Modified /big content"]
        );
    }
}
