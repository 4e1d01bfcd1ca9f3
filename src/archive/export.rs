//! `sidus export`: a snapshot as a deterministic tar or squashfs, checked
//! against its manifest as it is read.

use super::tarball::{Attrs, Member, TarWriter};
use super::{squashfs, Info, FORMAT, META_DIR, META_FILES};
use crate::history::diff::Kind;
use crate::manifest::compare::compare;
use crate::manifest::scan::{self, open_beneath};
use crate::manifest::{kept, shown, Entry, Manifest};
use crate::progress::Progress;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use sidus_backends::Snapshot;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The members of [`META_DIR`] for `snap`, in order.
pub fn meta_members(
    snap: &Snapshot,
    m: &Manifest,
    root: &Path,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let info = Info {
        format: FORMAT.into(),
        version: 1,
        tree: snap.tree.to_string(),
        id: snap.id.to_string(),
        root_hash: m.root_hash(),
        entries: m.entries.len(),
        file_bytes: m.file_bytes(),
    };
    let mut info = serde_json::to_vec_pretty(&info).expect("serializable");
    info.push(b'\n');
    let mut meta = serde_json::to_vec_pretty(snap).expect("serializable");
    meta.push(b'\n');
    let packages = super::packages_text(root)?.into_bytes();
    Ok(META_FILES
        .into_iter()
        .zip([info, m.text().into_bytes(), meta, packages])
        .collect())
}

/// Refuses a tree that has its own `/.sidus-archive`: import could not tell it apart.
fn check_exportable(m: &Manifest, what: &str) -> Result<()> {
    let meta = format!("/{META_DIR}");
    if m.entries.iter().any(|e| e.path == meta.as_bytes()) {
        bail!("{what} has a /{META_DIR} of its own, where archives keep their metadata: rename it in the tree, snapshot and export that");
    }
    Ok(())
}

fn stat_beneath(root: impl AsFd, rel: &[u8]) -> rustix::io::Result<rustix::fs::Stat> {
    let fd: OwnedFd = if rel.is_empty() {
        rustix::fs::openat(root, c".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?
    } else {
        rustix::fs::openat2(
            root,
            OsStr::from_bytes(rel),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV,
        )?
    };
    rustix::fs::fstat(fd)
}

fn attrs(e: &Entry, mtime: i64) -> Attrs {
    Attrs {
        // A symlink's mode means nothing; tar tools write 0777.
        mode: if e.kind == Kind::Symlink {
            0o777
        } else {
            e.mode
        },
        uid: e.uid,
        gid: e.gid,
        mtime,
        xattrs: e.xattrs.clone(),
    }
}

/// Writes the tar of `snap` (content at `root`, manifest `m`) to `out`.
pub fn write_tar(
    snap: &Snapshot,
    m: &Manifest,
    root: &Path,
    out: impl Write,
    progress: &Progress,
) -> Result<u64> {
    let what = format!("{}@{}", snap.tree, snap.id);
    check_exportable(m, &what)?;
    let rootfd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {}", root.display()))?;
    let mut w = TarWriter::new(out);
    let created = snap.created.timestamp();
    let meta_attrs = |mode| Attrs {
        mode,
        uid: 0,
        gid: 0,
        mtime: created,
        xattrs: Vec::new(),
    };
    let changed = |p: &[u8]| {
        anyhow::anyhow!("{} in {what} does not match its manifest (changed or damaged): run `sidus verify {what}`", shown(p))
    };
    let mut links: HashMap<u64, Vec<u8>> = HashMap::new();
    progress.phase("exporting", m.file_bytes());
    for (i, e) in m.entries.iter().enumerate() {
        let rel = &e.path[1..];
        let at = || format!("/{}", shown(rel));
        let st = stat_beneath(&rootfd, rel).with_context(|| format!("stat {}", at()))?;
        let kind = Kind::from_mode(st.st_mode as u32);
        let mode_now = if kind == Kind::Symlink {
            0
        } else {
            st.st_mode as u32 & 0o7777
        };
        if kind != e.kind
            || mode_now != e.mode
            || (st.st_uid as u32, st.st_gid as u32) != (e.uid, e.gid)
        {
            return Err(changed(&e.path));
        }
        let a = attrs(e, st.st_mtime as i64);
        let mut name = if rel.is_empty() {
            b".".to_vec()
        } else {
            rel.to_vec()
        };
        if i == 0 {
            w.member(b"./", &Member::Dir, &a)?;
            w.member(
                format!("{META_DIR}/").as_bytes(),
                &Member::Dir,
                &meta_attrs(0o755),
            )?;
            for (file, data) in meta_members(snap, m, root)? {
                w.bytes(
                    format!("{META_DIR}/{file}").as_bytes(),
                    &meta_attrs(0o644),
                    &data,
                )?;
            }
            continue;
        }
        let member = match e.kind {
            Kind::Dir => {
                name.push(b'/');
                Member::Dir
            }
            Kind::Symlink => Member::Symlink(e.target.clone().unwrap_or_default()),
            Kind::Char => Member::Char(
                e.device.unwrap_or_default().0,
                e.device.unwrap_or_default().1,
            ),
            Kind::Block => Member::Block(
                e.device.unwrap_or_default().0,
                e.device.unwrap_or_default().1,
            ),
            Kind::Fifo => Member::Fifo,
            Kind::Socket => continue,
            Kind::File => {
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&(st.st_ino as u64)) {
                        w.member(&name, &Member::HardLink(first.clone()), &a)?;
                        continue;
                    }
                    links.insert(st.st_ino as u64, name.clone());
                }
                let size = e.size.unwrap_or(0);
                if st.st_size as u64 != size {
                    return Err(changed(&e.path));
                }
                let fd = open_beneath(&rootfd, rel).with_context(|| format!("open {}", at()))?;
                let mut f = std::fs::File::from(fd);
                w.member(&name, &Member::File(size), &a)?;
                let mut h = blake3::Hasher::new();
                w.data(&mut f, size, |b| {
                    h.update(b);
                    progress.add(b.len() as u64);
                })
                .with_context(|| format!("read {} or write the archive", at()))?;
                if Some(*h.finalize().as_bytes()) != e.hash {
                    return Err(changed(&e.path));
                }
                continue;
            }
        };
        w.member(&name, &member, &a)?;
    }
    let n = w.written() + 1024;
    w.finish().context("write the archive")?;
    progress.finish();
    Ok(n)
}

