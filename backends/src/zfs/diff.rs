//! `zfs diff`: what changed between a snapshot and a later snapshot (or the
//! working dataset), as ZFS tracks it, without reading either tree.
//!
//! `zfs diff -H -F FROM TO` (OpenZFS 2.1) prints one tab-separated line per
//! changed object: `CHANGE TYPE PATH [NEWPATH | (+N)]`, where CHANGE is `+`,
//! `-`, `M` or `R` (renamed: NEWPATH follows), TYPE is `F` `/` `@` `B` `C`
//! `|` `=` (file, directory, symlink, block, char, FIFO, socket), and a
//! trailing `(+N)`/`(-N)` on `M` says the link count changed (a hard link
//! added or removed: ZFS names only one of the file's names). PATH is the
//! path under the mountpoint of TO's dataset, with every byte outside
//! `!`..`~` and every `\` written as `\` and four octal digits. `-h` would
//! print names raw, so a tab or newline in one would be unparseable: it is
//! not used. FROM must be an earlier snapshot of TO's dataset (or of its
//! origin); anything else is [`BackendError::Unsupported`].

use super::Zfs;
use crate::{argv, BackendError, ChangedPath, DiffSide, PathChange, Result};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

impl Zfs {
    /// The ZFS name of a side, and the mountpoint its paths are printed under.
    fn diff_side(&self, side: DiffSide<'_>) -> Result<(String, PathBuf)> {
        match side {
            DiffSide::Snapshot(tree, id) => {
                let found = self.locate(tree, id)?;
                Ok((found.name, found.dataset_mountpoint))
            }
            DiffSide::Working(tree) => {
                use crate::Backend;
                Ok((self.working_ds(tree), self.tree_path(tree)?))
            }
        }
    }

    /// What changed from `from` to `to` (see the module doc).
    pub(super) fn diff(&self, from: DiffSide<'_>, to: DiffSide<'_>) -> Result<Vec<ChangedPath>> {
        if matches!(from, DiffSide::Working(_)) {
            // zfs diff starts from a snapshot: ask the other way round.
            if matches!(to, DiffSide::Working(_)) {
                return Err(BackendError::unsupported(
                    "compare two working trees with zfs diff",
                    "zfs diff starts from a snapshot",
                ));
            }
            return Ok(invert(self.diff(to, from)?));
        }
        let (from_name, from_mount) = self.diff_side(from)?;
        let (to_name, to_mount) = self.diff_side(to)?;
        let action = format!("list what changed from {from_name} to {to_name}");
        let out = match self.zfs(&action, argv!["diff", "-H", "-F", &from_name, &to_name]) {
            Err(BackendError::Unsupported { .. }) if matches!(to, DiffSide::Snapshot(..)) => {
                // TO may be the earlier of the two.
                let out = self.zfs(&action, argv!["diff", "-H", "-F", &to_name, &from_name])?;
                return parse(&out, &from_mount).map(invert);
            }
            other => other?,
        };
        parse(&out, &to_mount)
    }
}

/// The changes from the other side's point of view.
fn invert(changes: Vec<ChangedPath>) -> Vec<ChangedPath> {
    changes
        .into_iter()
        .map(|mut c| {
            match c.change {
                PathChange::Added => c.change = PathChange::Removed,
                PathChange::Removed => c.change = PathChange::Added,
                PathChange::Renamed => {
                    if let Some(to) = c.to.take() {
                        c.to = Some(std::mem::replace(&mut c.path, to));
                    }
                }
                PathChange::Modified => {}
            }
            c
        })
        .collect()
}

/// Parses `zfs diff -H -F` output whose paths are under `mountpoint`.
pub(super) fn parse(out: &str, mountpoint: &Path) -> Result<Vec<ChangedPath>> {
    let bad = |line: &str, why: &str| BackendError::UnexpectedOutput {
        tool: "zfs diff".into(),
        detail: format!("{why}: {line:?}"),
    };
    let mut changes = Vec::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 || f.len() > 4 {
            return Err(bad(line, "not 3 or 4 fields"));
        }
        let change = match f[0] {
            "+" => PathChange::Added,
            "-" => PathChange::Removed,
            "M" => PathChange::Modified,
            "R" => PathChange::Renamed,
            _ => return Err(bad(line, "unknown change")),
        };
        let dir = match f[1] {
            "/" => true,
            "F" | "@" | "B" | "C" | "|" | "=" | ">" | "P" => false,
            _ => return Err(bad(line, "unknown file type")),
        };
        let relative = |field: &str| {
            let raw = unescape(field).ok_or_else(|| bad(line, "bad escape"))?;
            within(&raw, mountpoint).ok_or_else(|| bad(line, "path outside the dataset"))
        };
        let path = relative(f[2])?;
        let (to, links_changed) = match (change, f.get(3)) {
            (PathChange::Renamed, Some(new)) => (Some(relative(new)?), false),
            (PathChange::Renamed, None) => return Err(bad(line, "rename without a new path")),
            (_, Some(delta)) if delta.starts_with('(') && delta.ends_with(')') => (None, true),
            (_, Some(_)) => return Err(bad(line, "unexpected fourth field")),
            (_, None) => (None, false),
        };
        changes.push(ChangedPath {
            change,
            dir,
            path,
            to,
            links_changed,
        });
    }
    Ok(changes)
}

