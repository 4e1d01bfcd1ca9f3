//! lvm2's failures as typed errors, in one place.

use crate::runner::CommandError;
use crate::BackendError;

/// lvm2 2.03 wording: "Volume group "x" not found", "Failed to find logical
/// volume", "Insufficient free space", "Cannot create new thin volume, free
/// space in thin pool ... reached threshold", and the kernel's ENOSPC.
pub(super) fn classify(action: String, e: CommandError) -> BackendError {
    const FULL: [&str; 7] = [
        "insufficient free space",
        "free space in thin pool",
        "reached threshold",
        "out of data space",
        "out of metadata space",
        "no space left",
        "insufficient suitable allocatable extents",
    ];
    // The last matching line: lvm2 warns first and errs last.
    let full_line = e.stderr.lines().map(str::trim).rev().find(|l| {
        let l = l.to_ascii_lowercase();
        FULL.iter().any(|f| l.contains(f))
    });
    if let Some(line) = full_line {
        return BackendError::PoolFull {
            action,
            detail: line.to_string(),
        };
    }
    let missing_vg = e
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Volume group") && l.ends_with("not found"));
    if let Some(line) = missing_vg {
        return BackendError::StoreUnavailable(format!("{action}: {line}"));
    }
    BackendError::command(action, e)
}

/// Why `lvcreate` failed, for the caller to turn into its own error.
pub(super) enum CreateFailure {
    /// The new LV's name is taken.
    Exists,
    /// The origin (or pool) to create from does not exist.
    NoOrigin,
    /// Anything else, already described.
    Other(BackendError),
}

impl CreateFailure {
    pub(super) fn into_error(self, exists: BackendError, no_origin: BackendError) -> BackendError {
        match self {
            CreateFailure::Exists => exists,
            CreateFailure::NoOrigin => no_origin,
            CreateFailure::Other(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> CommandError {
        CommandError {
            argv: vec!["lvcreate".into()],
            status: Some(5),
            stderr: stderr.into(),
        }
    }

    // Messages as lvm2 2.03.16 printed them in the test VM.
    const OVERPROVISIONED: &str = "  WARNING: Sum of all thin volume sizes (64.00 GiB) exceeds the size of thin pool sidusvg/pool and the size of whole volume group (<2.00 GiB).\n";

    #[test]
    fn full_pool_is_pool_full_with_lvm2s_reason() {
        let e = classify(
            "snapshot tree 't1'".into(),
            failed(&format!(
                "{OVERPROVISIONED}  WARNING: Thin pool sidusvg/pool is out of data space.\n  Cannot create new thin volume, free space in thin pool sidusvg/pool reached threshold.\n"
            )),
        );
        assert_eq!(
            e.to_string(),
            "snapshot tree 't1': the pool is full: Cannot create new thin volume, free space in thin pool sidusvg/pool reached threshold."
        );
        assert!(matches!(e, BackendError::PoolFull { .. }));
        let e = classify(
            "create tree 'x'".into(),
            failed(
                "mkfs.ext4: No space left on device while writing out and closing file system\n",
            ),
        );
        assert!(matches!(e, BackendError::PoolFull { .. }), "{e}");
    }

    #[test]
    fn missing_volume_group_is_store_unavailable() {
        let e = classify(
            "list logical volumes".into(),
            failed(
                "  Volume group \"nosuchvg\" not found\n  Cannot process volume group nosuchvg\n",
            ),
        );
        assert_eq!(
            e.to_string(),
            "store unavailable: list logical volumes: Volume group \"nosuchvg\" not found"
        );
    }

    #[test]
    fn other_failures_keep_the_command_and_its_last_line() {
        let e = classify(
            "clone".into(),
            failed(&format!("{OVERPROVISIONED}  Logical Volume \"sidus.t.c1\" already exists in volume group \"sidusvg\"\n")),
        );
        let BackendError::Command { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            source.reason(),
            "Logical Volume \"sidus.t.c1\" already exists in volume group \"sidusvg\""
        );
        assert_eq!(e.to_string().lines().count(), 1);
    }
}
