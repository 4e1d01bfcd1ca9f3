//! Per-tree writer locks: flock on a file in the store's state directory, so a
//! crashed sidus never leaves a lock behind.

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// A held tree lock; released on drop.
#[derive(Debug)]
pub struct TreeLock {
    _lock: Flock<File>,
}

impl TreeLock {
    /// Takes the writer lock of `tree`, waiting up to `timeout` for another writer.
    pub fn acquire(state_dir: &Path, tree: &str, timeout: Duration) -> Result<TreeLock> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{tree}.lock"));
        let start = Instant::now();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open lock {}", path.display()))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(TreeLock { _lock: lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    if start.elapsed() >= timeout {
                        bail!(
                            "tree '{tree}' is busy: another sidus command is changing it (waited {:.0?})",
                            timeout
                        );
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
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("open lock {}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(TreeLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
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
        // Another tree is independent.
        TreeLock::acquire(dir.path(), "other", Duration::ZERO).unwrap();
        drop(first);
        TreeLock::acquire(dir.path(), "lab", Duration::ZERO).unwrap();
    }
}
