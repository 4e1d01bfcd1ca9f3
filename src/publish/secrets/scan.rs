//! Finding the secrets of a tree: the known paths of [`super`], read inside
//! the tree ([`crate::publish::intree::TreeRoot`]), and the parsing of
//! `/etc/shadow`.

use crate::publish::intree::TreeRoot;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// What kind of secret a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `/etc/ssh/ssh_host_*_key`.
    SshHostKey,
    /// `/etc/munge/munge.key`.
    MungeKey,
    /// `/etc/krb5.keytab`.
    KerberosKeytab,
    /// A file in `/etc/ssl/private`.
    TlsPrivateKey,
    /// `/etc/shadow` with password hashes.
    PasswordHashes,
}

/// One secret found in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    /// Its path in the tree, from `/`.
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// What it is, in words.
    pub what: String,
    /// For `/etc/shadow`: the users that have a password hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Why publishing it anyway was allowed: `--allow-secrets` or the
    /// config's `publish.allow_secrets.TREE`; absent in a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<String>,
}

/// Longest `/etc/shadow` read (a real one is a few KiB).
const SHADOW_MAX: u64 = 16 << 20;

fn secret(path: String, kind: Kind, what: String, users: Vec<String>) -> Secret {
    Secret {
        path,
        kind,
        what,
        users,
        allowed_by: None,
    }
}

/// Whether a shadow password field holds a hash: not empty (no password,
/// which is its own problem but nothing to crack), not `*` or `!...` with no
/// hash behind (locked or never set).
pub fn has_hash(field: &str) -> bool {
    let behind_locks = field.trim_start_matches('!');
    !behind_locks.is_empty() && !behind_locks.starts_with('*')
}

/// The users of an `/etc/shadow` text that have a password hash.
pub fn users_with_hash(shadow: &str) -> Vec<String> {
    shadow
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let user = f.next()?.trim();
            let pass = f.next()?;
            (!user.is_empty() && !user.starts_with('#') && has_hash(pass)).then(|| user.to_string())
        })
        .collect()
}

/// Whether a file name in /etc/ssh is a host private key.
pub fn is_ssh_host_key(name: &str) -> bool {
    name == "ssh_host_key"
        || name
            .strip_prefix("ssh_host_")
            .and_then(|rest| rest.strip_suffix("_key"))
            .is_some_and(|kind| !kind.is_empty())
}

/// A non-empty regular file at `rel`, read inside the tree.
fn non_empty(tree: &TreeRoot, rel: &str) -> Result<bool> {
    match tree.open_file(Path::new(rel))? {
        Some(f) => Ok(f.metadata().context(rel.to_string())?.len() > 0),
        None => Ok(false),
    }
}

