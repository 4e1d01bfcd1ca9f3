//! `sidus nodes` and `sidus groups`: for each node, what it is assigned (its
//! group's snapshot, else the default entry) against what the NFS server
//! sees it run; and who uses which snapshot, for unpublish and prune.

use super::groups::{Groups, Target};
use super::inventory::{GroupName, Inventory, Node};
use super::mac::Mac;
use super::nfs::{self, Client, Proto, Seen};
use crate::publish::state::PublishState;
use crate::store::Store;
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Whether a node runs what it is assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// It runs its assigned snapshot.
    Current,
    /// It runs another one: a reboot would change it.
    Stale,
    /// The server does not see it run anything (down, not booted from
    /// sidus, or no open file to tell by), or nothing is assigned.
    Unknown,
}

/// One node as `sidus nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// Its MAC.
    pub mac: Mac,
    /// Its fixed address.
    pub ip: Option<IpAddr>,
    /// Its group.
    pub group: Option<GroupName>,
    /// TREE@ID its boot entries lead to.
    pub assigned: Option<String>,
    /// Why: `group G`, or `default` (the tree's own entry).
    pub assigned_by: Option<String>,
    /// TREE@ID the NFS server sees it run.
    pub booted: Option<String>,
    /// current, stale or unknown.
    pub state: NodeState,
    /// The NFS clients that are this node.
    pub clients: Vec<Client>,
}

/// One group as `sidus groups` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// Its name.
    pub name: GroupName,
    /// How many nodes are in it.
    pub nodes: usize,
    /// TREE@ID its entry names (`null`: its nodes boot the default entry).
    pub current: Option<String>,
    /// What it named before, oldest first.
    pub previous: Vec<String>,
}

/// The clients of `seen` indexed by the MACs and addresses they show.
struct Index<'a> {
    by_mac: HashMap<Mac, Vec<usize>>,
    by_ip: HashMap<IpAddr, Vec<usize>>,
    seen: &'a Seen,
}

impl<'a> Index<'a> {
    fn new(seen: &'a Seen) -> Index<'a> {
        let mut ix = Index {
            by_mac: HashMap::new(),
            by_ip: HashMap::new(),
            seen,
        };
        for (i, c) in seen.clients.iter().enumerate() {
            let ip: Option<IpAddr> = c.address.parse().ok();
            if let Some(ip) = ip {
                ix.by_ip.entry(ip).or_default().push(i);
            }
            for m in c.macs(&seen.arp) {
                ix.by_mac.entry(m).or_default().push(i);
            }
        }
        ix
    }

    /// The indices of the clients that are `n`.
    fn indices(&self, n: &Node) -> Vec<usize> {
        let mut idx: Vec<usize> = self.by_mac.get(&n.mac).cloned().unwrap_or_default();
        if let Some(ip) = &n.ip {
            idx.extend(self.by_ip.get(ip).into_iter().flatten());
        }
        idx.sort();
        idx.dedup();
        idx
    }

    /// The clients that are `n`.
    fn of(&self, n: &Node) -> Vec<&'a Client> {
        self.indices(n)
            .into_iter()
            .map(|i| &self.seen.clients[i])
            .collect()
    }
}

/// The snapshot the server sees a node's clients run, when they agree:
/// NFSv4 open files first (live state), else NFSv3 mounts (rmtab, which
/// keeps the lines of nodes long gone).
fn booted(clients: &[&Client]) -> Option<Target> {
    let runs = |proto: Proto| {
        let mut r: Vec<&Target> = clients
            .iter()
            .filter(|c| c.protocol == proto)
            .filter_map(|c| c.runs.as_ref())
            .collect();
        r.sort();
        r.dedup();
        match r.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    };
    runs(Proto::Nfs4).or_else(|| runs(Proto::Nfs3))
}

