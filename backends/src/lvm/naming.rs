//! LV names of trees and snapshots. The name gives an LV its role; which tree
//! and snapshot it holds is read from its tags, never parsed back from the name.
//!
//! lvm2 rules (lib/misc/lvm-string.c): LV names use `[A-Za-z0-9+_.-]`, at most
//! 127 characters, must not start with `-`, `snapshot` or `pvmove`, and must not
//! contain `_tmeta`, `_tdata`, `_cdata`, `_rimage`, `_mlog`, ... (all of which
//! contain `_`). Device-mapper names the device `VG-LV` with every `-` of VG and
//! LV doubled, in at most 127 bytes.
//!
//! So: every name starts with `sidus.`; a tree name's `_` becomes `+` (no tree
//! name has a `+`), which keeps the reserved `_...` words out; and a tree whose
//! names would not fit device-mapper's limit in this VG is named by a hash
//! (`H` + 16 hex digits: no tree name has upper case, so it cannot collide).

use crate::{SnapshotId, TreeName};

/// The LV holding the sidus state directory (journal, locks).
pub(crate) const STATE_LV: &str = "sidus.state";
const WORKING: &str = "sidus.t.";
const SNAPSHOT: &str = "sidus.s.";
const INCOMING: &str = "sidus.n.";
const OUTGOING: &str = "sidus.o.";

/// Longest device-mapper name (DM_NAME_LEN 128 with its NUL).
const DM_NAME_MAX: usize = 127;
/// Longest LV name (NAME_LEN 128 with its NUL).
const LV_NAME_MAX: usize = 127;
/// Longest snapshot ID: 16 characters, a dot and a u32 sequence.
const ID_MAX: usize = 16 + 1 + 10;

/// What an LV is to sidus, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A tree's working LV.
    Working,
    /// A snapshot.
    Snapshot,
    /// The copy a rollback is about to swap in (or left behind by a crash).
    Incoming,
    /// The working LV a rollback has just swapped out, about to be removed.
    Outgoing,
    /// The state LV.
    State,
}

/// The role of LV `name`, `None` for LVs that are not ours.
pub(crate) fn role(name: &str) -> Option<Role> {
    if name == STATE_LV {
        Some(Role::State)
    } else if name.starts_with(WORKING) {
        Some(Role::Working)
    } else if name.starts_with(SNAPSHOT) {
        Some(Role::Snapshot)
    } else if name.starts_with(INCOMING) {
        Some(Role::Incoming)
    } else if name.starts_with(OUTGOING) {
        Some(Role::Outgoing)
    } else {
        None
    }
}

/// The device-mapper name of `vg/lv`.
pub(crate) fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// The part of the LV names that stands for `tree` in `vg`.
fn tree_part(vg: &str, tree: &TreeName) -> String {
    let readable = tree.as_str().replace('_', "+");
    // The longest name of this tree is that of a snapshot with the longest ID.
    let longest = format!("{SNAPSHOT}{readable}.{}", "0".repeat(ID_MAX));
    if longest.len() <= LV_NAME_MAX && dm_name(vg, &longest).len() <= DM_NAME_MAX {
        readable
    } else {
        format!("H{:016x}", fnv1a(tree.as_str()))
    }
}

/// 64-bit FNV-1a: stable across versions and platforms, unlike std's hasher.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The working LV of `tree`.
pub(crate) fn working(vg: &str, tree: &TreeName) -> String {
    format!("{WORKING}{}", tree_part(vg, tree))
}

/// The LV a rollback of `tree` builds before swapping it in.
pub(crate) fn incoming(vg: &str, tree: &TreeName) -> String {
    format!("{INCOMING}{}", tree_part(vg, tree))
}

/// The name a rollback of `tree` gives the working LV it replaces.
pub(crate) fn outgoing(vg: &str, tree: &TreeName) -> String {
    format!("{OUTGOING}{}", tree_part(vg, tree))
}

/// The LV of snapshot `tree@id`.
pub(crate) fn snapshot(vg: &str, tree: &TreeName, id: &SnapshotId) -> String {
    format!("{SNAPSHOT}{}.{id}", tree_part(vg, tree))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What lvm2 accepts as an LV name (validate_name + apply_lvname_restrictions).
    fn lvm_accepts(name: &str) -> bool {
        const RESERVED: [&str; 17] = [
            "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog",
            "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig", "_pmspare",
            "_vorigin",
        ];
        !name.is_empty()
            && name.len() <= LV_NAME_MAX
            && !name.starts_with('-')
            && name != "."
            && name != ".."
            && !name.starts_with("snapshot")
            && !name.starts_with("pvmove")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
            && !RESERVED.iter().any(|r| name.contains(r))
    }

    fn t(s: &str) -> TreeName {
        s.parse().unwrap()
    }

    #[test]
    fn names_at_the_edge_are_valid_and_distinct() {
        let id: SnapshotId = "20261125T101500Z.4294967295".parse().unwrap();
        let trees = [
            "a",
            "0",
            "a.b",
            "x-y_z",
            "x_tmeta",
            "snapshot",
            "pvmove0",
            "a.20261125t101500z",
            &"a".repeat(48),
            &format!("a{}", "-".repeat(47)),
        ];
        let mut seen = std::collections::HashSet::new();
        for tree in trees {
            let tree = t(tree);
            for name in [
                working("sidusvg", &tree),
                incoming("sidusvg", &tree),
                outgoing("sidusvg", &tree),
                snapshot("sidusvg", &tree, &id),
            ] {
                assert!(lvm_accepts(&name), "{name}");
                assert!(dm_name("sidusvg", &name).len() <= DM_NAME_MAX, "{name}");
                assert!(role(&name).is_some(), "{name}");
                assert!(seen.insert(name.clone()), "{name} twice");
            }
        }
    }

    #[test]
    fn readable_names_for_ordinary_trees() {
        let id: SnapshotId = "20261125T101500Z".parse().unwrap();
        assert_eq!(working("vg", &t("a.b")), "sidus.t.a.b");
        assert_eq!(working("vg", &t("x-y_z")), "sidus.t.x-y+z");
        assert_eq!(incoming("vg", &t("0")), "sidus.n.0");
        assert_eq!(outgoing("vg", &t("0")), "sidus.o.0");
        assert_eq!(role("sidus.o.0"), Some(Role::Outgoing));
        assert_eq!(
            snapshot("vg", &t("lab"), &id),
            "sidus.s.lab.20261125T101500Z"
        );
        assert_eq!(role("sidus.s.lab.20261125T101500Z"), Some(Role::Snapshot));
        assert_eq!(role(STATE_LV), Some(Role::State));
        assert_eq!(role("root"), None);
        assert_eq!(role("sidus.stat"), None);
    }

    #[test]
    fn hyphen_heavy_tree_in_a_long_vg_is_hashed_to_fit_device_mapper() {
        let tree = t(&format!("a{}", "-".repeat(47)));
        let vg = "vg-with-hyphens";
        let name = working(vg, &tree);
        assert!(name.starts_with("sidus.t.H"), "{name}");
        assert_eq!(name.len(), "sidus.t.H".len() + 16);
        assert_ne!(working(vg, &t("b")), name);
        assert_eq!(working(vg, &t("b")), "sidus.t.b");
    }

    #[test]
    fn dm_names_double_hyphens() {
        assert_eq!(dm_name("my-vg", "sidus.t.x-y"), "my--vg-sidus.t.x--y");
    }
}
