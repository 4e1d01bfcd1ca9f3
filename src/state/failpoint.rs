//! Failpoints: named places between the steps of every multi-step change
//! where a test makes sidus die as a crash would (`SIDUS_FAILPOINT=NAME`
//! aborts the process there, no unwinding, no undo), then checks that the
//! next command and `sidus doctor` find the store either as before or as
//! after the change.
//!
//! Every name is listed in [`ALL`] (`sidus debug failpoints` prints it), and a
//! unit test checks that the list and the `hit(...)` calls in the source agree.

/// Every failpoint, `operation:place`.
pub const ALL: &[&str] = &[
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `hit("...")` in src/ is listed, and every listed name is hit somewhere.
    #[test]
    fn the_list_matches_the_source() {
        let mut found = std::collections::BTreeSet::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("failpoint.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for part in text.split("failpoint::hit(\"").skip(1) {
                        found.insert(part.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, listed);
    }
}
