//! The exports file sidus owns, rendered from the publish state, and the fsid of
//! each export.
//!
//! fsid: the first 16 bytes of SHA-256 over the UTF-8 text `TREE@ID`, written
//! as a UUID (8-4-4-4-12 lower-case hex). It depends on nothing but the name, so
//! a re-export, a restore after a reboot or a new sidus version gives the same
//! filehandles. Never change this function: running nodes would get ESTALE.

use super::config::PublishConfig;
use sha2::{Digest, Sha256};
use sidus_backends::{SnapshotId, TreeName};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The fsid UUID of `tree@id`.
pub fn fsid(tree: &TreeName, id: &SnapshotId) -> String {
    let h = Sha256::digest(format!("{tree}@{id}").as_bytes());
    let hex: String = h[..16].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Where `tree@id` is mounted and exported from: `<root>/TREE/ID`.
pub fn serve_path(root: &Path, tree: &TreeName, id: &SnapshotId) -> PathBuf {
    root.join(tree.as_str()).join(id.as_str())
}

/// The `tree@id` a path `<root>/TREE/ID` serves: the inverse of [`serve_path`].
pub fn served_at(root: &Path, path: &Path) -> Option<(TreeName, SnapshotId)> {
    let mut parts = path.strip_prefix(root).ok()?.components();
    let tree = parts.next()?.as_os_str().to_str()?.parse().ok()?;
    let id = parts.next()?.as_os_str().to_str()?.parse().ok()?;
    parts.next().is_none().then_some((tree, id))
}

/// What each export line of `text` (an exports file [`render`] wrote)
/// serves, in file order; lines that are not sidus's are left out.
pub fn exported_in(root: &Path, text: &str) -> Vec<(TreeName, SnapshotId)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|p| served_at(root, Path::new(p)))
        .collect()
}

/// The `client(options)` list of one export; empty while `clients` is unset.
pub fn export_options(cfg: &PublishConfig, tree: &TreeName, id: &SnapshotId) -> String {
    let opts = format!("{},fsid={}", cfg.export_options, fsid(tree, id));
    cfg.clients
        .iter()
        .flatten()
        .map(|c| format!("{c}({opts})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The whole exports file for `exported` (tree, ID) pairs.
pub fn render(cfg: &PublishConfig, exported: &[(TreeName, SnapshotId)]) -> String {
    let mut out = String::from(
        "# Written by sidus publish; every change here is overwritten.\n\
         # One line per published snapshot: <root>/TREE/ID with fsid derived from TREE@ID.\n",
    );
    for (tree, id) in exported {
        let clients = export_options(cfg, tree, id);
        // A path with no client is exported to every host (exports(5)):
        // never write one, whoever calls this.
        let hash = if clients.is_empty() {
            "# not exported, publish.clients is not set: "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{hash}{} {clients}",
            serve_path(&cfg.root, tree, id).display(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TreeName {
        s.parse().unwrap()
    }
    fn i(s: &str) -> SnapshotId {
        s.parse().unwrap()
    }

    #[test]
    fn fsid_is_stable_distinct_and_uuid_shaped() {
        // Pinned values: a change here breaks every running node's filehandles.
        let table = [
            ("lab", "20261125T101500Z"),
            ("lab", "20261125T101500Z.1"),
            ("lab2", "20261125T101500Z"),
        ];
        let got: Vec<String> = table.iter().map(|(a, b)| fsid(&t(a), &i(b))).collect();
        for g in &got {
            assert_eq!(g.len(), 36);
            assert_eq!(g.matches('-').count(), 4);
        }
        assert_ne!(got[0], got[1]);
        assert_ne!(got[0], got[2]);
        let expect = {
            let h = Sha256::digest(b"lab@20261125T101500Z");
            format!("{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
        };
        assert!(got[0].starts_with(&expect));
        assert_eq!(got[0], PINNED_LAB);
    }

    #[test]
    fn exported_ids_are_read_back_from_the_file() {
        let cfg = PublishConfig {
            clients: Some(vec!["10.0.0.0/24".into()]),
            ..Default::default()
        };
        let a = (t("lab"), i("20261125T101500Z"));
        let b = (t("lab-2"), i("20261125T111500Z.1"));
        let mut text = render(&cfg, &[a.clone(), b.clone()]);
        text.push_str("/srv/sidus/lab/not-an-id *(ro)\n/elsewhere/lab/20261125T101500Z *(ro)\n");
        assert_eq!(exported_in(&cfg.root, &text), [a, b]);
        assert_eq!(
            served_at(&cfg.root, Path::new("/srv/sidus/lab/20261125T101500Z/x")),
            None
        );
    }

    const PINNED_LAB: &str = "8584e117-333e-7d9d-b4c1-9501dc5bd74f";

    #[test]
    fn render_table() {
        let mut cfg = PublishConfig {
            clients: Some(vec!["*".into()]),
            ..PublishConfig::default()
        };
        assert_eq!(
            render(&cfg, &[])
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count(),
            0
        );
        let a = (t("lab"), i("20261125T101500Z"));
        let b = (t("lab"), i("20261125T111500Z"));
        let text = render(&cfg, &[a.clone(), b.clone()]);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines[0],
            format!(
                "/srv/sidus/lab/20261125T101500Z *(ro,no_root_squash,no_subtree_check,fsid={})",
                fsid(&a.0, &a.1)
            )
        );
        assert!(lines[1].starts_with("/srv/sidus/lab/20261125T111500Z *(ro,"));
        cfg.clients = Some(vec!["10.0.0.0/24".into(), "127.0.0.1".into()]);
        cfg.root = "/exports".into();
        let text = render(&cfg, std::slice::from_ref(&a));
        let f = fsid(&a.0, &a.1);
        assert!(text.contains(&format!(
            "/exports/lab/20261125T101500Z 10.0.0.0/24(ro,no_root_squash,no_subtree_check,fsid={f}) 127.0.0.1(ro,no_root_squash,no_subtree_check,fsid={f})\n"
        )), "{text}");
    }

    #[test]
    fn without_clients_no_line_exports_anything() {
        let cfg = PublishConfig::default();
        let text = render(&cfg, &[(t("lab"), i("20261125T101500Z"))]);
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        assert!(text.contains("publish.clients is not set"));
    }
}
