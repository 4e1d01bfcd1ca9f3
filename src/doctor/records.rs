//! Damaged records (tree state, intents, pins, publish state, the backend's
//! tree records) and the temp files a crash in the middle of an atomic write
//! leaves. Each names the file and how to repair it.

use super::repair::Action;
use super::scan::Scan;
use super::{repair_cmd, Problem};
use crate::history::pins::Pins;
use crate::publish::state::PublishState;
use crate::state::intent::{clone_slots, Slot, TreeState};
use crate::state::record::DamagedRecord;
use anyhow::Result;
use sidus_backends::durable::temp_writer;
use sidus_backends::TreeName;
use std::path::{Path, PathBuf};

/// The damage `result` is, if it is a damaged record (other errors are real
/// failures of doctor itself).
fn damage<T>(result: Result<T>) -> Result<Option<DamagedRecord>> {
    match result {
        Ok(_) => Ok(None),
        Err(e) => match e.downcast::<DamagedRecord>() {
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(e),
        },
    }
}

fn what(d: &DamagedRecord) -> String {
    format!("{} {} is damaged ({})", d.what, d.path.display(), d.detail)
}

/// Every record check.
pub fn check(scan: &Scan, out: &mut Vec<Problem>) -> Result<()> {
    let state_dir = scan.store.state_dir();
    for tree in &scan.trees {
        if let Some(d) = damage(TreeState::load(state_dir, tree))? {
            out.push(
                Problem::error(
                    "record",
                    Some(tree),
                    what(&d),
                    format!(
                        "{}: moves it aside and writes it again with the newest snapshot ID of the journal and the storage \
                         (a change it recorded cannot be read, so it is not finished; the other checks show what it left)",
                        repair_cmd(Some(tree))
                    ),
                )
                .repaired_by(Action::RebuildTreeState(tree.clone(), d.path.clone())),
            );
        }
        if let Some(damaged) = scan.record(tree).and_then(|r| r.damaged.as_ref()) {
            out.push(Problem::error(
                "record",
                Some(tree),
                format!("the storage's record of tree '{tree}' is damaged: {damaged}"),
                origin_hint(scan, tree),
            ));
        }
    }
    let mut slots = clone_slots(state_dir)?;
    slots.push(Slot::Publish);
    for slot in slots {
        let tree = match &slot {
            Slot::Clone(t) | Slot::Tree(t) => Some(t),
            Slot::Publish => None,
        };
        if tree.is_some_and(|t| !scan.wants(t)) {
            continue;
        }
        if let Some(d) = damage(slot.load(state_dir))? {
            out.push(
                Problem::error(
                    "record",
                    tree,
                    what(&d),
                    format!(
                        "{}: moves it aside (the change it recorded cannot be read, so it is not finished; \
                         the other checks show what it left)",
                        repair_cmd(tree)
                    ),
                )
                .repaired_by(Action::MoveAside(d.path.clone())),
            );
        }
    }
    if let Some(d) = damage(PublishState::load(state_dir))? {
        out.push(
            Problem::error(
                "record",
                None,
                what(&d),
                "sidus doctor --repair: moves it aside and rebuilds it from the boot entries and the exports file \
                 (what `publish --rollback` would go back to is lost)"
                    .into(),
            )
            .repaired_by(Action::RebuildPublishState(d.path.clone())),
        );
    }
    if let Some(d) = damage(Pins::new(state_dir).load())? {
        out.push(Problem::error(
            "record",
            None,
            what(&d),
            format!(
                "restore {} from a backup or mend its JSON by hand ({{\"version\": 1, \"pins\": [...]}}); \
                 until then pin, unpin, prune and delete refuse",
                d.path.display()
            ),
        ));
    }
    temp_files(scan, out)
}

/// What the journal says `tree` was cloned from, for mending its record.
fn origin_hint(scan: &Scan, tree: &TreeName) -> String {
    let clone = scan.journal.entries.iter().rev().find(|e| {
        e.tree.as_deref() == Some(tree.as_str())
            && (e.action == "clone" || e.action == "create")
            && e.outcome.starts_with("ok")
    });
    match clone {
        Some(e) if e.action == "clone" && !e.snapshots.is_empty() => format!(
            "the journal says it was cloned from {}: write its record again with that origin, \
             or destroy the tree (`sidus destroy {tree}` works with a damaged record)",
            e.snapshots[0]
        ),
        _ => format!(
            "the journal says it is no clone: remove the record, or destroy the tree (`sidus destroy {tree}`)"
        ),
    }
}

/// Temp files of an atomic write whose writer is dead: in the state
/// directory, beside the exports file and among the boot entries.
fn temp_files(scan: &Scan, out: &mut Vec<Problem>) -> Result<()> {
    let cfg = scan.store.config.publish();
    let mut dirs = vec![scan.store.state_dir().clone()];
    for sub in ["trees", "intents", "publish", "locks"] {
        dirs.push(scan.store.state_dir().join(sub));
    }
    dirs.push(cfg.boot_root.join("sidus"));
    dirs.push(cfg.boot_root.join("pxelinux.cfg"));
    let exports_dir = cfg.exports_file.parent().map(Path::to_path_buf);
    let exports_name = cfg
        .exports_file
        .file_name()
        .map(|n| format!(".{}.", n.to_string_lossy()));
    for dir in dirs.into_iter().chain(exports_dir.clone()) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = temp_writer(&name) else {
                continue;
            };
            // Beside the exports file, only sidus's own temp files.
            if Some(&dir) == exports_dir.as_ref()
                && exports_name.as_ref().is_none_or(|p| !name.starts_with(p))
            {
                continue;
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let path: PathBuf = entry.path();
            out.push(
                Problem::error(
                    "record",
                    None,
                    format!(
                        "{} is the temp file of an atomic write whose sidus (pid {pid}) died; the file it was replacing is intact",
                        path.display()
                    ),
                    "sidus doctor --repair".into(),
                )
                .repaired_by(Action::Remove(path)),
            );
        }
    }
    Ok(())
}
