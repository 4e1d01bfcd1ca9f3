//! What the sender and the remote sidus say to each other: JSON, one
//! document per answer, field names a contract between sidus versions
//! ([`PROTOCOL`] changes when they do).

use serde::{Deserialize, Serialize};
use sidus_backends::{Snapshot, SnapshotId, TreeName};

/// Version of these documents; a remote speaking another one is refused.
pub const PROTOCOL: u32 = 1;

/// The answer of `sidus replica-have TREE...`: per tree, what the remote has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Have {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The remote store's backend (`btrfs`, `zfs`, `lvm`).
    pub backend: String,
    /// The native stream format it receives, if any.
    pub format: Option<String>,
    /// One entry per tree asked about, in the order asked.
    pub trees: Vec<HaveTree>,
}

/// What the remote has of one tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaveTree {
    /// The tree.
    pub tree: TreeName,
    /// Whether a tree of that name exists there.
    pub exists: bool,
    /// Whether it is a replica (only those are replicated into).
    pub replica: bool,
    /// Its snapshot IDs, oldest first.
    pub ids: Vec<SnapshotId>,
    /// The stream the replica is fed with, once it has snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// An interrupted receive the remote's storage can resume: its ID and token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// A resumable receive (ZFS `receive_resume_token`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// The snapshot it was receiving.
    pub id: SnapshotId,
    /// The token for `zfs send -t`.
    pub token: String,
}

/// The first line `replica-receive` reads on stdin; the stream follows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The stream's format (`btrfs`, `zfs`).
    pub format: String,
    /// The snapshot sent, with its ID and metadata.
    pub snapshot: Snapshot,
    /// The snapshot the stream is incremental from (the receiver has it).
    pub parent: Option<SnapshotId>,
    /// The root hash of the primary's kept manifest of it, when there is one.
    pub root_hash: Option<String>,
    /// The primary, as it names itself (host and store), for the replica's record.
    pub source: String,
    /// The stream resumes an interrupted receive of this snapshot.
    #[serde(default)]
    pub resume: bool,
}

/// What `replica-receive` prints once the snapshot is listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// The tree.
    pub tree: TreeName,
    /// The snapshot now listed there.
    pub id: SnapshotId,
    /// Whether its content was checked against the primary's root hash.
    pub verified: bool,
}

/// Largest chunk of a framed stream.
pub const CHUNK: usize = 1 << 20;

/// Writes one chunk of the stream: its length (u32, big-endian), then it. A
/// zero length ends the stream and says the sender's command succeeded: a
/// stream cut short (the sender died, its `btrfs send` failed) lacks it, so
/// the receiver never takes a truncated stream for a whole one (`btrfs
/// receive` ends quietly at EOF between two commands).
pub fn write_chunk(out: &mut impl std::io::Write, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len()).expect("chunks are small");
    out.write_all(&len.to_be_bytes())?;
    out.write_all(data)
}

/// Reads one chunk into `buf`: `Some(n)` bytes, `Some(0)` at the end marker,
/// `None` when the stream stops without one.
pub fn read_chunk(
    input: &mut impl std::io::Read,
    buf: &mut [u8],
) -> std::io::Result<Option<usize>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > buf.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a chunk of {n} bytes, more than {}", buf.len()),
        ));
    }
    match input.read_exact(&mut buf[..n]) {
        Ok(()) => Ok(Some(n)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_without_its_end_marker_reads_as_cut_short() {
        let mut framed = Vec::new();
        write_chunk(&mut framed, b"abc").unwrap();
        let whole = {
            let mut v = framed.clone();
            write_chunk(&mut v, b"").unwrap();
            v
        };
        let mut buf = vec![0; CHUNK];
        let mut r = &whole[..];
        assert_eq!(read_chunk(&mut r, &mut buf).unwrap(), Some(3));
        assert_eq!(read_chunk(&mut r, &mut buf).unwrap(), Some(0));
        let mut r = &framed[..];
        assert_eq!(read_chunk(&mut r, &mut buf).unwrap(), Some(3));
        assert_eq!(read_chunk(&mut r, &mut buf).unwrap(), None);
        let mut r = &framed[..5];
        assert_eq!(read_chunk(&mut r, &mut buf).unwrap(), None);
    }
}
