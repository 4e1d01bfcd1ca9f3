//! What changed between two snapshots, read from the metadata-only stream of
//! `btrfs send --no-data -p EARLIER LATER`: the kernel compares the two
//! trees, skipping what they share, and describes the later one as commands
//! applied to the earlier one (file data left out: a changed range is an
//! `update_extent`).
//!
//! Stream (v1; v2 differs only in its data attribute): the header
//! `btrfs-stream\0` and a le u32 version, then commands of a le u32 length,
//! le u16 command, le u32 crc32c and `length` bytes of attributes, each a le
//! u16 type, le u16 length and its bytes. Paths are relative to the
//! subvolume and name entries as they are at that point of the stream: a new
//! inode is made under a temporary name (`o257-12-0`) and renamed into place,
//! a directory may be moved aside and back. So the changes are replayed on
//! the paths recorded so far: a rename moves what was recorded under its old
//! path to its new one, an unlink or rmdir forgets it, and what is left names
//! paths of the later snapshot.

use crate::{SnapshotChanges, Touch};
use std::collections::BTreeMap;

const MAGIC: &[u8] = b"btrfs-stream\0";

// Commands (send.h), versions 1 to 3.
const SUBVOL: u16 = 1;
const SNAPSHOT: u16 = 2;
const MKFILE: u16 = 3;
const MKDIR: u16 = 4;
const MKNOD: u16 = 5;
const MKFIFO: u16 = 6;
const MKSOCK: u16 = 7;
const SYMLINK: u16 = 8;
const RENAME: u16 = 9;
const LINK: u16 = 10;
const UNLINK: u16 = 11;
const RMDIR: u16 = 12;
const SET_XATTR: u16 = 13;
const REMOVE_XATTR: u16 = 14;
const WRITE: u16 = 15;
const CLONE: u16 = 16;
const TRUNCATE: u16 = 17;
const CHMOD: u16 = 18;
const CHOWN: u16 = 19;
const UTIMES: u16 = 20;
const END: u16 = 21;
const UPDATE_EXTENT: u16 = 22;
const FALLOCATE: u16 = 23;
const FILEATTR: u16 = 24;
const ENCODED_WRITE: u16 = 25;
const ENABLE_VERITY: u16 = 26;

// Attributes.
const A_PATH: u16 = 15;
const A_PATH_TO: u16 = 16;
const A_DATA: u16 = 19;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The paths of one command.
#[derive(Default)]
struct Paths<'a> {
    path: Option<&'a [u8]>,
    to: Option<&'a [u8]>,
}

fn paths(body: &[u8], version: u32) -> Result<Paths<'_>, String> {
    let mut out = Paths::default();
    let mut at = 0;
    while at < body.len() {
        if body.len() - at < 2 {
            return Err("truncated attribute".into());
        }
        let kind = le16(body, at);
        if version >= 2 && kind == A_DATA {
            // v2: the data runs to the end of the command, without a length.
            break;
        }
        if body.len() - at < 4 {
            return Err("truncated attribute".into());
        }
        let len = usize::from(le16(body, at + 2));
        let value = body
            .get(at + 4..at + 4 + len)
            .ok_or("truncated attribute")?;
        match kind {
            A_PATH => out.path = Some(value),
            // A rename's new path (a link's new name is its path; the
            // existing name it links to does not change).
            A_PATH_TO => out.to = Some(value),
            _ => {}
        }
        at += 4 + len;
    }
    Ok(out)
}

/// The directory holding `path` (`a/b` -> `a`, `a` -> the root, ``).
fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// Paths recorded so far, relative, the root being ``.
#[derive(Default)]
struct Replay {
    paths: BTreeMap<Vec<u8>, Touch>,
}

impl Replay {
    fn touch(&mut self, path: &[u8], how: impl FnOnce(&mut Touch)) {
        how(self.paths.entry(path.to_vec()).or_default());
    }

