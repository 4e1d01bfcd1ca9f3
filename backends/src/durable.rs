//! The one way sidus replaces a file on disk: a temp file in the same
//! directory, written, fsynced, renamed over the target, then the directory
//! fsynced. A reader sees the old file or the new one, never half of one, and
//! after a crash the rename has happened or not: fsync of a file does not
//! persist its directory entry (fsync(2)), and ext4/btrfs flush data on rename
//! only over an existing file.
//!
//! The mode is applied with fchmod, so the umask of whoever runs sidus never
//! makes a state file group or world writable.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `data`, mode `mode` exactly (no umask), creating its
/// directory (mode 0755) when missing.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path)?;
    create_dir_all(dir)?;
    let tmp = temp_path(path)?;
    let write = || -> io::Result<()> {
        write_temp(&tmp, data, mode)?.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// The PID of the writer whose temp file `name` is, when it is one of
/// [`write_atomic`]'s temp files (a crash mid-write leaves them behind).
pub fn temp_writer(name: &str) -> Option<u32> {
    let (_, pid) = name.strip_prefix('.')?.rsplit_once(".sidus-tmp.")?;
    pid.parse().ok()
}

/// Replaces many files (a thousand nodes' boot entries) with the guarantee
/// [`write_atomic`] gives each, for a fraction of its flushes: every temp file
/// is written, one `syncfs` per file system flushes them all, then each is
/// renamed over its target and each directory is fsynced once. Directories
/// are worked on side by side (one thread each), files of one directory in
/// the order given; call twice when files of one batch must appear before
/// another's. A reader sees each file old or new; a crash part way leaves
/// some files new and the rest old (the caller's intent says how to finish).
pub fn write_atomic_all(files: &[NewFile]) -> io::Result<()> {
    let mut by_dir: Vec<(&Path, Vec<&NewFile>)> = Vec::new();
    for f in files {
        let dir = parent(&f.0)?;
        match by_dir.iter_mut().find(|(d, _)| *d == dir) {
            Some((_, list)) => list.push(f),
            None => by_dir.push((dir, vec![f])),
        }
    }
    let staged: Vec<io::Result<Staged>> = std::thread::scope(|s| {
        let workers: Vec<_> = by_dir
            .iter()
            .map(|(dir, list)| s.spawn(move || stage(dir, list)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("staging does not panic"))
            .collect()
    });
    let mut ok = Vec::new();
    let mut first_err = None;
    for r in staged {
        match r {
            Ok(st) => ok.push(st),
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    let flushed = match first_err {
        Some(e) => Err(e),
        None => flush(&ok),
    };
    if let Err(e) = flushed {
        for st in &ok {
            st.remove_temps(0);
        }
        return Err(e);
    }
    let done: Vec<io::Result<()>> = std::thread::scope(|s| {
        let workers: Vec<_> = ok.iter().map(|st| s.spawn(move || st.commit())).collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("renaming does not panic"))
            .collect()
    });
    done.into_iter().collect()
}

/// A file for [`write_atomic_all`]: its path, content and mode.
pub type NewFile = (PathBuf, Vec<u8>, u32);

/// One directory's temp files, written and not yet renamed.
struct Staged<'a> {
    dir: &'a Path,
    temps: Vec<(PathBuf, &'a Path)>,
    /// One open temp file and its file system, for the flush.
    probe: Option<(u64, File)>,
}

impl Staged<'_> {
    fn remove_temps(&self, from: usize) {
        for (tmp, _) in &self.temps[from..] {
            let _ = fs::remove_file(tmp);
        }
    }

    /// Renames every temp file over its target, then fsyncs the directory.
    fn commit(&self) -> io::Result<()> {
        for (i, (tmp, path)) in self.temps.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, path) {
                self.remove_temps(i);
                return Err(e);
            }
        }
        sync_dir(self.dir)
    }
}

