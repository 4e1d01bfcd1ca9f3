//! `sidus create TREE --debootstrap SUITE`: a Debian or Ubuntu tree bootstrapped
//! from a mirror (by default the host's own apt source) and prepared for
//! diskless nodes.

use crate::sandbox::paths::TreeRoot;
use crate::sandbox::purge::purge;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use crate::trees::{take_snapshot, RunFacts};
use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sidus_backends::{argv, Runner, Snapshot, SnapshotKind, TreeName};
use std::path::{Path, PathBuf};

/// What to bootstrap.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The suite (bookworm, trixie, noble...).
    pub suite: String,
    /// The mirror; `None`: the host's apt source.
    pub mirror: Option<String>,
    /// Extra packages, comma-separated.
    pub include: Option<String>,
    /// The debootstrap variant.
    pub variant: String,
}

/// One `deb` source of the host's apt configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The archive's URI.
    pub uri: String,
    /// Its suites.
    pub suites: Vec<String>,
    /// The keyring file it is signed with, when given as a path.
    pub signed_by: Option<PathBuf>,
}

/// The `deb` sources of a deb822 `.sources` file.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let words = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        if !words("types").iter().any(|t| t == "deb") || get("enabled") == Some("no") {
            continue;
        }
        let signed_by = get("signed-by")
            .filter(|v| v.starts_with('/') && !v.contains('\n'))
            .map(PathBuf::from);
        for uri in words("uris") {
            out.push(Source {
                uri,
                suites: words("suites"),
                signed_by: signed_by.clone(),
            });
        }
    }
    out
}

/// The `deb` sources of a one-line-style `sources.list`.
pub fn parse_list(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(PathBuf::from);
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push(Source {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
                signed_by,
            });
        }
    }
    out
}

/// The source to bootstrap `suite` from: one that lists it, else the first
/// one with a plain release suite (not -security, -updates...).
pub fn pick_mirror<'a>(sources: &'a [Source], suite: &str) -> Option<&'a Source> {
    sources
        .iter()
        .find(|s| s.suites.iter().any(|x| x == suite))
        .or_else(|| {
            sources.iter().find(|s| {
                s.suites
                    .iter()
                    .any(|x| !x.contains('-') && !x.contains('/'))
            })
        })
}

/// Every `deb` source of the host's apt configuration.
pub fn host_sources(etc_apt: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string(etc_apt.join("sources.list")) {
        out.extend(parse_list(&t));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(t) = std::fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(parse_deb822(&t)),
            Some("list") => out.extend(parse_list(&t)),
            _ => {}
        }
    }
    out
}

fn check_word(what: &str, value: &str, extra: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.as_bytes().contains(&b));
    if !ok {
        bail!(crate::UsageError(format!("invalid {what} '{value}'")));
    }
    Ok(())
}

/// Creates `tree` by debootstrap, prepares it for many nodes and installs the
/// node boot support (`sidus prepare-node`); takes a first snapshot.
pub fn create(store: &Store, tree: &TreeName, b: &Bootstrap) -> Result<(PathBuf, Snapshot)> {
    check_word("suite", &b.suite, ".-")?;
    check_word("variant", &b.variant, "-")?;
    if let Some(inc) = &b.include {
        check_word("--include package list", inc, ".+-,")?;
    }
    let (mirror, keyring) = match &b.mirror {
        Some(m) => (m.clone(), None),
        None => {
            let sources = host_sources(Path::new("/etc/apt"));
            let Some(src) = pick_mirror(&sources, &b.suite) else {
                bail!("no apt source on this host to take a mirror from: pass --mirror URL");
            };
            (
                src.uri.clone(),
                src.signed_by.clone().filter(|k| k.is_file()),
            )
        }
    };
    let _lock = store.write_lock(tree)?;
    if store.backend.list_trees()?.iter().any(|t| &t.name == tree) {
        bail!("tree '{tree}' already exists");
    }
    store.begin(
        Slot::Tree(tree.clone()),
        Change::Create { tree: tree.clone() },
        None,
    )?;
    let path = store.backend.create_tree(tree)?;
    let made = bootstrap(&path, b, &mirror, keyring.as_deref())
        .and_then(|()| prepare(&path))
        .and_then(|()| crate::publish::node::install(&path).map(drop))
        .and_then(|()| {
            take_snapshot(
                store,
                tree,
                SnapshotKind::Manual,
                &format!(
                    "debootstrap {} ({}) from {mirror}, prepared for diskless nodes",
                    b.suite, b.variant
                ),
                RunFacts::default(),
            )
        });
    match made {
        Ok(snap) => Ok((path, snap)),
        Err(e) => match store.backend.destroy_tree(tree) {
            Ok(()) => Err(e),
            Err(u) => Err(e.context(format!("and removing the half-made tree failed too: {u}"))),
        },
    }
}

fn bootstrap(path: &Path, b: &Bootstrap, mirror: &str, keyring: Option<&Path>) -> Result<()> {
    // In private mount and PID namespaces: the /proc and /sys debootstrap mounts
    // in the target, and anything its package scripts start, die with it.
    let mut cmd = argv![
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "debootstrap",
        format!("--variant={}", b.variant),
    ];
    if let Some(inc) = &b.include {
        cmd.push(format!("--include={inc}").into());
    }
    if let Some(k) = keyring {
        cmd.push(format!("--keyring={}", k.display()).into());
    }
    cmd.extend(argv![&b.suite, path, mirror]);
    eprintln!(
        "sidus: bootstrapping {} ({}) from {mirror}; this takes a few minutes",
        b.suite, b.variant
    );
    Runner::new()
        .run(&cmd)
        .map(drop)
        .with_context(|| format!("debootstrap {} into {}", b.suite, path.display()))
}

