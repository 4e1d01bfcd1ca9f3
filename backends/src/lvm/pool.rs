//! The thin pool itself, and new file-system LVs in it.

use super::{report, Lvm};
use crate::{argv, BackendError, Result};
use std::ffi::OsString;

impl Lvm {
    /// The pool's own `lvs` row (segment type and use).
    pub(super) fn pool_row(&self) -> Result<report::Row> {
        let full = self.full(&self.pool);
        let out = self
            .runner
            .run(&argv![
                "lvs",
                "--reportformat",
                "json",
                "-o",
                report::POOL_FIELDS,
                &full
            ])
            .map_err(|e| {
                if e.stderr.contains("Failed to find logical volume") {
                    BackendError::StoreUnavailable(format!(
                        "no thin pool '{}' in volume group '{}'",
                        self.pool, self.vg
                    ))
                } else {
                    self.classify(format!("read thin pool {full}"), e)
                }
            })?;
        let mut rows = report::parse(&out).map_err(|detail| BackendError::UnexpectedOutput {
            tool: "lvs".into(),
            detail,
        })?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(BackendError::UnexpectedOutput {
                tool: "lvs".into(),
                detail: format!("{n} rows for {full}, expected 1"),
            }),
        }
    }

    /// Checks the configured pool exists and is a thin pool.
    pub(super) fn check_pool(&self) -> Result<()> {
        let row = self.pool_row()?;
        if row.segtype == "thin-pool" {
            Ok(())
        } else {
            Err(BackendError::StoreUnavailable(format!(
                "{} is a '{}' volume, not a thin pool",
                self.full(&self.pool),
                row.segtype
            )))
        }
    }

    /// Creates thin LV `name` of virtual `size` with an empty ext4 on it; on
    /// failure nothing is left.
    pub(super) fn create_fs_lv(
        &self,
        action: &str,
        name: &str,
        size: &str,
        tags: &[OsString],
    ) -> Result<()> {
        let mut args = argv!["-V", size, "-T", self.full(&self.pool)];
        args.extend(tags.iter().cloned());
        self.lvcreate(action, name, args)?;
        // Lazy init without discard: a fresh thin LV reads as zeros already, so
        // zeroing inode tables and journal would only fill the pool.
        let made = self.lvm(
            action,
            argv![
                "mkfs.ext4",
                "-q",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                self.dev_path(name)
            ],
        );
        if let Err(e) = made {
            self.remove_quietly(name);
            return Err(e);
        }
        Ok(())
    }
}
