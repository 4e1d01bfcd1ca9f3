//! The secrets check of `publish`: files in a snapshot that every node, and
//! every host `clients` lets mount the export, would read, and that should not
//! be shared that way. Checked before anything changes; a snapshot holding one
//! is refused unless `--allow-secrets` or the tree's allow list says otherwise.
//!
//! What is looked at (a handful of known paths and one read of `/etc/shadow`,
//! so the check costs well under a millisecond; it is not a scan of the tree):
//! - `/etc/ssh/ssh_host_*_key` (and `ssh_host_key`): SSH host private keys;
//! - `/etc/munge/munge.key`: the MUNGE key (whoever holds it forges credentials
//!   for the whole cluster, e.g. Slurm jobs as any user);
//! - `/etc/krb5.keytab`: Kerberos service keys;
//! - every file in `/etc/ssl/private`: TLS private keys;
//! - `/etc/shadow` entries with a password hash (not `*`, `!`, `!!`, `!*` or
//!   empty): hashes anyone can try to crack offline.
//!
//! An empty file is not a secret. Paths are resolved inside the snapshot
//! ([`crate::publish::intree::TreeRoot`]): a symlink planted there never reads the
//! host's files, and one that leads nowhere in the tree (`-> /run/keys/...`,
//! delivered at boot) holds nothing.
//!
//! The allow list, per tree, names exact paths (`[publish.allow_secrets]`,
//! `lab = ["/etc/munge/munge.key"]`; a leading `/` is optional).

use crate::publish::config::PublishConfig;
use anyhow::{bail, Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::path::Path;

mod scan;
pub use scan::{has_hash, is_ssh_host_key, scan, users_with_hash, Kind, Secret};

/// `/a/b`, `a/b` and `/a//b/` are the same allow-list entry.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Checks `[publish.allow_secrets]`: tree names for keys, plain paths in the
/// tree for values.
pub fn check_allow_list(map: &BTreeMap<String, Vec<String>>) -> Result<()> {
    for (tree, paths) in map {
        if tree.parse::<TreeName>().is_err() {
            bail!("publish.allow_secrets: '{tree}' is not a tree name");
        }
        for p in paths {
            let mut parts = p.split('/').filter(|s| !s.is_empty()).peekable();
            let plain = parts.peek().is_some()
                && !p.chars().any(|c| c.is_control())
                && parts.all(|s| s != "." && s != "..");
            if !plain {
                bail!(
                    "publish.allow_secrets.{tree}: '{p}' is not a path in the tree (like \"/etc/munge/munge.key\")"
                );
            }
        }
    }
    Ok(())
}

/// Publishing `tree@id` was refused because its snapshot holds secrets.
#[derive(Debug)]
pub struct SecretsFound {
    /// The tree.
    pub tree: TreeName,
    /// The snapshot.
    pub id: SnapshotId,
    /// What it holds that nothing allows.
    pub secrets: Vec<Secret>,
}

impl std::fmt::Display for SecretsFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self
            .secrets
            .iter()
            .map(|s| format!("{} ({})", s.path, s.what))
            .collect();
        let paths: Vec<String> = self
            .secrets
            .iter()
            .map(|s| format!("{:?}", s.path))
            .collect();
        write!(
            f,
            "refusing to publish {}@{}: it holds secrets that every node and every host in publish.clients would read: {}; \
             keep them out of the tree (deliver them to each node at boot, see the README), \
             or share them anyway with --allow-secrets or, in the config, [publish.allow_secrets] {} = [{}]",
            self.tree,
            self.id,
            list.join(", "),
            self.tree,
            paths.join(", ")
        )
    }
}

impl std::error::Error for SecretsFound {}

/// The secrets check of publishing `tree@id` from `root`, before anything
/// changes: refuses ([`SecretsFound`]) when a secret is neither in the tree's
/// allow list nor covered by `allow_all` (`--allow-secrets`); otherwise gives
/// the secrets that will be shared, each with what allowed it.
pub fn check(
    cfg: &PublishConfig,
    tree: &TreeName,
    id: &SnapshotId,
    root: &Path,
    allow_all: bool,
) -> Result<Vec<Secret>> {
    let listed: Vec<String> = cfg
        .allow_secrets
        .get(tree.as_str())
        .into_iter()
        .flatten()
        .map(|p| normalize(p))
        .collect();
    let mut found = scan(root).with_context(|| format!("check {tree}@{id} for secrets"))?;
    for s in &mut found {
        if listed.contains(&s.path) {
            s.allowed_by = Some(format!("publish.allow_secrets.{tree}"));
        } else if allow_all {
            s.allowed_by = Some("--allow-secrets".into());
        }
    }
    let refused: Vec<Secret> = found
        .iter()
        .filter(|s| s.allowed_by.is_none())
        .cloned()
        .collect();
    if !refused.is_empty() {
        return Err(SecretsFound {
            tree: tree.clone(),
            id: id.clone(),
            secrets: refused,
        }
        .into());
    }
    Ok(found)
}

