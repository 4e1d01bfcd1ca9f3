//! Unpacking a sidus tar into a new, empty tree, as a stream.
//!
//! The archive is untrusted. Members must come in the order of the manifest it
//! carries (sorted paths, each once), so a member outside the manifest, a
//! repeat, or one that comes too early is refused by name; paths are plain
//! relative names (no `..`, no leading `/`); every parent is opened beneath the
//! tree's root with no symlink followed, and hard links are made from a
//! descriptor opened the same way, so no member can reach outside the tree.
//! Each file's bytes are hashed as they are written and checked against the
//! manifest. Owners are set before modes (chown clears setuid) and xattrs last
//! (chown clears security.capability); directory times at the end.

use super::tarball::Attrs;
use crate::history::diff::Kind;
use crate::manifest::{shown, Manifest};
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_XDEV);

/// The attributes a tar member carries, from its header and pax records.
pub fn member_attrs<R: Read>(e: &mut tar::Entry<R>) -> Result<Attrs> {
    let h = e.header();
    let mut a = Attrs {
        mode: h.mode().context("bad mode")? & 0o7777,
        uid: h.uid().context("bad uid")? as u32,
        gid: h.gid().context("bad gid")? as u32,
        mtime: h.mtime().context("bad mtime")? as i64,
        xattrs: Vec::new(),
    };
    if let Some(pax) = e.pax_extensions().context("bad pax header")? {
        for x in pax {
            let x = x.context("bad pax record")?;
            let key = x.key_bytes();
            let num = || -> Result<i64> {
                std::str::from_utf8(x.value_bytes())
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse().ok())
                    .with_context(|| format!("bad pax record {}", String::from_utf8_lossy(key)))
            };
            match key {
                b"uid" => a.uid = num()? as u32,
                b"gid" => a.gid = num()? as u32,
                b"mtime" => a.mtime = num()?,
                k if k.starts_with(b"SCHILY.xattr.") => {
                    a.xattrs.push((k[13..].to_vec(), x.value_bytes().to_vec()));
                }
                _ => {}
            }
        }
    }
    a.xattrs.sort();
    Ok(a)
}

/// A member's path as a plain relative name, or a refusal.
pub fn plain_path(raw: &[u8]) -> Result<Vec<u8>> {
    let p = raw.strip_suffix(b"/").unwrap_or(raw);
    let ok = !p.is_empty()
        && !p.starts_with(b"/")
        && p.split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..");
    if !ok {
        bail!(
            "the archive has a member named '{}', which is not a plain path inside a tree",
            shown(raw)
        );
    }
    Ok(p.to_vec())
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Puts the xattrs on through `set`.
fn set_xattrs(
    xattrs: &[(Vec<u8>, Vec<u8>)],
    set: impl Fn(&CString, &[u8]) -> rustix::io::Result<()>,
) -> rustix::io::Result<()> {
    for (name, value) in xattrs {
        let name = CString::new(name.clone()).map_err(|_| Errno::INVAL)?;
        set(&name, value)?;
    }
    Ok(())
}

/// Owner, mode and xattrs of an open file or directory, in that order.
fn apply_fd(fd: impl AsFd, a: &Attrs) -> rustix::io::Result<()> {
    let fd = fd.as_fd();
    rustix::fs::fchown(fd, Some(Uid::from_raw(a.uid)), Some(Gid::from_raw(a.gid)))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(a.mode))?;
    set_xattrs(&a.xattrs, |n, v| {
        rustix::fs::fsetxattr(fd, n.as_c_str(), v, XattrFlags::empty())
    })
}

