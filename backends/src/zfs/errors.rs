//! ZFS's failures as typed errors, in one place.
//!
//! Keyed by the exit status and the wording of OpenZFS 2.1 (Debian 12's
//! zfsutils-linux 2.1.11; samples in `backends/tests/fixtures/zfs-*.stderr`,
//! captured by `tests/vm/scenarios/capture-errors.sh`). `zfs` exits 1 on a
//! failed operation and 2 on a usage error, except that `zfs snapshot` of a
//! missing dataset exits 2 with the usage after its reason; the reason is the
//! first `cannot ...` line (`destroy` lists dependents after it).

use super::props::decode;
use super::Zfs;
use crate::runner::CommandError;
use crate::{argv, BackendError, Object};

/// Turns a failed `zfs` command, run for `action`, into a typed error.
pub(super) fn classify(action: String, e: CommandError) -> BackendError {
    if e.spawn_error == Some(std::io::ErrorKind::NotFound) {
        return BackendError::StoreUnavailable(format!(
            "the zfs command is not installed ({action})"
        ));
    }
    if !matches!(e.status, Some(1 | 2)) {
        return BackendError::command(action, e);
    }
    let has = |pattern: &str| e.stderr.lines().any(|l| l.contains(pattern));
    let storage = |e: &CommandError| Object::Storage {
        action: action.clone(),
        detail: first_reason(e),
    };
    if has("out of space") || has("No space left") {
        BackendError::NoSpace {
            detail: e.reason().to_string(),
            action,
        }
    } else if has("has dependent clones") {
        BackendError::InUse {
            what: action,
            by: "a ZFS clone depends on it (a clone of another tree, or the snapshots \
                 kept from before a rollback); delete those first"
                .into(),
        }
    } else if has("cannot unmount") {
        // `cannot unmount '/m/trees/lab': pool or dataset is busy`: a
        // process in the mount; destroy and rename unmount first.
        BackendError::Busy {
            what: action,
            detail: format!("a process uses its mount: {}", e.reason()),
        }
    } else if has("dataset is busy") {
        // EBUSY on destroying a snapshot: a hold (`zfs holds`) or a mount of
        // its own (an NFS export's).
        BackendError::InUse {
            what: action,
            by: format!("it is held or mounted: {}", e.reason()),
        }
    } else if has("does not exist")
        || has("no such tag")
        || has("could not find any snapshots to destroy")
    {
        BackendError::NotFound(storage(&e))
    } else if has("already exists") {
        // "dataset already exists", and `zfs hold`'s "tag already exists".
        BackendError::Exists(storage(&e))
    } else if has("Not an earlier snapshot from the same fs")
        || has("Cannot diff an unmounted snapshot")
        || has("not a descendant")
    {
        BackendError::Unsupported {
            what: action,
            why: format!("zfs diff cannot compare these: {}", e.reason()),
        }
    } else {
        BackendError::command(action, e)
    }
}

/// Turns the errno of a libzfs_core call on `name`, made for `action`, into a
/// typed error: the kernel's own codes (OpenZFS 2.1 `zfs_ioc_*`), where the
/// CLI would have printed their strerror.
pub(super) fn classify_errno(action: String, name: &str, errno: i32) -> BackendError {
    let err = std::io::Error::from_raw_os_error(errno);
    let storage = || Object::Storage {
        action: action.clone(),
        detail: format!("{name}: {err}"),
    };
    match errno {
        libc::ENOENT => BackendError::NotFound(storage()),
        libc::EEXIST => BackendError::Exists(storage()),
        libc::ENOSPC | libc::EDQUOT => BackendError::NoSpace {
            detail: format!("{name}: {err}"),
            action,
        },
        libc::EBUSY => BackendError::Busy {
            what: action,
            detail: format!("{name}: {err}"),
        },
        _ => BackendError::io(&action, name, err),
    }
}

/// The tool's reason: the first line that says "cannot ..." (`zfs destroy`
/// lists dependents after it), else the last line.
fn first_reason(e: &CommandError) -> String {
    e.stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cannot ") || l.starts_with("Unable "))
        .unwrap_or_else(|| e.reason())
        .to_string()
}

