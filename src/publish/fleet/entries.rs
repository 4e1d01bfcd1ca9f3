//! The boot entries of groups and nodes, under the boot root beside the
//! trees' own:
//!
//! - `sidus/groups/G.ipxe` and `pxelinux.cfg/sidus-groups/G`: the group's
//!   entry, naming its TREE@ID (kernel, initrd, command line), or, for a
//!   group with no snapshot of its own, handing back to the default entry;
//! - `sidus/nodes/<mac-hexhyp>.ipxe` (`chain ../groups/G.ipxe`) and
//!   `pxelinux.cfg/01-<mac-hexhyp>` (`CONFIG pxelinux.cfg/sidus-groups/G`):
//!   a node's entry, pointing at its group's.
//!
//! A tree's iPXE entry first chains to `nodes/${netX/mac:hexhyp}.ipxe`
//! (see [`crate::publish::boot`]): a node of the inventory goes on to its
//! group's entry, any other node finds no file and boots the tree's default.
//! PXELINUX tries `01-<mac>` before anything else by itself. So a group moves
//! to another ID with one rename, its entry's; node entries only change with
//! the inventory. Rendering is pure; [`sync`] makes the files match the
//! inventory.

use super::groups::{Groups, Target};
use super::inventory::{GroupName, Inventory, Node};
use super::mac::Mac;
use crate::publish::boot::Entry;
use crate::state::atomic::{remove_durable_all, write_atomic_all};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What iPXE puts in the kernel command line so an NFSv4 client names itself
/// by its MAC (`nfs.nfs4_unique_id`): the server then tells nodes apart.
pub const IPXE_UNIQUE_ID: &str = "nfs.nfs4_unique_id=${netX/mac:hexhyp}";

/// First line of every node entry sidus writes: files without it are not sidus's.
const NODE_MARK: &str = "# sidus: node ";

/// `<boot_root>/sidus/groups/G.ipxe`.
pub fn group_ipxe(boot_root: &Path, g: &GroupName) -> PathBuf {
    boot_root
        .join("sidus")
        .join("groups")
        .join(format!("{g}.ipxe"))
}

/// `<boot_root>/pxelinux.cfg/sidus-groups/G`.
pub fn group_pxelinux(boot_root: &Path, g: &GroupName) -> PathBuf {
    boot_root
        .join("pxelinux.cfg")
        .join("sidus-groups")
        .join(g.as_str())
}

/// `<boot_root>/sidus/nodes/<mac-hexhyp>.ipxe`.
pub fn node_ipxe(boot_root: &Path, mac: &Mac) -> PathBuf {
    boot_root
        .join("sidus")
        .join("nodes")
        .join(format!("{}.ipxe", mac.hexhyp()))
}

/// `<boot_root>/pxelinux.cfg/01-<mac-hexhyp>` (ARP type 1, Ethernet).
pub fn node_pxelinux(boot_root: &Path, mac: &Mac) -> PathBuf {
    boot_root
        .join("pxelinux.cfg")
        .join(format!("01-{}", mac.hexhyp()))
}

fn header(g: &GroupName, what: &str) -> String {
    format!("# sidus: group {g} {what}.\n# Written by sidus publish --group and replaced whole; do not edit.\n")
}

/// The group's iPXE entry for `e` (paths relative to `sidus/groups/`).
pub fn group_ipxe_text(g: &GroupName, e: &Entry) -> String {
    format!(
        "#!ipxe\n{}kernel ../{t}/{i}/vmlinuz initrd=initrd.img {c} sidus.group={g} {IPXE_UNIQUE_ID}\ninitrd ../{t}/{i}/initrd.img\nboot\n",
        header(g, &format!("boots tree {} snapshot {} (kernel {})", e.tree, e.id, e.kernel_version)),
        t = e.tree,
        i = e.id,
        c = e.cmdline()
    )
}