/// The journal's note on a publish that shared secrets: which, and why.
pub fn journal_note(shared: &[Secret]) -> Option<String> {
    if shared.is_empty() {
        return None;
    }
    let list: Vec<String> = shared
        .iter()
        .map(|s| {
            format!(
                "{} (allowed by {})",
                s.path,
                s.allowed_by.as_deref().unwrap_or("?")
            )
        })
        .collect();
    Some(format!("shared secrets {}", list.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::scan::tests::tree_with_every_secret;
    use super::*;

    #[test]
    fn refusal_names_each_secret_and_the_allow_list_lets_them_through() {
        let d = tree_with_every_secret();
        let tree: TreeName = "lab".parse().unwrap();
        let id: SnapshotId = "20261125T101500Z".parse().unwrap();
        let mut cfg = PublishConfig::default();
        let e = check(&cfg, &tree, &id, d.path(), false).unwrap_err();
        let found = e.downcast_ref::<SecretsFound>().unwrap();
        assert_eq!(found.secrets.len(), 5);
        let line = e.to_string();
        assert!(
            line.starts_with("refusing to publish lab@20261125T101500Z: it holds secrets"),
            "{line}"
        );
        assert!(
            line.contains("/etc/ssh/ssh_host_ed25519_key (SSH host private key)"),
            "{line}"
        );
        assert!(
            line.contains("/etc/shadow (password hashes of root)"),
            "{line}"
        );
        assert!(!line.contains('\n'));

        let all = check(&cfg, &tree, &id, d.path(), true).unwrap();
        assert!(all
            .iter()
            .all(|s| s.allowed_by.as_deref() == Some("--allow-secrets")));
        assert!(journal_note(&all)
            .unwrap()
            .contains("/etc/krb5.keytab (allowed by --allow-secrets)"));

        cfg.allow_secrets.insert(
            "lab".into(),
            [
                "etc/ssh/ssh_host_ed25519_key",
                "/etc/munge/munge.key",
                "/etc/krb5.keytab",
                "//etc/ssl/private/ssl-cert-snakeoil.key",
            ]
            .map(String::from)
            .to_vec(),
        );
        let e = check(&cfg, &tree, &id, d.path(), false).unwrap_err();
        let left = &e.downcast_ref::<SecretsFound>().unwrap().secrets;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].path, "/etc/shadow");
        cfg.allow_secrets
            .get_mut("lab")
            .unwrap()
            .push("/etc/shadow".into());
        let shared = check(&cfg, &tree, &id, d.path(), false).unwrap();
        assert_eq!(shared.len(), 5);
        assert_eq!(
            shared[0].allowed_by.as_deref(),
            Some("publish.allow_secrets.lab")
        );
        // Another tree's list allows nothing here.
        let other: TreeName = "other".parse().unwrap();
        assert!(check(&cfg, &other, &id, d.path(), false).is_err());
        assert_eq!(journal_note(&[]), None);
    }

    #[test]
    fn allow_list_entries_are_paths_under_tree_names() {
        let ok: BTreeMap<String, Vec<String>> = [(
            "lab".to_string(),
            vec!["/etc/shadow".to_string(), "etc/krb5.keytab".into()],
        )]
        .into();
        check_allow_list(&ok).unwrap();
        for (tree, path, want) in [
            ("Lab", "/etc/shadow", "'Lab' is not a tree name"),
            (
                "lab",
                "../etc/shadow",
                "publish.allow_secrets.lab: '../etc/shadow'",
            ),
            ("lab", "/", "'/' is not a path"),
            ("lab", "etc/./shadow", "not a path"),
        ] {
            let m: BTreeMap<String, Vec<String>> =
                [(tree.to_string(), vec![path.to_string()])].into();
            let e = check_allow_list(&m).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