    /// Removes what is recorded at `path` and under it, returning it with
    /// paths relative to `path` (`` for itself).
    fn take_subtree(&mut self, path: &[u8]) -> Vec<(Vec<u8>, Touch)> {
        let mut out = Vec::new();
        if let Some(t) = self.paths.remove(path) {
            out.push((Vec::new(), t));
        }
        let mut lo = path.to_vec();
        lo.push(b'/');
        let mut hi = path.to_vec();
        hi.push(b'/' + 1);
        let keys: Vec<Vec<u8>> = self.paths.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in keys {
            let t = self.paths.remove(&k).expect("listed");
            out.push((k[path.len()..].to_vec(), t));
        }
        out
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) {
        for (rest, t) in self.take_subtree(from) {
            let mut p = to.to_vec();
            p.extend_from_slice(&rest);
            let at = self.paths.entry(p).or_default();
            at.replaced |= t.replaced;
            at.listing |= t.listing;
            at.attrs |= t.attrs;
            at.data |= t.data;
        }
        self.touch(to, |t| t.replaced = true);
        self.touch(parent(from), |t| t.listing = true);
        self.touch(parent(to), |t| t.listing = true);
    }

    fn command(&mut self, cmd: u16, p: Paths<'_>) -> Result<(), String> {
        let path = || {
            p.path
                .ok_or_else(|| format!("command {cmd} without a path"))
        };
        match cmd {
            SUBVOL | SNAPSHOT | END => {}
            MKFILE | MKDIR | MKNOD | MKFIFO | MKSOCK | SYMLINK | LINK => {
                let path = path()?;
                self.touch(path, |t| t.replaced = true);
                self.touch(parent(path), |t| t.listing = true);
            }
            RENAME => {
                let to = p.to.ok_or("rename without a new path")?;
                self.rename(path()?, to);
            }
            UNLINK | RMDIR => {
                let path = path()?;
                self.take_subtree(path);
                self.touch(parent(path), |t| t.listing = true);
            }
            SET_XATTR | REMOVE_XATTR | CHMOD | CHOWN | UTIMES | FILEATTR | ENABLE_VERITY => {
                self.touch(path()?, |t| t.attrs = true)
            }
            WRITE | CLONE | TRUNCATE | UPDATE_EXTENT | FALLOCATE | ENCODED_WRITE => {
                self.touch(path()?, |t| t.data = true)
            }
            // A command this reader does not know may change anything.
            other => return Err(format!("unknown command {other}")),
        }
        Ok(())
    }
}

