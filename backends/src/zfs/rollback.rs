//! Rollback without `zfs rollback`: the target is cloned, the clone swapped
//! in by renames and promoted, and the replaced working dataset kept under
//! `D/history/` with the snapshots taken after the target, so they stay
//! listed and usable. Also what finishes a swap a crash interrupted, and what
//! tidies up the history datasets left without snapshots.

use super::props::prop;
use super::Zfs;
use crate::{argv, Result, SnapshotId, TreeName};

impl Zfs {
    /// Replaces the working dataset of `tree` with a writable clone of `tree@id`.
    pub(super) fn swap_in_copy(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        self.clear_swap(tree)?;
        let working = self.require_tree(tree)?;
        let found = self.locate(tree, id)?;
        let swap = self.swap_ds(tree);
        let mut args = argv!["clone", "-o", prop("tree", tree.as_str())];
        if let Some(origin) = &working.origin {
            // A clone of another tree stays one after its rollback.
            args.extend(argv!["-o", prop("origin", origin)]);
        }
        args.extend(argv![&found.name, &swap]);
        self.zfs(format!("copy {tree}@{id} for rollback"), args)?;
        crate::failpoint::hit("zfs:rollback-after-clone");
        // Whether the replaced dataset keeps a snapshot once the clone is
        // promoted (those newer than the target, or all of them when the
        // target is elsewhere): read from .zfs/snapshot, so the usual case (a
        // safety snapshot was just taken) needs no `zfs list` afterwards.
        let keeps_snapshots = snapshot_names(&working.mountpoint).is_some_and(|names| {
            if found.dataset() == working.name {
                names
                    .iter()
                    .any(|n| n.parse::<SnapshotId>().is_ok_and(|n| &n > id))
            } else {
                !names.is_empty()
            }
        });
        let history = self.history_name(tree)?;
        if let Err(e) = self.zfs(
            format!("move the replaced working tree of '{tree}' aside"),
            argv!["rename", &working.name, &history],
        ) {
            let _ = self.runner.run(&argv!["zfs", "destroy", &swap]);
            return Err(e);
        }
        crate::failpoint::hit("zfs:rollback-after-rename-out");
        // From here a crash leaves no working dataset but a swap one, which
        // clear_swap renames into place.
        self.zfs(
            format!("swap in the rollback copy of '{tree}'"),
            argv!["rename", &swap, &working.name],
        )?;
        self.promote(&working.name);
        // A rollback to the newest snapshot (a failed run back to its pre)
        // moves no snapshot aside: the replaced dataset would stay empty.
        if !keeps_snapshots {
            self.collect_history(&history);
        }
        Ok(())
    }

    /// Finishes or undoes a rollback interrupted between its steps. The swap
    /// dataset is either a fresh clone not yet swapped in (the working tree is
    /// still there: drop the clone; it has no snapshots of its own) or the new
    /// working tree whose rename did not happen (no working tree: finish it).
    /// Returns whether there was one.
    pub(super) fn clear_swap(&self, tree: &TreeName) -> Result<bool> {
        let swap = self.swap_ds(tree);
        if !self.exists(&swap)? {
            return Ok(false);
        }
        let working = self.working_ds(tree);
        if self.exists(&working)? {
            // No -r: should the swap hold snapshots after all, this fails
            // rather than destroying them.
            self.zfs(
                format!("clean up an interrupted rollback of '{tree}'"),
                argv!["destroy", &swap],
            )?;
        } else {
            self.zfs(
                format!("finish an interrupted rollback of '{tree}'"),
                argv!["rename", &swap, &working],
            )?;
            self.promote(&working);
        }
        Ok(true)
    }

    /// Promotes a rollback's clone so the history dataset it came from can be
    /// destroyed once its snapshots are. Failure costs only that, so it is logged.
    pub(super) fn promote(&self, dataset: &str) {
        if let Err(e) = self.runner.run(&argv!["zfs", "promote", dataset]) {
            log::warn!("zfs promote {dataset} failed (the rollback itself succeeded): {e}");
        }
    }

    /// Destroys a history dataset left without snapshots, so rollbacks do not
    /// leave empty datasets behind. Anything still depending on it keeps it.
    pub(super) fn collect_history(&self, dataset: &str) {
        if !dataset.starts_with(&format!("{}/", self.history_ds())) {
            return;
        }
        let snaps = self.runner.run_string(&argv![
            "zfs", "list", "-H", "-t", "snapshot", "-d", "1", "-o", "name", dataset
        ]);
        if matches!(snaps, Ok(ref s) if s.trim().is_empty()) {
            if let Err(e) = self.runner.run(&argv!["zfs", "destroy", dataset]) {
                log::info!("keeping {dataset}: {e}");
            }
        }
    }

    /// A history dataset name for `tree` that is not taken yet.
    fn history_name(&self, tree: &TreeName) -> Result<String> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let base = format!("{}/{tree}.{stamp}", self.history_ds());
        let mut name = base.clone();
        let mut n = 1;
        while self.exists(&name)? {
            name = format!("{base}.{n}");
            n += 1;
        }
        Ok(name)
    }
}

/// The snapshot names under `.zfs/snapshot` of a mounted dataset (listing
/// them mounts none); `None` when they cannot be read.
fn snapshot_names(mountpoint: &std::path::Path) -> Option<Vec<String>> {
    let dir = std::fs::read_dir(mountpoint.join(".zfs").join("snapshot")).ok()?;
    Some(
        dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
    )
}
