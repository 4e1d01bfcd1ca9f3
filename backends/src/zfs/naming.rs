//! Where each part of a ZFS store lives: dataset names derived from the
//! store's parent dataset, and the owner a history dataset's name gives.

use super::Zfs;
use crate::{Origin, TreeName};

impl Zfs {
    /// `D/trees`: the working datasets.
    pub(super) fn trees_ds(&self) -> String {
        format!("{}/trees", self.dataset)
    }

    /// `D/history`: working datasets a rollback replaced.
    pub(super) fn history_ds(&self) -> String {
        format!("{}/history", self.dataset)
    }

    /// `D/trees/<tree>`.
    pub(super) fn working_ds(&self, tree: &TreeName) -> String {
        format!("{}/trees/{tree}", self.dataset)
    }

    /// `D/swap/<tree>`: a rollback's new working dataset while it is swapped in.
    pub(super) fn swap_ds(&self, tree: &TreeName) -> String {
        format!("{}/swap/{tree}", self.dataset)
    }

    /// The tree a history dataset belongs to: `D/history/<tree>.<stamp>[.N]`.
    pub(super) fn history_owner<'a>(&self, dataset: &'a str) -> Option<&'a str> {
        let name = dataset.strip_prefix(&format!("{}/", self.history_ds()))?;
        let is_stamp = |p: &str| {
            p.len() == 16
                && p.as_bytes()[8] == b'T'
                && p.ends_with('Z')
                && p[..8]
                    .bytes()
                    .chain(p[9..15].bytes())
                    .all(|b| b.is_ascii_digit())
        };
        let (rest, last) = name.rsplit_once('.')?;
        if is_stamp(last) {
            return Some(rest);
        }
        let (tree, stamp) = rest.rsplit_once('.')?;
        (last.bytes().all(|b| b.is_ascii_digit()) && is_stamp(stamp)).then_some(tree)
    }
}

/// A `sidus:origin` value, `TREE@ID`.
pub(super) fn parse_origin(text: &str) -> Option<Origin> {
    let (tree, id) = text.split_once('@')?;
    Some(Origin {
        tree: tree.parse().ok()?,
        id: id.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runner;

    #[test]
    fn history_datasets_name_their_tree() {
        let z = Zfs::new("tank/sidus".into(), "/m".into(), Runner::new());
        let owner = |ds: &str| z.history_owner(ds).map(str::to_string);
        assert_eq!(
            owner("tank/sidus/history/lab.20261125T101500Z").as_deref(),
            Some("lab")
        );
        assert_eq!(
            owner("tank/sidus/history/a.b.20261125T101500Z.3").as_deref(),
            Some("a.b")
        );
        assert_eq!(owner("tank/sidus/history/lab.2026"), None);
        assert_eq!(owner("tank/sidus/trees/lab.20261125T101500Z"), None);
        assert_eq!(owner("tank/other/history/lab.20261125T101500Z"), None);
    }

    #[test]
    fn origins_read_back_or_are_ignored() {
        let o = parse_origin("lab@20261125T101500Z").unwrap();
        assert_eq!(
            (o.tree.as_str(), o.id.as_str()),
            ("lab", "20261125T101500Z")
        );
        assert!(parse_origin("lab").is_none());
        assert!(parse_origin("Bad Name@20261125T101500Z").is_none());
    }
}
