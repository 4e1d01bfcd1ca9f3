//! Content manifests: what a snapshot holds, entry by entry, and one root hash
//! that names it (`sidus manifest`, `verify`, `export`, `import`, pins, publish).
//!
//! A manifest is text, one line per entry sorted by path bytes:
//!
//! ```text
//! sidus-manifest 1 blake3
//! / dir 0755 0 0 - - - - -
//! /bin symlink - 0 0 - - usr/bin - -
//! /dev/null char 0666 0 0 - - - 1:3 -
//! /usr/bin/ping file 0755 0 0 72056 3f1c...(64 hex) - - security.capability=0x0100000200200000000000000000000000000000
//! ```
//!
//! Fields: path, type, mode (octal with setuid/setgid/sticky; `-` for
//! symlinks, whose mode means nothing), uid, gid, size (files), BLAKE3 of the
//! content (files), link target, `major:minor` (devices), xattrs (`name=0xHEX`
//! sorted by name, joined by `,`). Absent fields are `-`. Bytes outside
//! printable ASCII, space and `\` are written `\xHH` (and `,` `=` in xattr
//! names). Times are left out, as OSTree's content checksum leaves them out,
//! so identical content has one hash; so are sockets (they hold nothing) and
//! hard-link structure. The root hash is the BLAKE3 of this text.

pub mod compare;
mod hashing;
mod incremental;
pub mod kept;
mod line;
pub mod scan;
#[cfg(test)]
mod scan_tests;

use crate::history::diff::Kind;
use anyhow::{bail, Context, Result};

/// First line of every manifest: format version and content hash.
pub const HEADER: &str = "sidus-manifest 1 blake3";

/// A BLAKE3 digest.
pub type Hash = [u8; 32];

/// What a manifest records of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path within the tree, raw bytes (`/etc/motd`; the root is `/`).
    pub path: Vec<u8>,
    /// Its type.
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (0 for symlinks).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes, for regular files.
    pub size: Option<u64>,
    /// BLAKE3 of the content, for regular files.
    pub hash: Option<Hash>,
    /// Target, for symlinks.
    pub target: Option<Vec<u8>>,
    /// (major, minor), for devices.
    pub device: Option<(u64, u64)>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// What the file system said of the inode, to reuse this entry for a later
    /// snapshot; kept with the manifest, never part of it.
    pub stamp: Option<Stamp>,
}

/// Inode number, size and times of an entry when it was read: equal stamps in
/// two snapshots of one tree mean an unchanged file (see [`scan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Inode number.
    pub ino: u64,
    /// Modification time, seconds and nanoseconds.
    pub mtime: (i64, u32),
    /// Status change time, seconds and nanoseconds.
    pub ctime: (i64, u32),
}

/// A whole manifest: its entries sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The entries, sorted by path bytes.
    pub entries: Vec<Entry>,
}

/// Hex of a digest.
pub fn hex(h: &[u8]) -> String {
    let mut s = String::with_capacity(h.len() * 2);
    line::push_hex(&mut s, h);
    s
}

/// A path as people read it (not-UTF-8 bytes as U+FFFD).
pub fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// The root hash of manifest text fed line by line (without newlines).
pub struct RootHasher(blake3::Hasher);

impl RootHasher {
    /// Starts with the header line.
    pub fn new() -> RootHasher {
        let mut h = blake3::Hasher::new();
        h.update(HEADER.as_bytes());
        h.update(b"\n");
        RootHasher(h)
    }

    /// Adds one entry line.
    pub fn line(&mut self, line: &str) {
        self.0.update(line.as_bytes());
        self.0.update(b"\n");
    }

    /// The root hash in hex.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

impl Default for RootHasher {
    fn default() -> Self {
        RootHasher::new()
    }
}

impl Manifest {
    /// Sorts entries by path; every constructor ends with it.
    pub fn from_entries(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// The manifest text: the header, then one line per entry.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(64 + self.entries.len() * 120);
        s.push_str(HEADER);
        s.push('\n');
        for e in &self.entries {
            e.push_line(&mut s);
            s.push('\n');
        }
        s
    }