/// Every node of `inv` with what it is assigned and what it runs (pure).
pub fn node_views(
    inv: &Inventory,
    groups: &Groups,
    state: &PublishState,
    seen: &Seen,
) -> Vec<NodeView> {
    let ix = Index::new(seen);
    let defaults: Vec<Target> = state
        .trees
        .iter()
        .filter_map(|(t, s)| {
            s.current.as_ref().map(|id| Target {
                tree: t.clone(),
                id: id.clone(),
            })
        })
        .collect();
    inv.nodes
        .iter()
        .map(|n| {
            let clients = ix.of(n);
            let booted = booted(&clients);
            let (assigned, by) = match n
                .group
                .as_ref()
                .and_then(|g| groups.current(g).map(|t| (g, t)))
            {
                Some((g, t)) => (Some(t.clone()), Some(format!("group {g}"))),
                None => {
                    // The default entry of the tree it runs, or of the only published tree.
                    let d = booted
                        .as_ref()
                        .and_then(|b| defaults.iter().find(|d| d.tree == b.tree))
                        .or(match defaults.as_slice() {
                            [one] => Some(one),
                            _ => None,
                        });
                    (d.cloned(), d.map(|_| "default".to_string()))
                }
            };
            let state = match (&assigned, &booted) {
                (Some(a), Some(b)) if a == b => NodeState::Current,
                (Some(_), Some(_)) => NodeState::Stale,
                _ => NodeState::Unknown,
            };
            NodeView {
                name: n.name.to_string(),
                mac: n.mac,
                ip: n.ip,
                group: n.group.clone(),
                assigned: assigned.map(|t| t.to_string()),
                assigned_by: by,
                booted: booted.map(|t| t.to_string()),
                state,
                clients: clients.into_iter().cloned().collect(),
            }
        })
        .collect()
}

/// Every group: those nodes are in and those with a state (pure).
pub fn group_views(inv: &Inventory, groups: &Groups) -> Vec<GroupView> {
    let mut all: BTreeMap<GroupName, usize> = inv.groups();
    for g in groups.groups.keys() {
        all.entry(g.clone()).or_default();
    }
    all.into_iter()
        .map(|(g, count)| {
            let s = groups.groups.get(&g);
            GroupView {
                current: s.and_then(|s| s.current.as_ref()).map(|t| t.to_string()),
                previous: s
                    .map(|s| s.previous.iter().map(|t| t.to_string()).collect())
                    .unwrap_or_default(),
                nodes: count,
                name: g,
            }
        })
        .collect()
}

/// Who uses each snapshot, in words: "node n1 (10.0.0.5)", "10.0.0.9",
/// "10.0.0.7 (NFSv4 'Linux NFSv4.2 host')" (pure). A node whose newest NFSv3
/// mount is known uses only that one; any other client uses every snapshot
/// the server's records tie it to.
pub fn users(inv: &Inventory, seen: &Seen) -> HashMap<Target, Vec<String>> {
    let ix = Index::new(seen);
    let mut node_of: HashMap<usize, &Node> = HashMap::new();
    for n in &inv.nodes {
        for i in ix.indices(n) {
            node_of.insert(i, n);
        }
    }
    let mut out: HashMap<Target, Vec<String>> = HashMap::new();
    for (i, c) in seen.clients.iter().enumerate() {
        let node = node_of.get(&i);
        let who = match (node, c.protocol) {
            (Some(n), _) => format!("node {} ({})", n.name, c.address),
            (None, Proto::Nfs3) => c.address.clone(),
            (None, Proto::Nfs4) => match &c.owner {
                Some(o) => format!("{} (NFSv4 '{o}')", c.address),
                None => format!("{} (NFSv4)", c.address),
            },
        };
        let uses: Vec<&Target> = match (node, c.protocol, &c.runs) {
            (Some(_), Proto::Nfs3, Some(r)) => vec![r],
            _ => c.uses.iter().collect(),
        };
        for t in uses {
            let list = out.entry(t.clone()).or_default();
            if !list.contains(&who) {
                list.push(who.clone());
            }
        }
    }
    out
}

/// [`users`] of this store's snapshots, read now.
pub fn users_now(store: &Store) -> Result<HashMap<Target, Vec<String>>> {
    let inv = Inventory::load(store.state_dir())?;
    let seen = nfs::scan(&store.config.publish().root);
    Ok(users(&inv, &seen))
}

