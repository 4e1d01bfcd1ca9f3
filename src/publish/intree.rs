//! Writing files into an untrusted tree, and reading the few that publish
//! checks. Every path is resolved from the tree's root with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the tree (`/etc` -> `/host/etc`,
//! an absolute link, `..` chains) stays inside the tree: a write never lands on
//! the host, a read never reads it. Files are replaced whole: temp file, fsync,
//! rename, fsync of the directory.

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// An open handle on a tree's root directory.
pub struct TreeRoot {
    root: OwnedFd,
    shown: PathBuf,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// `rel` as plain components, refusing `..` and anything that is not a name.
fn components(rel: &Path) -> Result<Vec<&std::ffi::OsStr>> {
    rel.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => bail!("{}: not a plain path inside the tree", rel.display()),
        })
        .collect()
}

impl TreeRoot {
    /// Opens the tree mounted at `root`.
    pub fn open(root: &Path) -> Result<TreeRoot> {
        let fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open tree {}", root.display()))?;
        Ok(TreeRoot {
            root: fd,
            shown: root.to_path_buf(),
        })
    }

    fn shown(&self, rel: &Path) -> PathBuf {
        self.shown.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    fn open_in(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rustix::fs::openat2(
            &self.root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
    }

    /// Opens directory `rel`, creating it (mode 0755) and its parents as needed.
    fn dir(&self, rel: &Path) -> Result<OwnedFd> {
        let mut cur = PathBuf::new();
        let mut fd = self
            .open_in(&cur, OFlags::DIRECTORY | OFlags::RDONLY)
            .with_context(|| format!("open {}", self.shown.display()))?;
        for name in components(rel)? {
            cur.push(name);
            fd = match self.open_in(&cur, OFlags::DIRECTORY | OFlags::RDONLY) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("create {}", self.shown(&cur).display()))
                        }
                    }
                    self.open_in(&cur, OFlags::DIRECTORY | OFlags::RDONLY)
                        .with_context(|| format!("open {}", self.shown(&cur).display()))?
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("open {}", self.shown(&cur).display()))
                }
            };
        }
        Ok(fd)
    }

    fn split<'p>(&self, rel: &'p Path) -> Result<(PathBuf, &'p std::ffi::OsStr)> {
        let parts = components(rel)?;
        let Some((name, dirs)) = parts.split_last() else {
            bail!("{}: a file path needs a name", rel.display());
        };
        Ok((dirs.iter().collect(), name))
    }

    /// Replaces file `rel` with `data` and mode `mode`, creating its directories.
    /// A symlink at `rel` is replaced by the file, never followed.
    pub fn write(&self, rel: &Path, data: &[u8], mode: u32) -> Result<()> {
        let shown = self.shown(rel);
        let (dir_rel, name) = self.split(rel)?;
        let dir = self.dir(&dir_rel)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".sidus-tmp");
        let tmp = Path::new(&tmp_name);
        match rustix::fs::unlinkat(&dir, tmp, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("remove stale temp of {}", shown.display()))
            }
        }
        let write = || -> Result<(), std::io::Error> {
            let fd = rustix::fs::openat(
                &dir,
                tmp,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )?;
            // The umask must not decide whether a hook is executable.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            let mut f = std::fs::File::from(fd);
            f.write_all(data)?;
            f.sync_all()?;
            rustix::fs::renameat(&dir, tmp, &dir, name)?;
            rustix::fs::fsync(&dir)?;
            Ok(())
        };
        write()
            .inspect_err(|_| {
                let _ = rustix::fs::unlinkat(&dir, tmp, AtFlags::empty());
            })
            .with_context(|| format!("write {}", shown.display()))
    }

    /// Makes `rel` a symlink to `target` (replacing a file or link there).
    pub fn symlink(&self, rel: &Path, target: &str) -> Result<()> {
        let shown = self.shown(rel);
        let (dir_rel, name) = self.split(rel)?;
        let dir = self.dir(&dir_rel)?;
        if let Ok(existing) = rustix::fs::readlinkat(&dir, name, Vec::new()) {
            if existing.as_bytes() == target.as_bytes() {
                return Ok(());
            }
        }
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".sidus-tmp");
        let _ = rustix::fs::unlinkat(&dir, &tmp_name, AtFlags::empty());
        rustix::fs::symlinkat(target, &dir, &tmp_name)
            .and_then(|()| rustix::fs::renameat(&dir, &tmp_name, &dir, name))
            .and_then(|()| rustix::fs::fsync(&dir))
            .with_context(|| format!("link {} to {target}", shown.display()))
    }

    /// Whether `rel` exists in the tree (resolved inside it).
    pub fn exists(&self, rel: &Path) -> bool {
        self.open_in(rel, OFlags::PATH).is_ok()
    }

    /// Opens `rel` for reading, resolved inside the tree, when it is a regular
    /// file; `None` when it is missing, unreachable (a link loop) or anything
    /// else: a FIFO or a device node planted in the tree is never opened.
    pub fn open_file(&self, rel: &Path) -> Result<Option<std::fs::File>> {
        let what = || format!("open {}", self.shown(rel).display());
        let fd = match self.open_in(rel, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e).with_context(what),
        };
        let st = rustix::fs::fstat(&fd).with_context(what)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Ok(None);
        }
        // The same path again, now to read: the trees publish reads are
        // read-only snapshots, so it is the file just checked.
        let fd = self.open_in(rel, OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK);
        Ok(Some(std::fs::File::from(fd.with_context(what)?)))
    }

    /// The names in directory `rel` (resolved inside the tree), without `.`
    /// and `..`; `None` when it is missing or not a directory.
    pub fn list(&self, rel: &Path) -> Result<Option<Vec<std::ffi::OsString>>> {
        use std::os::unix::ffi::OsStrExt;
        let what = || format!("read {}", self.shown(rel).display());
        let fd = match self.open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e).with_context(what),
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd).with_context(what)? {
            let name = entry.with_context(what)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(&name).to_os_string());
            }
        }
        names.sort();
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn writes_create_dirs_and_replace_whole_with_exact_mode() {
        let d = tempfile::tempdir().unwrap();
        let t = TreeRoot::open(d.path()).unwrap();
        t.write(Path::new("/etc/initramfs-tools/hooks/x"), b"one", 0o755)
            .unwrap();
        t.write(Path::new("etc/initramfs-tools/hooks/x"), b"two", 0o755)
            .unwrap();
        let p = d.path().join("etc/initramfs-tools/hooks/x");
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"]);
        assert!(t.exists(Path::new("etc/initramfs-tools")));
        assert!(!t.exists(Path::new("usr/share/initramfs-tools")));
        assert!(t.write(Path::new("etc/../x"), b"", 0o644).is_err());
    }

    #[test]
    fn symlinks_in_the_tree_never_lead_outside() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        let host = d.path().join("host");
        fs::create_dir_all(&tree).unwrap();
        fs::create_dir_all(host.join("etc")).unwrap();
        // An absolute link to the "host" and a relative one climbing out.
        symlink(&host, tree.join("abs")).unwrap();
        symlink("../../host/etc", tree.join("etc")).unwrap();
        let t = TreeRoot::open(&tree).unwrap();
        // Resolved in the tree, the links point at directories it lacks: refused.
        assert!(t.write(Path::new("etc/motd"), b"x", 0o644).is_err());
        assert!(t.write(Path::new("abs/etc/motd"), b"x", 0o644).is_err());
        // `..` above the root stays at the root: the write lands in tree/host/etc.
        fs::create_dir_all(tree.join("host/etc")).unwrap();
        t.write(Path::new("etc/motd"), b"in tree", 0o644).unwrap();
        assert!(!host.join("etc/motd").exists(), "wrote onto the host");
        assert_eq!(fs::read(tree.join("host/etc/motd")).unwrap(), b"in tree");
        // A final symlink is replaced, not followed.
        fs::write(host.join("target"), "host file").unwrap();
        symlink(host.join("target"), tree.join("file")).unwrap();
        t.write(Path::new("file"), b"mine", 0o644).unwrap();
        assert_eq!(
            fs::read_to_string(host.join("target")).unwrap(),
            "host file"
        );
        assert!(fs::symlink_metadata(tree.join("file")).unwrap().is_file());
        t.symlink(Path::new("lib/systemd/x.service"), "/etc/x")
            .unwrap();
        t.symlink(Path::new("lib/systemd/x.service"), "/etc/x")
            .unwrap();
        assert_eq!(
            fs::read_link(tree.join("lib/systemd/x.service")).unwrap(),
            Path::new("/etc/x")
        );
    }

    #[test]
    fn reads_stay_in_the_tree_and_open_regular_files_only() {
        use std::io::Read;
        let d = tempfile::tempdir().unwrap();
        let (tree, host) = (d.path().join("tree"), d.path().join("host"));
        fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("shadow"), "root:$6$host:1::::::\n").unwrap();
        fs::write(tree.join("etc/ssh/b"), "key").unwrap();
        fs::write(tree.join("etc/ssh/a"), "").unwrap();
        symlink(host.join("shadow"), tree.join("etc/shadow")).unwrap();
        symlink("ssh/b", tree.join("etc/key-link")).unwrap();
        nix::unistd::mkfifo(&tree.join("etc/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        symlink("loop", tree.join("etc/loop")).unwrap();
        let t = TreeRoot::open(&tree).unwrap();
        assert!(
            t.open_file(Path::new("etc/shadow")).unwrap().is_none(),
            "read the host"
        );
        assert!(t.open_file(Path::new("etc/fifo")).unwrap().is_none());
        assert!(t.open_file(Path::new("etc/loop")).unwrap().is_none());
        assert!(t.open_file(Path::new("etc/ssh")).unwrap().is_none());
        assert!(t.open_file(Path::new("etc/nope/x")).unwrap().is_none());
        let mut s = String::new();
        t.open_file(Path::new("etc/key-link"))
            .unwrap()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "key");
        assert_eq!(t.list(Path::new("/etc/ssh")).unwrap().unwrap(), ["a", "b"]);
        assert!(t.list(Path::new("etc/shadow")).unwrap().is_none());
        assert!(t.list(Path::new("var")).unwrap().is_none());
    }
}