    /// The root hash: BLAKE3 of [`Manifest::text`], in hex.
    pub fn root_hash(&self) -> String {
        let mut h = RootHasher::new();
        let mut line = String::with_capacity(256);
        for e in &self.entries {
            line.clear();
            e.push_line(&mut line);
            h.line(&line);
        }
        h.finish()
    }

    /// Parses manifest text as [`Manifest::text`] writes it.
    pub fn parse(text: &str) -> Result<Manifest> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            bail!("not a sidus manifest (the first line is not '{HEADER}')");
        }
        let mut entries = Vec::new();
        for (n, line) in lines.enumerate() {
            let e = Entry::parse(line).with_context(|| format!("manifest line {}", n + 2))?;
            entries.push(e);
        }
        let m = Manifest { entries };
        if m.entries.windows(2).any(|w| w[0].path >= w[1].path) {
            bail!("manifest entries are not sorted by path, or repeat one");
        }
        Ok(m)
    }

    /// Total bytes of the regular files.
    pub fn file_bytes(&self) -> u64 {
        self.entries.iter().filter_map(|e| e.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn file(path: &str, data: &[u8]) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: Some(data.len() as u64),
            hash: Some(*blake3::hash(data).as_bytes()),
            target: None,
            device: None,
            xattrs: Vec::new(),
            stamp: None,
        }
    }

    #[test]
    fn lines_round_trip_with_awkward_bytes() {
        let mut odd = file("/a b\\c\n\u{e9}", b"x");
        odd.xattrs = vec![
            (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
            (b"user.a,b=c".to_vec(), Vec::new()),
        ];
        let link = Entry {
            kind: Kind::Symlink,
            mode: 0,
            size: None,
            hash: None,
            target: Some(b"../x y".to_vec()),
            ..file("/l", b"")
        };
        let dev = Entry {
            kind: Kind::Char,
            mode: 0o666,
            size: None,
            hash: None,
            device: Some((1, 3)),
            ..file("/dev/null", b"")
        };
        for e in [odd, link, dev] {
            let line = e.line();
            assert!(
                !line.contains('\n') && line.split(' ').count() == 10,
                "{line}"
            );
            assert_eq!(Entry::parse(&line).unwrap(), e, "{line}");
        }
        assert_eq!(file("/a b", b"").line().split(' ').next(), Some("/a\\x20b"));
    }

    #[test]
    fn root_hash_covers_every_field_and_not_times() {
        let a = Manifest::from_entries(vec![file("/z", b"1"), file("/a", b"2")]);
        assert_eq!(a.entries[0].path, b"/a");
        let text = a.text();
        assert!(text.starts_with("sidus-manifest 1 blake3\n/a file 0644 0 0 1 "));
        assert_eq!(Manifest::parse(&text).unwrap(), a);
        let mut b = a.clone();
        b.entries[0].stamp = Some(Stamp {
            ino: 9,
            mtime: (1, 2),
            ctime: (3, 4),
        });
        assert_eq!(a.root_hash(), b.root_hash(), "stamps are not content");
        b.entries[0].uid = 1;
        assert_ne!(a.root_hash(), b.root_hash());
        assert_eq!(a.root_hash().len(), 64);
    }

    #[test]
    fn bad_manifests_say_where() {
        let e = Manifest::parse("nope\n").unwrap_err().to_string();
        assert!(e.contains("not a sidus manifest"), "{e}");
        let e = Manifest::parse("sidus-manifest 1 blake3\n/a file\n").unwrap_err();
        assert!(format!("{e:#}").contains("manifest line 2"), "{e:#}");
        let two = format!(
            "{HEADER}\n{}\n{}\n",
            file("/b", b"").line(),
            file("/a", b"").line()
        );
        assert!(Manifest::parse(&two).is_err());
    }
}