/// What `sidus export` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Exported {
    /// The snapshot, `TREE@ID`.
    pub snapshot: String,
    /// Its manifest's root hash.
    pub root_hash: String,
    /// `tar` or `squashfs`.
    pub format: &'static str,
    /// Where it went (`-`: stdout).
    pub output: String,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes `snap` to `output` (`-`: stdout) as a tar, or a squashfs when `sqfs`.
/// A file is written under a temporary name and renamed when complete.
pub fn export(store: &Store, snap: &Snapshot, sqfs: bool, output: &Path) -> Result<Exported> {
    let what = format!("{}@{}", snap.tree, snap.id);
    let progress = Progress::new(&what);
    let (m, _) =
        kept::of_snapshot(store, snap, &progress).with_context(|| format!("manifest of {what}"))?;
    let root = store.backend.snapshot_path(&snap.tree, &snap.id)?;
    let to_stdout = output == Path::new("-");
    let tmp = (!to_stdout).then(|| temp_beside(output));
    let result = (|| -> Result<u64> {
        if sqfs {
            check_exportable(&m, &what)?;
            // mksquashfs reads the files itself: check them first.
            let (found, _) = scan::scan(&root, None, &progress)?;
            let diffs = compare(&m, &found);
            if let Some(d) = diffs.first() {
                bail!(
                    "{} in {what} does not match its manifest ({} differences): run `sidus verify {what}`",
                    d.path,
                    diffs.len()
                );
            }
            let meta = meta_members(snap, &m, &root)?;
            match &tmp {
                Some(t) => squashfs::build(&root, &meta, snap.created.timestamp(), t),
                None => {
                    let t = std::env::temp_dir()
                        .join(format!("sidus-export.{}.sqfs", std::process::id()));
                    let _cleanup = RemoveOnDrop(t.clone());
                    squashfs::build(&root, &meta, snap.created.timestamp(), &t)?;
                    let mut f =
                        std::fs::File::open(&t).with_context(|| format!("open {}", t.display()))?;
                    let n = std::io::copy(&mut f, &mut std::io::stdout().lock())
                        .context("write the archive to stdout")?;
                    Ok(n)
                }
            }
        } else {
            match &tmp {
                Some(t) => {
                    let f = std::fs::File::create(t)
                        .with_context(|| format!("create {}", t.display()))?;
                    let mut bw = std::io::BufWriter::with_capacity(1 << 20, f);
                    let n = write_tar(snap, &m, &root, &mut bw, &progress)?;
                    bw.into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("write {}", t.display()))?;
                    Ok(n)
                }
                None => {
                    let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                    write_tar(snap, &m, &root, out, &progress)
                }
            }
        }
    })();
    let bytes = match (result, &tmp) {
        (Ok(n), Some(t)) => {
            std::fs::rename(t, output)
                .with_context(|| format!("rename {} to {}", t.display(), output.display()))?;
            n
        }
        (Ok(n), None) => n,
        (Err(e), t) => {
            if let Some(t) = t {
                let _ = std::fs::remove_file(t);
            }
            return Err(e);
        }
    };
    Ok(Exported {
        snapshot: what,
        root_hash: m.root_hash(),
        format: if sqfs { "squashfs" } else { "tar" },
        output: output.display().to_string(),
        bytes,
    })
}

/// A temporary name beside `path`, in the same directory (so the rename is atomic).
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.sidus-tmp.{}", std::process::id()))
}

/// Removes a temporary file when dropped.
pub struct RemoveOnDrop(pub std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
