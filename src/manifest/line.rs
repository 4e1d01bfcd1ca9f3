//! One manifest line: an [`Entry`] written and parsed, and the escapes and
//! numbers its fields are written in (tens of thousands of lines a manifest:
//! no allocation or formatting machinery per field).

use super::{Entry, Hash};
use crate::history::diff::Kind;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;

/// Appends the hex of `h` (a table, not `write!`: manifests hold a hash per file).
pub(super) fn push_hex(s: &mut String, h: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in h {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Appends `n` in decimal.
pub(super) fn push_decimal(s: &mut String, mut n: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
