//! The archive stream: replication where the two stores have no native
//! stream in common (LVM thin, or two backends). Each snapshot travels whole
//! as the deterministic tar of `sidus export`, carrying its manifest and
//! metadata; the replica unpacks it into the tree's working tree, checks it
//! against the manifest, and only then takes the snapshot with the primary's
//! ID and metadata. A receive that fails or dies puts the working tree back
//! to the newest snapshot (or removes the tree it was to begin).

use super::wire::{self, Header};
use crate::archive::import::unpack_into;
use crate::manifest::compare::compare;
use crate::manifest::{kept, scan};
use crate::progress::Progress;
use crate::state::failpoint;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::io::{Read, Write};
use std::path::Path;

/// The format name of the archive stream in [`Header::format`].
pub const FORMAT: &str = "archive";

/// Writes everything as chunks of the framed stream (see [`wire::write_chunk`]).
pub struct ChunkWriter<W: Write>(pub W);

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(wire::CHUNK);
        if n > 0 {
            wire::write_chunk(&mut self.0, &data[..n])?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Reads the data of a framed stream; a stream cut short is an error, never
/// an early end.
pub struct ChunkReader<R: Read> {
    inner: R,
    buf: Vec<u8>,
    at: usize,
    len: usize,
    ended: bool,
    total: usize,
}

impl<R: Read> ChunkReader<R> {
    /// Reads the framed stream of `inner`.
    pub fn new(inner: R) -> ChunkReader<R> {
        ChunkReader {
            inner,
            buf: vec![0; wire::CHUNK],
            at: 0,
            len: 0,
            ended: false,
            total: 0,
        }
    }

    /// Reads up to the end marker, so a sender whose stream failed after the
    /// part the reader needed is still seen.
    pub fn finish(&mut self) -> std::io::Result<()> {
        std::io::copy(self, &mut std::io::sink()).map(drop)
    }
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.len {
            if self.ended {
                return Ok(0);
            }
            match wire::read_chunk(&mut self.inner, &mut self.buf)? {
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the stream was cut short (the sender died or its export failed)",
                    ))
                }
                Some(0) => self.ended = true,
                Some(n) => (self.at, self.len) = (0, n),
            }
        }
        let n = out.len().min(self.len - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        self.total += n;
        if self.total >= super::receive::MID_STREAM && self.total - n < super::receive::MID_STREAM {
            failpoint::hit("receive:mid-stream");
        }
        Ok(n)
    }
}

/// Empties a replica's working tree for the next snapshot's content (an
/// empty `lost+found` of the file system stays; the manifest ignores it).
fn empty(root: &Path) -> Result<()> {
    for entry in std::fs::read_dir(root).with_context(|| format!("read {}", root.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name() == "lost+found" {
            continue;
        }
        // remove_dir_all never follows a symlink out of the tree.
        let gone = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        gone.with_context(|| format!("remove {}", path.display()))?;
    }
    Ok(())
}

/// Receives the archive of `header`'s snapshot from `input` into `tree`
/// (made here when `exists` is false); the caller holds the lock and the
/// intent. Returns once the snapshot is taken, checked.
pub fn receive(store: &Store, header: &Header, exists: bool, input: impl Read) -> Result<()> {
    let snap = &header.snapshot;
    let (tree, id) = (&snap.tree, &snap.id);
    let root = if exists {
        let root = store.backend.tree_path(tree)?;
        empty(&root)?;
        root
    } else {
        store.check_pool_room(&format!("receive tree '{tree}'"))?;
        store.backend.create_tree(tree)?
    };
    let progress = Progress::new(format!("{tree}@{id}"));
    let mut reader = ChunkReader::new(input);
    let carried = unpack_into(&mut reader, &root, &progress)?;
    reader.finish().context("read the stream")?;
    failpoint::hit("receive:after-stream");
    if carried.snapshot.id != *id || Some(&carried.info.root_hash) != header.root_hash.as_ref() {
        bail!(
            "the archive is of {}@{} (root {}), not of the snapshot its header names",
            carried.snapshot.tree,
            carried.snapshot.id,
            carried.info.root_hash
        );
    }
    // Checked before the snapshot is taken: a listed snapshot is a checked one.
    let (found, _) = scan::scan(&root, None, &progress).context("read the received tree back")?;
    let diffs = compare(&carried.manifest, &found);
    if let Some(d) = diffs.first() {
        bail!(
            "the received {tree}@{id} does not match the primary's manifest in {} places (first: {} {}): not listed",
            diffs.len(),
            d.what.as_str(),
            d.path
        );
    }
    store.check_pool_room(&format!("snapshot tree '{tree}'"))?;
    store.backend.snapshot(snap)?;
    kept::save(store.state_dir(), snap, &found)
}

/// Puts a replica back after a failed or dead archive receive of `id`:
/// finished if its snapshot was taken, else the working tree is the newest
/// snapshot again, or the tree goes if it had none. Returns whether `id` is listed.
pub fn settle(store: &Store, tree: &TreeName, id: &SnapshotId) -> Result<bool> {
    if !store.backend.list_trees()?.iter().any(|t| &t.name == tree) {
        return Ok(false);
    }
    let ids = store.backend.snapshot_ids(tree)?;
    if ids.contains(id) {
        return Ok(true);
    }
    match ids.into_iter().max() {
        Some(latest) => store.backend.replace_working(tree, &latest)?,
        None => store.backend.destroy_tree(tree)?,
    }
    Ok(false)
}
