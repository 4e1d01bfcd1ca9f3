//! Failpoints: named places between the steps of every multi-step change
//! where a test makes sidus die as a crash would (`SIDUS_FAILPOINT=NAME`
//! aborts the process there, no unwinding, no undo), then checks that the
//! next command and `sidus doctor` find the store either as before or as
//! after the change.
//!
//! Every name is listed in [`ALL`] (`sidus failpoints` prints it), and a
//! unit test of sidus checks that the list and the `hit(...)` calls in its
//! source and in this crate's agree. Names of one backend's steps start with
//! the backend (`lvm:`, `zfs:`, `btrfs:`).

/// Every failpoint, `operation:place`.
pub const ALL: &[&str] = &[
    "btrfs:rollback-after-copy",
    "lvm:rollback-after-copy",
    "lvm:rollback-after-rename-out",
    "zfs:rollback-after-clone",
    "zfs:rollback-after-rename-out",
    "journal:before-append",
    "intent:after-write",
    "create:after-tree",
    "create:after-copy",
    "snapshot:after-snapshot",
    "clone:after-snapshot",
    "clone:after-clone",
    "delete:after-delete",
    "prune:after-some",
    "prune:after-all",
    "destroy:after-storage",
    "rollback:after-safety",
    "rollback:after-replace",
    "run:after-pre",
    "run:after-command",
    "run:after-post",
    "publish:after-serve",
    "publish:after-kernel",
    "publish:after-exports",
    "publish:after-ipxe",
    "publish:after-entries",
    "publish:after-state",
    "unpublish:after-exports",
    "unpublish:after-unmount",
    "unpublish:after-entries",
    "unpublish:after-state",
    "restore:after-serve",
    "receive:mid-stream",
    "receive:after-stream",
    "publish:group-after-serve",
    "publish:group-after-kernel",
    "publish:group-after-exports",
    "publish:group-after-ipxe",
    "publish:group-after-entries",
    "publish:group-after-state",
    "unpublish:group-after-entries",
    "unpublish:group-after-state",
    "node:after-inventory",
    "node:after-entries",
    "done:before-clear",
];

/// The failpoint the environment asks for, read once.
fn armed() -> Option<&'static str> {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var("SIDUS_FAILPOINT")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .as_deref()
}

/// Dies here, as a crash would, when `SIDUS_FAILPOINT` names `name`.
pub fn hit(name: &str) {
    debug_assert!(ALL.contains(&name), "failpoint {name} is not listed in ALL");
    if armed() == Some(name) {
        eprintln!("sidus: failpoint {name}: aborting");
        std::process::abort();
    }
}