/// Every secret in the tree (or snapshot) at `root`, in a stable order.
pub fn scan(root: &Path) -> Result<Vec<Secret>> {
    let tree = TreeRoot::open(root)?;
    let mut found = Vec::new();
    for name in tree.list(Path::new("etc/ssh"))?.unwrap_or_default() {
        let name = name.to_string_lossy();
        let rel = format!("etc/ssh/{name}");
        if is_ssh_host_key(&name) && non_empty(&tree, &rel)? {
            found.push(secret(
                format!("/{rel}"),
                Kind::SshHostKey,
                "SSH host private key".into(),
                vec![],
            ));
        }
    }
    for (rel, kind, what) in [
        ("etc/munge/munge.key", Kind::MungeKey, "MUNGE key"),
        ("etc/krb5.keytab", Kind::KerberosKeytab, "Kerberos keytab"),
    ] {
        if non_empty(&tree, rel)? {
            found.push(secret(format!("/{rel}"), kind, what.into(), vec![]));
        }
    }
    for name in tree.list(Path::new("etc/ssl/private"))?.unwrap_or_default() {
        let rel = format!("etc/ssl/private/{}", name.to_string_lossy());
        if non_empty(&tree, &rel)? {
            found.push(secret(
                format!("/{rel}"),
                Kind::TlsPrivateKey,
                "TLS private key".into(),
                vec![],
            ));
        }
    }
    if let Some(f) = tree.open_file(Path::new("etc/shadow"))? {
        let mut bytes = Vec::new();
        f.take(SHADOW_MAX)
            .read_to_end(&mut bytes)
            .with_context(|| format!("read {}/etc/shadow", root.display()))?;
        let users = users_with_hash(&String::from_utf8_lossy(&bytes));
        if !users.is_empty() {
            let what = format!("password hashes of {}", users.join(", "));
            found.push(secret(
                "/etc/shadow".into(),
                Kind::PasswordHashes,
                what,
                users,
            ));
        }
    }
    Ok(found)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn shadow_hash_table() {
        for (field, hash) in [
            ("", false),
            ("*", false),
            ("!", false),
            ("!!", false),
            ("!*", false),
            ("*LK*", false),
            ("$6$salt$hash", true),
            ("!$6$salt$hash", true),
            ("$y$j9T$salt$hash", true),
            ("abcdefghijklm", true),
        ] {
            assert_eq!(has_hash(field), hash, "{field:?}");
        }
        let text = "root:$6$x$y:19000:0:99999:7:::\ndaemon:*:19000::::::\nbin:!:1::::::\n\
                    alice:!$y$j9T$a$b:1::::::\nnopass::1::::::\n\ngarbage\n#c:$6$x:1\n";
        assert_eq!(users_with_hash(text), ["root", "alice"]);
    }

    #[test]
    fn ssh_host_key_names() {
        for (name, key) in [
            ("ssh_host_ed25519_key", true),
            ("ssh_host_rsa_key", true),
            ("ssh_host_key", true),
            ("ssh_host_ed25519_key.pub", false),
            ("ssh_host__key", false),
            ("sshd_config", false),
            ("moduli", false),
        ] {
            assert_eq!(is_ssh_host_key(name), key, "{name}");
        }
    }

    pub(in crate::publish::secrets) fn tree_with_every_secret() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for dir in ["etc/ssh", "etc/munge", "etc/ssl/private"] {
            fs::create_dir_all(p.join(dir)).unwrap();
        }
        fs::write(p.join("etc/ssh/ssh_host_ed25519_key"), "PRIVATE").unwrap();
        fs::write(p.join("etc/ssh/ssh_host_ed25519_key.pub"), "public").unwrap();
        fs::write(p.join("etc/ssh/ssh_host_rsa_key"), "").unwrap();
        fs::write(p.join("etc/munge/munge.key"), "M").unwrap();
        fs::write(p.join("etc/krb5.keytab"), "K").unwrap();
        fs::write(p.join("etc/ssl/private/ssl-cert-snakeoil.key"), "T").unwrap();
        fs::write(p.join("etc/shadow"), "root:$6$a$b:1::::::\nx:*:1::::::\n").unwrap();
        d
    }

    #[test]
    fn scan_finds_each_kind_and_nothing_else() {
        let d = tree_with_every_secret();
        let paths: Vec<String> = scan(d.path())
            .unwrap()
            .into_iter()
            .map(|s| s.path)
            .collect();
        assert_eq!(
            paths,
            [
                "/etc/ssh/ssh_host_ed25519_key",
                "/etc/munge/munge.key",
                "/etc/krb5.keytab",
                "/etc/ssl/private/ssl-cert-snakeoil.key",
                "/etc/shadow",
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(scan(empty.path()).unwrap().is_empty());
    }

    #[test]
    fn a_link_to_the_host_or_to_a_boot_time_path_is_no_secret() {
        let d = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("shadow"), "root:$6$host:1::::::\n").unwrap();
        fs::write(host.path().join("key"), "HOST KEY").unwrap();
        fs::create_dir_all(d.path().join("etc/ssh")).unwrap();
        std::os::unix::fs::symlink(host.path().join("shadow"), d.path().join("etc/shadow"))
            .unwrap();
        std::os::unix::fs::symlink(
            host.path().join("key"),
            d.path().join("etc/ssh/ssh_host_ed25519_key"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/run/keys/munge.key", d.path().join("etc/munge")).unwrap();
        assert!(scan(d.path()).unwrap().is_empty());
    }
}
