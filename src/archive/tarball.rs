//! A deterministic POSIX tar (pax) writer. Headers are built here rather than
//! by the `tar` crate, whose deterministic mode replaces owners, modes and
//! times (NOTES-next §7): every field comes from the entry itself, owners are
//! numeric with no names, times are the files' own (whole seconds), and a pax
//! header is added only when a field does not fit ustar, with its records
//! (and xattrs, `SCHILY.xattr.NAME`) in sorted order.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// A tar member's type and its type-specific fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// A regular file of this many bytes (the data follows).
    File(u64),
    /// A hard link to an earlier member's name.
    HardLink(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A character device (major, minor).
    Char(u64, u64),
    /// A block device (major, minor).
    Block(u64, u64),
    /// A directory.
    Dir,
    /// A named pipe.
    Fifo,
}

/// What every member has besides its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time, whole seconds.
    pub mtime: i64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Writes `n` as `width - 1` octal digits and a NUL, if it fits.
fn octal(field: &mut [u8], n: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{n:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

/// One pax record: `LEN key=value\n`, LEN counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Splits a path into ustar (prefix, name) if it fits.
fn split_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((b"", path));
    }
    // The split is at a '/': prefix up to 155 bytes, name up to 100.
    (1..path.len())
        .rev()
        .filter(|&i| path[i] == b'/')
        .find(|&i| i <= 155 && path.len() - i - 1 <= 100 && path.len() - i > 1)
        .map(|i| (&path[..i], &path[i + 1..]))
}

/// The fields of one header besides the [`Attrs`].
#[derive(Clone, Copy)]
struct Head<'a> {
    name: &'a [u8],
    typeflag: u8,
    size: u64,
    link: &'a [u8],
    dev: (u64, u64),
}

