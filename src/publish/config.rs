//! The `[publish]` section of the config: where snapshots are served from, to
//! whom, and where boot entries go.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[publish]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Each published ID is mounted read-only at `<root>/TREE/ID` and exported.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// The exports file sidus owns and rewrites whole.
    #[serde(default = "default_exports_file")]
    pub exports_file: PathBuf,
    /// Who may mount: addresses, networks, host names, `@netgroup`s or `*`,
    /// as exports(5) spells them. No default: publish refuses while unset
    /// (see [`super::clients_policy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
    /// Export options; sidus adds `fsid=<uuid>` itself. Must include `ro`.
    #[serde(default = "default_export_options")]
    pub export_options: String,
    /// The address nodes reach the NFS server at; default: this host's first
    /// global IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The TFTP/HTTP root: kernels go to `<boot_root>/sidus/TREE/ID/`, the iPXE
    /// script to `<boot_root>/sidus/TREE.ipxe`, the PXELINUX entry to
    /// `<boot_root>/pxelinux.cfg/sidus-TREE`.
    #[serde(default = "default_boot_root")]
    pub boot_root: PathBuf,
    /// Appended to the kernel command line of every boot entry.
    #[serde(default = "default_cmdline_extra")]
    pub kernel_cmdline_extra: String,
    /// Run `exportfs -ra` after rewriting the exports file (and refuse to
    /// publish when nfsd is not running). `false` only writes the file, for a
    /// host whose NFS server is managed elsewhere or a test without nfsd.
    #[serde(default = "default_apply_exports")]
    pub apply_exports: bool,
    /// Per tree, the secret files publish may share (`[publish.allow_secrets]`,
    /// `TREE = ["/etc/munge/munge.key"]`; see [`super::secrets`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allow_secrets: BTreeMap<String, Vec<String>>,
}

fn default_root() -> PathBuf {
    "/srv/sidus".into()
}
fn default_exports_file() -> PathBuf {
    "/etc/exports.d/sidus.exports".into()
}
fn default_export_options() -> String {
    // ro: nodes only ever boot immutable snapshots; no_root_squash: an nfsroot
    // reads root-owned 0600 files; no_subtree_check: every export is a whole fs.
    "ro,no_root_squash,no_subtree_check".into()
}
fn default_boot_root() -> PathBuf {
    "/srv/tftp".into()
}
fn default_cmdline_extra() -> String {
    "ip=dhcp".into()
}
fn default_apply_exports() -> bool {
    true
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            root: default_root(),
            exports_file: default_exports_file(),
            clients: None,
            export_options: default_export_options(),
            server: None,
            boot_root: default_boot_root(),
            kernel_cmdline_extra: default_cmdline_extra(),
            apply_exports: default_apply_exports(),
            allow_secrets: BTreeMap::new(),
        }
    }
}

