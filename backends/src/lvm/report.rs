//! `lvs --reportformat json` into types. lvm2 (2.03) reports every value as a
//! string, `""` for a field that does not apply, and `-1` as the kernel major of
//! an inactive LV.

use crate::lvm::{naming, tags};
use crate::{SnapshotId, TreeName};

/// Fields of the one `lvs` query that lists a VG's LVs with everything sidus
/// needs: roles come from names, trees and metadata from tags, mounts from
/// device numbers.
pub(crate) const LIST_FIELDS: &str = "lv_name,lv_tags,pool_lv,lv_kernel_major,lv_kernel_minor";

/// Fields of the query on the thin pool itself.
pub(crate) const POOL_FIELDS: &str = "lv_name,segtype,data_percent,metadata_percent";

#[derive(serde::Deserialize)]
struct Document {
    report: Vec<Section>,
}

#[derive(serde::Deserialize)]
struct Section {
    #[serde(default)]
    lv: Vec<Row>,
}

/// One LV as `lvs` reports it; fields not asked for stay empty.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Row {
    pub lv_name: String,
    pub lv_tags: String,
    pub pool_lv: String,
    pub lv_kernel_major: String,
    pub lv_kernel_minor: String,
    pub segtype: String,
    pub data_percent: String,
    pub metadata_percent: String,
}

/// Parses the JSON document of `lvs --reportformat json`.
pub(crate) fn parse(json: &[u8]) -> Result<Vec<Row>, String> {
    let doc: Document = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(doc.report.into_iter().flat_map(|s| s.lv).collect())
}

impl Row {
    /// The LV's device numbers while it is active.
    pub fn dev(&self) -> Option<(u32, u32)> {
        Some((
            self.lv_kernel_major.trim().parse().ok()?,
            self.lv_kernel_minor.trim().parse().ok()?,
        ))
    }
}

/// A percentage column (`"12.34"`); `None` when empty.
pub(crate) fn percent(field: &str) -> Result<Option<f64>, String> {
    let f = field.trim();
    if f.is_empty() {
        return Ok(None);
    }
    f.parse()
        .map(Some)
        .map_err(|_| format!("'{f}' is not a percentage"))
}

/// An LV of the store, as sidus sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lv {
    /// The LV name in the VG.
    pub name: String,
    /// What it is to sidus.
    pub role: naming::Role,
    /// The tree it belongs to (from its tag; `None` for the state LV).
    pub tree: Option<TreeName>,
    /// The snapshot it holds, for snapshot LVs.
    pub id: Option<SnapshotId>,
    /// Its sidus tags, still escaped.
    pub tags: Vec<(String, String)>,
    /// Device numbers while active.
    pub dev: Option<(u32, u32)>,
}

