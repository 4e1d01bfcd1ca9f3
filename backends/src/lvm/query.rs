//! Which LVs the store has, from one `lvs` query per process (cached until
//! something changes them), and the lookups of a tree's working LV and
//! snapshots in it.

use super::naming::Role;
use super::report::{self, Lv};
use super::{errors, Lvm};
use crate::{argv, BackendError, Result, SnapshotId, TreeName};

impl Lvm {
    /// Every LV of the store, in one `lvs` call. Readers never heal what
    /// they see: a swap cut by a crash is finished by the tree's next writer
    /// ([`crate::Backend::recover`]), under its lock.
    pub(super) fn query(&self) -> Result<Vec<Lv>> {
        self.list_lvs()
    }

    pub(super) fn list_lvs(&self) -> Result<Vec<Lv>> {
        if let Some(lvs) = self.cached_lvs().as_ref() {
            return Ok(lvs.clone());
        }
        let out = self
            .runner
            .run(&argv![
                "lvs",
                "--reportformat",
                "json",
                "-o",
                report::LIST_FIELDS,
                &self.vg
            ])
            .map_err(|e| errors::classify("list logical volumes".into(), e))?;
        let rows = report::parse(&out).map_err(|detail| BackendError::UnexpectedOutput {
            tool: "lvs".into(),
            detail,
        })?;
        let lvs = report::store_lvs(rows, &self.pool);
        *self.cached_lvs() = Some(lvs.clone());
        Ok(lvs)
    }

    pub(super) fn find<'a>(lvs: &'a [Lv], role: Role, tree: &TreeName) -> Option<&'a Lv> {
        lvs.iter()
            .find(|l| l.role == role && l.tree.as_ref() == Some(tree))
    }

    pub(super) fn require_working<'a>(&self, lvs: &'a [Lv], tree: &TreeName) -> Result<&'a Lv> {
        Self::find(lvs, Role::Working, tree).ok_or_else(|| BackendError::tree_not_found(tree))
    }

    pub(super) fn require_snapshot<'a>(
        &self,
        lvs: &'a [Lv],
        tree: &TreeName,
        id: &SnapshotId,
    ) -> Result<&'a Lv> {
        self.require_working(lvs, tree)?;
        lvs.iter()
            .find(|l| {
                l.role == Role::Snapshot
                    && l.tree.as_ref() == Some(tree)
                    && l.id.as_ref() == Some(id)
            })
            .ok_or_else(|| BackendError::snapshot_not_found(tree, id))
    }
}
