//! Emptying the tree's own `run` and `tmp` after a run, as a node's boot would:
//! whatever is there would otherwise be served to every node. The walk never
//! follows a symlink and never crosses into another file system.

use super::paths::TreeRoot;
use anyhow::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};

/// Removes everything under the directory `rel` of the tree except the entries
/// named in `keep` (whose own content is emptied). Returns a note when the
/// directory was left alone: missing, a symlink, or another file system.
pub fn purge(root: &TreeRoot, rel: &str, keep: &[&str]) -> Result<Option<String>> {
    let dir = match root.open_no_links(rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW) {
        Ok(fd) => fd,
        Err(e) if e.errno() == Errno::NOENT => return Ok(None),
        Err(e) if matches!(e.errno(), Errno::LOOP | Errno::XDEV | Errno::NOTDIR) => {
            return Ok(Some(format!("{rel} is not a plain directory: not purged")))
        }
        Err(e) => return Err(e.into()),
    };
    let dev = root.stat()?.st_dev;
    if rfs::fstat(&dir)?.st_dev != dev {
        return Ok(Some(format!("{rel} is another file system: not purged")));
    }
    empty(&dir, dev, keep).with_context(|| format!("purge {rel} in {}", root.path().display()))?;
    Ok(None)
}

fn empty(dir: &OwnedFd, dev: u64, keep: &[&str]) -> Result<()> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    for name in names {
        let st = match rfs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("stat {name}")),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir {
            if st.st_dev != dev {
                // A mount point: not ours to empty.
                continue;
            }
            let sub = rfs::openat(
                dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("open {name}"))?;
            empty(&sub, dev, &[])?;
        }
        if keep.contains(&name.as_str()) {
            continue;
        }
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rfs::unlinkat(dir.as_fd(), name.as_str(), flags) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("remove {name}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn purge_empties_but_keeps_named_entries_and_never_follows_links() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("precious"), "host").unwrap();
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        fs::create_dir_all(run.join("lock/sub")).unwrap();
        fs::create_dir_all(run.join("a/b/c")).unwrap();
        fs::write(run.join("a/b/c/f"), "x").unwrap();
        fs::write(run.join("lock/sub/f"), "x").unwrap();
        symlink(host.path(), run.join("escape")).unwrap();
        symlink(host.path(), t.path().join("tmp")).unwrap();
        let root = TreeRoot::open(t.path()).unwrap();
        assert_eq!(purge(&root, "run", &["lock"]).unwrap(), None);
        let left: Vec<_> = fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["lock"]);
        assert_eq!(fs::read_dir(run.join("lock")).unwrap().count(), 0);
        // A tmp that is a link to the host is left alone, and so is the host.
        let note = purge(&root, "tmp", &[]).unwrap().unwrap();
        assert!(note.contains("not a plain directory"), "{note}");
        assert_eq!(fs::read(host.path().join("precious")).unwrap(), b"host");
        assert_eq!(purge(&root, "missing", &[]).unwrap(), None);
    }
}
