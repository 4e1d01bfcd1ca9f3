//! Mounting and unmounting, which every backend does: `mount(2)` and
//! `umount2(2)` for file systems on a device (no process to start on the hot
//! paths), util-linux `mount` for bind mounts and helpers (`mount.zfs`), and
//! their failures as typed errors in one place.

use crate::runner::Runner;
use crate::{BackendError, Result};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use std::ffi::OsString;
use std::path::Path;

/// Runs a `mount ...` argv; `action` names what it is for.
pub(crate) fn run(runner: &Runner, argv: Vec<OsString>, action: &str) -> Result<()> {
    runner
        .run(&argv)
        .map(drop)
        .map_err(|e| BackendError::command(action, e))
}

/// Mounts the file system of type `fstype` on `source` at `target` with
/// `options` as `mount -o` takes them (`ro` is a flag, the rest goes to the
/// file system).
pub(crate) fn mount_fs(source: &Path, target: &Path, fstype: &str, options: &str) -> Result<()> {
    let (mut flags, mut data) = (MsFlags::empty(), Vec::new());
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            o => data.push(o),
        }
    }
    let data = data.join(",");
    log::debug!(
        "mount -t {fstype} -o {options} {} {}",
        source.display(),
        target.display()
    );
    nix::mount::mount(
        Some(source),
        target,
        Some(fstype),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| {
        let action = format!("mount {} at", source.display());
        BackendError::io(&action, target, e.into())
    })
}

/// Unmounts `target`, where `what` (e.g. "tree 'lab'") is mounted;
/// [`BackendError::Busy`] while a process or the kernel (nfsd) uses it.
pub(crate) fn unmount(target: &Path, what: &str) -> Result<()> {
    log::debug!("umount {}", target.display());
    nix::mount::umount2(target, MntFlags::empty()).map_err(|e| classify_errno(target, what, e))
}

/// `umount2(2)`'s errno as a typed error.
fn classify_errno(target: &Path, what: &str, e: Errno) -> BackendError {
    match e {
        Errno::EBUSY => BackendError::Busy {
            what: what.to_string(),
            detail: format!(
                "in use by a process or the kernel (see `fuser -vm {}`)",
                target.display()
            ),
        },
        e => BackendError::io(&format!("unmount {what} from"), target, e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_unmount_is_busy_and_names_the_object() {
        let e = classify_errno(Path::new("/srv/x"), "tree 'lab'", Errno::EBUSY);
        assert!(matches!(e, BackendError::Busy { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "tree 'lab' is busy: in use by a process or the kernel (see `fuser -vm /srv/x`)"
        );
        let e = classify_errno(Path::new("/srv/x"), "tree 'lab'", Errno::EINVAL);
        assert!(matches!(e, BackendError::Io { .. }), "{e:?}");
    }

    #[test]
    fn unmounting_what_is_not_mounted_fails_without_busy() {
        let dir = tempfile::tempdir().unwrap();
        let e = unmount(dir.path(), "nothing").unwrap_err();
        assert!(!matches!(e, BackendError::Busy { .. }), "{e:?}");
    }
}
