//! The node inventory: `<state_dir>/fleet/nodes.json`, one record for the
//! whole fleet (read and written through [`crate::state::record`]), so an
//! import of a thousand nodes lands whole or not at all.
//!
//! Shape: `{"nodes": [{"name": "n1", "mac": "52:54:00:12:34:56",
//! "ip": "10.0.0.5", "group": "canary"}, ...]}`, sorted by name; `ip` and
//! `group` are left out when unset. Names, MACs and addresses are unique.

use super::mac::Mac;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use sidus_backends::TreeName;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A node's name: the tree-name rule.
pub type NodeName = TreeName;
/// A group's name: the tree-name rule.
pub type GroupName = TreeName;

/// One node of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Its name.
    pub name: NodeName,
    /// Its boot NIC's MAC, canonical.
    pub mac: Mac,
    /// Its address, when fixed (a DHCP reservation); otherwise the server's
    /// neighbour table says which address has its MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Its group: the group's entry says what it boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupName>,
}

/// Every node, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The nodes.
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// What `node set` changes; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// A new MAC.
    pub mac: Option<Mac>,
    /// A new address (`Some(None)`: none).
    pub ip: Option<Option<IpAddr>>,
    /// A new group (`Some(None)`: none).
    pub group: Option<Option<GroupName>>,
}

impl Inventory {
    /// The inventory file of a store.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("fleet").join("nodes.json")
    }

    /// Reads the inventory; empty when there is none. A file whose nodes
    /// clash (edited by hand) is refused, naming the file.
    pub fn load(state_dir: &Path) -> Result<Inventory> {
        let path = Self::path(state_dir);
        let inv: Inventory =
            crate::state::record::read(&path, "the node inventory")?.unwrap_or_default();
        if let Err(e) = inv.check() {
            return Err(crate::state::record::DamagedRecord {
                path,
                what: "the node inventory".into(),
                detail: e.to_string(),
            }
            .into());
        }
        Ok(inv)
    }

    /// Writes it durably.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        crate::state::record::write(&Self::path(state_dir), self)
    }

    /// A digest of the content (not of the file's layout), recorded in the
    /// intent of a change so recovery can tell whether the new inventory landed.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(self).expect("the inventory serializes");
        Sha256::digest(&bytes)[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The node called `name`.
    pub fn get(&self, name: &NodeName) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// Every group some node is in, with its node count.
    pub fn groups(&self) -> BTreeMap<GroupName, usize> {
        let mut out = BTreeMap::new();
        for g in self.nodes.iter().filter_map(|n| n.group.as_ref()) {
            *out.entry(g.clone()).or_default() += 1;
        }
        out
    }

    /// The nodes of group `g`.
    pub fn in_group<'a>(&'a self, g: &'a GroupName) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes
            .iter()
            .filter(move |n| n.group.as_ref() == Some(g))
    }

    /// Refuses two nodes with one name, MAC or address, naming both.
    pub fn check(&self) -> Result<()> {
        let mut seen = Seen::default();
        for n in &self.nodes {
            if let Some(e) = seen.clash(n) {
                bail!("{e}");
            }
            seen.add(n, None);
        }
        Ok(())
    }

    /// The inventory with `added` nodes (each already valid on its own):
    /// refused when one clashes with a node here or with another of them;
    /// `whence(i)` says where the i-th came from ("line 7") in the message.
    pub fn with_added(
        &self,
        added: Vec<Node>,
        whence: impl Fn(usize) -> String,
    ) -> Result<Inventory> {
        let mut seen = Seen::default();
        for n in &self.nodes {
            seen.add(n, None);
        }
        let mut errors = Vec::new();
        for (i, n) in added.iter().enumerate() {
            match seen.clash(n) {
                Some(e) => errors.push(format!("{}: {e}", whence(i))),
                None => seen.add(n, Some(whence(i))),
            }
        }
        if !errors.is_empty() {
            bail!("{}", summarize(&errors));
        }
        let mut next = self.clone();
        next.nodes.extend(added);
        next.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(next)
    }

    /// The inventory with `name` changed; refused when it clashes.
    pub fn with_changed(&self, name: &NodeName, change: &NodeChange) -> Result<Inventory> {
        let Some(old) = self.get(name) else {
            bail!("no node '{name}' in the inventory (see `sidus nodes`)");
        };
        let mut node = old.clone();
        if let Some(m) = change.mac {
            node.mac = m;
        }
        if let Some(ip) = change.ip {
            node.ip = ip;
        }
        if let Some(g) = &change.group {
            node.group = g.clone();
        }
        let rest = self.without(std::slice::from_ref(name))?;
        rest.with_added(vec![node], |_| format!("refusing to change node '{name}'"))
    }

    /// The inventory without `names`; refused when one is not in it.
    pub fn without(&self, names: &[NodeName]) -> Result<Inventory> {
        if let Some(n) = names.iter().find(|n| self.get(n).is_none()) {
            bail!("no node '{n}' in the inventory (see `sidus nodes`)");
        }
        let mut next = self.clone();
        next.nodes.retain(|n| !names.contains(&n.name));
        Ok(next)
    }
}

/// The first errors of a list, and how many there were.
pub fn summarize(errors: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = errors[..errors.len().min(SHOWN)].join("; ");
    if errors.len() > SHOWN {
        s.push_str(&format!("; and {} more", errors.len() - SHOWN));
    }
    s
}

/// Who took a name, MAC or address: a node of the inventory, or an earlier
/// entry of the same change ("line 3").
#[derive(Clone)]
struct Taker {
    name: NodeName,
    whence: Option<String>,
}

