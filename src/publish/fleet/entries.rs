//! The boot entries of groups and nodes, under the boot root beside the
//! trees' own:
//!
//! - `sidus/groups/G.ipxe` and `pxelinux.cfg/sidus-groups/G`: the group's
//!   entry, naming its TREE@ID (kernel, initrd, command line), or, for a
//!   group with no snapshot of its own, handing back to the default entry;
//! - `sidus/nodes/<mac-hexhyp>.ipxe` (`chain --autofree ../groups/G.ipxe`) and
//!   `pxelinux.cfg/01-<mac-hexhyp>` (`CONFIG pxelinux.cfg/sidus-groups/G`):
//!   a node's entry, pointing at its group's.
//!
//! A tree's iPXE entry first chains to `nodes/${netX/mac:hexhyp}.ipxe`
//! (see [`crate::publish::boot`]): a node of the inventory goes on to its
//! group's entry, any other node finds no file and boots the tree's default.
//! PXELINUX tries `01-<mac>` before anything else by itself. So a group moves
//! to another ID with one rename, its entry's; node entries only change with
//! the inventory. Rendering is pure; [`super::sync`] makes the files match the
//! inventory.

use super::groups::Target;
use super::inventory::{GroupName, Node};
use super::mac::Mac;
use crate::publish::boot::Entry;
use std::path::{Path, PathBuf};

/// What iPXE puts in the kernel command line so an NFSv4 client names itself
/// by its MAC (`nfs.nfs4_unique_id`): the server then tells nodes apart.
pub const IPXE_UNIQUE_ID: &str = "nfs.nfs4_unique_id=${netX/mac:hexhyp}";

/// First line of every node entry sidus writes: files without it are not sidus's.
pub const NODE_MARK: &str = "# sidus: node ";

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
/// With fallbacks, each server is tried in turn, as in the tree's entry.
pub fn group_ipxe_text(g: &GroupName, e: &Entry) -> String {
    format!(
        "#!ipxe\n{}{}",
        header(
            g,
            &format!(
                "boots tree {} snapshot {} (kernel {})",
                e.tree, e.id, e.kernel_version
            )
        ),
        crate::publish::fallback::ipxe_boot(e, "../", &format!("sidus.group={g} {IPXE_UNIQUE_ID}"))
    )
}

/// The group's PXELINUX entry for `e` (paths relative to the TFTP root).
pub fn group_pxelinux_text(g: &GroupName, e: &Entry) -> String {
    format!(
        "{}{}DEFAULT sidus-group-{g}\nLABEL sidus-group-{g}\n  MENU LABEL sidus {t}@{i} (group {g})\n  KERNEL sidus/{t}/{i}/vmlinuz\n  INITRD sidus/{t}/{i}/initrd.img\n  APPEND {c} sidus.group={g}\n",
        header(g, &format!("boots tree {} snapshot {} (kernel {})", e.tree, e.id, e.kernel_version)),
        crate::publish::fallback::pxelinux_note(e),
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

/// A node's iPXE entry. `--autofree`: iPXE hands every image still loaded
/// to the kernel as an initrd, so a group entry that returns (`exit 0`, to
/// the default entry) would otherwise go first in the node's initramfs and
/// the kernel would find no root (seen in the netboot VM scenario).
pub fn node_ipxe_text(n: &Node, g: &GroupName) -> String {
    format!(
        "#!ipxe\n{NODE_MARK}{} ({}) of group {g}; written by sidus node, do not edit.\nchain --autofree ../groups/{g}.ipxe\n",
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
            manifest: "da33",
            fallbacks: &[],
        };
        let ipxe = group_ipxe_text(&g, &e);
        assert!(
            ipxe.starts_with(
                "#!ipxe\n# sidus: group canary boots tree lab snapshot 20261125T101500Z"
            ),
            "{ipxe}"
        );
        assert!(ipxe.contains("\nkernel ../lab/20261125T101500Z/vmlinuz initrd=initrd.img root=/dev/nfs nfsroot=10.0.0.1:/srv/sidus/lab/20261125T101500Z,ro sidus.tree=lab sidus.snapshot=20261125T101500Z sidus.manifest=da33 ip=dhcp sidus.group=canary nfs.nfs4_unique_id=${netX/mac:hexhyp}\ninitrd ../lab/20261125T101500Z/initrd.img\nboot\n"), "{ipxe}");
        let pxe = group_pxelinux_text(&g, &e);
        assert!(pxe.contains("  KERNEL sidus/lab/20261125T101500Z/vmlinuz\n  INITRD sidus/lab/20261125T101500Z/initrd.img\n  APPEND root=/dev/nfs"), "{pxe}");
        let t = text_target(&ipxe).unwrap();
        assert_eq!(t.to_string(), "lab@20261125T101500Z");
        assert_eq!(text_target(&pxe), Some(t));
        assert_eq!(text_target(&group_ipxe_default(&g)), None);
        let n = node("n1", "52:54:00:AB:00:01", Some("canary"));
        assert!(node_ipxe_text(&n, &g).ends_with("\nchain --autofree ../groups/canary.ipxe\n"));
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
}
