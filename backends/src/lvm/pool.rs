//! The thin pool itself, and new file-system LVs in it.

use super::{naming, report, Lvm};
use crate::{argv, BackendError, PoolUsage, Result};
use std::ffi::OsString;

/// Data and metadata use, in percent, from the `dmsetup status` line of a
/// thin-pool target (linux Documentation/admin-guide/device-mapper/thin-provisioning.rst):
/// `<start> <length> thin-pool <transaction id> <used>/<total metadata blocks>
/// <used>/<total data blocks> ...`. `None` for anything else (e.g. `Fail`).
pub(super) fn thin_pool_status(line: &str) -> Option<(f64, f64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(2) != Some(&"thin-pool") {
        return None;
    }
    let ratio = |f: &str| -> Option<f64> {
        let (used, total) = f.split_once('/')?;
        let (used, total): (u64, u64) = (used.parse().ok()?, total.parse().ok()?);
        (total > 0).then(|| used as f64 * 100.0 / total as f64)
    };
    let meta = ratio(fields.get(4)?)?;
    let data = ratio(fields.get(5)?)?;
    Some((data, meta))
}

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
            .map_err(
                |e| match super::errors::classify(format!("read thin pool {full}"), e) {
                    BackendError::NotFound(_) => BackendError::StoreUnavailable(format!(
                        "no thin pool '{}' in volume group '{}'",
                        self.pool, self.vg
                    )),
                    e => e,
                },
            )?;
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

    /// The pool's use from the kernel (the status of its `-tpool` layer, as
    /// `dmsetup status` shows it, read by [`super::dm`]), which costs a
    /// fraction of an `lvs`; `None` when the pool is not active with that
    /// layer, for the caller to ask lvm2.
    pub(super) fn pool_usage_from_dm(&self) -> Option<PoolUsage> {
        let dm = format!("{}-tpool", naming::dm_name(&self.vg, &self.pool));
        let line = super::dm::status(&dm)
            .map_err(|e| log::debug!("no thin-pool status from dm: {e}"))
            .ok()?;
        let (data, meta) = thin_pool_status(&line)?;
        Some(PoolUsage {
            name: self.full(&self.pool),
            data_percent: data,
            metadata_percent: Some(meta),
        })
    }

    /// Writes `mib` MiB of zeros to LV `name`, provisioning its blocks.
    /// O_DIRECT: through the page cache the same writes took 6x as long (VM).
    fn write_zeros(&self, name: &str, mib: usize) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        const MIB: usize = 1 << 20;
        let dev = self.dev_path(name);
        let io = |e| BackendError::io("provision", &dev, e);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&dev)
            .map_err(io)?;
        // O_DIRECT wants a buffer aligned to the logical block size; a page
        // covers every device.
        let buf = vec![0u8; MIB + 4096];
        let start = buf.as_ptr().align_offset(4096);
        let zeros = &buf[start..start + MIB];
        for _ in 0..mib {
            f.write_all(zeros).map_err(io)?;
        }
        f.sync_all().map_err(io)
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
    /// failure nothing is left. With `provision_mib` (the size in MiB), every
    /// block is written first, so the file system never needs a new block from
    /// the pool: it keeps working when the pool is full.
    pub(super) fn create_fs_lv(
        &self,
        action: &str,
        name: &str,
        size: &str,
        tags: &[OsString],
        provision_mib: Option<usize>,
    ) -> Result<()> {
        let mut args = argv!["-V", size, "-T", self.full(&self.pool)];
        args.extend(tags.iter().cloned());
        self.lvcreate(action, name, args).map_err(|f| {
            f.into_error(
                BackendError::Exists(crate::Object::Storage {
                    action: action.to_string(),
                    detail: format!("logical volume {} already exists", self.full(name)),
                }),
                BackendError::StoreUnavailable(format!(
                    "no thin pool '{}' in volume group '{}'",
                    self.pool, self.vg
                )),
            )
        })?;
        if let Some(mib) = provision_mib {
            if let Err(e) = self.write_zeros(name, mib) {
                self.remove_quietly(name);
                return Err(e);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_thin_pool_status_gives_percentages() {
        // `dmsetup status sidusvg-pool-tpool` in the test VM (kernel 6.1).
        let line = "0 3072000 thin-pool 7 119/1024 114/24000 - rw discard_passdown queue_if_no_space - 256 ";
        let (data, meta) = thin_pool_status(line).unwrap();
        assert!((data - 0.475).abs() < 1e-9, "{data}");
        assert!((meta - 11.621_093_75).abs() < 1e-9, "{meta}");
    }

    #[test]
    fn other_targets_and_failed_pools_are_not_read() {
        assert_eq!(thin_pool_status("0 3072000 thin-pool Fail"), None);
        assert_eq!(thin_pool_status("0 3072000 linear"), None);
        assert_eq!(thin_pool_status("0 1 thin-pool 0 1/0 1/10 -"), None);
        assert_eq!(thin_pool_status(""), None);
    }
}
