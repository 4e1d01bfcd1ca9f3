//! Per-tree writer locks: flock on a file in the store's state directory, so a
//! crashed sidus never leaves a lock behind.

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::Path;
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
}