impl Zfs {
    /// Names the sidus snapshots that keep `snapshot` alive: those held by the
    /// datasets cloned from it. Falls back to `err` when there are none to name.
    pub(super) fn explain_dependents(
        &self,
        snapshot: &str,
        action: String,
        err: BackendError,
    ) -> BackendError {
        let Ok(clones) = self.runner.run_string(&argv![
            "zfs", "get", "-H", "-p", "-o", "value", "clones", snapshot
        ]) else {
            return err;
        };
        let clones: Vec<&str> = clones
            .trim()
            .split(',')
            .filter(|c| !c.is_empty() && *c != "-")
            .collect();
        let Ok(rows) = self.snapshot_rows(&["tree"]) else {
            return err;
        };
        let mut names = Vec::new();
        for row in &rows {
            if let (Some((ds, id)), Some(tree)) = (row[0].split_once('@'), decode(&row[1])) {
                if clones.contains(&ds) {
                    names.push(format!("{tree}@{id}"));
                }
            }
        }
        for ds in &clones {
            if ds.starts_with(&format!("{}/", self.trees_ds())) {
                names.push(format!("tree {}", ds.rsplit('/').next().unwrap_or(ds)));
            }
        }
        if names.is_empty() {
            return err;
        }
        BackendError::InUse {
            what: action,
            by: format!(
                "on ZFS these are stored as a clone of it: {}; delete them first",
                names.join(", ")
            ),
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
        CommandError {
            argv: vec!["zfs".into()],
            status: Some(status.trim().parse().unwrap()),
            stderr: stderr.into(),
            spawn_error: None,
        }
    }

    fn class(name: &str) -> BackendError {
        classify(format!("act on {name}"), sample(name))
    }

    #[test]
    fn missing_datasets_snapshots_and_tags_are_not_found() {
        for name in [
            "zfs-list-missing",
            "zfs-snapshot-missing",
            "zfs-destroy-missing",
            "zfs-clone-missing-origin",
            "zfs-release-missing",
            "zfs-hold-missing-snapshot",
        ] {
            let e = class(name);
            assert!(matches!(e, BackendError::NotFound(_)), "{name}: {e:?}");
            assert_eq!(e.to_string().lines().count(), 1, "{name}: {e}");
        }
    }

    #[test]
    fn taken_names_and_tags_exist() {
        for name in [
            "zfs-snapshot-exists",
            "zfs-clone-exists",
            "zfs-rename-exists",
            "zfs-hold-exists",
        ] {
            let e = class(name);
            assert!(matches!(e, BackendError::Exists(_)), "{name}: {e:?}");
        }
        let e = class("zfs-clone-exists");
        assert!(
            e.to_string()
                .starts_with("act on zfs-clone-exists: cannot create"),
            "{e}"
        );
    }

    #[test]
    fn dependents_and_holds_are_in_use() {
        for name in [
            "zfs-destroy-dependent-clones",
            "zfs-destroy-held",
            "zfs-destroy-r-held",
        ] {
            let e = class(name);
            assert!(matches!(e, BackendError::InUse { .. }), "{name}: {e:?}");
        }
    }

    #[test]
    fn a_process_in_a_mount_is_busy() {
        for name in ["zfs-destroy-busy", "zfs-rename-busy"] {
            let e = class(name);
            assert!(matches!(e, BackendError::Busy { .. }), "{name}: {e:?}");
        }
    }

    #[test]
    fn a_full_pool_is_no_space() {
        for name in ["zfs-snapshot-full", "zfs-create-full"] {
            let e = class(name);
            assert!(matches!(e, BackendError::NoSpace { .. }), "{name}: {e:?}");
        }
    }

    #[test]
    fn pairs_zfs_diff_cannot_compare_are_unsupported() {
        for name in [
            "zfs-diff-not-earlier",
            "zfs-diff-other-fs",
            "zfs-diff-unmounted",
        ] {
            let e = class(name);
            assert!(
                matches!(e, BackendError::Unsupported { .. }),
                "{name}: {e:?}"
            );
        }
    }

    #[test]
    fn libzfs_core_errnos_are_typed_like_the_cli_words() {
        let c = |errno| classify_errno("snapshot tree 'lab'".into(), "tank/t@x", errno);
        assert!(matches!(c(libc::ENOENT), BackendError::NotFound(_)));
        assert!(matches!(c(libc::EEXIST), BackendError::Exists(_)));
        assert!(matches!(c(libc::ENOSPC), BackendError::NoSpace { .. }));
        assert!(matches!(c(libc::EDQUOT), BackendError::NoSpace { .. }));
        assert!(matches!(c(libc::EBUSY), BackendError::Busy { .. }));
        let e = c(libc::EPERM);
        assert!(matches!(e, BackendError::Io { .. }));
        assert_eq!(
            e.to_string(),
            "snapshot tree 'lab' tank/t@x: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn a_missing_zfs_command_makes_the_store_unavailable() {
        let e = classify(
            "list".into(),
            CommandError {
                argv: vec!["zfs".into()],
                status: None,
                stderr: "No such file or directory (os error 2)".into(),
                spawn_error: Some(std::io::ErrorKind::NotFound),
            },
        );
        assert!(matches!(e, BackendError::StoreUnavailable(_)), "{e:?}");
    }
}
