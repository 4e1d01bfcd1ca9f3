//! A store on a loop image that sidus makes and mounts itself, or on a
//! btrfs the admin mounted.

use super::Btrfs;
use crate::{argv, BackendError, Result};
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

impl Btrfs {
    /// Creates a sparse loop image of `size` (as `truncate -s` takes it) with a
    /// fresh btrfs in it. Refuses to overwrite an existing file.
    pub fn make_loop_image(&self, size: &str) -> Result<()> {
        let file = self
            .loop_file
            .as_ref()
            .ok_or_else(|| BackendError::StoreUnavailable("no loop file configured".into()))?;
        if file.exists() {
            return Err(BackendError::StoreUnavailable(format!(
                "{} already exists; remove it or choose another --loop file",
                file.display()
            )));
        }
        if let Some(dir) = file.parent() {
            crate::durable::create_dir_all(dir)
                .map_err(|e| BackendError::io("create directory", dir, e))?;
        }
        // 0600: the image holds every tree, /etc/shadow and host keys included.
        let made = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .and_then(|f| f.set_permissions(fs::Permissions::from_mode(0o600)));
        made.map_err(|e| BackendError::io("create", file, e))?;
        let result = self
            .runner
            .run(&argv!["truncate", "-s", size, file])
            .and_then(|_| self.runner.run(&argv!["mkfs.btrfs", "-q", file]));
        if let Err(e) = result {
            let _ = fs::remove_file(file);
            return Err(BackendError::command(
                format!("create loop image {}", file.display()),
                e,
            ));
        }
        Ok(())
    }

    /// Makes the loop image when one is configured and missing; returns
    /// whether it did, so a failed init can remove it again.
    pub(super) fn make_missing_image(&self, size: Option<&str>) -> Result<bool> {
        match &self.loop_file {
            Some(file) if !file.exists() => {
                self.make_loop_image(size.unwrap_or(DEFAULT_IMAGE_SIZE))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Checks the root is on btrfs, mounting the loop image there if needed.
    pub(super) fn mount_store(&self) -> Result<()> {
        if Self::is_btrfs(&self.root) {
            return Ok(());
        }
        let Some(file) = &self.loop_file else {
            return Err(BackendError::StoreUnavailable(format!(
                "{} is not on a btrfs file system (is it mounted?)",
                self.root.display()
            )));
        };
        if !file.exists() {
            return Err(BackendError::StoreUnavailable(format!(
                "loop image {} is missing (run `sidus init`)",
                file.display()
            )));
        }
        crate::durable::create_dir_all(&self.root)
            .map_err(|e| BackendError::io("create", &self.root, e))?;
        crate::mount::run(
            &self.runner,
            argv!["mount", "-o", "loop", file, &self.root],
            &format!("mount store image {}", file.display()),
        )?;
        if Self::is_btrfs(&self.root) {
            Ok(())
        } else {
            Err(BackendError::StoreUnavailable(format!(
                "{} does not hold a btrfs file system",
                file.display()
            )))
        }
    }
}

/// Size of a loop image when `sidus init` is not told one.
const DEFAULT_IMAGE_SIZE: &str = "20G";
