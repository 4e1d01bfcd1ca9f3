//! `sidus replicate TREE [--to REMOTE]...`: asks each remote which snapshots
//! of the tree it has, then sends every newer one, each incrementally from
//! the one before (the first from the newest snapshot both have), through one
//! `replica-receive` per snapshot.

use super::remotes::{self, Remote, Remotes, Replicated};
use super::session::{Session, Source};
use super::wire::{self, Have, HaveTree, Header, Received, PROTOCOL};
use crate::manifest::kept;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use sidus_backends::{argv, Replication, Runner, Snapshot, SnapshotId, TreeName};
use std::ffi::OsString;

/// What one replication to one remote did.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The remote.
    pub remote: String,
    /// The tree.
    pub tree: TreeName,
    /// The snapshots sent, oldest first.
    pub sent: Vec<SnapshotId>,
    /// The newest snapshot the remote has now.
    pub newest: Option<SnapshotId>,
    /// Stream bytes sent.
    pub bytes: u64,
    /// How many of the sent snapshots the remote checked against our manifest.
    pub verified: usize,
}

/// Runs the remote sidus with `args`, returning its stdout; its own error
/// line (the last of its stderr) says why when it fails.
pub fn ask(remote: &Remote, args: Vec<OsString>) -> Result<Vec<u8>> {
    Runner::new()
        .run(&remote.transport.argv(&args))
        .map_err(|e| {
            anyhow::anyhow!(
                "the sidus of remote '{}' failed: {}",
                remote.name,
                e.reason()
            )
        })
}

/// What `remote` has of `trees`.
pub fn have(remote: &Remote, trees: &[TreeName]) -> Result<Have> {
    let mut args = argv!["replica-have"];
    args.extend(trees.iter().map(|t| OsString::from(t.as_str())));
    let out = ask(remote, args)?;
    let have: Have = serde_json::from_slice(&out).with_context(|| {
        format!(
            "remote '{}' answered something else than `sidus replica-have` does: {:?}",
            remote.name,
            String::from_utf8_lossy(&out)
                .chars()
                .take(200)
                .collect::<String>()
        )
    })?;
    if have.protocol != PROTOCOL || have.trees.len() != trees.len() {
        bail!(
            "remote '{}' speaks replication protocol {}, this sidus {PROTOCOL}",
            remote.name,
            have.protocol
        );
    }
    Ok(have)
}

/// The plan for one tree on one remote: the newest common snapshot and
/// what to send after it, oldest first.
#[derive(Debug, PartialEq)]
pub struct Plan<'a> {
    /// The newest snapshot both have.
    pub common: Option<SnapshotId>,
    /// The snapshots to send, oldest first.
    pub send: Vec<&'a Snapshot>,
}

/// Decides what to send of `local` (oldest first) to a remote having `there`.
pub fn plan<'a>(tree: &TreeName, local: &'a [Snapshot], there: &HaveTree) -> Result<Plan<'a>> {
    if there.exists && !there.replica {
        bail!("it has a tree '{tree}' of its own (not a replica): refusing to replicate into it");
    }
    let common = local
        .iter()
        .map(|s| &s.id)
        .filter(|id| there.ids.contains(id))
        .max()
        .cloned();
    if there.exists && common.is_none() && !there.ids.is_empty() {
        bail!("its replica of '{tree}' has no snapshot in common with this one: destroy it there and replicate again");
    }
    let newer: Vec<&SnapshotId> = there
        .ids
        .iter()
        .filter(|id| common.as_ref().is_none_or(|c| *id > c))
        .filter(|id| !local.iter().any(|s| &s.id == *id))
        .collect();
    if !newer.is_empty() {
        let shown: Vec<String> = newer.iter().take(3).map(|i| i.to_string()).collect();
        bail!(
            "its replica of '{tree}' has snapshots this store lacks ({}): the two diverged",
            shown.join(", ")
        );
    }
    let send = local
        .iter()
        .filter(|s| common.as_ref().is_none_or(|c| &s.id > c))
        .collect();
    Ok(Plan { common, send })
}

