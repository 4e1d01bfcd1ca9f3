//! Rollback's swap of the working LV, and finishing a swap a crash interrupted.
//!
//! The copy of the target snapshot is made as `sidus.n.<tree>`; then the working
//! LV is renamed to `sidus.o.<tree>`, the copy to `sidus.t.<tree>`, and only
//! then is the old one removed. At every instant one of them holds the tree and
//! its name says which: nothing is deleted before its replacement is in place.

use super::{mounts::RW, naming, naming::Role, report::Lv, Lvm};
use crate::{BackendError, Result, TreeName};

impl Lvm {
    /// Swaps the LV `incoming` in for `working` (mounted or not) and removes the
    /// old one. On failure before the second rename the tree is as it was.
    pub(super) fn swap_in(
        &self,
        tree: &TreeName,
        working: &Lv,
        incoming: &str,
        outgoing: &str,
    ) -> Result<()> {
        let dir = self.working_dir(tree);
        let was_mounted = working.dev.is_some()
            && super::mountinfo::is_mounted(
                &super::mountinfo::read()?,
                working.dev.unwrap_or_default(),
                &dir,
            );
        let restore_mount = || {
            if was_mounted {
                if let Err(e) = self.mount(&working.name, &dir, RW) {
                    log::warn!("could not remount tree '{tree}': {e}");
                }
            }
        };
        if let Err(e) = self.unmount_if_mounted(working, &dir) {
            self.remove_quietly(incoming);
            return Err(e);
        }
        crate::failpoint::hit("lvm:rollback-after-copy");
        let action = format!("swap in the rollback copy of '{tree}'");
        if let Err(e) = self.lvrename(&action, &working.name, outgoing) {
            self.remove_quietly(incoming);
            restore_mount();
            return Err(e);
        }
        crate::failpoint::hit("lvm:rollback-after-rename-out");
        if let Err(e) = self.lvrename(&action, incoming, &working.name) {
            if self.swap_was_finished(tree, incoming) {
                log::debug!("another sidus finished the swap of '{tree}' first: {e}");
                return self.after_swap(tree, working, outgoing);
            }
            if let Err(back) = self.lvrename(&action, outgoing, &working.name) {
                // Both names are off: `open` finishes the swap on the next run.
                log::warn!("could not rename {outgoing} back: {back}");
            } else {
                self.remove_quietly(incoming);
                restore_mount();
            }
            return Err(e);
        }
        self.after_swap(tree, working, outgoing)
    }

    /// Whether `incoming` is gone and `tree` has a working LV again: another
    /// writer finished the swap (see [`Lvm::recover_swap`]).
    fn swap_was_finished(&self, tree: &TreeName, incoming: &str) -> bool {
        self.list_lvs().is_ok_and(|lvs| {
            Self::find(&lvs, Role::Working, tree).is_some()
                && !lvs.iter().any(|l| l.name == incoming)
        })
    }

    /// The rollback has happened; what follows is tidying up.
    fn after_swap(&self, tree: &TreeName, working: &Lv, outgoing: &str) -> Result<()> {
        self.mount(&working.name, &self.working_dir(tree), RW)?;
        match self.lvremove(
            &format!("remove the replaced working volume of '{tree}'"),
            &[outgoing],
        ) {
            // Removed already by whoever finished the swap.
            Err(BackendError::NotFound(_)) => {}
            Err(e) => {
                log::warn!("{e} (it is removed by the next rollback or destroy of '{tree}')")
            }
            Ok(()) => {}
        }
        Ok(())
    }

    /// Whether `tree` has copies an interrupted rollback left.
    pub(super) fn has_leftovers(&self, lvs: &[Lv], tree: &TreeName) -> bool {
        lvs.iter().any(|l| {
            l.tree.as_ref() == Some(tree) && matches!(l.role, Role::Incoming | Role::Outgoing)
        })
    }

    /// Removes copies left by an interrupted rollback of `tree`, whose working
    /// LV exists: an incoming copy never swapped in, an outgoing one not removed.
    /// The caller holds the tree's lock.
    pub(super) fn clear_leftovers(&self, lvs: &[Lv], tree: &TreeName) -> Result<()> {
        let stale: Vec<&str> = lvs
            .iter()
            .filter(|l| l.tree.as_ref() == Some(tree))
            .filter(|l| matches!(l.role, Role::Incoming | Role::Outgoing))
            .map(|l| l.name.as_str())
            .collect();
        self.lvremove(
            &format!("remove leftovers of an interrupted rollback of '{tree}'"),
            &stale,
        )
    }

    /// Finishes the swap of `tree` if a crash cut it between the two renames,
    /// so the tree has its working LV again: the copy is renamed in when it
    /// exists, else the old LV is renamed back. Says what it did. The caller
    /// holds the tree's lock.
    pub(super) fn recover_swap(&self, lvs: &[Lv], tree: &TreeName) -> Result<Option<String>> {
        let cut = Self::find(lvs, Role::Working, tree).is_none()
            && Self::find(lvs, Role::Outgoing, tree).is_some();
        if !cut {
            return Ok(None);
        }
        let working = naming::working(&self.vg, tree);
        let outgoing = naming::outgoing(&self.vg, tree);
        let action = format!("finish the interrupted rollback of '{tree}'");
        if Self::find(lvs, Role::Incoming, tree).is_some() {
            let incoming = naming::incoming(&self.vg, tree);
            self.lvrename(&action, &incoming, &working)?;
            self.lvremove(&action, &[&outgoing])?;
            Ok(Some(format!(
                "finished an interrupted rollback of '{tree}'"
            )))
        } else {
            self.lvrename(&action, &outgoing, &working)?;
            Ok(Some(format!("undid an interrupted rollback of '{tree}'")))
        }
    }
}
