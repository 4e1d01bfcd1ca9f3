//! btrfs's failures as typed errors, in one place: btrfs-progs' words
//! (6.2, Debian 12; samples in `backends/tests/fixtures/btrfs-*.stderr`) and
//! the kernel's errno for the calls sidus makes itself (the snapshot ioctl).
//! btrfs-progs exits 1 on any failure and prints `ERROR: <what>: <strerror>`.

use crate::runner::CommandError;
use crate::{BackendError, Object};
use std::path::Path;

/// Turns a failed `btrfs` command, run for `action`, into a typed error.
pub(super) fn classify(action: String, e: CommandError) -> BackendError {
    if e.spawn_error == Some(std::io::ErrorKind::NotFound) {
        return BackendError::StoreUnavailable(format!(
            "the btrfs command is not installed (btrfs-progs; {action})"
        ));
    }
    if e.status != Some(1) {
        return BackendError::command(action, e);
    }
    let has = |pattern: &str| e.stderr.lines().any(|l| l.contains(pattern));
    if has("No space left on device") {
        BackendError::NoSpace {
            detail: e.reason().to_string(),
            action,
        }
    } else if has("quotas not enabled") {
        BackendError::Unsupported {
            what: action,
            why: "btrfs reports it only with quotas enabled".into(),
        }
    } else if has("already exists") {
        BackendError::Exists(Object::Storage {
            detail: e.reason().to_string(),
            action,
        })
    } else if has("No such file or directory") {
        BackendError::NotFound(Object::Storage {
            detail: e.reason().to_string(),
            action,
        })
    } else {
        BackendError::command(action, e)
    }
}

/// Turns a failed system call on `path` into a typed error: a full file
/// system is [`BackendError::NoSpace`], the rest an I/O error naming the call.
pub(super) fn classify_io(action: String, path: &Path, e: std::io::Error) -> BackendError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        BackendError::NoSpace {
            action,
            detail: e.to_string(),
        }
    } else {
        BackendError::io(&action, path, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample: `backends/tests/fixtures/NAME.stderr`, its first line the exit status.
    fn class(name: &str) -> BackendError {
        let path = format!(
            "{}/tests/fixtures/{name}.stderr",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (status, stderr) = text.split_once('\n').unwrap();
        classify(
            format!("act on {name}"),
            CommandError {
                argv: vec!["btrfs".into()],
                status: Some(status.trim().parse().unwrap()),
                stderr: stderr.into(),
                spawn_error: None,
            },
        )
    }

    #[test]
    fn quotas_off_means_space_is_unsupported_not_an_error() {
        let e = class("btrfs-qgroup-show-no-quotas");
        assert!(matches!(e, BackendError::Unsupported { .. }), "{e:?}");
    }

    #[test]
    fn taken_missing_and_full_are_told_apart() {
        let e = class("btrfs-subvolume-create-exists");
        assert!(matches!(e, BackendError::Exists(_)), "{e:?}");
        let e = class("btrfs-subvolume-delete-missing");
        assert!(matches!(e, BackendError::NotFound(_)), "{e:?}");
        // Not captured: a test file system filled to ENOSPC for files still
        // had the metadata reserve for a subvolume. btrfs-progs 6.2 prints
        // strerror with `%m` (cmds/subvolume.c), so this is its wording.
        let e = classify(
            "create tree 'x'".into(),
            CommandError {
                argv: vec!["btrfs".into()],
                status: Some(1),
                stderr: "ERROR: cannot create subvolume: No space left on device\n".into(),
                spawn_error: None,
            },
        );
        assert!(matches!(e, BackendError::NoSpace { .. }), "{e:?}");
        assert_eq!(e.to_string().lines().count(), 1);
    }

    #[test]
    fn enospc_from_the_snapshot_call_is_no_space() {
        let e = classify_io(
            "snapshot tree 'lab'".into(),
            Path::new("/s"),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(e, BackendError::NoSpace { .. }), "{e:?}");
        let e = classify_io(
            "snapshot tree 'lab'".into(),
            Path::new("/s"),
            std::io::Error::from_raw_os_error(libc::EPERM),
        );
        assert!(matches!(e, BackendError::Io { .. }), "{e:?}");
    }
}
