//! Making the boot entries of nodes (and of groups with no snapshot of their
//! own) follow the inventory, in two batches of durable writes: group entries
//! first, then the node entries that point at them; and telling, for `sidus
//! doctor`, how the files on disk differ from it.

use super::entries::*;
use super::groups::Groups;
use super::inventory::{GroupName, Inventory};
use crate::state::atomic::{remove_durable_all, write_atomic_all};
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What [`sync`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Synced {
    /// Entry files written.
    pub written: usize,
    /// Entry files removed.
    pub removed: usize,
}

/// An entry file and the text it should hold.
type Wanted = (PathBuf, String);

/// The entry files the inventory calls for: entries of groups nodes are in
/// that have no snapshot of their own, then every grouped node's two entries.
fn desired(boot_root: &Path, inv: &Inventory, groups: &Groups) -> (Vec<Wanted>, Vec<Wanted>) {
    let mut group_files = Vec::new();
    for g in inv.groups().keys().filter(|g| groups.current(g).is_none()) {
        group_files.push((group_ipxe(boot_root, g), group_ipxe_default(g)));
        group_files.push((group_pxelinux(boot_root, g), group_pxelinux_default(g)));
    }
    let mut node_files = Vec::new();
    for n in &inv.nodes {
        let Some(g) = &n.group else { continue };
        node_files.push((node_ipxe(boot_root, &n.mac), node_ipxe_text(n, g)));
        node_files.push((node_pxelinux(boot_root, &n.mac), node_pxelinux_text(n, g)));
    }
    (group_files, node_files)
}

/// Fallback entries of groups nothing uses any more (no node, no snapshot).
fn unused_group_files(boot_root: &Path, inv: &Inventory, groups: &Groups) -> Vec<PathBuf> {
    let used = inv.groups();
    let mut out = Vec::new();
    for dir in [
        boot_root.join("sidus/groups"),
        boot_root.join("pxelinux.cfg/sidus-groups"),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(g) = name
                .strip_suffix(".ipxe")
                .unwrap_or(&name)
                .parse::<GroupName>()
            else {
                continue;
            };
            if !used.contains_key(&g)
                && groups.current(&g).is_none()
                && entry_target(&e.path()).is_none()
            {
                out.push(e.path());
            }
        }
    }
    out
}

/// Makes the node entries, and the entries of groups without a snapshot of
/// their own, match `inv` and `groups`: missing or different files are
/// written (group entries before the node entries that point at them),
/// entries of nodes no longer in a group are removed (only files sidus
/// wrote), then entries of groups nothing uses any more. Entries of groups
/// with their own snapshot are publish's and stay as they are.
pub fn sync(boot_root: &Path, inv: &Inventory, groups: &Groups) -> Result<Synced> {
    let (group_files, node_files) = desired(boot_root, inv, groups);
    let wanted: BTreeSet<PathBuf> = node_files.iter().map(|(p, _)| p.clone()).collect();
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
    out.removed += remove_durable_all(&unused_group_files(boot_root, inv, groups))?;
    Ok(out)
}

/// How the entries on disk differ from what `inv` and `groups` call for,
/// one line per file, changing nothing (for `sidus doctor`; [`sync`] or the
/// next `publish --group` of the group repairs them).
pub fn drift(boot_root: &Path, inv: &Inventory, groups: &Groups) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let (group_files, node_files) = desired(boot_root, inv, groups);
    let wanted: BTreeSet<PathBuf> = node_files.iter().map(|(p, _)| p.clone()).collect();
    for (p, text) in group_files.iter().chain(&node_files) {
        match std::fs::read(p) {
            Err(_) => out.push(format!("{} is missing", p.display())),
            Ok(b) if b != text.as_bytes() => {
                out.push(format!("{} differs from the inventory", p.display()))
            }
            Ok(_) => {}
        }
    }
    for p in sidus_node_files(boot_root)?
        .into_iter()
        .filter(|p| !wanted.contains(p))
    {
        out.push(format!(
            "{} is the entry of no node of the inventory",
            p.display()
        ));
    }
    for (g, s) in &groups.groups {
        let Some(c) = &s.current else { continue };
        for p in [group_ipxe(boot_root, g), group_pxelinux(boot_root, g)] {
            if entry_target(&p).as_ref() != Some(c) {
                out.push(format!(
                    "{} does not name {c}, what group '{g}' boots",
                    p.display()
                ));
            }
        }
    }
    for p in unused_group_files(boot_root, inv, groups) {
        out.push(format!(
            "{} is the entry of a group nothing uses",
            p.display()
        ));
    }
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
    use super::super::inventory::Node;
    use super::*;

    fn node(name: &str, mac: &str, group: Option<&str>) -> Node {
        Node {
            name: name.parse().unwrap(),
            mac: mac.parse().unwrap(),
            ip: None,
            group: group.map(|g| g.parse().unwrap()),
        }
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
            .contains("chain --autofree ../groups/g3.ipxe"));
    }
}