/// Makes a fresh tree fit for many diskless nodes: no machine identity, no
/// copy of the build host's resolv.conf or hostname, no leftovers in run/tmp.
pub fn prepare(path: &Path) -> Result<()> {
    let root = TreeRoot::open(path)?;
    // An empty machine-id: each node gets its own at boot (machine-id(5)).
    truncate(&root, "etc/machine-id")?;
    // A regular, empty file: runs bind the host's over it, nodes fill theirs.
    truncate(&root, "etc/resolv.conf")?;
    let (etc, _) = root.parent("etc/hostname")?;
    match rfs::unlinkat(&etc, "hostname", AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e).context("remove etc/hostname"),
    }
    purge(&root, "run", &["lock"])?;
    purge(&root, "tmp", &[])?;
    // The downloaded packages (apt-get clean); the lists stay, so `sidus run
    // TREE -- apt-get install` works without an update first.
    purge(&root, "var/cache/apt/archives", &["partial", "lock"])?;
    Ok(())
}

/// Makes `rel` an empty regular file, never writing through a symlink (one
/// planted there is left as it is).
fn truncate(root: &TreeRoot, rel: &str) -> Result<()> {
    let (dir, name) = root.parent(rel).with_context(|| format!("open {rel}"))?;
    match rfs::openat(
        &dir,
        name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_) | Err(Errno::LOOP) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("empty {rel} in {}", root.path().display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n\
# a comment\n\
URIs: http://mirror.example/debian\n\
Suites: bookworm bookworm-updates\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
\n\
Types: deb\n\
URIs: http://mirror.example/debian-security\n\
Suites: bookworm-security\n\
Components: main\n\
\n\
Types: deb-src\n\
URIs: http://src.example/debian\n\
Suites: bookworm\n\
\n\
Types: deb\n\
URIs: http://off.example/debian\n\
Suites: trixie\n\
Enabled: no\n\
Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n";

    #[test]
    fn deb822_sources_are_read_with_their_keyring() {
        let s = parse_deb822(DEB822);
        assert_eq!(s.len(), 2, "{s:#?}");
        assert_eq!(s[0].uri, "http://mirror.example/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some(Path::new("/usr/share/keyrings/debian-archive-keyring.gpg"))
        );
        assert_eq!(s[1].signed_by, None);
    }

    #[test]
    fn one_line_sources_are_read_with_options() {
        let s = parse_list(
            "# deb http://no.example/ x main\n\
             deb-src http://src.example/ bookworm main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/ubuntu noble main # c\n\
             deb http://mirror.example/ubuntu noble-security main\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://mirror.example/ubuntu");
        assert_eq!(s[0].suites, ["noble"]);
        assert_eq!(s[0].signed_by.as_deref(), Some(Path::new("/k.gpg")));
    }

    #[test]
    fn the_mirror_listing_the_suite_wins_else_a_release_one() {
        let mut s = parse_deb822(DEB822);
        s.reverse();
        assert_eq!(
            pick_mirror(&s, "bookworm").unwrap().uri,
            "http://mirror.example/debian"
        );
        assert_eq!(
            pick_mirror(&s, "bookworm-security").unwrap().uri,
            "http://mirror.example/debian-security"
        );
        // Another suite: the archive of the host's release, not its security one.
        assert_eq!(
            pick_mirror(&s, "trixie").unwrap().uri,
            "http://mirror.example/debian"
        );
        assert!(pick_mirror(&[], "trixie").is_none());
    }

    #[test]
    fn names_passed_to_debootstrap_are_checked() {
        check_word("suite", "bookworm", ".-").unwrap();
        check_word("--include", "hello,libc6-dev,g++", ".+-,").unwrap();
        assert!(check_word("suite", "../x", ".-").is_err());
        assert!(check_word("suite", "", ".-").is_err());
        assert!(check_word("include", "a b", ".+-,").is_err());
    }

    #[test]
    fn prepare_empties_identity_files_without_following_links() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("victim"), "host").unwrap();
        let t = tempfile::tempdir().unwrap();
        let etc = t.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("machine-id"), "abc\n").unwrap();
        std::fs::write(etc.join("hostname"), "buildhost\n").unwrap();
        let debs = t.path().join("var/cache/apt/archives");
        std::fs::create_dir_all(debs.join("partial")).unwrap();
        std::fs::write(debs.join("hello_1_amd64.deb"), "x").unwrap();
        std::os::unix::fs::symlink(host.path().join("victim"), etc.join("resolv.conf")).unwrap();
        prepare(t.path()).unwrap();
        assert_eq!(std::fs::read(etc.join("machine-id")).unwrap(), b"");
        assert!(!etc.join("hostname").exists());
        assert!(!debs.join("hello_1_amd64.deb").exists() && debs.join("partial").is_dir());
        assert_eq!(std::fs::read(host.path().join("victim")).unwrap(), b"host");
    }
}
