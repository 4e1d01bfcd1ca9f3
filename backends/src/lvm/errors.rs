//! lvm2's failures as typed errors, in one place.
//!
//! Keyed by the wording of lvm2 2.03.16 (Debian 12; samples in
//! `backends/tests/fixtures/lv*.stderr`, captured by
//! `tests/vm/scenarios/capture-errors.sh`), where every failed command exits
//! 5 (`ECMD_FAILED`) and says why on its last line, after any warnings. The
//! same classifier reads `mkfs.ext4` (e2fsprogs 1.47), which sidus runs on new
//! thin LVs: its ENOSPC is a full pool too.

use crate::runner::CommandError;
use crate::{BackendError, Object};

/// Turns a failed lvm2 (or mkfs) command, run for `action`, into a typed error.
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
    if e.spawn_error == Some(std::io::ErrorKind::NotFound) {
        return BackendError::StoreUnavailable(format!(
            "{} is not installed ({action})",
            e.argv.first().map_or("lvm2", String::as_str)
        ));
    }
    let lines = || e.stderr.lines().map(str::trim).rev();
    // The last matching line: lvm2 warns first and errs last.
    let full_line = lines().find(|l| {
        let l = l.to_ascii_lowercase();
        FULL.iter().any(|f| l.contains(f))
    });
    if let Some(line) = full_line {
        return BackendError::NoSpace {
            action,
            detail: line.to_string(),
        };
    }
    if let Some(line) = lines().find(|l| l.starts_with("Volume group") && l.ends_with("not found"))
    {
        return BackendError::StoreUnavailable(format!("{action}: {line}"));
    }
    let storage = |line: &str| Object::Storage {
        action: action.clone(),
        detail: line.to_string(),
    };
    // `Logical Volume "x" already exists in volume group "vg"`
    if let Some(line) = lines().find(|l| l.contains("already exists in volume group")) {
        return BackendError::Exists(storage(line));
    }
    // `Failed to find logical volume "vg/x"`, `Snapshot origin LV x not found
    // in Volume group vg.`, `Pool x not found in Volume group vg.`, `Existing
    // logical volume "x" not found in volume group "vg"`.
    if let Some(line) = lines().find(|l| {
        l.starts_with("Failed to find logical volume")
            || l.contains("not found in Volume group")
            || l.contains("not found in volume group")
    }) {
        return BackendError::NotFound(storage(line));
    }
    // `Logical volume vg/x contains a filesystem in use.`
    if let Some(line) = lines().find(|l| l.contains("in use")) {
        return BackendError::Busy {
            what: action.clone(),
            detail: line.to_string(),
        };
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

    /// A captured sample: `backends/tests/fixtures/NAME.stderr`, its first
    /// line the exit status.
    fn sample(name: &str) -> CommandError {
        let path = format!(
            "{}/tests/fixtures/{name}.stderr",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (status, stderr) = text.split_once('\n').unwrap();
        failed_with(status.trim().parse().unwrap(), stderr)
    }

    fn failed_with(status: i32, stderr: &str) -> CommandError {
        CommandError {
            argv: vec!["lvcreate".into()],
            status: Some(status),
            stderr: stderr.into(),
            spawn_error: None,
        }
    }

    fn class(name: &str) -> BackendError {
        classify(format!("act on {name}"), sample(name))
    }

    #[test]
    fn full_pool_is_no_space_with_lvm2s_reason() {
        for name in ["lvcreate-snapshot-full", "lvcreate-thin-full"] {
            let e = class(name);
            assert!(matches!(e, BackendError::NoSpace { .. }), "{name}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("act on {name}: the pool is full: Cannot create new thin volume, free space in thin pool capvg/pool reached threshold.")
            );
        }
        let e = classify(
            "create tree 'x'".into(),
            failed_with(
                1,
                "mkfs.ext4: No space left on device while writing out and closing file system\n",
            ),
        );
        assert!(matches!(e, BackendError::NoSpace { .. }), "{e}");
    }

    #[test]
    fn missing_volume_group_is_store_unavailable() {
        let e = class("lvs-missing-vg");
        assert_eq!(
            e.to_string(),
            "store unavailable: act on lvs-missing-vg: Volume group \"nosuchvg\" not found"
        );
    }

    #[test]
    fn taken_names_exist() {
        for name in [
            "lvcreate-exists",
            "lvcreate-snapshot-exists",
            "lvrename-exists",
        ] {
            let e = class(name);
            assert!(matches!(e, BackendError::Exists(_)), "{name}: {e:?}");
            assert_eq!(e.to_string().lines().count(), 1);
        }
    }

    #[test]
    fn missing_lvs_origins_and_pools_are_not_found() {
        for name in [
            "lvs-missing-lv",
            "lvremove-missing",
            "lvchange-missing",
            "lvrename-missing",
            "lvcreate-snapshot-missing-origin",
            "lvcreate-missing-pool",
        ] {
            let e = class(name);
            assert!(matches!(e, BackendError::NotFound(_)), "{name}: {e:?}");
        }
    }

    #[test]
    fn a_mounted_lv_is_busy() {
        let e = class("lvremove-mounted");
        assert!(matches!(e, BackendError::Busy { .. }), "{e:?}");
    }

    #[test]
    fn other_failures_keep_the_command_and_its_last_line() {
        let e = classify(
            "clone".into(),
            failed_with(
                5,
                "  WARNING: something odd.\n  Internal error: it broke.\n",
            ),
        );
        let BackendError::Command { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(source.reason(), "Internal error: it broke.");
        assert_eq!(e.to_string().lines().count(), 1);
    }
}
