//! What differs between a manifest and what was found (`sidus verify`, and
//! `sidus import` before it says it succeeded).

use super::{hex, shown, Entry, Manifest};
use crate::history::diff::Kind;
use serde::Serialize;
use std::cmp::Ordering;

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum What {
    /// Found, not in the manifest.
    Added,
    /// In the manifest, not found.
    Removed,
    /// Another type (a file replaced by a symlink).
    Type,
    /// Other bytes (or size) in a regular file.
    Content,
    /// Other permission bits.
    Mode,
    /// Other uid or gid.
    Owner,
    /// Other extended attributes.
    Xattr,
    /// Another symlink target.
    Target,
    /// Another device number.
    Device,
}

impl What {
    /// The word shown in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            What::Added => "added",
            What::Removed => "removed",
            What::Type => "type",
            What::Content => "content",
            What::Mode => "mode",
            What::Owner => "owner",
            What::Xattr => "xattr",
            What::Target => "target",
            What::Device => "device",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The entry's path (not-UTF-8 bytes as U+FFFD).
    pub path: String,
    /// What differs.
    pub what: What,
    /// What the manifest says, where it says something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

fn short(h: &Option<super::Hash>) -> String {
    h.map(|h| hex(&h[..6])).unwrap_or_else(|| "-".into())
}

/// An xattr value as people read it: text if it is printable, else hex.
fn value(v: &[u8]) -> String {
    if !v.is_empty() && v.iter().all(|b| (0x20..0x7f).contains(b)) {
        format!("\"{}\"", String::from_utf8_lossy(v))
    } else {
        format!("0x{}", hex(v))
    }
}

fn xattr_detail(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> (String, String) {
    let names = |x: &[(Vec<u8>, Vec<u8>)], y: &[(Vec<u8>, Vec<u8>)]| {
        x.iter()
            .filter(|kv| !y.contains(kv))
            .map(|(n, v)| format!("{}={}", shown(n), value(v)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let or_none = |s: String| if s.is_empty() { "-".to_string() } else { s };
    (or_none(names(a, b)), or_none(names(b, a)))
}

fn differences(want: &Entry, got: &Entry, out: &mut Vec<Difference>) {
    let mut push = |what, expected: String, found: String| {
        out.push(Difference {
            path: shown(&want.path),
            what,
            expected: Some(expected),
            found: Some(found),
        })
    };
    if want.kind != got.kind {
        push(
            What::Type,
            want.kind.as_str().into(),
            got.kind.as_str().into(),
        );
        return;
    }
    if want.size != got.size || want.hash != got.hash {
        let desc = |e: &Entry| format!("{} bytes {}", e.size.unwrap_or(0), short(&e.hash));
        push(What::Content, desc(want), desc(got));
    }
    if want.mode != got.mode {
        push(
            What::Mode,
            format!("{:04o}", want.mode),
            format!("{:04o}", got.mode),
        );
    }
    if (want.uid, want.gid) != (got.uid, got.gid) {
        push(
            What::Owner,
            format!("{}:{}", want.uid, want.gid),
            format!("{}:{}", got.uid, got.gid),
        );
    }
    if want.target != got.target {
        let t = |e: &Entry| shown(e.target.as_deref().unwrap_or(b"-"));
        push(What::Target, t(want), t(got));
    }
    if want.device != got.device {
        let d = |e: &Entry| e.device.map_or("-".into(), |(a, b)| format!("{a}:{b}"));
        push(What::Device, d(want), d(got));
    }
    if want.xattrs != got.xattrs {
        let (only_want, only_got) = xattr_detail(&want.xattrs, &got.xattrs);
        push(What::Xattr, only_want, only_got);
    }
}

fn one(e: &Entry, what: What) -> Difference {
    let desc = match e.kind {
        Kind::File => format!("file, {} bytes", e.size.unwrap_or(0)),
        k => k.as_str().to_string(),
    };
    let (expected, found) = match what {
        What::Removed => (Some(desc), None),
        _ => (None, Some(desc)),
    };
    Difference {
        path: shown(&e.path),
        what,
        expected,
        found,
    }
}

/// Every difference from `want` (the manifest) to `got` (what was found), by path.
pub fn compare(want: &Manifest, got: &Manifest) -> Vec<Difference> {
    let (w, g) = (&want.entries, &got.entries);
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < w.len() || j < g.len() {
        let ord = match (w.get(i), g.get(j)) {
            (Some(a), Some(b)) => a.path.cmp(&b.path),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                out.push(one(&w[i], What::Removed));
                i += 1;
            }
            Ordering::Greater => {
                out.push(one(&g[j], What::Added));
                j += 1;
            }
            Ordering::Equal => {
                differences(&w[i], &g[j], &mut out);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::file;

    #[test]
    fn each_kind_of_tampering_is_named() {
        let want = Manifest::from_entries(vec![
            file("/a", b"one"),
            file("/b", b"two"),
            file("/c", b"three"),
            file("/d", b"four"),
            file("/e", b"five"),
            file("/gone", b""),
        ]);
        let mut got = want.clone();
        got.entries[0].hash = file("/a", b"ONE").hash;
        got.entries[1].mode = 0o600;
        got.entries[2].uid = 1000;
        got.entries[3].xattrs = vec![(b"user.x".to_vec(), b"1".to_vec())];
        got.entries[4] = Entry {
            kind: Kind::Symlink,
            mode: 0,
            size: None,
            hash: None,
            target: Some(b"a".to_vec()),
            ..file("/e", b"")
        };
        got.entries.pop();
        got.entries.push(file("/new", b"x"));
        let d = compare(&want, &got);
        let got: Vec<(String, &str)> = d
            .iter()
            .map(|d| (d.path.clone(), d.what.as_str()))
            .collect();
        let want: Vec<(String, &str)> = [
            ("/a", "content"),
            ("/b", "mode"),
            ("/c", "owner"),
            ("/d", "xattr"),
            ("/e", "type"),
            ("/gone", "removed"),
            ("/new", "added"),
        ]
        .iter()
        .map(|(p, w)| (p.to_string(), *w))
        .collect();
        assert_eq!(got, want);
        assert_eq!(d[1].expected.as_deref(), Some("0644"));
        assert_eq!(d[1].found.as_deref(), Some("0600"));
        assert_eq!(d[3].expected.as_deref(), Some("-"));
        assert_eq!(d[3].found.as_deref(), Some("user.x=\"1\""));
        let m = Manifest::from_entries(vec![file("/a", b"")]);
        assert!(compare(&m, &m).is_empty());
    }
}
