//! Every reason a snapshot must not be deleted, in one place: `delete`, `prune`,
//! `destroy` and `unpublish` all ask here.
//!
//! Sources, all read at the moment of the decision, each through its owner's
//! own reader (no copy of another module's schema here):
//! - clone origins, from the backend's tree records;
//! - pins ([`crate::history::pins`]);
//! - publishing: the publish state ([`crate::publish::state::PublishState`]),
//!   a publish whose sidus died before committing (its intent), and, whatever
//!   those say, the tree's and the groups' boot entries on disk: a snapshot a
//!   node would boot is never removed;
//! - the fleet: what each group boots ([`crate::publish::fleet::groups`]),
//!   and what NFS clients (nodes or not) still mount, as the server sees it
//!   ([`crate::publish::fleet::view::users`]);
//! - an unfinished `sidus run`: its `pre` snapshot, what the run rolls back to.
//!
//! A state file that exists but cannot be read fails the decision: when in doubt,
//! nothing is deleted.

use crate::history::pins::{Pin, Pins};
use crate::publish::state::PublishState;
use crate::state::intent::{Change, Slot, TreeState};
use crate::store::Store;
use anyhow::{Context, Result};
use sidus_backends::{SnapshotId, TreeName, TreeRecord};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// One reason a snapshot is protected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Protection {
    /// `sidus pin`, with its label if any.
    Pinned {
        /// The pin's label.
        label: Option<String>,
    },
    /// Served to clients by the publish feature.
    Published {
        /// True for the tree's current published snapshot.
        current: bool,
    },
    /// A tree was cloned from it.
    CloneOrigin {
        /// The clone.
        clone: TreeName,
    },
    /// The `pre` snapshot of a `sidus run` that has not finished.
    RunPre,
    /// A boot entry on disk names it (nodes would boot it).
    BootEntry {
        /// The entry file.
        path: PathBuf,
    },
    /// A group of nodes boots it.
    GroupBoots {
        /// The group.
        group: TreeName,
    },
    /// NFS clients still mount it (they would get ESTALE).
    InUse {
        /// Who, as nodes or addresses.
        clients: Vec<String>,
    },
}

impl fmt::Display for Protection {
    /// Reads after "it is ": "it is pinned as 'paper', the origin of clone 'x'".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::Pinned { label: Some(l) } => write!(f, "pinned as '{l}'"),
            Protection::Pinned { label: None } => f.write_str("pinned"),
            Protection::Published { current: true } => f.write_str("published (current)"),
            Protection::Published { current: false } => f.write_str("published"),
            Protection::CloneOrigin { clone } => write!(f, "the origin of clone '{clone}'"),
            Protection::RunPre => f.write_str("the pre snapshot of an unfinished `sidus run`"),
            Protection::BootEntry { path } => {
                write!(f, "named by the boot entry {}", path.display())
            }
            Protection::GroupBoots { group } => write!(f, "what group '{group}' boots"),
            Protection::InUse { clients } => {
                write!(f, "mounted by NFS clients {}", clients.join(", "))
            }
        }
    }
}

/// The published snapshots of one tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    /// The snapshot clients boot now.
    pub current: Option<SnapshotId>,
    /// Every snapshot still exported, and any a publish in progress is making current.
    pub exported: Vec<SnapshotId>,
    /// Snapshots the tree's boot entries on disk name, with the entry file.
    pub boot_entries: Vec<(SnapshotId, PathBuf)>,
    /// Snapshots groups boot, with the group.
    pub groups: Vec<(SnapshotId, TreeName)>,
    /// Snapshots NFS clients mount, with who.
    pub in_use: Vec<(SnapshotId, Vec<String>)>,
}

/// The protections of one tree's snapshots.
#[derive(Debug, Clone, Default)]
pub struct Protections {
    by_id: HashMap<SnapshotId, Vec<Protection>>,
}

impl Protections {
    /// Gathers the protections of `tree`'s snapshots from the store's state now.
    pub fn load(store: &Store, tree: &TreeName) -> Result<Protections> {
        let trees = store.backend.list_trees()?;
        let pins = Pins::new(store.state_dir()).of_tree(tree)?;
        let published = published(store, tree)?;
        let pre = run_pre(store, tree)?;
        Ok(Protections::from_parts(
            tree, &trees, &pins, &published, &pre,
        ))
    }

    /// Builds the protections from their sources (pure).
    pub fn from_parts(
        tree: &TreeName,
        trees: &[TreeRecord],
        pins: &[Pin],
        published: &Published,
        run_pre: &[SnapshotId],
    ) -> Protections {
        let mut p = Protections::default();
        for pin in pins.iter().filter(|p| &p.tree == tree) {
            p.add(
                &pin.id,
                Protection::Pinned {
                    label: pin.label.as_ref().map(|l| l.to_string()),
                },
            );
        }
        if let Some(current) = &published.current {
            p.add(current, Protection::Published { current: true });
        }
        for id in &published.exported {
            if published.current.as_ref() != Some(id) {
                p.add(id, Protection::Published { current: false });
            }
        }
        for (id, path) in &published.boot_entries {
            p.add(id, Protection::BootEntry { path: path.clone() });
        }
        for (id, group) in &published.groups {
            p.add(
                id,
                Protection::GroupBoots {
                    group: group.clone(),
                },
            );
        }
        for (id, clients) in &published.in_use {
            p.add(
                id,
                Protection::InUse {
                    clients: clients.clone(),
                },
            );
        }
        for t in trees {
            if let Some(o) = t.origin.as_ref().filter(|o| &o.tree == tree) {
                p.add(
                    &o.id,
                    Protection::CloneOrigin {
                        clone: t.name.clone(),
                    },
                );
            }
        }
        for id in run_pre {
            p.add(id, Protection::RunPre);
        }
        p
    }

