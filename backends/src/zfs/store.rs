//! Creating and opening a ZFS store: the parent dataset with its `trees`,
//! `history` and `swap` children, mounted where the config says.

use super::errors::classify;
use super::mounts::zfs_mounts;
use super::props::{fields, unexpected};
use super::Zfs;
use crate::{argv, BackendError, Result};
use std::ffi::OsString;
use std::path::Path;

/// ZFS's default `acltype=off` makes `cp -a` of a file with a POSIX ACL fail
/// (and with it create --from-dir of a Debian tree).
const POSIX_ACLS: &str = "acltype=posixacl";
/// Xattrs (and so ACLs) in the inode rather than in hidden directories.
const XATTR_SA: &str = "xattr=sa";

impl Zfs {
    /// Creates what is missing of the store, then opens it.
    /// Creates the store's datasets (and its state directory) where missing.
    pub(super) fn create_store(&self) -> Result<()> {
        if !self.exists(&self.dataset)? {
            let mut mp = OsString::from("mountpoint=");
            mp.push(&self.mountpoint);
            self.zfs(
                format!("create the store dataset {}", self.dataset),
                argv![
                    "create",
                    "-p",
                    "-o",
                    mp,
                    "-o",
                    POSIX_ACLS,
                    "-o",
                    XATTR_SA,
                    &self.dataset
                ],
            )?;
        }
        self.open_store()?;
        for child in [
            self.trees_ds(),
            self.history_ds(),
            format!("{}/swap", self.dataset),
        ] {
            if !self.exists(&child)? {
                // Trees keep POSIX ACLs (systemd gives /var/log/journal
                // some) even below a dataset the admin made without them.
                self.zfs(
                    format!("create {child}"),
                    argv!["create", "-o", POSIX_ACLS, "-o", XATTR_SA, &child],
                )?;
            }
        }
        let state = self.mountpoint.join(".sidus");
        crate::durable::create_dir_all(&state).map_err(|e| BackendError::io("create", &state, e))
    }

    /// Checks the store dataset is mounted where the config says, mounting it
    /// and its children after an import without automount.
    pub(super) fn open_store(&self) -> Result<()> {
        if zfs_mounts().get(&self.dataset) == Some(&self.mountpoint) {
            return Ok(());
        }
        let out = match self.runner.run_string(&argv![
            "zfs",
            "list",
            "-H",
            "-p",
            "-o",
            "mountpoint,mounted",
            &self.dataset
        ]) {
            Ok(out) => out,
            Err(e) => {
                return Err(match classify(format!("open store {}", self.dataset), e) {
                    BackendError::NotFound(_) => BackendError::StoreUnavailable(format!(
                    "ZFS dataset {} does not exist (run `sidus init --backend zfs --dataset {}`)",
                    self.dataset, self.dataset
                )),
                    BackendError::StoreUnavailable(m) => BackendError::StoreUnavailable(m),
                    other => BackendError::StoreUnavailable(other.to_string()),
                })
            }
        };
        let f = fields(out.trim_end(), 2).ok_or_else(|| unexpected(&out))?;
        if Path::new(f[0]) != self.mountpoint {
            return Err(BackendError::StoreUnavailable(format!(
                "ZFS dataset {} is mounted at {}, but the config says {}",
                self.dataset,
                f[0],
                self.mountpoint.display()
            )));
        }
        if f[1] != "yes" {
            // After an import without automount: mount the store and every
            // dataset below it that should be.
            let out = self.zfs(
                format!("list datasets of {}", self.dataset),
                argv![
                    "list",
                    "-H",
                    "-o",
                    "name,canmount,mounted",
                    "-t",
                    "filesystem",
                    "-r",
                    &self.dataset
                ],
            )?;
            for line in out.lines() {
                if let Some([name, "on", "no"]) = fields(line, 3).as_deref() {
                    self.zfs(format!("mount {name}"), argv!["mount", *name])?;
                }
            }
        }
        Ok(())
    }
}