/// A tar stream being written.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    /// Starts a tar stream on `out`.
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter { out, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// The ustar header of `head` with `a`; what does not fit goes to `pax`.
    fn header(head: &Head, a: &Attrs, pax: &mut Vec<u8>) -> [u8; BLOCK] {
        let Head {
            name,
            typeflag,
            size,
            link,
            dev,
        } = *head;
        let mut h = [0u8; BLOCK];
        match split_path(name) {
            Some((prefix, n)) => {
                h[..n.len()].copy_from_slice(n);
                h[345..345 + prefix.len()].copy_from_slice(prefix);
            }
            None => {
                pax_record(pax, b"path", name);
                let cut = &name[..100];
                h[..100].copy_from_slice(cut);
            }
        }
        octal(&mut h[100..108], u64::from(a.mode & 0o7777));
        if !octal(&mut h[108..116], u64::from(a.uid)) {
            pax_record(pax, b"uid", a.uid.to_string().as_bytes());
            octal(&mut h[108..116], 0);
        }
        if !octal(&mut h[116..124], u64::from(a.gid)) {
            pax_record(pax, b"gid", a.gid.to_string().as_bytes());
            octal(&mut h[116..124], 0);
        }
        if !octal(&mut h[124..136], size) {
            pax_record(pax, b"size", size.to_string().as_bytes());
            octal(&mut h[124..136], 0);
        }
        if a.mtime < 0 || !octal(&mut h[136..148], a.mtime as u64) {
            pax_record(pax, b"mtime", a.mtime.to_string().as_bytes());
            octal(&mut h[136..148], 0);
        }
        h[156] = typeflag;
        if link.len() <= 100 {
            h[157..157 + link.len()].copy_from_slice(link);
        } else {
            pax_record(pax, b"linkpath", link);
            h[157..257].copy_from_slice(&link[..100]);
        }
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if typeflag == b'3' || typeflag == b'4' {
            // Device numbers beyond ustar's 7 octal digits do not exist on Linux (12+20 bits).
            octal(&mut h[329..337], dev.0);
            octal(&mut h[337..345], dev.1);
        }
        for (k, v) in &a.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax_record(pax, &key, v);
        }
        h
    }

    fn checksum(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
    }

    /// Writes one member's headers; for a file, the caller then writes its
    /// data with [`TarWriter::data`].
    pub fn member(&mut self, name: &[u8], m: &Member, a: &Attrs) -> io::Result<()> {
        let (typeflag, size, link, dev): (u8, u64, &[u8], (u64, u64)) = match m {
            Member::File(n) => (b'0', *n, b"", (0, 0)),
            Member::HardLink(t) => (b'1', 0, t, (0, 0)),
            Member::Symlink(t) => (b'2', 0, t, (0, 0)),
            Member::Char(a, b) => (b'3', 0, b"", (*a, *b)),
            Member::Block(a, b) => (b'4', 0, b"", (*a, *b)),
            Member::Dir => (b'5', 0, b"", (0, 0)),
            Member::Fifo => (b'6', 0, b"", (0, 0)),
        };
        let mut pax = Vec::new();
        let head = Head {
            name,
            typeflag,
            size,
            link,
            dev,
        };
        let mut h = Self::header(&head, a, &mut pax);
        Self::checksum(&mut h);
        if !pax.is_empty() {
            let plain = Attrs {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: a.mtime.max(0),
                xattrs: Vec::new(),
            };
            let mut ignored = Vec::new();
            let pax_head = Head {
                name: b"././@PaxHeader",
                typeflag: b'x',
                size: pax.len() as u64,
                link: b"",
                dev: (0, 0),
            };
            let mut ph = Self::header(&pax_head, &plain, &mut ignored);
            Self::checksum(&mut ph);
            self.put(&ph)?;
            self.put(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        self.put(&h)
    }

    /// Copies exactly `size` bytes of a file member's data from `r`, with its
    /// padding; fewer bytes is an error (the file shrank).
    pub fn data(
        &mut self,
        r: &mut impl Read,
        size: u64,
        mut seen: impl FnMut(&[u8]),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = r.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its size",
                ));
            }
            seen(&buf[..n]);
            self.put(&buf[..n])?;
            left -= n as u64;
        }
        self.pad(size)
    }

    /// Writes a whole small file member from memory.
    pub fn bytes(&mut self, name: &[u8], a: &Attrs, data: &[u8]) -> io::Result<()> {
        self.member(name, &Member::File(data.len() as u64), a)?;
        self.data(&mut &data[..], data.len() as u64, |_| {})
    }

    /// Ends the archive (two zero blocks) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[0u8; BLOCK * 2])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Attrs {
        Attrs {
            mode: 0o4755,
            uid: 3_000_000,
            gid: 7,
            mtime: 1_764_065_700,
            xattrs,
        }
    }

    #[test]
    fn the_tar_crate_reads_back_every_field() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(120));
        let mut w = TarWriter::new(Vec::new());
        w.member(b"./", &Member::Dir, &attrs(vec![])).unwrap();
        let x = vec![(b"security.capability".to_vec(), vec![1, 0, 0, 2, 0])];
        w.bytes(long.as_bytes(), &attrs(x.clone()), b"hello")
            .unwrap();
        w.member(b"l", &Member::Symlink(b"../t".to_vec()), &attrs(vec![]))
            .unwrap();
        w.member(b"null", &Member::Char(1, 3), &attrs(vec![]))
            .unwrap();
        w.member(
            b"h",
            &Member::HardLink(long.as_bytes().to_vec()),
            &attrs(vec![]),
        )
        .unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);

        let mut a = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let pax: Vec<(String, Vec<u8>)> = match e.pax_extensions().unwrap() {
                Some(p) => p
                    .map(|x| {
                        let x = x.unwrap();
                        (x.key().unwrap().to_string(), x.value_bytes().to_vec())
                    })
                    .collect(),
                None => vec![],
            };
            let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((path, h.entry_type().as_byte(), h.mode().unwrap(), data, pax));
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0].0, "./");
        assert_eq!(seen[1].0, long);
        assert_eq!(seen[1].2, 0o4755);
        assert_eq!(seen[1].3, b"hello");
        let keys: Vec<&str> = seen[1].4.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["path", "uid", "SCHILY.xattr.security.capability"]);
        assert_eq!(seen[1].4[1].1, b"3000000");
        assert_eq!(seen[1].4[2].1, x[0].1);
        assert_eq!(seen[2].1, b'2');
        assert_eq!(seen[3].1, b'3');
        assert_eq!(seen[4].1, b'1');
    }

    #[test]
    fn pax_lengths_count_themselves() {
        for n in [0, 80, 89, 90, 91, 995, 996, 997] {
            let mut out = Vec::new();
            pax_record(&mut out, b"k", &vec![b'v'; n]);
            let (len, _) = std::str::from_utf8(&out).unwrap().split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{n}");
        }
    }

    #[test]
    fn a_file_that_shrank_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        w.member(b"f", &Member::File(10), &attrs(vec![])).unwrap();
        assert!(w.data(&mut &b"short"[..], 10, |_| {}).is_err());
    }
}
