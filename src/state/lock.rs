//! Per-tree writer locks: flock on a file in the store's state directory, so a
//! crashed sidus never leaves a lock behind.

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Another sidus held the lock for longer than the timeout. Callers that
/// want to say more (publish: "another publish is running") downcast to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockBusy {
    /// The lock's name: a tree, or `.publish` for the store-wide one.
    pub name: String,
    /// How long this sidus waited.
    pub waited: Duration,
}

impl std::fmt::Display for LockBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tree '{}' is busy: another sidus command is changing it (waited {:.0?})",
            self.name, self.waited
        )
    }
}

impl std::error::Error for LockBusy {}

/// A held tree lock; released on drop.
#[derive(Debug)]
pub struct TreeLock {
    _lock: Flock<File>,
}

/// Opens (creating) the lock file of `name`: the directory 0755 and the file
/// 0644, whatever the umask, so no other user can take or break a lock.
fn open_lock_file(state_dir: &Path, name: &str) -> Result<(File, PathBuf)> {
    let dir = state_dir.join("locks");
    crate::state::atomic::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.lock"));
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("open lock {}", path.display()))
        .map(|f| (f, path))
}

impl TreeLock {
    /// Takes the writer lock of `tree`, waiting up to `timeout` for another writer.
    pub fn acquire(state_dir: &Path, tree: &str, timeout: Duration) -> Result<TreeLock> {
        let (mut file, path) = open_lock_file(state_dir, tree)?;
        let start = Instant::now();
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(TreeLock { _lock: lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    if start.elapsed() >= timeout {
                        return Err(LockBusy {
                            name: tree.to_string(),
                            waited: timeout,
                        }
                        .into());
                    }
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => return Err(e).with_context(|| format!("lock {}", path.display())),
            }
        }
    }
}

impl TreeLock {
    /// Takes the lock of `name` if it is free now; `None` when another holds it.
    pub fn try_acquire(state_dir: &Path, name: &str) -> Result<Option<TreeLock>> {
        let (file, path) = open_lock_file(state_dir, name)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(TreeLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e).with_context(|| format!("lock {}", path.display())),
        }
    }
}

/// What [`TreeLock::probe`] found.
#[derive(Debug)]
pub enum Probe {
    /// Another process holds the lock: a writer is at work.
    Busy,
    /// Nobody holds it: the lock, held now (`None` when it was never taken,
    /// so there is no lock file to hold).
    Free(Option<TreeLock>),
}

impl TreeLock {
    /// For a reader that must neither wait nor create anything (`sidus
    /// doctor`): takes the lock of `name` if it is free now, without creating
    /// its file or directory.
    pub fn probe(state_dir: &Path, name: &str) -> Result<Probe> {
        let path = state_dir.join("locks").join(format!("{name}.lock"));
        let file = match OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Probe::Free(None)),
            Err(e) => return Err(e).with_context(|| format!("open lock {}", path.display())),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Probe::Free(Some(TreeLock { _lock: lock }))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(Probe::Busy),
            Err((_, e)) => Err(e).with_context(|| format!("lock {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_times_out_with_busy_then_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = TreeLock::acquire(dir.path(), "lab", Duration::ZERO).unwrap();
        let err = TreeLock::acquire(dir.path(), "lab", Duration::from_millis(120)).unwrap_err();
        assert!(err.to_string().starts_with("tree 'lab' is busy"), "{err}");
        assert_eq!(err.downcast_ref::<LockBusy>().unwrap().name, "lab");
        // Another tree is independent.
        TreeLock::acquire(dir.path(), "other", Duration::ZERO).unwrap();
        drop(first);
        TreeLock::acquire(dir.path(), "lab", Duration::ZERO).unwrap();
    }

    #[test]
    fn probe_sees_a_writer_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            TreeLock::probe(dir.path(), "lab").unwrap(),
            Probe::Free(None)
        ));
        assert!(!dir.path().join("locks").exists());
        let held = TreeLock::acquire(dir.path(), "lab", Duration::ZERO).unwrap();
        assert!(matches!(
            TreeLock::probe(dir.path(), "lab").unwrap(),
            Probe::Busy
        ));
        drop(held);
        let Probe::Free(Some(peek)) = TreeLock::probe(dir.path(), "lab").unwrap() else {
            panic!("free after release");
        };
        assert!(TreeLock::try_acquire(dir.path(), "lab").unwrap().is_none());
        drop(peek);
    }
}
