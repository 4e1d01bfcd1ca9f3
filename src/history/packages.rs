//! Debian package sets: parsing `var/lib/dpkg/status`, comparing versions per
//! deb-version(5), and the difference between two sets.

use anyhow::{Context, Result};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::Path;

/// Where dpkg keeps its package database in a tree.
pub const STATUS_PATH: &str = "var/lib/dpkg/status";

/// The dpkg status file of the tree at `root`, or `None` when it has none. The
/// path is resolved inside the tree (symlinks cannot lead out of it).
pub fn read_status_in(root: &Path) -> Result<Option<String>> {
    read_in_tree(root, STATUS_PATH)
}

/// The file `rel` of the tree at `root` as text (invalid UTF-8 replaced), or
/// `None` when it does not exist. Resolved inside the tree: a symlink such as
/// `/etc/os-release -> ../usr/lib/os-release` is followed, but never out.
pub fn read_in_tree(root: &Path, rel: &str) -> Result<Option<String>> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    let dir = std::fs::File::open(root).with_context(|| format!("open {}", root.display()))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(std::os::fd::AsRawFd::as_raw_fd(&dir), rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("open {}/{rel}", root.display())),
    };
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("read {}/{rel}", root.display()))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// An installed package: (name, architecture) -> version.
pub type PackageSet = BTreeMap<(String, String), String>;

/// The packages `status` (the text of a dpkg status file) lists as installed.
/// Stanzas in other states (`config-files`, `not-installed`, half-installed) are
/// left out: their files are not (all) there.
pub fn parse_status(status: &str) -> PackageSet {
    installed(status)
        .into_iter()
        .map(|p| ((p.name, p.arch), p.version))
        .collect()
}

/// An installed package with what a bill of materials names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Its name.
    pub name: String,
    /// Its architecture (`amd64`, `all`; empty when the stanza has none).
    pub arch: String,
    /// Its version.
    pub version: String,
    /// The source package it was built from (its own name when not stated).
    pub source: String,
    /// The source package's version (its own version when not stated).
    pub source_version: String,
    /// The `Maintainer` field.
    pub maintainer: Option<String>,
    /// The `Homepage` field.
    pub homepage: Option<String>,
    /// The first line of `Description`.
    pub summary: Option<String>,
}

/// The installed packages of a dpkg status file, sorted by name and
/// architecture; a package listed twice counts once, as its last stanza says.
pub fn installed(status: &str) -> Vec<Installed> {
    #[derive(Default)]
    struct Stanza<'a> {
        fields: BTreeMap<&'a str, &'a str>,
        installed: bool,
    }
    fn finish(s: Stanza<'_>, out: &mut BTreeMap<(String, String), Installed>) {
        let f = |k: &str| s.fields.get(k).map(|v| v.to_string());
        let (Some(name), Some(version), true) = (f("Package"), f("Version"), s.installed) else {
            return;
        };
        // deb-control(5): `Source: name` or `Source: name (version)`.
        let (source, source_version) = match s.fields.get("Source") {
            Some(src) => match src.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim_end_matches(')').trim().to_string(),
                ),
                None => (src.trim().to_string(), version.clone()),
            },
            None => (name.clone(), version.clone()),
        };
        let arch = f("Architecture").unwrap_or_default();
        out.insert(
            (name.clone(), arch.clone()),
            Installed {
                name,
                arch,
                version,
                source,
                source_version,
                maintainer: f("Maintainer"),
                homepage: f("Homepage"),
                summary: f("Description").filter(|d| !d.is_empty()),
            },
        );
    }
    let mut out = BTreeMap::new();
    let mut cur = Stanza::default();
    for line in status.lines() {
        if line.trim().is_empty() {
            finish(std::mem::take(&mut cur), &mut out);
            continue;
        }
        // Continuation lines (descriptions, conffiles) start with white space.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if key == "Status" {
            // "want flag state", e.g. "install ok installed".
            cur.installed = value.split_whitespace().nth(2) == Some("installed");
        }
        cur.fields.insert(key, value);
    }
    finish(cur, &mut out);
    out.into_values().collect()
}

/// Compares two Debian versions per deb-version(5):
/// `[epoch:]upstream[-revision]`, `~` sorting before everything, even the end.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

/// (epoch, upstream, revision); a missing revision compares as "0", as dpkg does.
fn split_version(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, "0"),
    }
}

/// The weight of a non-digit character: `~` first (even before the end of the
/// string), then the end, then letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // The non-digit prefixes, character by character.
        loop {
            let (ca, cb) = (a.first().copied(), b.first().copied());
            let a_digit = ca.is_none_or(|c| c.is_ascii_digit());
            let b_digit = cb.is_none_or(|c| c.is_ascii_digit());
            if a_digit && b_digit {
                break;
            }
            let o = order(ca).cmp(&order(cb));
            if o != Ordering::Equal {
                return o;
            }
            a = &a[1.min(a.len())..];
            b = &b[1.min(b.len())..];
        }
        // Then the digit runs, numerically (leading zeros do not count).
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
        let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
        if o != Ordering::Equal {
            return o;
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let start = d.iter().take_while(|&&c| c == b'0').count();
    &d[start..]
}

/// One package on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its architecture (`amd64`, `all`).
    pub arch: String,
    /// Its version.
    pub version: String,
}

