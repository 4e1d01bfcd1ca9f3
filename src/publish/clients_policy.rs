//! Who may mount published trees: `[publish] clients`, checked entry by entry
//! before anything is written, required before anything is exported, and
//! warned about when it lets every host in.
//!
//! A published tree is a whole root file system, exported with
//! `no_root_squash`: any host an entry lets in mounts every published ID as
//! root and reads all of it. So there is no default: `publish`, `unpublish`
//! and `restore` refuse until the admin lists the cluster's networks, and
//! `*` (or a network that covers every address) stays possible but is
//! warned about every time.

use super::config::PublishConfig;
use anyhow::{bail, Result};
use std::net::{IpAddr, Ipv4Addr};

/// The example every message about `clients` gives.
pub const EXAMPLE: &str = r#"clients = ["10.0.0.0/24"]"#;

/// What the entries may be, for error messages.
const KINDS: &str =
    "an IPv4 or IPv6 address, a network ADDR/LEN, a host name, a wildcard name like *.cluster, or @netgroup";

/// Checks one `clients` entry as exports(5) reads it: `*`, an address, a
/// network (`ADDR/LEN`, or an IPv4 `ADDR/MASK`), a host name (with `*`, `?`
/// or `[...]` wildcards) or `@netgroup`. The error is one line naming it.
pub fn check_entry(entry: &str) -> Result<()> {
    match why_bad(entry) {
        None => Ok(()),
        Some(why) => bail!(
            "publish.clients: '{entry}' is not a client sidus can export to: {why} (give {KINDS})"
        ),
    }
}

fn why_bad(e: &str) -> Option<String> {
    if e.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(c) = e
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'()#,;=\\".contains(*c))
    {
        return Some(format!("{c:?} cannot appear in an exports(5) client"));
    }
    if e == "*" {
        return None;
    }
    if let Some(group) = e.strip_prefix('@') {
        let ok = !group.is_empty()
            && group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        return (!ok).then(|| "a netgroup name is letters, digits, '.', '_' and '-'".into());
    }
    if let Some((addr, len)) = e.split_once('/') {
        return network_problem(addr, len);
    }
    if e.parse::<IpAddr>().is_ok() {
        return None;
    }
    if e.contains(':') {
        return Some("not an IPv6 address".into());
    }
    host_problem(e)
}

fn network_problem(addr: &str, len: &str) -> Option<String> {
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return Some(format!("'{addr}' before the '/' is not an IP address"));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Ok(n) = len.parse::<u8>() {
        if len.starts_with('+') || n > max {
            return Some(format!("the prefix length must be 0 to {max}"));
        }
        return None;
    }
    match (ip, len.parse::<Ipv4Addr>()) {
        (IpAddr::V4(_), Ok(mask)) => {
            let m = u32::from(mask);
            (m.leading_ones() + m.trailing_zeros() != 32)
                .then(|| format!("the netmask {mask} is not contiguous"))
        }
        _ => Some(format!(
            "'{len}' after the '/' is not a prefix length (0 to {max})"
        )),
    }
}

fn host_problem(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("a host name is at most 253 characters".into());
    }
    let labels: Vec<&str> = name.strip_suffix('.').unwrap_or(name).split('.').collect();
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Some("each part of a host name between dots is 1 to 63 characters".into());
        }
        if let Some(c) = l
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_*?[]".contains(*c)))
        {
            return Some(format!("{c:?} is not allowed in a host name"));
        }
    }
    if name.matches('[').count() != name.matches(']').count() {
        return Some("unbalanced '[' ']' in a host name pattern".into());
    }
    // 10.0.0.256 or 10.1 is a mistyped address, not a host called that.
    let last = labels.last().copied().unwrap_or_default();
    if last.chars().all(|c| c.is_ascii_digit()) {
        return Some("not a valid IPv4 address (and a host name does not end in a number)".into());
    }
    None
}

/// Whether `entry` lets every host in: `*`, or a network of every address.
pub fn is_world(entry: &str) -> bool {
    matches!(
        entry,
        "*" | "0.0.0.0/0" | "0.0.0.0/0.0.0.0" | "::/0" | "0::/0"
    )
}

