//! util-linux `mount` and `umount`, which every backend runs, with their
//! failures as typed errors in one place.

use crate::runner::{CommandError, Runner};
use crate::{BackendError, Object, Result};
use std::ffi::OsString;
use std::path::Path;

/// Runs a `mount ...` argv; `action` names what it is for.
pub(crate) fn run(runner: &Runner, argv: Vec<OsString>, action: &str) -> Result<()> {
    runner
        .run(&argv)
        .map(drop)
        .map_err(|e| classify(action, None, e))
}

/// Unmounts `target`, where `what` (e.g. "tree 'lab'") is mounted.
pub(crate) fn umount(runner: &Runner, target: &Path, what: &str) -> Result<()> {
    runner
        .run(&crate::argv!["umount", target])
        .map(drop)
        .map_err(|e| classify(&format!("unmount {what}"), Some((what, target)), e))
}

/// util-linux 2.38 (libmount): exit 32 is "mount failure", with
/// `umount: /x: target is busy.` when a process or the kernel (nfsd) still
/// uses the mount, and `umount: /x: not mounted.` when nothing is there.
fn classify(action: &str, umounted: Option<(&str, &Path)>, e: CommandError) -> BackendError {
    if e.status == Some(32) {
        if let (Some((what, target)), true) = (umounted, e.stderr.contains("target is busy")) {
            return BackendError::Busy {
                what: what.to_string(),
                detail: format!(
                    "in use by a process or the kernel (see `fuser -vm {}`)",
                    target.display()
                ),
            };
        }
        if e.stderr.contains("not mounted") {
            return BackendError::NotFound(Object::Storage {
                action: action.to_string(),
                detail: e.reason().to_string(),
            });
        }
    }
    BackendError::command(action, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: i32, stderr: &str) -> CommandError {
        CommandError {
            argv: vec!["umount".into(), "/srv/x".into()],
            status: Some(status),
            stderr: stderr.into(),
            spawn_error: None,
        }
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn busy_unmount_is_busy_and_names_the_object() {
        let e = classify(
            "unmount tree 'lab'",
            Some(("tree 'lab'", Path::new("/srv/x"))),
            failed(32, &fixture("umount-busy.stderr")),
        );
        assert!(matches!(e, BackendError::Busy { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "tree 'lab' is busy: in use by a process or the kernel (see `fuser -vm /srv/x`)"
        );
    }

    #[test]
    fn other_unmount_failures_keep_the_command() {
        let e = classify(
            "unmount x",
            None,
            failed(32, "umount: /srv/x: not mounted.\n"),
        );
        assert!(matches!(e, BackendError::NotFound(_)), "{e:?}");
        let e = classify(
            "unmount x",
            None,
            failed(1, "umount: only root can do that\n"),
        );
        assert!(matches!(e, BackendError::Command { .. }), "{e:?}");
    }
}
