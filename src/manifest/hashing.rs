//! Hashing the regular files a walk found, in parallel, one file per worker
//! at a time (many small files hash faster side by side than one by one with
//! a parallel hash); a file whose extents are all the reference's (on one
//! btrfs) takes the reference's hash without being read.

use super::scan::{open_beneath, Walk};
use super::Hash;
use crate::history::extents;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A file still to hash.
pub(super) struct Job {
    /// Its index in the entries.
    pub entry: usize,
    /// Its path below the root (no leading `/`).
    pub rel: Vec<u8>,
    pub ino: u64,
    pub size: u64,
    /// The reference's hash, if the reference has a file of the same size
    /// there and both trees are on one btrfs: compare extents first.
    pub same_extents_as: Option<Hash>,
}

/// BLAKE3 of what is left to read from `fd`, and how many bytes that was.
pub(crate) fn hash_fd(
    fd: impl AsFd,
    buf: &mut [u8],
    progress: &Progress,
) -> std::io::Result<(Hash, u64)> {
    let mut h = blake3::Hasher::new();
    let mut total = 0u64;
    loop {
        match rustix::io::read(&fd, &mut *buf) {
            Ok(0) => return Ok((*h.finalize().as_bytes(), total)),
            Ok(n) => {
                h.update(&buf[..n]);
                total += n as u64;
                progress.add(n as u64);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a worker found for one job: hash, xattrs, and whether extents said it.
type Done = (usize, Hash, Vec<(Vec<u8>, Vec<u8>)>, bool);

fn run_job(
    root: &OwnedFd,
    reference: Option<&OwnedFd>,
    job: &Job,
    buf: &mut [u8],
    progress: &Progress,
) -> Result<Done> {
    let shown = || format!("/{}", super::shown(&job.rel));
    let fd = open_beneath(root, &job.rel).with_context(|| format!("open {}", shown()))?;
    let st = rustix::fs::fstat(&fd).with_context(|| format!("stat {}", shown()))?;
    if st.st_ino as u64 != job.ino || st.st_size as u64 != job.size {
        bail!("{} changed while being read", shown());
    }
    let xattrs =
        super::scan::fd_xattrs(&fd).with_context(|| format!("read xattrs of {}", shown()))?;
    if let (Some(hash), Some(rfd)) = (job.same_extents_as, reference) {
        if let Ok(other) = open_beneath(rfd, &job.rel) {
            if extents::share_all_extents(&fd, &other) {
                progress.add(job.size);
                return Ok((job.entry, hash, xattrs, true));
            }
        }
    }
    let (hash, n) = hash_fd(&fd, buf, progress).with_context(|| format!("read {}", shown()))?;
    if n != job.size {
        bail!("{} changed while being read", shown());
    }
    Ok((job.entry, hash, xattrs, false))
}

/// Hashes every file in `walk.jobs` below `root` (comparing extents with
/// the same path below `reference` first where a job says so), filling in
/// the walk's entries and stats.
pub(super) fn hash_jobs(
    walk: &mut Walk,
    root: &OwnedFd,
    reference: Option<&OwnedFd>,
    progress: &Progress,
) -> Result<()> {
    let total: u64 = walk.jobs.iter().map(|j| j.size).sum();
    progress.phase("hashing", total);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(walk.jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let done: Vec<Done> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = walk.jobs.get(i) else { break };
                        match run_job(root, reference, job, &mut buf, progress) {
                            Ok(d) => out.push(d),
                            Err(e) => {
                                // Stop every worker: one error is the answer.
                                next.store(usize::MAX / 2, Ordering::Relaxed);
                                failed.lock().expect("not poisoned").get_or_insert(e);
                                break;
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("hash worker panicked"))
            .collect()
    });
    if let Some(e) = failed.into_inner().expect("not poisoned") {
        return Err(e);
    }
    for (i, hash, xattrs, by_extents) in done {
        let e = &mut walk.entries[i];
        e.hash = Some(hash);
        e.xattrs = xattrs;
        if by_extents {
            walk.stats.reused_by_extents += 1;
        } else {
            walk.stats.hashed_files += 1;
            walk.stats.hashed_bytes += e.size.unwrap_or(0);
        }
    }
    walk.jobs.clear();
    Ok(())
}
