//! Paths inside an untrusted tree: every one is resolved from a handle on the
//! tree's root with `openat2(RESOLVE_IN_ROOT)`, so no symlink in the tree, however
//! it is written, can lead sidus out of it.

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Symlinks are followed, but `/` and `..` stop at the tree's root; `/proc`
/// magic links (which jump anywhere) are refused.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
/// No symlink anywhere on the path: for mount points and for what sidus deletes.
const NO_LINKS: ResolveFlags = IN_ROOT.union(ResolveFlags::NO_SYMLINKS);

/// A path in a tree that could not be reached: says which, in which tree, and
/// why in words (a bare "Too many levels of symbolic links" names nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    errno: Errno,
    rel: String,
    root: PathBuf,
    /// Whether symlinks were refused on the way (ELOOP then means "a link").
    no_links: bool,
}

impl PathError {
    /// The kernel's error, for callers that treat some as "missing".
    pub fn errno(&self) -> Errno {
        self.errno
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.errno {
            Errno::LOOP if self.no_links => "it is, or goes through, a symlink".to_string(),
            Errno::LOOP => "too many levels of symbolic links (a symlink loop in the tree?)".into(),
            Errno::XDEV => "it leads out of the tree".into(),
            Errno::NOENT => "no such file or directory".into(),
            Errno::NOTDIR => "a component of it is not a directory".into(),
            e => e.to_string(),
        };
        write!(
            f,
            "cannot reach {} in {}: {why}",
            self.rel,
            self.root.display()
        )
    }
}

impl std::error::Error for PathError {}

/// The root directory of a tree, held open.
#[derive(Debug)]
pub struct TreeRoot {
    fd: OwnedFd,
    path: PathBuf,
}

impl TreeRoot {
    /// Opens the tree at `path` (a path sidus itself chose, in the store).
    pub fn open(path: &Path) -> Result<TreeRoot> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open tree {}", path.display()))?;
        Ok(TreeRoot {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The tree's path on the host, for messages and for the mount table.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle every in-tree path is resolved from.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The root's own `stat`: its device identifies the tree's file system.
    pub fn stat(&self) -> Result<Stat> {
        Ok(rfs::fstat(&self.fd)?)
    }

    fn error(&self, rel: &str, errno: Errno, no_links: bool) -> PathError {
        PathError {
            errno,
            rel: rel.to_string(),
            root: self.path.clone(),
            no_links,
        }
    }

    /// Opens `rel`, following symlinks only inside the tree.
    pub fn open_in(&self, rel: &str, flags: OFlags) -> Result<OwnedFd, PathError> {
        rfs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
        .map_err(|e| self.error(rel, e, false))
    }

    /// Opens `rel` refusing any symlink on the way.
    pub fn open_no_links(&self, rel: &str, flags: OFlags) -> Result<OwnedFd, PathError> {
        rfs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            NO_LINKS,
        )
        .map_err(|e| self.error(rel, e, true))
    }

    /// An `O_PATH` handle on `rel` (any type), reached without any symlink.
    pub fn no_link_handle(&self, rel: &str) -> Result<OwnedFd, PathError> {
        self.open_no_links(rel, OFlags::PATH | OFlags::NOFOLLOW)
    }

    /// The directory holding `rel` (following in-tree links) and `rel`'s last
    /// name, which the caller then uses with `*at` calls that do not follow it.
    /// An error names `rel`.
    pub fn parent(&self, rel: &str) -> Result<(OwnedFd, String), PathError> {
        let (dir, name) = split(rel);
        let dir = if dir.is_empty() { "." } else { dir };
        let fd = self
            .open_in(dir, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| self.error(rel, e.errno, false))?;
        Ok((fd, name.to_string()))
    }

    /// `lstat` of `rel`: the last component is not followed; `None` when missing
    /// (or when its directory is missing).
    pub fn lstat(&self, rel: &str) -> Result<Option<Stat>, PathError> {
        let (dir, name) = match self.parent(rel) {
            Ok(p) => p,
            Err(e) if matches!(e.errno, Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.error(rel, e, false)),
        }
    }

    /// Creates the directories of `rel` that are missing (mode `mode`), each with
    /// `mkdirat` in its already-opened parent, and returns the ones it created.
    pub fn mkdir_all(&self, rel: &str, mode: u32) -> Result<Vec<String>> {
        let mut created = Vec::new();
        let mut done = String::new();
        for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
            let parent = if done.is_empty() { "." } else { done.as_str() };
            let next = if done.is_empty() {
                comp.to_string()
            } else {
                format!("{done}/{comp}")
            };
            match self.open_in(&next, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => {}
                Err(e) if e.errno == Errno::NOENT => {
                    let dir = self.open_in(parent, OFlags::PATH | OFlags::DIRECTORY)?;
                    rfs::mkdirat(&dir, comp, Mode::from_raw_mode(mode))
                        .with_context(|| format!("create {next} in {}", self.path.display()))?;
                    created.push(next.clone());
                }
                Err(e) => return Err(e.into()),
            }
            done = next;
        }
        Ok(created)
    }