    fn add(&mut self, id: &SnapshotId, why: Protection) {
        let list = self.by_id.entry(id.clone()).or_default();
        if !list.contains(&why) {
            list.push(why);
        }
    }

    /// Why `id` must stay; empty when it may go.
    pub fn of(&self, id: &SnapshotId) -> &[Protection] {
        self.by_id.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every protected snapshot with its reasons.
    pub fn iter(&self) -> impl Iterator<Item = (&SnapshotId, &[Protection])> {
        self.by_id.iter().map(|(id, r)| (id, r.as_slice()))
    }
}

/// The reasons as one phrase: "pinned as 'x', the origin of clone 'y'".
pub fn describe(reasons: &[Protection]) -> String {
    reasons
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is published of `tree`: the publish state, a publish in progress, and
/// the boot entries on disk.
pub fn published(store: &Store, tree: &TreeName) -> Result<Published> {
    let state = PublishState::load(store.state_dir())
        .context("needed to know which snapshots are protected")?;
    let mut out = Published::default();
    if let Some(t) = state.trees.get(tree) {
        out.current = t.current.clone();
        out.exported = t.exported.clone();
    }
    if let Some(intent) = Slot::Publish.load(store.state_dir())? {
        if let Change::Publish { tree: t, id } | Change::PublishGroup { tree: t, id, .. } =
            intent.change
        {
            if &t == tree && !out.exported.contains(&id) {
                out.exported.push(id);
            }
        }
    }
    let cfg = store.config.publish();
    for path in crate::publish::boot::entry_paths(&cfg.boot_root, tree) {
        if let Some(id) = crate::publish::steps::entry_names(&path) {
            out.boot_entries.push((id, path));
        }
    }
    use crate::publish::fleet::{entries, groups::Groups, view};
    for (t, path) in entries::group_entries_on_disk(&cfg.boot_root) {
        if &t.tree == tree {
            out.boot_entries.push((t.id, path));
        }
    }
    let groups =
        Groups::load(store.state_dir()).context("needed to know which snapshots are protected")?;
    for (g, s) in &groups.groups {
        if let Some(c) = s.current.as_ref().filter(|c| &c.tree == tree) {
            out.groups.push((c.id.clone(), g.clone()));
        }
    }
    for (t, who) in
        view::users_now(store).context("needed to know which snapshots are protected")?
    {
        if &t.tree == tree {
            out.in_use.push((t.id, who));
        }
    }
    Ok(out)
}

/// The `pre` snapshot of `tree`'s unfinished run, from its intent.
pub fn run_pre(store: &Store, tree: &TreeName) -> Result<Vec<SnapshotId>> {
    let st = TreeState::load(store.state_dir(), tree)
        .context("needed to know which snapshots are protected")?;
    Ok(match st.intent.map(|i| i.change) {
        Some(Change::Run(r)) => vec![r.pre],
        _ => vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sidus_backends::Origin;

    fn id(s: &str) -> SnapshotId {
        s.parse().unwrap()
    }

    const A: &str = "20261125T101500Z";
    const B: &str = "20261125T101501Z";
    const C: &str = "20261125T101502Z";
    const D: &str = "20261125T101503Z";
    const E: &str = "20261125T101504Z";

    fn record(name: &str, origin: Option<(&str, &str)>) -> TreeRecord {
        TreeRecord {
            name: name.parse().unwrap(),
            path: "/x".into(),
            origin: origin.map(|(t, i)| Origin {
                tree: t.parse().unwrap(),
                id: id(i),
            }),
            damaged: None,
        }
    }

    #[test]
    fn every_source_is_gathered_and_worded() {
        let lab: TreeName = "lab".parse().unwrap();
        let trees = [
            record("lab", None),
            record("paper", Some(("lab", A))),
            record("elsewhere", Some(("other", B))),
        ];
        let pins = [Pin {
            tree: lab.clone(),
            id: id(A),
            label: Some("paper-2026".parse().unwrap()),
            note: String::new(),
            user: String::new(),
            pinned_at: chrono::Utc::now(),
            manifest: None,
        }];
        let published = Published {
            current: Some(id(B)),
            exported: vec![id(B), id(C)],
            boot_entries: vec![(id(E), "/srv/tftp/sidus/lab.ipxe".into())],
            groups: vec![(id(C), "canary".parse().unwrap())],
            in_use: vec![(id(D), vec!["node n1 (10.0.0.5)".into()])],
        };
        let p = Protections::from_parts(&lab, &trees, &pins, &published, &[id(D)]);
        assert_eq!(
            describe(p.of(&id(A))),
            "pinned as 'paper-2026', the origin of clone 'paper'"
        );
        assert_eq!(describe(p.of(&id(B))), "published (current)");
        assert_eq!(
            describe(p.of(&id(C))),
            "published, what group 'canary' boots"
        );
        assert_eq!(
            describe(p.of(&id(D))),
            "mounted by NFS clients node n1 (10.0.0.5), the pre snapshot of an unfinished `sidus run`"
        );
        assert_eq!(
            describe(p.of(&id(E))),
            "named by the boot entry /srv/tftp/sidus/lab.ipxe"
        );
        // Another tree's origins and pins do not protect this tree's IDs.
        let other: TreeName = "other".parse().unwrap();
        let q = Protections::from_parts(&other, &trees, &pins, &Published::default(), &[]);
        assert_eq!(describe(q.of(&id(B))), "the origin of clone 'elsewhere'");
        assert!(q.of(&id(A)).is_empty());
    }
}