/// A package present on both sides in different versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    /// Its name.
    pub name: String,
    /// Its architecture.
    pub arch: String,
    /// The version on the old side.
    pub old: String,
    /// The version on the new side.
    pub new: String,
}

/// How the package set changed from `old` to `new`, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageDiff {
    /// Only on the new side.
    pub installed: Vec<Package>,
    /// Only on the old side.
    pub removed: Vec<Package>,
    /// Newer on the new side.
    pub upgraded: Vec<VersionChange>,
    /// Older on the new side.
    pub downgraded: Vec<VersionChange>,
}

impl PackageDiff {
    /// True when both sides have the same packages in the same versions.
    pub fn is_empty(&self) -> bool {
        self.installed.is_empty()
            && self.removed.is_empty()
            && self.upgraded.is_empty()
            && self.downgraded.is_empty()
    }
}

/// Compares two package sets.
pub fn diff(old: &PackageSet, new: &PackageSet) -> PackageDiff {
    let mut d = PackageDiff::default();
    let pkg = |(n, a): &(String, String), v: &String| Package {
        name: n.clone(),
        arch: a.clone(),
        version: v.clone(),
    };
    for (key, v) in old {
        match new.get(key) {
            None => d.removed.push(pkg(key, v)),
            Some(nv) => {
                let change = || VersionChange {
                    name: key.0.clone(),
                    arch: key.1.clone(),
                    old: v.clone(),
                    new: nv.clone(),
                };
                match compare_versions(v, nv) {
                    Ordering::Less => d.upgraded.push(change()),
                    Ordering::Greater => d.downgraded.push(change()),
                    // Equal versions written differently (1.0 vs 1.0-0) are the same.
                    Ordering::Equal => {}
                }
            }
        }
    }
    for (key, v) in new {
        if !old.contains_key(key) {
            d.installed.push(pkg(key, v));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_per_deb_version() {
        use Ordering::*;
        let cases = [
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.2-1", "1.2-1+deb12u1", Less),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1:0.9", "2.0", Greater),
            ("1:1.0", "1:1.0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.01", "1.1", Equal),
            ("9", "10", Less),
            ("1.0-1", "1.0.1-1", Less),
            ("2:1.0", "1:9.9", Greater),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Less),
            ("1.0-1~bpo12+1", "1.0-1", Less),
            ("a", "b", Less),
            ("", "0", Equal),
            ("1.2.3-4-5", "1.2.3-4-6", Less), // revision after the last hyphen
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    const OLD: &str = "\
Package: hello
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 2.10-2
Description: example package
 based on GNU hello
 .
 more text: with a colon

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u4

Package: gone
Status: install ok installed
Architecture: all
Version: 1.0

Package: old-conf
Status: deinstall ok config-files
Architecture: all
Version: 3.0

Package: newer
Status: install ok installed
Architecture: all
Version: 2.0
";

    const NEW: &str = "\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u4

Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-2

Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u12

Package: newer
Status: install ok installed
Architecture: all
Version: 2.0~beta1

Package: half
Status: install reinstreq half-installed
Architecture: all
Version: 1
";

    #[test]
    fn status_parsing_keeps_installed_stanzas_per_architecture() {
        let s = parse_status(OLD);
        let keys: Vec<String> = s.keys().map(|(n, a)| format!("{n}:{a}")).collect();
        assert_eq!(
            keys,
            [
                "gone:all",
                "hello:amd64",
                "libc6:amd64",
                "libc6:i386",
                "newer:all"
            ]
        );
        assert_eq!(s[&("hello".into(), "amd64".into())], "2.10-2");
        assert!(parse_status("").is_empty());
        assert_eq!(
            parse_status(&OLD.replace('\n', "\r\n")),
            s,
            "CRLF line ends"
        );
    }

    #[test]
    fn installed_packages_name_their_source() {
        let status = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nVersion: 2.36-9+b1\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nDescription: GNU C Library: Shared libraries\n Contains the standard libraries.\n\nPackage: curl\nStatus: install ok installed\nArchitecture: amd64\nSource: curl\nVersion: 7.88.1-10\n\nPackage: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n";
        let p = installed(status);
        let got: Vec<_> = p
            .iter()
            .map(|p| format!("{} {} {} {}", p.name, p.version, p.source, p.source_version))
            .collect();
        assert_eq!(
            got,
            [
                "curl 7.88.1-10 curl 7.88.1-10",
                "hello 2.10-3 hello 2.10-3",
                "libc6 2.36-9+b1 glibc 2.36-9"
            ]
        );
        assert_eq!(
            p[2].summary.as_deref(),
            Some("GNU C Library: Shared libraries")
        );
        assert_eq!(
            p[2].maintainer.as_deref(),
            Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>")
        );
    }

    #[test]
    fn diff_reports_installed_removed_upgraded_downgraded() {
        let d = diff(&parse_status(OLD), &parse_status(NEW));
        let names = |p: &[Package]| p.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.installed), ["curl"]);
        assert_eq!(names(&d.removed), ["gone"]);
        assert_eq!(
            d.upgraded,
            [VersionChange {
                name: "libc6".into(),
                arch: "amd64".into(),
                old: "2.36-9+deb12u4".into(),
                new: "2.36-9+deb12u10".into()
            }]
        );
        assert_eq!(d.downgraded.len(), 1);
        assert_eq!(d.downgraded[0].new, "2.0~beta1");
        assert!(diff(&parse_status(NEW), &parse_status(NEW)).is_empty());
    }
}