/// The clients publishing may export to; refuses while `clients` is unset.
/// Called before anything changes (and before recovery, which rewrites the
/// exports file), so nothing is ever exported to a list nobody wrote.
pub fn required(cfg: &PublishConfig) -> Result<&[String]> {
    match cfg.clients.as_deref() {
        Some(c) if !c.is_empty() => Ok(c),
        _ => bail!(
            "publish.clients is not set: sidus exports whole trees (with no_root_squash), so it does not export to every host by default; \
             list who may mount them in the [publish] section of the config, e.g. {EXAMPLE} (or `sidus init --clients 10.0.0.0/24`)"
        ),
    }
}

/// What `status` warns about `clients`, every time: unset, or [`world_warnings`].
pub fn warnings(cfg: &PublishConfig) -> Vec<String> {
    if cfg.clients.is_none() {
        return vec![format!(
            "publish.clients is not set: publish, unpublish and restore refuse until it lists who may mount the trees, e.g. {EXAMPLE}"
        )];
    }
    world_warnings(cfg)
}

/// What `publish` warns about `clients`, every time: each entry that lets
/// every host in.
pub fn world_warnings(cfg: &PublishConfig) -> Vec<String> {
    let clients = cfg.clients.as_deref().unwrap_or_default();
    let root = if cfg
        .export_options
        .split(',')
        .any(|o| o.trim() == "no_root_squash")
    {
        " as root (no_root_squash)"
    } else {
        ""
    };
    clients
        .iter()
        .filter(|c| is_world(c))
        .map(|c| {
            format!(
                "publish.clients has '{c}': every host that reaches this server can mount every published ID{root} and read all of it (/etc/shadow, host keys); list the cluster's networks instead, e.g. {EXAMPLE}"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_exports_5_accepts() {
        for ok in [
            "*",
            "10.0.0.1",
            "10.0.0.0/24",
            "10.0.0.0/255.255.255.0",
            "0.0.0.0/0",
            "fd00::1",
            "fd00::/64",
            "::1",
            "node1",
            "node-1.cluster.example.org",
            "node1.",
            "*.cluster",
            "node?.lab",
            "node[0-9].lab",
            "@compute",
            "@hpc_nodes.v2",
        ] {
            check_entry(ok).unwrap_or_else(|e| panic!("{ok}: {e:#}"));
        }
    }

    #[test]
    fn bad_entries_are_named_with_why() {
        let table = [
            ("", "it is empty"),
            ("10.0.0.0/33", "prefix length must be 0 to 32"),
            ("fd00::/129", "0 to 128"),
            ("10.0.0.0/x", "is not a prefix length"),
            ("10.0.0.0/255.0.255.0", "not contiguous"),
            ("10.0.0/24", "is not an IP address"),
            ("10.0.0.256", "not a valid IPv4 address"),
            ("10.1", "not a valid IPv4 address"),
            ("fd00:::1", "not an IPv6 address"),
            ("node 1", "' ' cannot appear"),
            ("host(rw)", "'(' cannot appear"),
            ("a,b", "',' cannot appear"),
            ("@", "netgroup name"),
            ("@grp!", "netgroup name"),
            ("node..lab", "1 to 63 characters"),
            ("nöde", "is not allowed in a host name"),
            ("node[0-9.lab", "unbalanced"),
            ("gss/krb5", "is not an IP address"),
        ];
        for (entry, want) in table {
            let e = check_entry(entry).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("publish.clients: '{entry}' is not a client")),
                "{e}"
            );
            assert!(e.contains(want), "{entry}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn unset_is_refused_and_world_is_warned_about() {
        let mut cfg = PublishConfig::default();
        assert_eq!(cfg.clients, None);
        let e = required(&cfg).unwrap_err().to_string();
        assert!(e.starts_with("publish.clients is not set"), "{e}");
        assert!(e.contains(r#"clients = ["10.0.0.0/24"]"#), "{e}");
        assert_eq!(warnings(&cfg).len(), 1);
        cfg.clients = Some(vec!["10.0.0.0/24".into(), "fd00::/64".into()]);
        assert_eq!(required(&cfg).unwrap().len(), 2);
        assert!(warnings(&cfg).is_empty());
        cfg.clients = Some(vec!["*".into(), "::/0".into(), "10.0.0.1".into()]);
        let w = warnings(&cfg);
        assert_eq!(w.len(), 2);
        assert!(
            w[0].starts_with("publish.clients has '*': every host"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("as root (no_root_squash)"));
        cfg.export_options = "ro,root_squash".into();
        assert!(!warnings(&cfg)[0].contains("no_root_squash"));
    }
}