/// What `stream` (see the module doc) says changed, by absolute path of the
/// later snapshot; an error names what in it could not be read.
pub(super) fn changes(stream: &[u8]) -> Result<SnapshotChanges, String> {
    if stream.len() < MAGIC.len() + 4 || !stream.starts_with(MAGIC) {
        return Err("no btrfs-stream header".into());
    }
    let version = le32(stream, MAGIC.len());
    if !(1..=3).contains(&version) {
        return Err(format!("stream version {version}"));
    }
    let mut replay = Replay::default();
    let mut at = MAGIC.len() + 4;
    let mut ended = false;
    while at < stream.len() {
        if stream.len() - at < 10 {
            return Err("truncated command".into());
        }
        let len = le32(stream, at) as usize;
        let cmd = le16(stream, at + 4);
        let body = stream
            .get(at + 10..at + 10 + len)
            .ok_or("truncated command")?;
        at += 10 + len;
        replay.command(cmd, paths(body, version)?)?;
        if cmd == END {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err("no end command".into());
    }
    let paths = replay
        .paths
        .into_iter()
        .map(|(p, t)| {
            let mut abs = Vec::with_capacity(p.len() + 1);
            abs.push(b'/');
            abs.extend_from_slice(&p);
            (abs, t)
        })
        .collect();
    Ok(SnapshotChanges { paths })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 stream of `cmds` (command, [(attribute, value)]).
    fn stream(cmds: &[(u16, &[(u16, &str)])]) -> Vec<u8> {
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&1u32.to_le_bytes());
        for (cmd, attrs) in cmds.iter().chain(&[(END, &[][..])]) {
            let mut body = Vec::new();
            for (kind, value) in attrs.iter() {
                body.extend_from_slice(&kind.to_le_bytes());
                body.extend_from_slice(&(value.len() as u16).to_le_bytes());
                body.extend_from_slice(value.as_bytes());
            }
            s.extend_from_slice(&(body.len() as u32).to_le_bytes());
            s.extend_from_slice(&cmd.to_le_bytes());
            s.extend_from_slice(&0u32.to_le_bytes());
            s.extend_from_slice(&body);
        }
        s
    }

    fn touched(s: &[u8]) -> Vec<(String, &'static str)> {
        changes(s)
            .unwrap()
            .paths
            .into_iter()
            .map(|(p, t)| {
                let how = match (t.replaced, t.listing, t.attrs, t.data) {
                    (true, ..) => "replaced",
                    (_, true, ..) => "listing",
                    (_, _, _, true) => "data",
                    _ => "attrs",
                };
                (String::from_utf8(p).unwrap(), how)
            })
            .collect()
    }

    #[test]
    fn temporary_names_and_renamed_directories_resolve_to_final_paths() {
        let s = stream(&[
            (SNAPSHOT, &[(A_PATH, "child")]),
            (MKFILE, &[(A_PATH, "o300-9-0")]),
            (RENAME, &[(A_PATH, "o300-9-0"), (A_PATH_TO, "etc/new")]),
            (UPDATE_EXTENT, &[(A_PATH, "etc/new")]),
            (UTIMES, &[(A_PATH, "etc/old")]),
            (RENAME, &[(A_PATH, "etc"), (A_PATH_TO, "o257-5-0")]),
            (CHMOD, &[(A_PATH, "o257-5-0/old")]),
            (RENAME, &[(A_PATH, "o257-5-0"), (A_PATH_TO, "conf")]),
            (UPDATE_EXTENT, &[(A_PATH, "var/log")]),
            (UNLINK, &[(A_PATH, "var/gone")]),
            (RMDIR, &[(A_PATH, "tmp")]),
        ]);
        let want = [
            ("/", "listing"),
            ("/conf", "replaced"),
            ("/conf/new", "replaced"),
            ("/conf/old", "attrs"),
            ("/var", "listing"),
            ("/var/log", "data"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(p, h)| (p.to_string(), *h)).collect();
        assert_eq!(touched(&s), want);
    }

    /// A stream the kernel made (`btrfs send --no-data -p`) for: a content
    /// change, chmod and xattr, a hard link, two names swapped (through a
    /// link, an unlink and a temporary name), a renamed directory with a
    /// change inside, a deleted tree (moved aside, emptied, removed) and a
    /// new file (made under a temporary name).
    #[test]
    fn a_real_stream_resolves_to_the_later_snapshot_paths() {
        let s = include_bytes!("../../tests/fixtures/btrfs-send-no-data.stream");
        let want = [
            ("/", "listing"),
            ("/etc", "listing"),
            ("/etc/a", "data"),
            ("/etc/a-link", "replaced"),
            ("/etc/b", "attrs"),
            ("/etc/sub", "listing"),
            ("/etc/sub/new", "replaced"),
            ("/etc/sw1", "replaced"),
            ("/etc/sw2", "replaced"),
            ("/usr", "listing"),
            ("/usr/lib64", "replaced"),
            ("/usr/lib64/deep/lib.so", "data"),
            ("/var", "listing"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(p, h)| (p.to_string(), *h)).collect();
        assert_eq!(touched(s), want);
    }

    #[test]
    fn damaged_streams_are_refused() {
        let good = stream(&[(CHMOD, &[(A_PATH, "a")])]);
        assert!(changes(&good).is_ok());
        assert!(changes(&good[..good.len() - 3]).is_err(), "truncated");
        assert!(changes(&good[..30]).is_err(), "no end");
        assert!(changes(b"not a stream at all").is_err());
        let odd = stream(&[(99, &[(A_PATH, "a")])]);
        assert!(changes(&odd).unwrap_err().contains("unknown command 99"));
        let no_path = stream(&[(CHMOD, &[])]);
        assert!(changes(&no_path).is_err());
    }
}