impl PublishConfig {
    /// Refuses settings that would serve nodes something writable or break the
    /// files sidus renders.
    pub fn check(&self) -> Result<()> {
        let opts: Vec<&str> = self.export_options.split(',').map(str::trim).collect();
        if !opts.contains(&"ro") || opts.contains(&"rw") {
            bail!("publish.export_options must contain `ro` and not `rw`: nodes boot read-only snapshots");
        }
        if opts.iter().any(|o| o.starts_with("fsid=")) {
            bail!("publish.export_options must not set fsid: sidus derives one per TREE@ID");
        }
        let bad =
            |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || "\"()#".contains(c));
        if opts.iter().any(|o| bad(o)) {
            bail!(
                "publish.export_options: '{}' is not a comma-separated option list",
                self.export_options
            );
        }
        if let Some(clients) = &self.clients {
            if clients.is_empty() {
                bail!(
                    "publish.clients is empty: list who may mount the trees, e.g. {}",
                    super::clients_policy::EXAMPLE
                );
            }
            clients
                .iter()
                .try_for_each(|c| super::clients_policy::check_entry(c))?;
        }
        super::secrets::check_allow_list(&self.allow_secrets)?;
        for (name, p) in [
            ("root", &self.root),
            ("exports_file", &self.exports_file),
            ("boot_root", &self.boot_root),
        ] {
            let s = p.to_string_lossy();
            if !p.is_absolute()
                || s.chars()
                    .any(|c| c.is_whitespace() || c == '"' || c.is_control())
            {
                bail!(
                    "publish.{name} must be an absolute path without spaces or quotes: {}",
                    p.display()
                );
            }
        }
        if let Some(s) = &self.server {
            if s.is_empty()
                || s.chars()
                    .any(|c| c.is_whitespace() || c == ':' && !s.starts_with('['))
            {
                bail!("publish.server '{s}' is not a host name or address (IPv6 in brackets)");
            }
        }
        if self.kernel_cmdline_extra.chars().any(|c| c.is_control()) {
            bail!("publish.kernel_cmdline_extra must be one line");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = "backend = \"btrfs\"\n[btrfs]\npath = \"/x\"\n";

    fn parse(extra: &str) -> anyhow::Result<Config> {
        Config::parse(&format!("{BASE}{extra}"), Path::new("t.toml"))
    }

    #[test]
    fn absent_section_means_defaults() {
        let c = parse("").unwrap();
        assert!(c.publish.is_none());
        let p = c.publish();
        assert_eq!(p.root, Path::new("/srv/sidus"));
        assert_eq!(p.exports_file, Path::new("/etc/exports.d/sidus.exports"));
        assert_eq!(
            p.clients, None,
            "no default: publish refuses until it is set"
        );
        assert!(p.allow_secrets.is_empty());
        assert_eq!(p.export_options, "ro,no_root_squash,no_subtree_check");
        assert_eq!(p.boot_root, Path::new("/srv/tftp"));
        assert_eq!(p.kernel_cmdline_extra, "ip=dhcp");
        assert_eq!(p.server, None);
        assert!(p.apply_exports);
        assert!(
            !parse("[publish]\napply_exports = false\n")
                .unwrap()
                .publish()
                .apply_exports
        );
    }

    #[test]
    fn section_round_trips_and_fills_defaults() {
        let c = parse("[publish]\nroot = \"/exports/sidus\"\nclients = [\"10.0.0.0/24\", \"127.0.0.1\"]\nserver = \"10.0.0.1\"\n").unwrap();
        let p = c.publish.clone().unwrap();
        assert_eq!(p.root, Path::new("/exports/sidus"));
        assert_eq!(p.clients.unwrap(), ["10.0.0.0/24", "127.0.0.1"]);
        assert_eq!(p.server.as_deref(), Some("10.0.0.1"));
        assert_eq!(p.boot_root, Path::new("/srv/tftp"));
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(Config::parse(&text, Path::new("t.toml")).unwrap(), c);
    }

    #[test]
    fn refusals_name_the_setting() {
        let cases = [
            (
                "[publish]\nexport_options = \"rw,no_root_squash\"\n",
                "must contain `ro`",
            ),
            (
                "[publish]\nexport_options = \"ro,rw\"\n",
                "must contain `ro`",
            ),
            (
                "[publish]\nexport_options = \"ro,fsid=1\"\n",
                "must not set fsid",
            ),
            (
                "[publish]\nexport_options = \"ro,,x\"\n",
                "not a comma-separated",
            ),
            ("[publish]\nclients = []\n", "publish.clients is empty"),
            (
                "[publish]\nclients = [\"a b\"]\n",
                "publish.clients: 'a b' is not a client",
            ),
            (
                "[publish]\nclients = [\"10.0.0.0/24\", \"10.0.0.0/40\"]\n",
                "publish.clients: '10.0.0.0/40'",
            ),
            (
                "[publish.allow_secrets]\nLab = [\"/etc/shadow\"]\n",
                "publish.allow_secrets: 'Lab' is not a tree name",
            ),
            (
                "[publish.allow_secrets]\nlab = [\"../etc/shadow\"]\n",
                "publish.allow_secrets.lab: '../etc/shadow'",
            ),
            (
                "[publish]\nroot = \"relative\"\n",
                "publish.root must be an absolute path",
            ),
            (
                "[publish]\nboot_root = \"/srv/my tftp\"\n",
                "publish.boot_root",
            ),
            ("[publish]\nserver = \"a b\"\n", "publish.server"),
            ("[publish]\nrooot = \"/x\"\n", "unknown field `rooot`"),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
        parse("[publish]\nserver = \"[fd00::1]\"\n").unwrap();
        let c = parse("[publish]\nclients = [\"*\"]\n[publish.allow_secrets]\nlab = [\"etc/munge/munge.key\", \"/etc/shadow\"]\n").unwrap();
        assert_eq!(c.publish().allow_secrets["lab"].len(), 2);
    }
}
