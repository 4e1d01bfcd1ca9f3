//! `TREE@REF` arguments and resolving a REF against a tree's snapshots.

use anyhow::{bail, Result};
use sidus_backends::{Snapshot, SnapshotId, TreeName};
use std::fmt;
use std::str::FromStr;

/// A `TREE` or `TREE@REF` argument. The tree name is validated when parsed, so a
/// bad name is a usage error; the REF is resolved later against the snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRef {
    /// The tree.
    pub tree: TreeName,
    /// The text after `@`, if any.
    pub reference: Option<String>,
}

impl FromStr for TreeRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (tree, reference) = match s.split_once('@') {
            Some((t, "")) => {
                return Err(format!(
                    "'{t}@' names no snapshot: use {t}@ID or {t}@latest"
                ))
            }
            Some((t, r)) => (t, Some(r.to_string())),
            None => (s, None),
        };
        Ok(TreeRef {
            tree: tree
                .parse()
                .map_err(|e: sidus_backends::NameError| e.to_string())?,
            reference,
        })
    }
}

impl fmt::Display for TreeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Some(r) => write!(f, "{}@{}", self.tree, r),
            None => write!(f, "{}", self.tree),
        }
    }
}

/// Resolves `reference` among `snaps` (one tree's snapshots, any order): `latest`,
/// a full ID, or a unique prefix of one.
pub fn resolve<'a>(
    tree: &TreeName,
    reference: &str,
    snaps: &'a [Snapshot],
) -> Result<&'a Snapshot> {
    resolve_by(tree, reference, snaps, |s| &s.id)
}

/// [`resolve`] over anything that has a snapshot ID (`id` gives it), such as
/// bare IDs when no metadata is needed.
pub fn resolve_by<'a, T>(
    tree: &TreeName,
    reference: &str,
    items: &'a [T],
    id: impl Fn(&T) -> &SnapshotId,
) -> Result<&'a T> {
    if reference == "latest" {
        return match items.iter().max_by(|a, b| id(a).cmp(id(b))) {
            Some(s) => Ok(s),
            None => bail!("tree '{tree}' has no snapshots yet"),
        };
    }
    if let Ok(want) = reference.parse::<SnapshotId>() {
        if let Some(s) = items.iter().find(|s| id(s) == &want) {
            return Ok(s);
        }
    }
    let matches: Vec<&T> = items
        .iter()
        .filter(|s| id(s).as_str().starts_with(reference))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!("no snapshot '{reference}' in tree '{tree}' (see `sidus snapshots {tree}`)"),
        many => {
            let mut ids: Vec<&str> = many.iter().map(|s| id(s).as_str()).collect();
            ids.sort();
            let shown = ids.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            let more = if ids.len() > 5 {
                format!(" and {} more", ids.len() - 5)
            } else {
                String::new()
            };
            bail!(
                "'{reference}' matches {} snapshots of tree '{tree}': {shown}{more}",
                ids.len()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snaps(ids: &[&str]) -> Vec<Snapshot> {
        ids.iter()
            .map(|id| {
                Snapshot::from_properties("t".parse().unwrap(), id.parse().unwrap(), |_| None)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn parses_tree_and_ref() {
        let r: TreeRef = "lab@2026".parse().unwrap();
        assert_eq!(
            (r.tree.as_str(), r.reference.as_deref()),
            ("lab", Some("2026"))
        );
        assert_eq!("lab".parse::<TreeRef>().unwrap().reference, None);
        assert!("Lab@x"
            .parse::<TreeRef>()
            .unwrap_err()
            .contains("invalid name 'Lab'"));
        assert!("lab@"
            .parse::<TreeRef>()
            .unwrap_err()
            .contains("names no snapshot"));
    }

    #[test]
    fn resolves_latest_full_and_prefix() {
        let s = snaps(&["20261124T090000Z", "20261125T101500Z", "20261125T101500Z.1"]);
        let t: TreeName = "t".parse().unwrap();
        let id = |r: &str| resolve(&t, r, &s).map(|s| s.id.to_string());
        assert_eq!(id("latest").unwrap(), "20261125T101500Z.1");
        assert_eq!(id("20261125T101500Z").unwrap(), "20261125T101500Z");
        assert_eq!(id("20261124").unwrap(), "20261124T090000Z");
        assert_eq!(id("20261125T101500Z.").unwrap(), "20261125T101500Z.1");
        let amb = id("202611").unwrap_err().to_string();
        assert!(
            amb.starts_with("'202611' matches 3 snapshots of tree 't'"),
            "{amb}"
        );
        assert!(id("2027")
            .unwrap_err()
            .to_string()
            .starts_with("no snapshot '2027' in tree 't'"));
        assert!(resolve(&t, "latest", &[])
            .unwrap_err()
            .to_string()
            .contains("has no snapshots"));
        // The same over bare IDs.
        let ids: Vec<SnapshotId> = s.iter().map(|s| s.id.clone()).collect();
        let by_id = |r: &str| resolve_by(&t, r, &ids, |i| i).map(|i| i.to_string());
        for r in [
            "latest",
            "20261125T101500Z",
            "20261124",
            "20261125T101500Z.",
        ] {
            assert_eq!(by_id(r).unwrap(), id(r).unwrap(), "{r}");
        }
        assert!(by_id("202611").is_err());
    }
}
