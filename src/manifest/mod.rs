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
pub mod scan;
#[cfg(test)]
mod scan_tests;

use crate::history::diff::Kind;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;

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
    push_hex(&mut s, h);
    s
}

/// Appends the hex of `h` (a table, not `write!`: manifests hold a hash per file).
fn push_hex(s: &mut String, h: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in h {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Appends `n` in decimal.
fn push_decimal(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.push_str(std::str::from_utf8(&digits[i..]).expect("digits"));
}

/// Appends `n` in octal, at least 4 digits (`{:04o}`).
fn push_octal4(s: &mut String, n: u32) {
    let mut digits = [0u8; 11];
    let mut i = digits.len();
    let mut n = n;
    while n > 0 || digits.len() - i < 4 {
        i -= 1;
        digits[i] = b'0' + (n & 7) as u8;
        n >>= 3;
    }
    s.push_str(std::str::from_utf8(&digits[i..]).expect("digits"));
}

/// A 32-byte digest from its 64 hex digits.
fn unhex_hash(s: &str) -> Option<Hash> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, out) in h.iter_mut().enumerate() {
        *out = (hex_digit(b[2 * i])? << 4) | hex_digit(b[2 * i + 1])?;
    }
    Some(h)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| Some((hex_digit(p[0])? << 4) | hex_digit(p[1])?))
        .collect()
}

/// Appends `bytes` to `out`, escaping what would break a field.
fn escape(out: &mut String, bytes: &[u8], extra: &[u8]) {
    for &b in bytes {
        if (0x21..=0x7e).contains(&b) && b != b'\\' && !extra.contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

fn unescape(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let v = s
                .get(i + 1..i + 4)
                .and_then(|e| e.strip_prefix('x'))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("bad escape in '{s}'"))?;
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A path as people read it (not-UTF-8 bytes as U+FFFD).
pub fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn kind_of(token: &str) -> Result<Kind> {
    Ok(match token {
        "file" => Kind::File,
        "dir" => Kind::Dir,
        "symlink" => Kind::Symlink,
        "char" => Kind::Char,
        "block" => Kind::Block,
        "fifo" => Kind::Fifo,
        other => bail!("unknown entry type '{other}'"),
    })
}

impl Entry {
    /// The manifest line of this entry, without the newline.
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(128);
        self.push_line(&mut s);
        s
    }

    /// Appends [`Entry::line`] to `s` (manifests are written a line per
    /// entry, tens of thousands: no allocation or formatting machinery).
    pub fn push_line(&self, s: &mut String) {
        escape(s, &self.path, b"");
        s.push(' ');
        s.push_str(self.kind.as_str());
        if self.kind == Kind::Symlink {
            s.push_str(" -");
        } else {
            s.push(' ');
            push_octal4(s, self.mode);
        }
        s.push(' ');
        push_decimal(s, u64::from(self.uid));
        s.push(' ');
        push_decimal(s, u64::from(self.gid));
        s.push(' ');
        match self.size {
            Some(n) => push_decimal(s, n),
            None => s.push('-'),
        }
        s.push(' ');
        match &self.hash {
            Some(h) => push_hex(s, h),
            None => s.push('-'),
        }
        s.push(' ');
        match &self.target {
            Some(t) => escape(s, t, b""),
            None => s.push('-'),
        }
        s.push(' ');
        match self.device {
            Some((ma, mi)) => {
                push_decimal(s, ma);
                s.push(':');
                push_decimal(s, mi);
            }
            None => s.push('-'),
        }
        s.push(' ');
        if self.xattrs.is_empty() {
            s.push('-');
        }
        for (i, (name, value)) in self.xattrs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            escape(s, name, b",=");
            s.push_str("=0x");
            push_hex(s, value);
        }
    }

    /// Parses a manifest line (anything after a tab is left for the caller).
    pub fn parse(line: &str) -> Result<Entry> {
        let mut f = [""; 10];
        let mut n = 0;
        for field in line.split(' ') {
            if n < f.len() {
                f[n] = field;
            }
            n += 1;
        }
        if n != f.len() {
            bail!("expected 10 fields, found {n}");
        }
        let [path, kind, mode, uid, gid, size, hash, target, device, xattrs] = f;
        fn opt(v: &str) -> Option<&str> {
            (v != "-").then_some(v)
        }
        let kind = kind_of(kind)?;
        let mode = match mode {
            "-" => 0,
            m => u32::from_str_radix(m, 8).with_context(|| format!("bad mode '{m}'"))?,
        };
        let hash = match hash {
            "-" => None,
            h => Some(unhex_hash(h).with_context(|| format!("bad hash '{h}'"))?),
        };
        let device = match opt(device) {
            None => None,
            Some(d) => {
                let (a, b) = d
                    .split_once(':')
                    .with_context(|| format!("bad device '{d}'"))?;
                Some((a.parse()?, b.parse()?))
            }
        };
        let mut xa = Vec::new();
        if xattrs != "-" {
            for item in xattrs.split(',') {
                let (name, value) = item
                    .split_once("=0x")
                    .with_context(|| format!("bad xattr '{item}'"))?;
                let value = unhex(value).with_context(|| format!("bad xattr value '{item}'"))?;
                xa.push((unescape(name)?, value));
            }
        }
        Ok(Entry {
            path: unescape(path)?,
            kind,
            mode,
            uid: uid.parse().with_context(|| format!("bad uid '{uid}'"))?,
            gid: gid.parse().with_context(|| format!("bad gid '{gid}'"))?,
            size: opt(size).map(|s| s.parse()).transpose()?,
            hash,
            target: opt(target).map(unescape).transpose()?,
            device,
            xattrs: xa,
            stamp: None,
        })
    }
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
    fn numbers_are_written_as_format_writes_them() {
        for m in [0, 7, 0o10, 0o644, 0o4755, 0o7777, u32::MAX] {
            let mut s = String::new();
            push_octal4(&mut s, m);
            assert_eq!(s, format!("{m:04o}"));
        }
        for n in [0, 9, 10, 1234567890, u64::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
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