/// Undoes `zfs diff`'s `\NNNN` (four octal digits) escapes.
fn unescape(field: &str) -> Option<Vec<u8>> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let digits = b.get(i + 1..i + 5)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return None;
            }
            let v = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(v).ok()?);
            i += 5;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// `raw` (an absolute path) as a path within the tree mounted at `mountpoint`:
/// `/M/etc/motd` -> `/etc/motd`, `/M/` or `/M` -> `/`.
fn within(raw: &[u8], mountpoint: &Path) -> Option<PathBuf> {
    let mp = mountpoint.as_os_str().as_bytes();
    let mp = mp.strip_suffix(b"/").unwrap_or(mp);
    let rest = raw.strip_prefix(mp)?;
    if rest.is_empty() {
        return Some(PathBuf::from("/"));
    }
    if rest[0] != b'/' {
        return None;
    }
    let rest = rest
        .strip_suffix(b"/")
        .filter(|r| !r.is_empty())
        .unwrap_or(rest);
    Some(PathBuf::from(OsString::from_vec(rest.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn summary(changes: &[ChangedPath]) -> Vec<String> {
        let mut out: Vec<String> = changes
            .iter()
            .map(|c| {
                let mut s = format!(
                    "{:?} {}{}",
                    c.change,
                    if c.dir { "dir " } else { "" },
                    c.path.display()
                );
                if let Some(to) = &c.to {
                    s.push_str(&format!(" -> {}", to.display()));
                }
                if c.links_changed {
                    s.push_str(" (links)");
                }
                s
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn escapes_and_mountpoints_are_undone() {
        assert_eq!(unescape(r"a\0040b\0134c\0011").unwrap(), b"a b\\c\t");
        assert_eq!(unescape(r"\0303\0274").unwrap(), "ü".as_bytes());
        assert!(unescape(r"bad\09").is_none());
        let mp = Path::new("/cap/t");
        assert_eq!(within(b"/cap/t/etc/motd", mp), Some("/etc/motd".into()));
        assert_eq!(within(b"/cap/t/", mp), Some("/".into()));
        assert_eq!(within(b"/cap/t", mp), Some("/".into()));
        assert_eq!(within(b"/cap/t/etc/", mp), Some("/etc".into()));
        assert_eq!(within(b"/cap/tx/etc", mp), None);
        assert_eq!(within(b"/other", mp), None);
    }

    #[test]
    fn every_kind_of_change_between_two_snapshots_is_read() {
        let got = summary(&parse(&fixture("zfs-diff-snapshots.out"), Path::new("/cap/t")).unwrap());
        let want = [
            "Added /added/dir/f",
            "Added /back\\slash",
            "Added /fifo",
            "Added /new\nline",
            "Added /py",
            "Added /tab\there",
            "Added /with space",
            "Added /ünï",
            "Added dir /added",
            "Added dir /added/dir",
            "Modified /etc/motd",
            "Modified /etc/perm",
            "Modified /linked (links)",
            "Modified dir /",
            "Modified dir /etc",
            "Removed /gone/deep/f",
            "Removed /py",
            "Removed dir /gone",
            "Removed dir /gone/deep",
            "Renamed /etc/sub/keep -> /moved/keep",
            "Renamed dir /etc/sub -> /moved",
        ];
        assert_eq!(got, want);
        let working = parse(&fixture("zfs-diff-working.out"), Path::new("/cap/t")).unwrap();
        assert_eq!(summary(&working), ["Added /working", "Modified dir /"]);
    }

    #[test]
    fn garbage_is_unexpected_output_not_a_guess() {
        let mp = Path::new("/m");
        assert!(parse("X\tF\t/m/a\n", mp).is_err());
        assert!(parse("+\tF\n", mp).is_err());
        assert!(parse("+\tF\t/elsewhere/a\n", mp).is_err());
        assert!(parse("R\tF\t/m/a\n", mp).is_err());
        assert_eq!(parse("", mp).unwrap(), vec![]);
    }

    #[test]
    fn inverting_swaps_sides() {
        let c = |change, path: &str, to: Option<&str>| ChangedPath {
            change,
            dir: false,
            path: path.into(),
            to: to.map(PathBuf::from),
            links_changed: false,
        };
        let inv = invert(vec![
            c(PathChange::Added, "/a", None),
            c(PathChange::Renamed, "/old", Some("/new")),
        ]);
        assert_eq!(
            inv,
            vec![
                c(PathChange::Removed, "/a", None),
                c(PathChange::Renamed, "/new", Some("/old")),
            ]
        );
    }
}
