//! Boot entries that list several servers: when other boot servers serve
//! the same TREE@ID (`publish --on`, or `publish --fallback SERVER:PATH`),
//! the iPXE entry tries this server first, then each other one in turn.
//!
//! Each server gets a block that loads the kernel and initrd from that
//! server by TFTP (`tftp://SERVER/sidus/TREE/ID/...`, the boot root being
//! its TFTP root) and passes its own `nfsroot=SERVER:PATH`; a failed
//! download or `boot` goes on to the next block (`|| goto`), which first
//! frees what the failed one loaded (`imgfree`: iPXE hands every loaded
//! image to the kernel as an initrd). Absolute URLs make the entry mean
//! the same wherever it is served from (this server, a copy on a menu
//! server, the DHCP host). The same TREE@ID has the same fsid on every
//! server, so a node's file handles name the same filesystem everywhere.
//! iPXE sees only failures of its own downloads: a server that hands out
//! the kernel and then fails NFS is not skipped. PXELINUX cannot fall back;
//! its entries name this server only. Rendering is pure.

use super::boot::Entry;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Another server that serves the same TREE@ID, tried after this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// The address nodes reach it at (its `publish.server`).
    pub server: String,
    /// The exported path of the TREE@ID there.
    pub path: PathBuf,
    /// The remote's name, when it is one of this store's remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

impl Fallback {
    /// Parses `SERVER:PATH` (the `nfsroot=` spelling; an IPv6 address in brackets).
    pub fn parse(s: &str) -> Result<Fallback> {
        let bad = |why: &str| {
            crate::UsageError(format!(
                "--fallback '{s}': {why} (expected SERVER:PATH, e.g. 10.0.0.2:/srv/sidus/lab/20261125T101500Z)"
            ))
        };
        let (server, path) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            (format!("[{h}]"), after)
        } else {
            let (h, p) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
            (h.to_string(), p)
        };
        let ok_host = |h: &str| {
            !h.is_empty()
                && !h.starts_with('-')
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:[]".contains(&b))
        };
        if !ok_host(&server) {
            bail!(bad("bad server"));
        }
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c == ',') {
            bail!(bad("the path must be absolute, without spaces or commas"));
        }
        Ok(Fallback {
            server,
            path: path.into(),
            remote: None,
        })
    }

    /// `SERVER:PATH`, as [`Fallback::parse`] reads it.
    pub fn arg(&self) -> String {
        format!("{}:{}", self.server, self.path.display())
    }
}