    /// A mount point: a directory reached without any symlink, held by an
    /// `O_PATH` handle so it cannot be swapped before the mount.
    pub fn mount_point(&self, rel: &str) -> Result<OwnedFd> {
        self.open_no_links(rel, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW)
            .map_err(|e| refusal(&self.path, rel, e.errno))
    }

    /// A file to mount over: a regular file reached without any symlink.
    pub fn file_mount_point(&self, rel: &str) -> Result<OwnedFd> {
        let fd = self
            .no_link_handle(rel)
            .map_err(|e| refusal(&self.path, rel, e.errno))?;
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            anyhow::bail!(
                "refusing to mount over {rel} in {}: not a regular file",
                self.path.display()
            );
        }
        Ok(fd)
    }
}

fn refusal(root: &Path, rel: &str, e: Errno) -> anyhow::Error {
    let why = match e {
        Errno::LOOP | Errno::XDEV => "it is (or goes through) a symlink".to_string(),
        Errno::NOTDIR => "it is not a directory".to_string(),
        other => other.to_string(),
    };
    anyhow::anyhow!(
        "refusing to mount on {rel} in {}: {why}; a mount point must be a real directory inside the tree",
        root.display()
    )
}

/// Splits `a/b/c` into (`a/b`, `c`).
pub fn split(rel: &str) -> (&str, &str) {
    let rel = rel.trim_end_matches('/');
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// The path through which the kernel reaches what `fd` holds, for syscalls that
/// take only paths (mount).
pub fn fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// Creates `name` in `dir` as a new file (never an existing one, never through
/// a symlink) with `mode` and `contents`, synced.
pub fn create_new(dir: &impl AsFd, name: &str, mode: u32, contents: &[u8]) -> Result<(), Errno> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    // The umask may have narrowed the mode.
    rfs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
}

/// Reads `name` in `dir` when it is a regular file of at most `limit` bytes,
/// without following a symlink; `None` when missing or of another type.
pub fn read_regular(dir: &impl AsFd, name: &str, limit: u64) -> Result<Option<Vec<u8>>, Errno> {
    let fd = match rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_size as u64 > limit {
        return Ok(None);
    }
    let mut buf = Vec::new();
    use std::io::Read;
    std::fs::File::from(fd)
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    Ok(Some(buf))
}