/// The group's PXELINUX entry for `e` (paths relative to the TFTP root).
pub fn group_pxelinux_text(g: &GroupName, e: &Entry) -> String {
    format!(
        "{}DEFAULT sidus-group-{g}\nLABEL sidus-group-{g}\n  MENU LABEL sidus {t}@{i} (group {g})\n  KERNEL sidus/{t}/{i}/vmlinuz\n  INITRD sidus/{t}/{i}/initrd.img\n  APPEND {c} sidus.group={g}\n",
        header(g, &format!("boots tree {} snapshot {} (kernel {})", e.tree, e.id, e.kernel_version)),
        t = e.tree,
        i = e.id,
        c = e.cmdline()
    )
}

/// The group's iPXE entry while it has no snapshot of its own: back to the
/// script that chained here, the tree's default entry.
pub fn group_ipxe_default(g: &GroupName) -> String {
    format!(
        "#!ipxe\n{}exit 0\n",
        header(
            g,
            "has no snapshot of its own: its nodes boot the default entry"
        )
    )
}

/// The group's PXELINUX entry while it has no snapshot of its own: the
/// config PXELINUX would have read for a node without an entry.
pub fn group_pxelinux_default(g: &GroupName) -> String {
    format!(
        "{}DEFAULT sidus-default\nLABEL sidus-default\n  CONFIG pxelinux.cfg/default\n",
        header(
            g,
            "has no snapshot of its own: its nodes boot the default entry"
        )
    )
}

/// A node's iPXE entry.
pub fn node_ipxe_text(n: &Node, g: &GroupName) -> String {
    format!(
        "#!ipxe\n{NODE_MARK}{} ({}) of group {g}; written by sidus node, do not edit.\nchain ../groups/{g}.ipxe\n",
        n.name, n.mac
    )
}

/// A node's PXELINUX entry.
pub fn node_pxelinux_text(n: &Node, g: &GroupName) -> String {
    format!(
        "{NODE_MARK}{} ({}) of group {g}; written by sidus node, do not edit.\nDEFAULT sidus-group-{g}\nLABEL sidus-group-{g}\n  CONFIG pxelinux.cfg/sidus-groups/{g}\n",
        n.name, n.mac
    )
}

/// The TREE@ID an entry file names (`sidus.tree=` and `sidus.snapshot=`), if any.
pub fn entry_target(path: &Path) -> Option<Target> {
    let text = std::fs::read_to_string(path).ok()?;
    text_target(&text)
}

/// [`entry_target`] of an entry's text.
pub fn text_target(text: &str) -> Option<Target> {
    let word = |k: &str| text.split_whitespace().find_map(|w| w.strip_prefix(k));
    Some(Target {
        tree: word("sidus.tree=")?.parse().ok()?,
        id: word("sidus.snapshot=")?.parse().ok()?,
    })
}

/// Every group entry on disk that names a snapshot, with its file: what
/// protects a snapshot whatever the state says.
pub fn group_entries_on_disk(boot_root: &Path) -> Vec<(Target, PathBuf)> {
    let mut out = Vec::new();
    for dir in [
        boot_root.join("sidus/groups"),
        boot_root.join("pxelinux.cfg/sidus-groups"),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if let Some(t) = entry_target(&p) {
                out.push((t, p));
            }
        }
    }
    out
}

/// What [`sync`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Synced {
    /// Entry files written.
    pub written: usize,
    /// Entry files removed.
    pub removed: usize,
}