/// Who uses `tree@id` now (NFSv3 and NFSv4 clients, named as nodes where
/// the inventory knows them).
pub fn users_of(
    store: &Store,
    tree: &sidus_backends::TreeName,
    id: &sidus_backends::SnapshotId,
) -> Result<Vec<String>> {
    let t = Target {
        tree: tree.clone(),
        id: id.clone(),
    };
    Ok(users_now(store)?.remove(&t).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const A: &str = "20261125T101500Z";
    const B: &str = "20261125T111500Z";

    fn t(id: &str) -> Target {
        Target {
            tree: "lab".parse().unwrap(),
            id: id.parse().unwrap(),
        }
    }

    #[test]
    fn assigned_booted_and_stale() {
        let inv: Inventory = serde_json::from_value(serde_json::json!({"nodes": [
            {"name": "c1", "mac": "52:54:00:00:00:01", "group": "canary"},
            {"name": "r1", "mac": "52:54:00:00:00:02", "ip": "10.0.0.2", "group": "rest"},
            {"name": "r2", "mac": "52:54:00:00:00:03", "group": "rest"},
            {"name": "x", "mac": "52:54:00:00:00:04"}
        ]}))
        .unwrap();
        let groups = Groups::default().with_published(&"canary".parse().unwrap(), &t(B));
        let state = PublishState::default().with_published(&t(A).tree, &t(A).id);
        let root = Path::new("/srv/sidus");
        let rmtab = format!("10.0.0.1:/srv/sidus/lab/{B}:0x1\n10.0.0.2:/srv/sidus/lab/{B}:0x1\n10.0.0.9:/srv/sidus/lab/{A}:0x1\n");
        let seen = Seen {
            clients: nfs::v3_clients(&rmtab, root),
            arp: nfs::arp_table("IP address HW type Flags HW address Mask Device\n10.0.0.1 0x1 0x2 52:54:00:00:00:01 * eth0\n"),
        };
        let v = node_views(&inv, &groups, &state, &seen);
        let row = |i: usize| {
            (
                v[i].assigned.clone(),
                v[i].assigned_by.clone(),
                v[i].booted.clone(),
                v[i].state,
            )
        };
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            row(0),
            (
                s(&t(B).to_string()),
                s("group canary"),
                s(&t(B).to_string()),
                NodeState::Current
            ),
            "found by the neighbour table"
        );
        assert_eq!(
            row(1),
            (
                s(&t(A).to_string()),
                s("default"),
                s(&t(B).to_string()),
                NodeState::Stale
            ),
            "found by its address"
        );
        assert_eq!(
            row(2),
            (s(&t(A).to_string()), s("default"), None, NodeState::Unknown),
            "mounts nothing"
        );
        assert_eq!(v[3].state, NodeState::Unknown);
        let gv = group_views(&inv, &groups);
        assert_eq!(
            gv.iter()
                .map(|g| (g.name.as_str(), g.nodes, g.current.is_some()))
                .collect::<Vec<_>>(),
            [("canary", 1, true), ("rest", 2, false)]
        );
        let u = users(&inv, &seen);
        assert_eq!(u[&t(B)], ["node c1 (10.0.0.1)", "node r1 (10.0.0.2)"]);
        assert_eq!(u[&t(A)], ["10.0.0.9"]);
    }

    #[test]
    fn an_nfsv4_owner_with_an_escaped_newline_still_names_the_node() {
        let inv: Inventory = serde_json::from_value(serde_json::json!({"nodes": [
            {"name": "p1", "mac": "52:54:00:77:00:99"}
        ]}))
        .unwrap();
        let info =
            "address: \"127.0.0.1:844\"\nname: \"Linux NFSv4.2 52-54-00-77-00-99\\x0a/(none)\"\n";
        let seen = Seen {
            clients: vec![nfs::v4_client(info, "", &HashMap::new()).unwrap()],
            arp: HashMap::new(),
        };
        assert_eq!(Index::new(&seen).of(&inv.nodes[0]).len(), 1);
    }

    #[test]
    fn a_node_that_moved_on_no_longer_uses_its_old_id() {
        let inv: Inventory = serde_json::from_value(serde_json::json!({"nodes": [
            {"name": "n1", "mac": "52:54:00:00:00:01", "ip": "10.0.0.1"}
        ]}))
        .unwrap();
        let rmtab = format!("10.0.0.1:/srv/sidus/lab/{A}:0x1\n10.0.0.1:/srv/sidus/lab/{B}:0x1\n10.0.0.5:/srv/sidus/lab/{A}:0x1\n10.0.0.5:/srv/sidus/lab/{B}:0x1\n");
        let seen = Seen {
            clients: nfs::v3_clients(&rmtab, Path::new("/srv/sidus")),
            arp: HashMap::new(),
        };
        let u = users(&inv, &seen);
        assert_eq!(u[&t(A)], ["10.0.0.5"], "an unknown host may still use both");
        assert_eq!(u[&t(B)], ["node n1 (10.0.0.1)", "10.0.0.5"]);
    }
}
