//! Pruning a tree: the retention policy's verdicts with protections laid over
//! them, then the deletions.

use crate::history::protect::{Protection, Protections};
use crate::history::retention::{self, Policy, Reason};
use crate::state::failpoint;
use crate::state::intent::{Change, Slot};
use crate::store::Store;
use anyhow::Result;
use serde::Serialize;
use sidus_backends::{Snapshot, TreeName};

/// What happens to one snapshot, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The snapshot.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Whether it stays.
    pub keep: bool,
    /// The retention rules that keep it.
    pub kept_by: Vec<Reason>,
    /// What protects it regardless of the policy.
    pub protected_by: Vec<Protection>,
}

impl Verdict {
    /// Every reason it stays, as text: rules first, then protections.
    pub fn why(&self) -> Vec<String> {
        self.kept_by
            .iter()
            .map(|r| r.to_string())
            .chain(self.protected_by.iter().map(|p| p.to_string()))
            .collect()
    }
}

/// The verdicts for `snaps` (one tree's, any order), oldest first (pure).
pub fn plan(mut snaps: Vec<Snapshot>, policy: &Policy, protections: &Protections) -> Vec<Verdict> {
    snaps.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<_> = snaps.iter().map(|s| s.id.clone()).collect();
    let kept = retention::select(&ids, policy);
    snaps
        .into_iter()
        .zip(kept)
        .map(|(snapshot, kept_by)| {
            let protected_by = protections.of(&snapshot.id).to_vec();
            Verdict {
                keep: !kept_by.is_empty() || !protected_by.is_empty(),
                snapshot,
                kept_by,
                protected_by,
            }
        })
        .collect()
}

/// The outcome of a prune.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The tree.
    pub tree: TreeName,
    /// The policy applied.
    pub policy: Policy,
    /// True when nothing was deleted on purpose.
    pub dry_run: bool,
    /// Every snapshot's verdict, oldest first.
    pub snapshots: Vec<Verdict>,
    /// Bytes the removed snapshots held exclusively (at least what removing them
    /// frees), where the backend reports it for each.
    pub freed_bytes: Option<u64>,
}

impl Outcome {
    /// The snapshots that go (or went).
    pub fn removed(&self) -> impl Iterator<Item = &Verdict> {
        self.snapshots.iter().filter(|v| !v.keep)
    }
}

/// Decides, and unless `dry_run` deletes, what `policy` lets go in `tree`. The
/// deletion holds the tree's lock and re-reads the protections under it.
pub fn prune(store: &Store, tree: &TreeName, policy: &Policy, dry_run: bool) -> Result<Outcome> {
    let _lock = if dry_run {
        None
    } else {
        Some(store.write_lock(tree)?)
    };
    crate::trees::find_tree(store, tree)?;
    let snaps = store.backend.list_snapshots(Some(tree))?;
    let protections = Protections::load(store, tree)?;
    let verdicts = plan(snaps, policy, &protections);
    let freed_bytes = freed(store, tree, &verdicts);
    if !dry_run {
        let doomed: Vec<_> = verdicts
            .iter()
            .filter(|v| !v.keep)
            .map(|v| v.snapshot.id.clone())
            .collect();
        if !doomed.is_empty() {
            store.begin(
                Slot::Tree(tree.clone()),
                Change::Delete {
                    tree: tree.clone(),
                    ids: doomed.clone(),
                },
                None,
            )?;
        }
        // The first alone, so that a crash test can die between the two; the
        // rest is tried even when the first fails, as one backend call would.
        let (first, rest) = doomed.split_at(doomed.len().min(1));
        let some = store.backend.delete_snapshots(tree, first);
        if some.is_ok() {
            failpoint::hit("prune:after-some");
        }
        let deleted = store.backend.delete_snapshots(tree, rest).and(some);
        if deleted.is_ok() && !doomed.is_empty() {
            failpoint::hit("prune:after-all");
        }
        if let Err(e) = deleted {
            // Some may be gone already: say which, from the storage itself.
            let what = match store.backend.snapshot_ids(tree) {
                Ok(left) => {
                    let left: std::collections::HashSet<_> = left.into_iter().collect();
                    let gone: Vec<String> = doomed
                        .iter()
                        .filter(|id| !left.contains(*id))
                        .map(|id| id.to_string())
                        .collect();
                    format!(
                        "removed {} of {} snapshots ({}) before this failed",
                        gone.len(),
                        doomed.len(),
                        if gone.is_empty() {
                            "none".into()
                        } else {
                            gone.join(" ")
                        }
                    )
                }
                Err(_) => format!(
                    "some of {} snapshots may be removed (see `sidus snapshots {tree}`)",
                    doomed.len()
                ),
            };
            return Err(anyhow::Error::new(e).context(format!("prune '{tree}': {what}")));
        }
        for id in &doomed {
            crate::manifest::kept::forget(store.state_dir(), tree, Some(id));
        }
    }
    Ok(Outcome {
        tree: tree.clone(),
        policy: *policy,
        dry_run,
        snapshots: verdicts,
        freed_bytes,
    })
}

/// The bytes the snapshots that go hold exclusively, when the backend knows it
/// for every one of them: a lower bound of what deleting them frees (blocks
/// shared only among them are freed too). Informational, so a failure to read
/// it is a warning, not a failed prune.
fn freed(store: &Store, tree: &TreeName, verdicts: &[Verdict]) -> Option<u64> {
    if !store.backend.capabilities().snapshot_space {
        return None;
    }
    let space = match store.backend.snapshot_space(tree) {
        Ok(s) => s,
        // Not as the storage is set up (btrfs without quotas): unknown.
        Err(sidus_backends::BackendError::Unsupported { .. }) => return None,
        Err(e) => {
            log::warn!("cannot tell the space snapshots of '{tree}' hold: {e}");
            return None;
        }
    };
    verdicts
        .iter()
        .filter(|v| !v.keep)
        .map(|v| space.get(&v.snapshot.id).copied())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::protect::Published;
    use sidus_backends::SnapshotId;

    fn snap(id: &str) -> Snapshot {
        Snapshot::from_properties("lab".parse().unwrap(), id.parse().unwrap(), |_| None).unwrap()
    }

    #[test]
    fn protected_snapshots_stay_whatever_the_policy_says() {
        let lab: TreeName = "lab".parse().unwrap();
        let ids = [
            "20261120T100000Z",
            "20261121T100000Z",
            "20261122T100000Z",
            "20261123T100000Z",
        ];
        let published = Published {
            current: Some(ids[1].parse::<SnapshotId>().unwrap()),
            ..Published::default()
        };
        let prot = Protections::from_parts(&lab, &[], &[], &published, &[ids[0].parse().unwrap()]);
        let policy = Policy {
            keep_last: 1,
            ..Policy::default()
        };
        let v = plan(ids.iter().rev().map(|i| snap(i)).collect(), &policy, &prot);
        let got: Vec<(String, bool, String)> = v
            .iter()
            .map(|v| (v.snapshot.id.to_string(), v.keep, v.why().join(", ")))
            .collect();
        assert_eq!(
            got,
            [
                (
                    ids[0].into(),
                    true,
                    "the pre snapshot of an unfinished `sidus run`".into()
                ),
                (ids[1].into(), true, "published (current)".into()),
                (ids[2].into(), false, String::new()),
                (ids[3].into(), true, "last 1/1".into()),
            ]
        );
    }
}