/// Makes the node entries, and the entries of groups without a snapshot of
/// their own, match `inv` and `groups`: missing or different files are
/// written (group entries before the node entries that point at them),
/// entries of nodes no longer in a group are removed (only files sidus
/// wrote), then entries of groups nothing uses any more. Entries of groups
/// with their own snapshot are publish's and stay as they are.
pub fn sync(boot_root: &Path, inv: &Inventory, groups: &Groups) -> Result<Synced> {
    let used = inv.groups();
    let mut group_files = Vec::new();
    for g in used.keys().filter(|g| groups.current(g).is_none()) {
        group_files.push((group_ipxe(boot_root, g), group_ipxe_default(g)));
        group_files.push((group_pxelinux(boot_root, g), group_pxelinux_default(g)));
    }
    let mut node_files = Vec::new();
    let mut wanted = BTreeSet::new();
    for n in &inv.nodes {
        let Some(g) = &n.group else { continue };
        node_files.push((node_ipxe(boot_root, &n.mac), node_ipxe_text(n, g)));
        node_files.push((node_pxelinux(boot_root, &n.mac), node_pxelinux_text(n, g)));
    }
    for (p, _) in &node_files {
        wanted.insert(p.clone());
    }
    let mut out = Synced::default();
    for batch in [group_files, node_files] {
        let changed: Vec<(PathBuf, Vec<u8>, u32)> = batch
            .into_iter()
            .filter(|(p, text)| std::fs::read(p).ok().as_deref() != Some(text.as_bytes()))
            .map(|(p, text)| (p, text.into_bytes(), 0o644))
            .collect();
        out.written += changed.len();
        write_atomic_all(&changed)?;
    }
    let stale: Vec<PathBuf> = sidus_node_files(boot_root)?
        .into_iter()
        .filter(|p| !wanted.contains(p))
        .collect();
    out.removed += remove_durable_all(&stale)?;
    let mut unused = Vec::new();
    for dir in [
        boot_root.join("sidus/groups"),
        boot_root.join("pxelinux.cfg/sidus-groups"),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(g) = name
                .strip_suffix(".ipxe")
                .unwrap_or(&name)
                .parse::<GroupName>()
                .ok()
            else {
                continue;
            };
            if !used.contains_key(&g) && groups.current(&g).is_none() && entry_target(&p).is_none()
            {
                unused.push(p);
            }
        }
    }
    out.removed += remove_durable_all(&unused)?;
    Ok(out)
}