impl Taker {
    /// "node 'n1'" or "line 3 (node 'n3')".
    fn who(&self) -> String {
        match &self.whence {
            None => format!("node '{}'", self.name),
            Some(w) => format!("{w} (node '{}')", self.name),
        }
    }
}

/// Names, MACs and addresses already taken, with who took them.
#[derive(Default)]
struct Seen {
    names: HashMap<NodeName, Taker>,
    macs: HashMap<Mac, Taker>,
    ips: HashMap<IpAddr, Taker>,
}

impl Seen {
    fn add(&mut self, n: &Node, whence: Option<String>) {
        let t = Taker {
            name: n.name.clone(),
            whence,
        };
        self.names.insert(n.name.clone(), t.clone());
        self.macs.insert(n.mac, t.clone());
        if let Some(ip) = n.ip {
            self.ips.insert(ip, t);
        }
    }

    fn clash(&self, n: &Node) -> Option<String> {
        if let Some(o) = self.names.get(&n.name) {
            return Some(match &o.whence {
                None => format!("node '{}' is already in the inventory", n.name),
                Some(w) => format!("node '{}' is listed twice (also {w})", n.name),
            });
        }
        if let Some(o) = self.macs.get(&n.mac) {
            return Some(format!(
                "MAC {} of node '{}' is already {}'s",
                n.mac,
                n.name,
                o.who()
            ));
        }
        let ip = n.ip?;
        let o = self.ips.get(&ip)?;
        Some(format!(
            "address {ip} of node '{}' is already {}'s",
            n.name,
            o.who()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, mac: &str, ip: Option<&str>, group: Option<&str>) -> Node {
        Node {
            name: name.parse().unwrap(),
            mac: mac.parse().unwrap(),
            ip: ip.map(|i| i.parse().unwrap()),
            group: group.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn duplicates_are_refused_naming_the_other_node() {
        let inv = Inventory::default()
            .with_added(
                vec![node("n1", "52:54:00:00:00:01", Some("10.0.0.1"), Some("a"))],
                |i| format!("line {}", i + 1),
            )
            .unwrap();
        let table = [
            (
                node("n1", "52:54:00:00:00:02", None, None),
                "node 'n1' is already in the inventory",
            ),
            (
                node("n2", "52-54-00-00-00-01", None, None),
                "MAC 52:54:00:00:00:01 of node 'n2' is already node 'n1''s",
            ),
            (
                node("n2", "52:54:00:00:00:02", Some("10.0.0.1"), None),
                "address 10.0.0.1 of node 'n2' is already node 'n1''s",
            ),
        ];
        for (n, want) in table {
            let e = inv
                .with_added(vec![n], |_| "line 3".into())
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("line 3: {want}"));
        }
        let e = inv
            .with_added(
                vec![
                    node("n2", "52:54:00:00:00:02", None, None),
                    node("n3", "52:54:00:00:00:02", None, None),
                ],
                |i| format!("line {}", i + 2),
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "line 3: MAC 52:54:00:00:00:02 of node 'n3' is already line 2 (node 'n2')'s"
        );
        let e = inv
            .with_added(
                vec![
                    node("n2", "52:54:00:00:00:02", None, None),
                    node("n2", "52:54:00:00:00:03", None, None),
                ],
                |i| format!("line {}", i + 2),
            )
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 3: node 'n2' is listed twice (also line 2)");
    }

    #[test]
    fn set_and_remove_keep_the_rules() {
        let inv = Inventory::default()
            .with_added(
                vec![
                    node("b", "52:54:00:00:00:02", Some("10.0.0.2"), None),
                    node("a", "52:54:00:00:00:01", None, Some("g")),
                ],
                |i| i.to_string(),
            )
            .unwrap();
        assert_eq!(inv.nodes[0].name.as_str(), "a", "sorted by name");
        assert_eq!(inv.groups().get(&"g".parse().unwrap()), Some(&1));
        let moved = inv
            .with_changed(
                &"a".parse().unwrap(),
                &NodeChange {
                    ip: Some(Some("10.0.0.9".parse().unwrap())),
                    group: Some(None),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            moved.get(&"a".parse().unwrap()).unwrap().ip,
            Some("10.0.0.9".parse().unwrap())
        );
        assert!(moved.groups().is_empty());
        let e = inv
            .with_changed(
                &"a".parse().unwrap(),
                &NodeChange {
                    mac: Some("52:54:00:00:00:02".parse().unwrap()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("is already node 'b''s"), "{e}");
        assert!(inv.without(&["zz".parse().unwrap()]).is_err());
        assert_eq!(inv.without(&["a".parse().unwrap()]).unwrap().nodes.len(), 1);
        assert_ne!(inv.digest(), moved.digest());
    }

    #[test]
    fn a_hand_edited_file_with_clashes_is_damaged() {
        let d = tempfile::tempdir().unwrap();
        let p = Inventory::path(d.path());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, r#"{"nodes": [{"name": "a", "mac": "52:54:00:00:00:01"}, {"name": "b", "mac": "52:54:00:00:00:01"}]}"#).unwrap();
        let e = Inventory::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("the node inventory")
                && e.contains("is damaged")
                && e.contains("MAC 52:54:00:00:00:01"),
            "{e}"
        );
        std::fs::write(&p, r#"{"nodes": [{"name": "a", "mac": "nope"}]}"#).unwrap();
        assert!(Inventory::load(d.path())
            .unwrap_err()
            .to_string()
            .contains("bad MAC 'nope'"));
    }
}