/// The same for `name` in `dir` that is not opened (a symlink, a device, a
/// FIFO), never following a symlink.
fn apply_at(dir: &OwnedFd, name: &CString, a: &Attrs, symlink: bool) -> rustix::io::Result<()> {
    rustix::fs::chownat(
        dir,
        name.as_c_str(),
        Some(Uid::from_raw(a.uid)),
        Some(Gid::from_raw(a.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !symlink {
        // Just made by us in a tree only we write to: not a symlink.
        rustix::fs::chmodat(
            dir,
            name.as_c_str(),
            Mode::from_raw_mode(a.mode),
            AtFlags::empty(),
        )?;
    }
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = CString::new(path).map_err(|_| Errno::INVAL)?;
    set_xattrs(&a.xattrs, |n, v| {
        rustix::fs::lsetxattr(path.as_c_str(), n.as_c_str(), v, XattrFlags::empty())
    })?;
    rustix::fs::utimensat(
        dir,
        name.as_c_str(),
        &times(a.mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Unpacks members into a tree, checking them against a manifest.
pub struct Extractor<'m> {
    root: OwnedFd,
    manifest: &'m Manifest,
    /// The index of the manifest entry the next member must be.
    next: usize,
    /// The last parent directory opened, with its path.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories and their times, set once their content is in.
    dirs: Vec<(Vec<u8>, i64)>,
    root_mtime: i64,
}

impl<'m> Extractor<'m> {
    /// Unpacks into the (empty) tree at `root` the members `manifest` lists.
    pub fn new(root: &Path, manifest: &'m Manifest) -> Result<Extractor<'m>> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {}", root.display()))?;
        Ok(Extractor {
            root: fd,
            manifest,
            next: 1,
            parent: None,
            dirs: Vec::new(),
            root_mtime: 0,
        })
    }

    /// Gives the tree's root the attributes of the archive's `./` member.
    pub fn root(&mut self, a: &Attrs) -> Result<()> {
        apply_fd(&self.root, a).context("set the attributes of the tree's root")?;
        self.root_mtime = a.mtime;
        Ok(())
    }

    fn parent_of(&mut self, rel: &[u8]) -> Result<(&OwnedFd, CString)> {
        let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&b""[..], rel),
        };
        if self.parent.as_ref().is_none_or(|(p, _)| p != dir) {
            let fd = if dir.is_empty() {
                rustix::fs::openat(
                    &self.root,
                    c".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            } else {
                rustix::fs::openat2(
                    &self.root,
                    OsStr::from_bytes(dir),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    BENEATH,
                )
            }
            .with_context(|| format!("open the directory of /{}", shown(rel)))?;
            self.parent = Some((dir.to_vec(), fd));
        }
        let name = CString::new(name).context("a member name with a NUL byte")?;
        Ok((&self.parent.as_ref().expect("just set").1, name))
    }

    /// Unpacks one member (after `./` and the `.sidus-archive/` members).
    pub fn member<R: Read>(&mut self, e: &mut tar::Entry<R>, progress: &Progress) -> Result<()> {
        let rel = plain_path(&e.path_bytes())?;
        let mut path = b"/".to_vec();
        path.extend_from_slice(&rel);
        let at = shown(&path);
        let Some(want) = self.manifest.entries.get(self.next) else {
            bail!("the archive has {at}, which its manifest does not list");
        };
        if want.path != path {
            bail!("the archive has {at} where its manifest lists {} next: not an archive of `sidus export`, or damaged", shown(&want.path));
        }
        self.next += 1;
        let a = member_attrs(e).with_context(|| format!("read the header of {at}"))?;
        let ty = e.header().entry_type();
        let kind = match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Fifo => Kind::Fifo,
            other => bail!("the archive's member {at} is of a type sidus never writes ({other:?})"),
        };
        if kind != want.kind {
            bail!(
                "the archive has {at} as a {} where its manifest says {}",
                kind.as_str(),
                want.kind.as_str()
            );
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let (major, minor) = (
            e.header().device_major().ok().flatten().unwrap_or(0),
            e.header().device_minor().ok().flatten().unwrap_or(0),
        );
        let (dir, name) = self.parent_of(&rel)?;
        let dir = dir.try_clone().context("duplicate a descriptor")?;
        let create = |what: &str| format!("create {at} ({what})");
        match ty {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&dir, name.as_c_str(), Mode::from_raw_mode(0o700)) {
                    // A fresh file system's own lost+found (ext4) is already there.
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e).with_context(|| create("directory")),
                }
                let fd = rustix::fs::openat(
                    &dir,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| create("directory"))?;
                apply_fd(&fd, &a).with_context(|| format!("set the attributes of {at}"))?;
                self.dirs.push((rel, a.mtime));
            }
            tar::EntryType::Link => {
                let target = plain_path(&link.unwrap_or_default())?;
                let src = rustix::fs::openat2(
                    &self.root,
                    OsStr::from_bytes(&target),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    BENEATH,
                )
                .with_context(|| {
                    format!("open /{}, the hard link target of {at}", shown(&target))
                })?;
                let st = rustix::fs::fstat(&src)?;
                if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
                    bail!(
                        "the archive links {at} to /{}, which is not a regular file",
                        shown(&target)
                    );
                }
                rustix::fs::linkat(&src, c"", &dir, name.as_c_str(), AtFlags::EMPTY_PATH)
                    .with_context(|| create("hard link"))?;
            }
            tar::EntryType::Symlink => {
                let target = link.unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &dir, name.as_c_str())
                    .with_context(|| create("symlink"))?;
                apply_at(&dir, &name, &a, true)
                    .with_context(|| format!("set the attributes of {at}"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match ty {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                rustix::fs::mknodat(
                    &dir,
                    name.as_c_str(),
                    ft,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .with_context(|| create("device or fifo"))?;
                apply_at(&dir, &name, &a, false)
                    .with_context(|| format!("set the attributes of {at}"))?;
            }
            _ => {
                let fd = rustix::fs::openat(
                    &dir,
                    name.as_c_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .with_context(|| create("file"))?;
                let mut f = std::fs::File::from(fd);
                let size = e.header().entry_size().unwrap_or(0);
                let mut h = blake3::Hasher::new();
                let mut buf = vec![0u8; 256 * 1024];
                let mut got = 0u64;
                loop {
                    let n = e
                        .read(&mut buf)
                        .with_context(|| format!("read {at} from the archive"))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    std::io::Write::write_all(&mut f, &buf[..n])
                        .with_context(|| format!("write {at}"))?;
                    got += n as u64;
                    progress.add(n as u64);
                }
                if got != size {
                    bail!("the archive is truncated: it ends inside {at} ({got} of {size} bytes)");
                }
                if want.size != Some(size) || want.hash != Some(*h.finalize().as_bytes()) {
                    bail!("the content of {at} in the archive does not match its manifest");
                }
                apply_fd(&f, &a).with_context(|| format!("set the attributes of {at}"))?;
                rustix::fs::futimens(&f, &times(a.mtime))?;
            }
        }
        Ok(())
    }

    /// Checks every entry of the manifest came, then sets directory times.
    pub fn finish(self) -> Result<()> {
        let total = self.manifest.entries.len();
        if self.next < total {
            bail!(
                "the archive is truncated: it ends before {} ({} of {total} entries)",
                shown(&self.manifest.entries[self.next].path),
                self.next
            );
        }
        for (rel, mtime) in self.dirs.iter().rev() {
            let fd = rustix::fs::openat2(
                &self.root,
                OsStr::from_bytes(rel),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            )
            .with_context(|| format!("open /{}", shown(rel)))?;
            rustix::fs::futimens(&fd, &times(*mtime))?;
        }
        rustix::fs::futimens(&self.root, &times(self.root_mtime))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_pass() {
        assert_eq!(plain_path(b"etc/motd").unwrap(), b"etc/motd");
        assert_eq!(plain_path(b"etc/").unwrap(), b"etc");
        for bad in [
            &b"/etc"[..],
            b"../x",
            b"a/../b",
            b"./a",
            b"a//b",
            b"",
            b"a/./b",
        ] {
            assert!(plain_path(bad).is_err(), "{}", shown(bad));
        }
    }
}