/// Every node entry file sidus wrote: all of `sidus/nodes/*.ipxe`, and the
/// `pxelinux.cfg/01-*` files that start with its mark.
fn sidus_node_files(boot_root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let nodes = boot_root.join("sidus/nodes");
    for e in std::fs::read_dir(&nodes).into_iter().flatten() {
        let p = e
            .with_context(|| format!("read {}", nodes.display()))?
            .path();
        if p.extension().is_some_and(|x| x == "ipxe") {
            out.push(p);
        }
    }
    let pxe = boot_root.join("pxelinux.cfg");
    for e in std::fs::read_dir(&pxe).into_iter().flatten() {
        let p = e.with_context(|| format!("read {}", pxe.display()))?.path();
        let ours = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("01-"))
            && std::fs::read_to_string(&p).is_ok_and(|t| t.starts_with(NODE_MARK));
        if ours {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sidus_backends::{SnapshotId, TreeName};

    fn node(name: &str, mac: &str, group: Option<&str>) -> Node {
        Node {
            name: name.parse().unwrap(),
            mac: mac.parse().unwrap(),
            ip: None,
            group: group.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn entries_point_node_to_group_to_snapshot() {
        let (tree, id): (TreeName, SnapshotId) =
            ("lab".parse().unwrap(), "20261125T101500Z".parse().unwrap());
        let g: GroupName = "canary".parse().unwrap();
        let e = Entry {
            tree: &tree,
            id: &id,
            server: "10.0.0.1",
            nfs_path: Path::new("/srv/sidus/lab/20261125T101500Z"),
            kernel_version: "6.1.0-26-amd64",
            extra: "ip=dhcp",
        };
        let ipxe = group_ipxe_text(&g, &e);
        assert!(
            ipxe.starts_with(
                "#!ipxe\n# sidus: group canary boots tree lab snapshot 20261125T101500Z"
            ),
            "{ipxe}"
        );
        assert!(ipxe.contains("\nkernel ../lab/20261125T101500Z/vmlinuz initrd=initrd.img root=/dev/nfs nfsroot=10.0.0.1:/srv/sidus/lab/20261125T101500Z,ro sidus.tree=lab sidus.snapshot=20261125T101500Z ip=dhcp sidus.group=canary nfs.nfs4_unique_id=${netX/mac:hexhyp}\ninitrd ../lab/20261125T101500Z/initrd.img\nboot\n"), "{ipxe}");
        let pxe = group_pxelinux_text(&g, &e);
        assert!(pxe.contains("  KERNEL sidus/lab/20261125T101500Z/vmlinuz\n  INITRD sidus/lab/20261125T101500Z/initrd.img\n  APPEND root=/dev/nfs"), "{pxe}");
        let t = text_target(&ipxe).unwrap();
        assert_eq!(t.to_string(), "lab@20261125T101500Z");
        assert_eq!(text_target(&pxe), Some(t));
        assert_eq!(text_target(&group_ipxe_default(&g)), None);
        let n = node("n1", "52:54:00:AB:00:01", Some("canary"));
        assert!(node_ipxe_text(&n, &g).ends_with("\nchain ../groups/canary.ipxe\n"));
        assert!(
            node_pxelinux_text(&n, &g).ends_with("\n  CONFIG pxelinux.cfg/sidus-groups/canary\n")
        );
        let root = Path::new("/t");
        assert_eq!(
            node_ipxe(root, &n.mac),
            Path::new("/t/sidus/nodes/52-54-00-ab-00-01.ipxe")
        );
        assert_eq!(
            node_pxelinux(root, &n.mac),
            Path::new("/t/pxelinux.cfg/01-52-54-00-ab-00-01")
        );
        assert_eq!(
            group_ipxe(root, &g),
            Path::new("/t/sidus/groups/canary.ipxe")
        );
        assert_eq!(
            group_pxelinux(root, &g),
            Path::new("/t/pxelinux.cfg/sidus-groups/canary")
        );
    }

    #[test]
    fn sync_follows_the_inventory_and_spares_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut inv = Inventory {
            nodes: vec![
                node("a", "52:54:00:00:00:01", Some("g1")),
                node("b", "52:54:00:00:00:02", Some("g2")),
                node("c", "52:54:00:00:00:03", None),
            ],
        };
        std::fs::create_dir_all(root.join("pxelinux.cfg")).unwrap();
        std::fs::write(
            root.join("pxelinux.cfg/01-52-54-00-00-00-09"),
            "admin's own\n",
        )
        .unwrap();
        let s = sync(root, &inv, &Groups::default()).unwrap();
        assert_eq!(
            s,
            Synced {
                written: 8,
                removed: 0
            }
        );
        assert!(std::fs::read_to_string(root.join("sidus/groups/g1.ipxe"))
            .unwrap()
            .contains("exit 0"));
        assert!(
            !node_ipxe(root, &inv.nodes[2].mac).exists(),
            "no group, no entry"
        );
        assert_eq!(
            sync(root, &inv, &Groups::default()).unwrap(),
            Synced::default(),
            "idempotent"
        );
        inv.nodes.remove(1);
        inv.nodes[0].group = Some("g3".parse().unwrap());
        let s = sync(root, &inv, &Groups::default()).unwrap();
        assert_eq!(s.written, 4);
        assert!(!root.join("sidus/nodes/52-54-00-00-00-02.ipxe").exists());
        assert!(
            !root.join("sidus/groups/g1.ipxe").exists()
                && !root.join("sidus/groups/g2.ipxe").exists()
        );
        assert!(
            root.join("pxelinux.cfg/01-52-54-00-00-00-09").exists(),
            "not sidus's"
        );
        assert!(std::fs::read_to_string(node_ipxe(root, &inv.nodes[0].mac))
            .unwrap()
            .contains("chain ../groups/g3.ipxe"));
    }
}