/// The boot part of an iPXE entry for `e`: one server (no fallbacks) loads
/// by `rel` (paths relative to the script, as before); several servers get
/// a block each, by TFTP from that server. `extra` follows the command line.
pub fn ipxe_boot(e: &Entry, rel: &str, extra: &str) -> String {
    let (t, i) = (e.tree, e.id);
    if e.fallbacks.is_empty() {
        return format!(
            "kernel {rel}{t}/{i}/vmlinuz initrd=initrd.img {} {extra}\ninitrd {rel}{t}/{i}/initrd.img\nboot\n",
            e.cmdline()
        );
    }
    let servers: Vec<(&str, String)> = std::iter::once((e.server, e.cmdline()))
        .chain(e.fallbacks.iter().map(|f| {
            (
                f.server.as_str(),
                e.cmdline_on(&f.server, &f.path.to_string_lossy()),
            )
        }))
        .collect();
    let mut s = format!(
        "# Servers of {t}@{i}, tried in this order: {}.\n",
        servers
            .iter()
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (n, (server, cmdline)) in servers.iter().enumerate() {
        let next = if n + 1 == servers.len() {
            "sidus_failed".to_string()
        } else {
            format!("sidus_server{}", n + 2)
        };
        if n > 0 {
            let _ = write!(
                s,
                ":sidus_server{}\nimgfree\necho sidus: trying {t}@{i} on {server}\n",
                n + 1
            );
        }
        let url = format!("tftp://{server}/sidus/{t}/{i}");
        let _ = write!(
            s,
            "kernel {url}/vmlinuz initrd=initrd.img {cmdline} {extra} || goto {next}\ninitrd {url}/initrd.img || goto {next}\nboot || goto {next}\n"
        );
    }
    let _ = write!(
        s,
        ":sidus_failed\necho sidus: no server of {t}@{i} could be loaded from\nexit 1\n"
    );
    s
}

/// A comment for PXELINUX entries of an ID other servers serve too.
pub fn pxelinux_note(e: &Entry) -> String {
    if e.fallbacks.is_empty() {
        return String::new();
    }
    let others: Vec<&str> = e.fallbacks.iter().map(|f| f.server.as_str()).collect();
    format!(
        "# Also served by {} (PXELINUX cannot fall back; the iPXE entry tries them).\n",
        others.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sidus_backends::{SnapshotId, TreeName};
    use std::path::Path;

    fn fb(server: &str, path: &str) -> Fallback {
        Fallback {
            server: server.into(),
            path: path.into(),
            remote: None,
        }
    }

    #[test]
    fn fallback_arguments_parse_like_nfsroot() {
        let table: [(&str, Option<(&str, &str)>); 8] = [
            (
                "10.0.0.2:/srv/sidus/lab/X",
                Some(("10.0.0.2", "/srv/sidus/lab/X")),
            ),
            ("boot2.lan:/a", Some(("boot2.lan", "/a"))),
            ("[fd00::2]:/srv/x", Some(("[fd00::2]", "/srv/x"))),
            ("10.0.0.2", None),
            ("10.0.0.2:relative", None),
            (":/srv", None),
            ("-o:/srv", None),
            ("h:/a b", None),
        ];
        for (arg, want) in table {
            let got = Fallback::parse(arg).ok();
            assert_eq!(
                got.as_ref()
                    .map(|f| (f.server.as_str(), f.path.to_str().unwrap())),
                want,
                "{arg}"
            );
            if let Some(f) = got {
                assert_eq!(f.arg(), arg);
            }
        }
    }

    #[test]
    fn ipxe_tries_each_server_in_order() {
        let (tree, id): (TreeName, SnapshotId) =
            ("lab".parse().unwrap(), "20261125T101500Z".parse().unwrap());
        let base = Entry {
            tree: &tree,
            id: &id,
            server: "10.0.0.1",
            nfs_path: Path::new("/srv/sidus/lab/20261125T101500Z"),
            kernel_version: "6.1",
            manifest: "da33",
            extra: "ip=dhcp",
            fallbacks: &[],
        };
        let cmd = |s: &str, p: &str| {
            format!("root=/dev/nfs nfsroot={s}:{p}/lab/20261125T101500Z,ro sidus.tree=lab sidus.snapshot=20261125T101500Z sidus.manifest=da33 ip=dhcp")
        };
        let two = [fb("10.0.0.2", "/data/sidus/lab/20261125T101500Z")];
        let three = [
            fb("10.0.0.2", "/srv/sidus/lab/20261125T101500Z"),
            fb("[fd00::3]", "/srv/sidus/lab/20261125T101500Z"),
        ];
        let u = "tftp://10.0.0.1/sidus/lab/20261125T101500Z";
        let v = "tftp://10.0.0.2/sidus/lab/20261125T101500Z";
        let w = "tftp://[fd00::3]/sidus/lab/20261125T101500Z";
        let table: [(&[Fallback], String); 3] = [
            (
                &[],
                format!("kernel ../lab/20261125T101500Z/vmlinuz initrd=initrd.img {} X\ninitrd ../lab/20261125T101500Z/initrd.img\nboot\n", cmd("10.0.0.1", "/srv/sidus")),
            ),
            (
                &two,
                format!(
                    "# Servers of lab@20261125T101500Z, tried in this order: 10.0.0.1, 10.0.0.2.\n\
                     kernel {u}/vmlinuz initrd=initrd.img {} X || goto sidus_server2\ninitrd {u}/initrd.img || goto sidus_server2\nboot || goto sidus_server2\n\
                     :sidus_server2\nimgfree\necho sidus: trying lab@20261125T101500Z on 10.0.0.2\n\
                     kernel {v}/vmlinuz initrd=initrd.img {} X || goto sidus_failed\ninitrd {v}/initrd.img || goto sidus_failed\nboot || goto sidus_failed\n\
                     :sidus_failed\necho sidus: no server of lab@20261125T101500Z could be loaded from\nexit 1\n",
                    cmd("10.0.0.1", "/srv/sidus"),
                    cmd("10.0.0.2", "/data/sidus")
                ),
            ),
            (
                &three,
                format!(
                    "# Servers of lab@20261125T101500Z, tried in this order: 10.0.0.1, 10.0.0.2, [fd00::3].\n\
                     kernel {u}/vmlinuz initrd=initrd.img {} X || goto sidus_server2\ninitrd {u}/initrd.img || goto sidus_server2\nboot || goto sidus_server2\n\
                     :sidus_server2\nimgfree\necho sidus: trying lab@20261125T101500Z on 10.0.0.2\n\
                     kernel {v}/vmlinuz initrd=initrd.img {} X || goto sidus_server3\ninitrd {v}/initrd.img || goto sidus_server3\nboot || goto sidus_server3\n\
                     :sidus_server3\nimgfree\necho sidus: trying lab@20261125T101500Z on [fd00::3]\n\
                     kernel {w}/vmlinuz initrd=initrd.img {} X || goto sidus_failed\ninitrd {w}/initrd.img || goto sidus_failed\nboot || goto sidus_failed\n\
                     :sidus_failed\necho sidus: no server of lab@20261125T101500Z could be loaded from\nexit 1\n",
                    cmd("10.0.0.1", "/srv/sidus"),
                    cmd("10.0.0.2", "/srv/sidus"),
                    cmd("[fd00::3]", "/srv/sidus")
                ),
            ),
        ];
        for (fallbacks, want) in table {
            let e = Entry {
                fallbacks,
                ..base.clone()
            };
            assert_eq!(ipxe_boot(&e, "../", "X"), want, "{fallbacks:?}");
            assert_eq!(pxelinux_note(&e).is_empty(), fallbacks.is_empty());
        }
    }
}