/// Writes the temp files of one directory (removing them again on failure).
fn stage<'a>(dir: &'a Path, files: &[&'a NewFile]) -> io::Result<Staged<'a>> {
    let mut st = Staged {
        dir,
        temps: Vec::with_capacity(files.len()),
        probe: None,
    };
    let r = (|| -> io::Result<()> {
        create_dir_all(dir)?;
        for (path, data, mode) in files.iter().map(|f| (&f.0, &f.1, f.2)) {
            let tmp = temp_path(path)?;
            let f = write_temp(&tmp, data, mode);
            st.temps.push((tmp, path));
            let f = f?;
            if st.probe.is_none() {
                st.probe = Some((f.metadata()?.dev(), f));
            }
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(st),
        Err(e) => {
            st.remove_temps(0);
            Err(e)
        }
    }
}

/// One `syncfs` per file system the staged files are on.
fn flush(staged: &[Staged]) -> io::Result<()> {
    let mut seen = BTreeSet::new();
    for (dev, f) in staged.iter().filter_map(|s| s.probe.as_ref()) {
        if seen.insert(*dev) {
            // SAFETY: syncfs only reads the descriptor, which `f` keeps open.
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Removes every path that exists, then fsyncs each directory once; returns
/// how many existed.
pub fn remove_durable_all(paths: &[PathBuf]) -> io::Result<usize> {
    let mut dirs = BTreeSet::new();
    let mut n = 0;
    for p in paths {
        match fs::remove_file(p) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        dirs.insert(parent(p)?.to_path_buf());
    }
    dirs.iter().try_for_each(|d| sync_dir(d))?;
    Ok(n)
}

/// The temp file beside `path` that this process replaces it through.
pub(crate) fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "a file path has a name"))?;
    Ok(parent(path)?.join(format!(
        ".{}.sidus-tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes `data` to a fresh `tmp` with mode `mode` exactly; not flushed.
fn write_temp(tmp: &Path, data: &[u8], mode: u32) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)?;
    Ok(f)
}

/// Removes `path` if it exists and makes the removal durable; returns whether
/// it existed.
pub fn remove_durable(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    sync_dir(parent(path)?)?;
    Ok(true)
}

/// Renames `from` to `to` (same directory) and makes the rename durable:
/// a damaged record moved aside, never a write.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(parent(to)?)
}

/// fsyncs a directory so renames and removals in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents with mode 0755 (whatever the umask).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(up) = dir.parent() {
        create_dir_all(up)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) fn parent(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Ok(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_with_exact_mode_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/x.ipxe");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        write_atomic(&p, b"one", 0o644).unwrap();
        nix::sys::stat::umask(old);
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(d.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.ipxe"]);
        assert_eq!(
            fs::metadata(d.path().join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(temp_writer(".x.ipxe.sidus-tmp.42"), Some(42));
        assert_eq!(temp_writer("x.ipxe"), None);
        assert_eq!(temp_writer(".x.sidus-tmp.12z"), None);
        assert!(remove_durable(&p).unwrap());
        assert!(!remove_durable(&p).unwrap());
    }

    #[test]
    fn batch_replaces_every_file_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<(PathBuf, Vec<u8>, u32)> = (0..50)
            .map(|i| {
                (
                    d.path().join(format!("{}/f{i}", i % 3)),
                    format!("v{i}").into_bytes(),
                    0o644,
                )
            })
            .collect();
        fs::create_dir_all(d.path().join("0")).unwrap();
        fs::write(d.path().join("0/f0"), "old").unwrap();
        write_atomic_all(&files).unwrap();
        for (p, data, _) in &files {
            assert_eq!(&fs::read(p).unwrap(), data);
        }
        let names: usize = (0..3)
            .map(|i| fs::read_dir(d.path().join(i.to_string())).unwrap().count())
            .sum();
        assert_eq!(names, 50, "no temp files left");
        let paths: Vec<PathBuf> = files.iter().map(|f| f.0.clone()).collect();
        assert_eq!(remove_durable_all(&paths).unwrap(), 50);
        assert_eq!(remove_durable_all(&paths).unwrap(), 0);
    }
}
