//! Living with many snapshots: pin, unpin, pins, prune, du.

use crate::cli::{PinArgs, PinsArgs, PruneArgs, UnpinArgs};
use crate::history::pins::{self, Pin, PinOutcome, Pins, HOLD_TAG};
use crate::history::prune;
use crate::history::retention::Policy;
use crate::output::{json as print_json, or_dash, table};
use crate::store::Store;
use crate::trees;
use crate::trees::refs::TreeRef;
use crate::UsageError;
use anyhow::{bail, Context, Result};
use sidus_backends::{BackendError, Object, SnapshotId, TreeName};
use std::collections::BTreeMap;

pub fn pin(store: &Store, json: bool, a: &PinArgs) -> Result<()> {
    // The manifest is read before the lock: it can take a while on a big tree
    // and needs no lock (the snapshot cannot change).
    let first = trees::resolve_ref(store, &a.target)?;
    let what = format!("{}@{}", first.tree, first.id);
    let (m, _) =
        crate::manifest::kept::of_snapshot(store, &first, &crate::progress::Progress::new(&what))
            .with_context(|| format!("manifest of {what}"))?;
    let root_hash = m.root_hash();
    let outcome = store.journaled("pin", Some(&a.target.tree), || {
        let _lock = store.write_lock(&a.target.tree)?;
        let snap = trees::resolve_ref(store, &a.target)?;
        if snap.id != first.id {
            bail!(
                "{} now names {}@{}, not {what}: pin again",
                a.target,
                snap.tree,
                snap.id
            );
        }
        let file = Pins::new(store.state_dir());
        // Where storage enforces holds, a pin is one too (a second pin of
        // the same snapshot shares it); elsewhere sidus alone enforces pins.
        let holds = store.backend.capabilities().holds;
        let held = file.of_tree(&snap.tree)?.iter().any(|p| p.id == snap.id);
        if holds && !held {
            store.backend.hold(&snap.tree, &snap.id, HOLD_TAG)?;
        }
        let new = Pin {
            tree: snap.tree.clone(),
            id: snap.id.clone(),
            label: a.name.clone(),
            note: a.message.clone(),
            user: store.invocation.user.clone(),
            pinned_at: chrono::Utc::now(),
            manifest: Some(root_hash.clone()),
        };
        let added = file.update(store, |list| pins::add(list, new));
        if let (Err(e), true, false) = (&added, holds, held) {
            if let Err(undo) = store.backend.release(&snap.tree, &snap.id, HOLD_TAG) {
                return Err(anyhow::anyhow!("{e:#}").context(format!(
                    "and releasing the hold on {}@{} failed too: {undo}",
                    snap.tree, snap.id
                )));
            }
        }
        let outcome = added?;
        Ok((outcome, vec![snap.id.to_string()]))
    })?;
    let (verb, p) = match &outcome {
        PinOutcome::Pinned(p) => ("pinned", p),
        PinOutcome::Updated(p) => ("updated the pin of", p),
        PinOutcome::Unchanged(p) => ("already pinned:", p),
    };
    if json {
        print_json(p);
    } else {
        let label = p
            .label
            .as_ref()
            .map(|l| format!(" as '{l}' (usable as {}@{l})", p.tree))
            .unwrap_or_default();
        println!("{verb} {}@{}{label}", p.tree, p.id);
    }
    Ok(())
}

/// The pin `target` names: `TREE@LABEL`, `TREE@REF`, or a bare label found in
/// exactly one tree.
fn find_pin(store: &Store, target: &TreeRef) -> Result<Pin> {
    let all = Pins::new(store.state_dir()).load()?;
    let Some(reference) = &target.reference else {
        let label = target.tree.as_str();
        let hits: Vec<&Pin> = all
            .iter()
            .filter(|p| p.label.as_ref().is_some_and(|l| l.as_str() == label))
            .collect();
        return match hits.as_slice() {
            [p] => Ok((*p).clone()),
            [] => bail!("no pin labelled '{label}' (see `sidus pins`; or give TREE@REF)"),
            many => {
                let mut trees: Vec<&str> = many.iter().map(|p| p.tree.as_str()).collect();
                trees.sort();
                bail!(
                    "label '{label}' is used in several trees ({}): say which, as TREE@{label}",
                    trees.join(", ")
                )
            }
        };
    };
    if let Some(p) = pins::find_label(&all, &target.tree, reference) {
        return Ok(p.clone());
    }
    let snap = trees::resolve_ref(store, target)?;
    all.into_iter()
        .find(|p| p.tree == snap.tree && p.id == snap.id)
        .ok_or_else(|| anyhow::anyhow!("{}@{} is not pinned", snap.tree, snap.id))
}