/// The store's LVs among `rows`: LVs in `pool` whose name gives them a role.
/// An LV with a role but without readable tree/ID tags is not ours to touch:
/// it is skipped with a warning rather than guessed from its name.
pub(crate) fn store_lvs(rows: Vec<Row>, pool: &str) -> Vec<Lv> {
    let mut out = Vec::new();
    for row in rows {
        if row.pool_lv != pool {
            continue;
        }
        let Some(role) = naming::role(&row.lv_name) else {
            continue;
        };
        let parsed = tags::parse(&row.lv_tags);
        let decoded = |key| tags::get(&parsed, key).and_then(tags::decode);
        let tree = decoded(tags::TREE).and_then(|t| t.parse::<TreeName>().ok());
        let id = decoded(tags::ID).and_then(|i| i.parse::<SnapshotId>().ok());
        let complete = match role {
            naming::Role::State => true,
            naming::Role::Snapshot => tree.is_some() && id.is_some(),
            _ => tree.is_some(),
        };
        if !complete {
            log::warn!(
                "ignoring LV {} (tags '{}'): its sidus tags are missing or damaged",
                row.lv_name,
                row.lv_tags
            );
            continue;
        }
        out.push(Lv {
            dev: row.dev(),
            name: row.lv_name,
            role,
            tree,
            id,
            tags: parsed,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use naming::Role;

    /// `lvs --reportformat json -o LIST_FIELDS sidusvg` captured in the test VM
    /// (lvm2 2.03.16, Debian 12) after `sidus create t1`, two snapshots (the
    /// first activated for its view), `sidus clone t1@FIRST c1` and a foreign
    /// LV `other` outside the pool.
    const LIST: &str = include_str!("../../tests/fixtures/lvs-list.json");
    /// `lvs --reportformat json -o POOL_FIELDS sidusvg/pool` from the same VM.
    const POOL: &str = include_str!("../../tests/fixtures/lvs-pool.json");

    #[test]
    fn captured_listing_yields_the_store_lvs() {
        let rows = parse(LIST.as_bytes()).unwrap();
        assert!(rows.iter().any(|r| r.lv_name == "pool"), "{rows:?}");
        let lvs = store_lvs(rows, "pool");
        let names: Vec<(&str, Role)> = lvs.iter().map(|l| (l.name.as_str(), l.role)).collect();
        assert!(names.contains(&("sidus.state", Role::State)), "{names:?}");
        assert!(names.contains(&("sidus.t.t1", Role::Working)), "{names:?}");
        assert!(names.contains(&("sidus.t.c1", Role::Working)), "{names:?}");
        assert!(lvs.iter().all(|l| l.name != "pool" && l.name != "other"));
        let snaps: Vec<&Lv> = lvs.iter().filter(|l| l.role == Role::Snapshot).collect();
        assert_eq!(snaps.len(), 2, "{snaps:?}");
        for s in &snaps {
            assert_eq!(s.tree.as_ref().unwrap().as_str(), "t1");
            assert!(s.id.is_some());
            assert_eq!(tags::get(&s.tags, "kind"), Some("manual"));
        }
        // Inactive snapshots have no device; mounted trees do.
        assert!(snaps.iter().any(|s| s.dev.is_none()));
        assert!(lvs
            .iter()
            .filter(|l| l.role == Role::Working)
            .all(|l| l.dev.is_some()));
        let second = snaps.iter().find(|s| s.dev.is_none()).unwrap();
        let snap = tags::snapshot_from_tags(
            second.tree.clone().unwrap(),
            second.id.clone().unwrap(),
            &second.tags,
        )
        .unwrap();
        assert_eq!(snap.message, "second, with ça");
        assert_eq!(snap.command, "sidus snapshot t1 -m 'second, with ça'");
        assert_eq!(
            snap.parent,
            snaps.iter().find(|s| s.dev.is_some()).unwrap().id
        );
        let clone = lvs.iter().find(|l| l.name == "sidus.t.c1").unwrap();
        assert!(tags::get(&clone.tags, tags::ORIGIN).is_some());
    }

    #[test]
    fn captured_pool_report_has_percentages() {
        let rows = parse(POOL.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].segtype, "thin-pool");
        let data = percent(&rows[0].data_percent).unwrap().unwrap();
        let meta = percent(&rows[0].metadata_percent).unwrap().unwrap();
        assert!((0.0..=100.0).contains(&data) && (0.0..=100.0).contains(&meta));
    }

    #[test]
    fn untagged_or_foreign_lvs_are_left_alone() {
        let json = br#"{"report":[{"lv":[
            {"lv_name":"sidus.t.x", "lv_tags":"", "pool_lv":"pool", "lv_kernel_major":"-1", "lv_kernel_minor":"-1"},
            {"lv_name":"sidus.s.x.20261125T101500Z", "lv_tags":"sidus_tree=x", "pool_lv":"pool", "lv_kernel_major":"-1", "lv_kernel_minor":"-1"},
            {"lv_name":"sidus.t.y", "lv_tags":"sidus_tree=y", "pool_lv":"otherpool", "lv_kernel_major":"253", "lv_kernel_minor":"3"},
            {"lv_name":"sidus.t.z", "lv_tags":"sidus_tree=z,mine", "pool_lv":"pool", "lv_kernel_major":"253", "lv_kernel_minor":"4"}
        ]}]}"#;
        let lvs = store_lvs(parse(json).unwrap(), "pool");
        assert_eq!(lvs.len(), 1);
        assert_eq!(lvs[0].name, "sidus.t.z");
        assert_eq!(lvs[0].dev, Some((253, 4)));
    }

    #[test]
    fn garbage_is_an_error_and_empty_fields_are_none() {
        assert!(parse(b"  WARNING: something\n").is_err());
        assert_eq!(percent("").unwrap(), None);
        assert_eq!(percent(" 91.50").unwrap(), Some(91.5));
        assert!(percent("lots").is_err());
    }
}
