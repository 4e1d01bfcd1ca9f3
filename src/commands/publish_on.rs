//! `publish ... --on REMOTE...`: the remotes' own sidus publishes the ID
//! this store resolves the REF to, and the boot entries learn which servers
//! serve it.
//!
//! Each remote is passed `--fallback SERVER:PATH` for the other servers of
//! that TREE@ID: this one when it exports the ID, and every remote with a
//! `--server` that served it before (recorded here, see
//! [`crate::publish::served_by`]). After each success the remote is recorded
//! as a server of the ID; when that changed what an earlier remote of the
//! same command was told, it is told again (a publish of its current ID only
//! rewrites its entries). Last, this server's own entries that name the ID
//! are rewritten to list the remotes.

use crate::cli::PublishArgs;
use crate::output::json as print_json;
use crate::publish::fallback::Fallback;
use crate::publish::served_by::{self, ServedBy};
use crate::publish::state::PublishState;
use crate::publish::{exports::serve_path, steps};
use crate::replica::remotes::{Remote, Remotes};
use crate::replica::send;
use crate::store::Store;
use crate::trees::refs::TreeRef;
use anyhow::{bail, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::ffi::OsString;

/// The ID `publish` would make current for `t` (REF default `latest`).
pub(super) fn target_id(store: &Store, t: &TreeRef) -> Result<SnapshotId> {
    if t.reference.is_some() {
        return crate::trees::resolve_ref_id(store, t);
    }
    let latest = store.backend.snapshot_ids(&t.tree)?.into_iter().max();
    latest.ok_or_else(|| anyhow::anyhow!("tree '{}' has no snapshot to publish", t.tree))
}

/// The servers a remote at `remote_server` lists after itself for an ID:
/// `here` first, then the recorded ones, never itself.
pub fn fallbacks_for(
    here: Option<&Fallback>,
    recorded: &[Fallback],
    remote_server: Option<&str>,
) -> Vec<Fallback> {
    here.into_iter()
        .chain(recorded)
        .filter(|f| Some(f.server.as_str()) != remote_server)
        .cloned()
        .collect()
}

/// This server as another server's fallback for `tree@id`, when it exports it.
fn here(store: &Store, tree: &TreeName, id: &SnapshotId) -> Option<Fallback> {
    let cfg = store.config.publish();
    let exported = PublishState::load(store.state_dir())
        .ok()?
        .is_exported(tree, id);
    let server = steps::server(&cfg).ok().filter(|_| exported)?;
    Some(Fallback {
        server,
        path: serve_path(&cfg.root, tree, id),
        remote: None,
    })
}

/// What a remote's `publish --json` answered: the TREE@ID and its export path.
#[derive(serde::Deserialize)]
struct Answer {
    tree: TreeName,
    id: SnapshotId,
    path: std::path::PathBuf,
}

/// Runs `publish --on`.
pub fn publish_on(store: &Store, json: bool, a: &PublishArgs) -> Result<()> {
    let remotes = Remotes::load(store.state_dir())?.pick(&a.on)?;
    let mut args: Vec<OsString> = vec!["--json".into(), "publish".into()];
    // The same ID everywhere, whatever `latest` or a label is there.
    let known = match (&a.target, a.rollback) {
        (Some(t), false) => Some((t.tree.clone(), target_id(store, t)?)),
        _ => None,
    };
    match (&known, &a.target) {
        (Some((tree, id)), _) => args.push(format!("{tree}@{id}").into()),
        (None, Some(t)) => args.push(t.tree.to_string().into()),
        (None, None) => {}
    }
    if a.rollback {
        args.push("--rollback".into());
    }
    let mut rest: Vec<OsString> = Vec::new();
    if let Some(g) = &a.group {
        rest.extend(["--group".into(), g.to_string().into()]);
    }
    if a.allow_secrets {
        rest.push("--allow-secrets".into());
    }
    let told = |r: &Remote, tree: &TreeName, id: &SnapshotId| -> Result<Vec<Fallback>> {
        let recorded = served_by::fallbacks(store.state_dir(), tree, id)?;
        Ok(fallbacks_for(
            here(store, tree, id).as_ref(),
            &recorded,
            r.server.as_deref(),
        ))
    };
    let with = |base: &[OsString], list: &[Fallback]| -> Vec<OsString> {
        let mut v = base.to_vec();
        v.extend(rest.iter().cloned());
        for f in list {
            v.extend(["--fallback".into(), f.arg().into()]);
        }
        v
    };
    let mut done = serde_json::Map::new();
    let mut failed = Vec::new();
    let mut served: Vec<(Remote, TreeName, SnapshotId, Vec<Fallback>)> = Vec::new();
    for r in &remotes {
        let list = match &known {
            Some((tree, id)) => told(r, tree, id)?,
            None => Vec::new(),
        };
        let argv = with(&args, &list);
        match send::ask(r, argv.clone()) {
            Ok(out) => {
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
                if !json {
                    let what: Vec<String> = argv[2..]
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect();
                    println!("{}: sidus publish {}: done", r.name, what.join(" "));
                }
                if let Ok(ans) = serde_json::from_value::<Answer>(v.clone()) {
                    if let Some(server) = &r.server {
                        let f = Fallback {
                            server: server.clone(),
                            path: ans.path.clone(),
                            remote: Some(r.name.clone()),
                        };
                        served_by::update(store, |s: &mut ServedBy| s.add(&ans.tree, &ans.id, f))?;
                    }
                    served.push((r.clone(), ans.tree, ans.id, list));
                }
                done.insert(r.name.clone(), v);
            }
            Err(e) => {
                eprintln!("sidus: {}", crate::output::escape(&crate::error_chain(&e)));
                failed.push(r.name.clone());
            }
        }
    }
    // Remotes told before a later one was recorded (or, after --rollback,
    // told nothing) hear of every server now: their current ID again.
    for (r, tree, id, sent) in &served {
        let list = told(r, tree, id)?;
        if &list == sent {
            continue;
        }
        let base: Vec<OsString> = vec![
            "--json".into(),
            "publish".into(),
            format!("{tree}@{id}").into(),
        ];
        if let Err(e) = send::ask(r, with(&base, &list)) {
            eprintln!(
                "sidus: warning: {}: its boot entries do not list every server of {tree}@{id}: {}",
                r.name,
                crate::output::escape(&crate::error_chain(&e))
            );
        }
    }
    let mut ids: Vec<(&TreeName, &SnapshotId)> = served.iter().map(|(_, t, i, _)| (t, i)).collect();
    ids.dedup();
    for (tree, id) in ids {
        for p in served_by::refresh_entries(store, tree, id)? {
            if !json {
                println!("{}: lists the servers of {tree}@{id}", p.display());
            }
        }
    }
    if json {
        print_json(&done);
    }
    if !failed.is_empty() {
        bail!("publishing failed on remote(s) {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_is_told_every_other_server_never_itself() {
        let f = |s: &str| Fallback::parse(&format!("{s}:/srv/sidus/lab/X")).unwrap();
        let here = f("10.0.0.1");
        let rec = [f("10.0.0.2"), f("10.0.0.3")];
        let table: [(Option<&Fallback>, Option<&str>, &[&str]); 4] = [
            (Some(&here), Some("10.0.0.2"), &["10.0.0.1", "10.0.0.3"]),
            (Some(&here), None, &["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            (None, Some("10.0.0.3"), &["10.0.0.2"]),
            (None, Some("10.0.0.9"), &["10.0.0.2", "10.0.0.3"]),
        ];
        for (h, server, want) in table {
            let got: Vec<String> = fallbacks_for(h, &rec, server)
                .into_iter()
                .map(|f| f.server)
                .collect();
            assert_eq!(got, want, "{server:?}");
        }
    }
}
