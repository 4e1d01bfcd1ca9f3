//! Where the store's LVs are mounted, with which options, and what else uses
//! them. Mounts are recognised by device numbers, so an LV renamed by a
//! rollback is still known for what it is.

use super::{mountinfo, naming::Role, report::Lv, Lvm};
use crate::{argv, BackendError, Result};
use std::path::{Path, PathBuf};

/// Options of writable mounts (trees, state). `noinit_itable`: mkfs left the
/// inode tables to be zeroed lazily, and on a thin LV unwritten blocks already
/// read as zeros, so the kernel's background zeroing would only fill the pool.
/// `discard`: deleted files give their blocks back to the pool.
pub(super) const RW: &str = "noinit_itable,discard";

/// Options of the state LV: its blocks are provisioned once at init and must
/// stay so (no `discard`), see `STATE_MIB`.
pub(super) const STATE: &str = "nodiscard";

/// Options of snapshot views. The LV is read-only, so the journal must not be
/// replayed (`noload`); lvm2 froze the file system for the snapshot, so there
/// is nothing to replay.
pub(super) const RO: &str = "ro,noload";

impl Lvm {
    /// The LV's device node (a udev link to its dm device).
    pub(super) fn dev_path(&self, lv: &str) -> PathBuf {
        Path::new("/dev").join(&self.vg).join(lv)
    }

    fn describe(lv: &Lv) -> String {
        match (&lv.role, &lv.tree, &lv.id) {
            (Role::Snapshot, Some(t), Some(id)) => format!("snapshot {t}@{id}"),
            (Role::Working, Some(t), _) => format!("tree '{t}'"),
            _ => format!("logical volume {}", lv.name),
        }
    }

    /// Mounts active LV `name` at `target`, creating the directory.
    pub(super) fn mount(&self, name: &str, target: &Path, options: &str) -> Result<()> {
        crate::durable::create_dir_all(target)
            .map_err(|e| BackendError::io("create", target, e))?;
        crate::mount::mount_fs(&self.dev_path(name), target, "ext4", options)
    }

    /// Mounts `lv` at `target` unless it already is, activating it first when
    /// needed (`-K`: snapshots are created with activation skipped).
    pub(super) fn ensure_mounted(&self, lv: &Lv, target: &Path, options: &str) -> Result<()> {
        let mounts = mountinfo::read()?;
        if let Some(dev) = lv.dev {
            if mountinfo::is_mounted(&mounts, dev, target) {
                return Ok(());
            }
        }
        if let Some(other) = mountinfo::at(&mounts, target) {
            return Err(BackendError::StoreUnavailable(format!(
                "{} has another file system mounted (device {}:{}), not {}; unmount it",
                target.display(),
                other.dev.0,
                other.dev.1,
                self.full(&lv.name)
            )));
        }
        if lv.dev.is_none() {
            let full = self.full(&lv.name);
            self.lvm(
                format!("activate {full}"),
                argv!["lvchange", "-q", "-ay", "-K", &full],
            )?;
        }
        self.mount(&lv.name, target, options)
    }

    /// Unmounts `lv` from `target` if it is mounted there.
    pub(super) fn unmount_if_mounted(&self, lv: &Lv, target: &Path) -> Result<()> {
        let Some(dev) = lv.dev else {
            return Ok(());
        };
        if !mountinfo::is_mounted(&mountinfo::read()?, dev, target) {
            return Ok(());
        }
        crate::mount::unmount(target, &Self::describe(lv))
    }

    /// Refuses when one of `lvs` is mounted anywhere but at its own directory
    /// (an NFS export's bind mount, an admin's mount): removing it would fail
    /// halfway, after sidus had unmounted its own views.
    pub(super) fn check_not_used_elsewhere(&self, lvs: &[(&Lv, PathBuf)]) -> Result<()> {
        let mounts = mountinfo::read()?;
        for (lv, own) in lvs {
            let Some(dev) = lv.dev else { continue };
            if let Some(m) = mounts.iter().find(|m| m.dev == dev && &m.target != own) {
                return Err(BackendError::InUse {
                    what: Self::describe(lv),
                    by: format!("it is mounted at {}", m.target.display()),
                });
            }
        }
        Ok(())
    }

    /// The device numbers of LV `name` while it is active, read from its device
    /// node without running lvm2.
    fn node_dev(&self, name: &str) -> Option<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(self.dev_path(name)).ok()?.rdev();
        Some((
            nix::sys::stat::major(rdev) as u32,
            nix::sys::stat::minor(rdev) as u32,
        ))
    }

    /// Flushes the file system of LV `name` when it is mounted at `target`.
    pub(super) fn sync_if_mounted(&self, name: &str, target: &Path) -> Result<()> {
        let Some(dev) = self.node_dev(name) else {
            return Ok(());
        };
        if !mountinfo::is_mounted(&mountinfo::read()?, dev, target) {
            return Ok(());
        }
        let dir = std::fs::File::open(target).map_err(|e| BackendError::io("open", target, e))?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
            .map_err(|e| BackendError::io("sync", target, e.into()))
    }

    /// Whether the state LV is active and mounted at the state directory: the
    /// common case, checked without running lvm2 at all.
    pub(super) fn state_is_mounted(&self) -> bool {
        let Some(dev) = self.node_dev(super::naming::STATE_LV) else {
            return false;
        };
        mountinfo::read()
            .map(|m| mountinfo::is_mounted(&m, dev, &self.state_dir_path()))
            .unwrap_or(false)
    }

    pub(super) fn state_dir_path(&self) -> PathBuf {
        self.mount_root.join("state")
    }

    /// After a reboot: activates and mounts the state LV and every working tree
    /// (a rollback a crash cut stays for the tree's next writer). A tree that cannot be mounted is
    /// reported and left for `sidus path` to retry; the store still opens.
    pub(super) fn mount_all(&self) -> Result<()> {
        let lvs = self.query()?;
        let state = lvs.iter().find(|l| l.role == Role::State).ok_or_else(|| {
            BackendError::StoreUnavailable(format!(
                "thin pool {} holds no sidus store ({} is missing; run `sidus init`)",
                self.full(&self.pool),
                self.full(super::naming::STATE_LV)
            ))
        })?;
        self.ensure_mounted(state, &self.state_dir_path(), STATE)?;
        for lv in lvs.iter().filter(|l| l.role == Role::Working) {
            let Some(tree) = &lv.tree else { continue };
            if let Err(e) = self.ensure_mounted(lv, &self.working_dir(tree), RW) {
                log::warn!("tree '{tree}' is not mounted: {e}");
            }
        }
        Ok(())
    }
}