/// This store as a replica names its primary.
fn source_name(store: &Store) -> String {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into());
    let dir = store.state_dir();
    let root = dir.parent().unwrap_or(dir);
    format!("{host}:{}", root.display())
}

/// `sidus replicate TREE --to ...`: every remote is tried; the error names
/// those that failed.
pub fn replicate(
    store: &Store,
    tree: &TreeName,
    to: &[String],
    archive: bool,
) -> Result<Vec<Sent>> {
    crate::trees::find_tree(store, tree)?;
    if let Some(r) = super::replica_of(store.state_dir(), tree)? {
        bail!(
            "'{tree}' is a replica of {} here: replicate it from there (or `sidus replica promote {tree}` first)",
            r.source
        );
    }
    let targets = Remotes::load(store.state_dir())?.pick(to)?;
    let repl = store.backend.replication().filter(|_| !archive);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for remote in &targets {
        match replicate_to(store, repl, tree, remote) {
            Ok(s) => done.push(s),
            Err(e) => {
                let e = e.context(format!("replicate '{tree}' to remote '{}'", remote.name));
                if targets.len() > 1 {
                    // Each failure said once; the final error names them all.
                    eprintln!("sidus: {}", crate::output::escape(&crate::error_chain(&e)));
                }
                failed.push((remote.name.clone(), e));
            }
        }
    }
    match failed.len() {
        0 => Ok(done),
        1 if targets.len() == 1 => Err(failed.pop().expect("one").1),
        _ => bail!(
            "replicating '{tree}' failed to {} of {} remotes: {}",
            failed.len(),
            targets.len(),
            failed
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn replicate_to(
    store: &Store,
    repl: Option<&dyn Replication>,
    tree: &TreeName,
    remote: &Remote,
) -> Result<Sent> {
    let (mut session, have) = Session::open(remote, tree)?;
    let there = &have.trees[0];
    // The backend's own stream where both ends have the same, else the
    // archive; a replica begun with archives stays on them.
    let native = repl.filter(|r| {
        have.format.as_deref() == Some(r.format())
            && (!there.exists || there.format.as_deref() != Some(super::stream::FORMAT))
    });
    let mut local = store.backend.list_snapshots(Some(tree))?;
    local.sort_by(|a, b| a.id.cmp(&b.id));
    let plan = plan(tree, &local, there)?;
    let source = source_name(store);
    let mut sent = Sent {
        remote: remote.name.clone(),
        tree: tree.clone(),
        sent: Vec::new(),
        newest: plan.common.clone(),
        bytes: 0,
        verified: 0,
    };
    let mut parent = plan.common.clone();
    let mut result = Ok(());
    let mut native = native;
    for (i, snap) in plan.send.iter().enumerate() {
        if let Some(r) = native {
            if !r.can_send(tree, &snap.id, parent.as_ref())? {
                // From here on archives: the replica then has no native base.
                log::info!(
                    "{tree}@{}: not sendable natively from {parent:?}; sending archives",
                    snap.id
                );
                native = None;
            }
        }
        let resume = there.resume.as_ref().filter(|r| i == 0 && r.id == snap.id);
        let one = send_snapshot(
            store,
            &mut session,
            native,
            snap,
            parent.as_ref(),
            resume,
            &source,
        )
        .with_context(|| format!("send {tree}@{}", snap.id));
        match one {
            Ok((bytes, got)) => {
                sent.bytes += bytes;
                sent.verified += usize::from(got.verified);
                sent.sent.push(snap.id.clone());
                sent.newest = Some(snap.id.clone());
                parent = Some(snap.id.clone());
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // What got there is remembered, also when the rest fails; written while
    // the remote sidus ends its last receive.
    let recorded = match &sent.newest {
        Some(id) => record(store, remote, tree, id),
        None => Ok(()),
    };
    if result.is_ok() {
        result = session.close();
    }
    recorded?;
    result.map(|()| sent)
}

/// Sends one snapshot through `session`: the native stream (resuming
/// `resume` where the storage kept it), or the archive.
fn send_snapshot(
    store: &Store,
    session: &mut Session,
    native: Option<&dyn Replication>,
    snap: &Snapshot,
    parent: Option<&SnapshotId>,
    resume: Option<&wire::Resume>,
    source: &str,
) -> Result<(u64, Received)> {
    let tree = &snap.tree;
    let mut header = Header {
        protocol: PROTOCOL,
        format: super::stream::FORMAT.to_string(),
        snapshot: snap.clone(),
        parent: parent.cloned(),
        root_hash: None,
        source: source.to_string(),
        resume: false,
    };
    match native {
        Some(repl) => {
            let command = match resume.and_then(|r| repl.resume_command(&r.token)) {
                Some(c) => {
                    header.resume = true;
                    c
                }
                None => repl.send_command(tree, &snap.id, parent)?,
            };
            header.format = repl.format().to_string();
            header.root_hash = kept::load(store.state_dir(), snap)?.map(|m| m.root_hash());
            session.send(&header, &Source::Command(&command))
        }
        None => {
            // The archive carries the whole snapshot and its manifest,
            // which the receiver checks it against.
            let progress = crate::progress::Progress::new(format!("{tree}@{}", snap.id));
            let (m, _) = kept::of_snapshot(store, snap, &progress)?;
            let root = store.backend.snapshot_path(tree, &snap.id)?;
            header.root_hash = Some(m.root_hash());
            session.send(&header, &Source::Archive(snap, &m, root))
        }
    }
}

/// Remembers that `remote` had `tree@id` now.
fn record(store: &Store, remote: &Remote, tree: &TreeName, id: &SnapshotId) -> Result<()> {
    remotes::update(store, |all| {
        if let Some(r) = all.remotes.get_mut(&remote.name) {
            r.trees.insert(
                tree.clone(),
                Replicated {
                    time: chrono::Utc::now(),
                    id: id.clone(),
                },
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str) -> Snapshot {
        Snapshot::from_properties("lab".parse().unwrap(), id.parse().unwrap(), |_| None).unwrap()
    }

    fn there(ids: &[&str], exists: bool, replica: bool) -> HaveTree {
        HaveTree {
            tree: "lab".parse().unwrap(),
            exists,
            replica,
            ids: ids.iter().map(|i| i.parse().unwrap()).collect(),
            format: None,
            resume: None,
        }
    }

    #[test]
    fn plan_sends_what_is_newer_than_the_newest_common_snapshot() {
        let lab: TreeName = "lab".parse().unwrap();
        let (a, b, c, d) = (
            "20261125T101500Z",
            "20261125T101501Z",
            "20261125T101502Z",
            "20261125T101503Z",
        );
        let local = vec![snap(a), snap(b), snap(c), snap(d)];
        let p = plan(&lab, &local, &there(&[], false, false)).unwrap();
        assert_eq!((p.common, p.send.len()), (None, 4));
        // A snapshot deleted there (a) is not sent again; b is the base.
        let p = plan(&lab, &local, &there(&[b], true, true)).unwrap();
        assert_eq!(p.common, Some(b.parse().unwrap()));
        assert_eq!(
            p.send.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
            [c, d]
        );
        let p = plan(&lab, &local, &there(&[a, b, c, d], true, true)).unwrap();
        assert!(p.send.is_empty());
    }

    #[test]
    fn plan_refuses_a_foreign_tree_a_diverged_replica_and_no_common_base() {
        let lab: TreeName = "lab".parse().unwrap();
        let local = vec![snap("20261125T101500Z"), snap("20261125T101501Z")];
        let e = plan(&lab, &local, &there(&[], true, false)).unwrap_err();
        assert!(e.to_string().contains("of its own"), "{e}");
        let e = plan(
            &lab,
            &local,
            &there(&["20261125T101500Z", "20261125T101509Z"], true, true),
        )
        .unwrap_err();
        assert!(e.to_string().contains("diverged"), "{e}");
        let e = plan(&lab, &local, &there(&["20261124T101500Z"], true, true)).unwrap_err();
        assert!(e.to_string().contains("no snapshot in common"), "{e}");
    }
}