/// Where a symlink at `link_dir/..` pointing to `target` leads inside the tree,
/// as the kernel resolves it under RESOLVE_IN_ROOT (`..` stops at the root),
/// assuming no further symlinks; relative to the root, without a leading `/`.
pub fn lexical_in_root(link_dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link_dir.split('/').filter(|c| !c.is_empty()).collect()
    };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_the_parent_and_the_last_component() {
        assert_eq!(split("usr/sbin/policy-rc.d"), ("usr/sbin", "policy-rc.d"));
        assert_eq!(split("tmp"), ("", "tmp"));
        assert_eq!(split("run/"), ("", "run"));
    }

    #[test]
    fn links_resolve_inside_the_root_as_the_kernel_does() {
        let cases = [
            (
                "etc",
                "../run/systemd/resolve/stub-resolv.conf",
                "run/systemd/resolve/stub-resolv.conf",
            ),
            (
                "etc",
                "/run/resolvconf/resolv.conf",
                "run/resolvconf/resolv.conf",
            ),
            ("etc", "../../../../../../run/x", "run/x"),
            ("etc", "/etc/shadow", "etc/shadow"),
            ("etc", "resolv.conf.real", "etc/resolv.conf.real"),
            ("etc", "./../run/./a//b", "run/a/b"),
        ];
        for (dir, target, want) in cases {
            assert_eq!(lexical_in_root(dir, target), want, "{dir} -> {target}");
        }
    }

    #[test]
    fn a_symlink_never_leads_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir(tree.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../..", tree.path().join("etc/up")).unwrap();
        let root = TreeRoot::open(tree.path()).unwrap();
        // Absolute and `..` links both stay in the tree: the host file is not found.
        assert_eq!(
            root.open_in("escape/secret", OFlags::RDONLY)
                .unwrap_err()
                .errno(),
            Errno::NOENT
        );
        let up = root
            .open_in("etc/up", OFlags::PATH | OFlags::DIRECTORY)
            .unwrap();
        assert_eq!(rfs::fstat(&up).unwrap().st_ino, root.stat().unwrap().st_ino);
        // No mount point through a link, and none that is a link.
        assert!(root.mount_point("escape").is_err());
        assert!(root.mount_point("etc/up").is_err());
        root.mount_point("etc").unwrap();
        // Creating a file never goes through a link planted at its name.
        std::os::unix::fs::symlink(outside.path().join("new"), tree.path().join("etc/new"))
            .unwrap();
        let (dir, name) = root.parent("etc/new").unwrap();
        assert_eq!(
            create_new(&dir, &name, 0o644, b"x").unwrap_err(),
            Errno::EXIST
        );
        assert!(!outside.path().join("new").exists());
        assert_eq!(read_regular(&dir, "new", 10).unwrap(), None);
        // mkdir_all creates inside the tree, never at a link's host target.
        let made = root.mkdir_all("escape2/a", 0o755).unwrap();
        assert_eq!(made, ["escape2", "escape2/a"]);
        // A dangling in-tree link where a directory should be: refused, not followed.
        assert!(root.mkdir_all("escape/b", 0o755).is_err());
        assert!(!outside.path().join("b").exists());
    }

    #[test]
    fn a_symlink_loop_is_named_with_its_path_in_the_tree() {
        let tree = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("etc", tree.path().join("etc")).unwrap();
        std::fs::create_dir(tree.path().join("usr")).unwrap();
        std::os::unix::fs::symlink("../usr/bin", tree.path().join("usr/bin")).unwrap();
        let root = TreeRoot::open(tree.path()).unwrap();
        let top = tree.path().display();
        let e = root.lstat("etc/resolv.conf").unwrap_err();
        assert_eq!(e.errno(), Errno::LOOP);
        assert_eq!(
            e.to_string(),
            format!(
                "cannot reach etc/resolv.conf in {top}: too many levels of symbolic links \
                 (a symlink loop in the tree?)"
            )
        );
        let e = root.open_in("usr/bin/sh", OFlags::PATH).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(&format!("cannot reach usr/bin/sh in {top}: too many")));
        // Where links are refused, the error says so rather than "loop".
        let e = root.open_no_links("usr/bin", OFlags::PATH).unwrap_err();
        assert!(
            e.to_string().ends_with("it is, or goes through, a symlink"),
            "{e}"
        );
        // mkdir_all names the path it could not reach.
        let e = root.mkdir_all("etc/x", 0o755).unwrap_err();
        assert!(
            format!("{e:#}").contains(&format!("cannot reach etc in {top}")),
            "{e:#}"
        );
    }
}