pub fn unpin(store: &Store, json: bool, a: &UnpinArgs) -> Result<()> {
    // The tree is only known after looking the label up; look again under the lock.
    let tree = find_pin(store, &a.target)?.tree;
    let pin = store.journaled("unpin", Some(&tree), || {
        let _lock = store.write_lock(&tree)?;
        let pin = find_pin(store, &a.target)?;
        let holds = store.backend.capabilities().holds;
        if holds {
            match store.backend.release(&pin.tree, &pin.id, HOLD_TAG) {
                // A snapshot removed behind sidus's back: the pin can still go.
                Ok(()) | Err(BackendError::NotFound(Object::Snapshot(..))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let removed = Pins::new(store.state_dir()).update(store, |list| {
            list.retain(|p| !(p.tree == pin.tree && p.id == pin.id));
            Ok(())
        });
        if let Err(e) = removed {
            if !holds {
                return Err(e);
            }
            let undo = store.backend.hold(&pin.tree, &pin.id, HOLD_TAG);
            return Err(match undo {
                Ok(()) => e,
                Err(u) => e.context(format!("and restoring the hold failed too: {u}")),
            });
        }
        let ids = vec![pin.id.to_string()];
        Ok((pin, ids))
    })?;
    if json {
        print_json(&pin);
    } else {
        let label = pin
            .label
            .as_ref()
            .map(|l| format!(" (label '{l}' removed)"))
            .unwrap_or_default();
        println!("unpinned {}@{}{label}", pin.tree, pin.id);
    }
    Ok(())
}

pub fn pins(store: &Store, json: bool, a: &PinsArgs) -> Result<()> {
    if let Some(t) = &a.tree {
        trees::find_tree(store, t)?;
    }
    let mut list = Pins::new(store.state_dir()).load()?;
    list.retain(|p| a.tree.as_ref().is_none_or(|t| &p.tree == t));
    list.sort_by(|a, b| (&a.tree, &a.id).cmp(&(&b.tree, &b.id)));
    if json {
        print_json(&list);
        return Ok(());
    }
    if list.is_empty() {
        match &a.tree {
            Some(t) => println!("no snapshot of '{t}' is pinned"),
            None => println!("no snapshot is pinned"),
        }
        return Ok(());
    }
    let rows = list
        .into_iter()
        .map(|p| {
            vec![
                p.tree.to_string(),
                p.id.to_string(),
                or_dash(p.label),
                p.pinned_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                p.user,
                p.note,
                or_dash(p.manifest),
            ]
        })
        .collect();
    table(
        &["TREE", "ID", "LABEL", "PINNED", "USER", "NOTE", "MANIFEST"],
        rows,
    );
    Ok(())
}

/// The policy of the command line if it names any rule, else the config's.
fn policy(store: &Store, a: &PruneArgs) -> Result<Policy> {
    let given = [
        a.keep_last,
        a.keep_hourly,
        a.keep_daily,
        a.keep_weekly,
        a.keep_monthly,
    ];
    let policy = if given.iter().any(Option::is_some) {
        Policy {
            keep_last: a.keep_last.unwrap_or(0),
            keep_hourly: a.keep_hourly.unwrap_or(0),
            keep_daily: a.keep_daily.unwrap_or(0),
            keep_weekly: a.keep_weekly.unwrap_or(0),
            keep_monthly: a.keep_monthly.unwrap_or(0),
        }
    } else {
        store.config.prune.unwrap_or_default()
    };
    if policy.is_empty() {
        bail!(UsageError(
            "no keep rule: refusing to prune every snapshot; give --keep-last/--keep-hourly/\
             --keep-daily/--keep-weekly/--keep-monthly N, or set them in the [prune] section of the config"
                .into()
        ));
    }
    Ok(policy)
}

pub fn prune(store: &Store, json: bool, a: &PruneArgs) -> Result<()> {
    let policy = policy(store, a)?;
    let outcome = if a.dry_run {
        prune::prune(store, &a.tree, &policy, true)?
    } else {
        store.journaled("prune", Some(&a.tree), || {
            let o = prune::prune(store, &a.tree, &policy, false)?;
            let ids = o.removed().map(|v| v.snapshot.id.to_string()).collect();
            Ok((o, ids))
        })?
    };
    if json {
        print_json(&outcome);
        return Ok(());
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    let rows = outcome
        .snapshots
        .iter()
        .map(|v| {
            let why = v.why();
            vec![
                v.snapshot.id.to_string(),
                v.snapshot.kind.to_string(),
                if v.keep { "keep" } else { verb }.to_string(),
                if why.is_empty() {
                    "no rule keeps it".to_string()
                } else {
                    why.join(", ")
                },
            ]
        })
        .collect();
    table(&["ID", "KIND", "ACTION", "WHY"], rows);
    let gone = outcome.removed().count();
    let total = outcome.snapshots.len();
    let space = match outcome.freed_bytes {
        _ if gone == 0 => String::new(),
        Some(b) if a.dry_run => format!("; frees at least {}", human_bytes(b)),
        Some(b) => format!("; freed at least {}", human_bytes(b)),
        None => format!("; space freed: {}", space_unknown(store, &outcome.tree)),
    };
    println!(
        "{}{verb} {gone} of {total} snapshots of '{}', kept {} ({policy}){space}",
        if a.dry_run { "dry run: " } else { "" },
        outcome.tree,
        total - gone,
    );
    Ok(())
}

/// The space each of `tree`'s snapshots holds exclusively, or why it is not
/// known (the backend cannot tell at all, or not as the storage is set up).
fn snapshot_space(
    store: &Store,
    tree: &TreeName,
) -> Result<std::result::Result<BTreeMap<SnapshotId, u64>, String>> {
    if !store.backend.capabilities().snapshot_space {
        return Ok(Err(format!(
            "not reported by the {} backend",
            store.backend.kind()
        )));
    }
    match store.backend.snapshot_space(tree) {
        Ok(space) => Ok(Ok(space)),
        Err(BackendError::Unsupported { why, .. }) => Ok(Err(format!("unknown ({why})"))),
        Err(e) => Err(e.into()),
    }
}

/// Why the space snapshots hold is not shown, with what to do about it.
fn space_unknown(store: &Store, tree: &TreeName) -> String {
    match snapshot_space(store, tree) {
        Ok(Err(why)) => why,
        Ok(Ok(_)) => "unknown (the backend reported none for these snapshots)".into(),
        Err(e) => format!("unknown ({e:#})"),
    }
}

/// `1536` -> `1.5 KiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn du(store: &Store, json: bool, tree: &TreeName) -> Result<()> {
    trees::find_tree(store, tree)?;
    let snaps = store.backend.list_snapshots(Some(tree))?;
    let (space, unknown) = match snapshot_space(store, tree)? {
        Ok(space) => (space, None),
        Err(why) => (BTreeMap::new(), Some(why)),
    };
    let reported = snaps.is_empty() || !space.is_empty();
    if json {
        let list: Vec<_> = snaps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "kind": s.kind,
                    "exclusive_bytes": space.get(&s.id),
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "tree": tree,
            "backend": store.backend.kind(),
            "reported": reported,
            "snapshots": list,
        }));
        return Ok(());
    }
    if snaps.is_empty() {
        println!("tree '{tree}' has no snapshots");
        return Ok(());
    }
    if !reported {
        println!(
            "space held by each of the {} snapshots of '{tree}': {}",
            snaps.len(),
            unknown.unwrap_or_else(|| space_unknown(store, tree))
        );
        return Ok(());
    }
    let total: u64 = snaps.iter().filter_map(|s| space.get(&s.id)).sum();
    let rows = snaps
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.kind.to_string(),
                or_dash(space.get(&s.id).map(|b| human_bytes(*b))),
                s.message.clone(),
            ]
        })
        .collect();
    table(&["ID", "KIND", "EXCLUSIVE", "MESSAGE"], rows);
    println!(
        "total held exclusively by snapshots of '{tree}': {}",
        human_bytes(total)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
