//! Who may change what sidus relies on: the store's state files, the exports
//! file, boot entries and kernel copies must be owned by root and writable
//! by no group or other user (issue 17: a node boots what they say).

use super::repair::Action;
use super::scan::Scan;
use super::Problem;
use anyhow::Result;
use sidus_backends::TreeName;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every file and directory checked, with the tree it concerns.
fn targets(scan: &Scan) -> Vec<(PathBuf, Option<TreeName>)> {
    let mut out = Vec::new();
    let state = scan.store.state_dir();
    walk(state, &mut out, &|rel| {
        // trees/T.json, locks/T.lock, intents/clone-T.json
        let mut parts = rel.iter().map(|p| p.to_string_lossy());
        let (Some(dir), Some(name)) = (parts.next(), parts.next()) else {
            return None;
        };
        let stem = match dir.as_ref() {
            "trees" => name.strip_suffix(".json")?.to_string(),
            "locks" => name.strip_suffix(".lock")?.to_string(),
            "intents" => name
                .strip_prefix("clone-")?
                .strip_suffix(".json")?
                .to_string(),
            _ => return None,
        };
        stem.parse().ok()
    });
    let cfg = scan.store.config.publish();
    if cfg.exports_file.exists() {
        out.push((cfg.exports_file.clone(), None));
    }
    walk(&cfg.boot_root.join("sidus"), &mut out, &|rel| {
        let first = rel.iter().next()?.to_string_lossy().into_owned();
        first.strip_suffix(".ipxe").unwrap_or(&first).parse().ok()
    });
    if let Ok(entries) = std::fs::read_dir(cfg.boot_root.join("pxelinux.cfg")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(tree) = name.strip_prefix("sidus-") {
                out.push((e.path(), tree.parse().ok()));
            }
        }
    }
    out
}

/// `dir` and everything below it (symlinks are not followed, nor checked:
/// their own mode means nothing), each with the tree `tree_of` its path
/// relative to `dir` concerns.
fn walk(
    dir: &Path,
    out: &mut Vec<(PathBuf, Option<TreeName>)>,
    tree_of: &dyn Fn(&Path) -> Option<TreeName>,
) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    out.push((dir.to_path_buf(), None));
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_symlink() {
                continue;
            }
            let path = e.path();
            let tree = path.strip_prefix(dir).ok().and_then(tree_of);
            if t.is_dir() {
                stack.push(path.clone());
            }
            out.push((path, tree));
        }
    }
}

/// Every mode check.
pub fn check(scan: &Scan, out: &mut Vec<Problem>) -> Result<()> {
    let mut targets = targets(scan);
    targets.sort();
    for (path, tree) in targets {
        if tree.as_ref().is_some_and(|t| !scan.wants(t)) {
            continue;
        }
        if scan.only.is_some()
            && tree.is_none()
            && path.starts_with(scan.store.config.publish().boot_root)
        {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        let (wrong_mode, wrong_owner) = (mode & 0o022 != 0, meta.uid() != 0);
        if !wrong_mode && !wrong_owner {
            continue;
        }
        let mut what = Vec::new();
        let mut fix = Vec::new();
        if wrong_mode {
            what.push(format!(
                "is writable by its group or others (mode {mode:04o})"
            ));
            fix.push(format!("chmod go-w {}", path.display()));
        }
        if wrong_owner {
            what.push(format!("is owned by uid {}, not root", meta.uid()));
            fix.push(format!("chown root {}", path.display()));
        }
        out.push(
            Problem::error(
                "mode",
                tree.as_ref(),
                format!(
                    "{} {}: whoever can change it changes what sidus does or what nodes boot",
                    path.display(),
                    what.join(" and ")
                ),
                fix.join("; "),
            )
            .repaired_by(Action::Mode(path)),
        );
    }
    Ok(())
}
