//! Remotes and replication: `remote ...`, `replicate`, `replica promote`, and
//! the hidden subcommands a primary runs on its remotes.

use crate::cli::{RemoteAddArgs, RemoteCommand, ReplicaCommand, ReplicateArgs};
use crate::output::{json as print_json, or_dash, table};
use crate::replica::remotes::{self, Remote, Remotes, Transport};
use crate::replica::{have, promote, receive, send, status};
use crate::store::Store;
use anyhow::{bail, Result};
use sidus_backends::TreeName;

pub fn remote(store: &Store, json: bool, c: &RemoteCommand) -> Result<()> {
    match c {
        RemoteCommand::Add(a) => add(store, json, a),
        RemoteCommand::List => list(store, json),
        RemoteCommand::Remove(a) => {
            remotes::update(store, |all| {
                if all.remotes.remove(&a.name).is_none() {
                    bail!("no remote named '{}' (see `sidus remote list`)", a.name);
                }
                Ok(())
            })?;
            if json {
                print_json(&serde_json::json!({ "removed": a.name }));
            } else {
                println!("removed remote '{}'", a.name);
            }
            Ok(())
        }
        RemoteCommand::Status(a) => {
            let rows = status::status(store, &a.names, a.tree.as_ref())?;
            if json {
                print_json(&rows);
                return Ok(());
            }
            let rows = rows
                .into_iter()
                .map(|r| {
                    vec![
                        r.remote,
                        r.tree.to_string(),
                        or_dash(r.newest_common),
                        if r.error.is_some() {
                            "-".into()
                        } else {
                            r.behind.to_string()
                        },
                        or_dash(r.bytes),
                        or_dash(
                            r.last_replicated
                                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        ),
                        r.error.unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &[
                    "REMOTE", "TREE", "COMMON", "BEHIND", "BYTES", "LAST", "ERROR",
                ],
                rows,
            );
            Ok(())
        }
    }
}

fn add(store: &Store, json: bool, a: &RemoteAddArgs) -> Result<()> {
    remotes::check_name(&a.name)?;
    let transport = match (&a.url, &a.command) {
        (Some(url), None) => Transport::parse_url(url)
            .map_err(|e| anyhow::Error::new(crate::UsageError(e.to_string())))?,
        (None, Some(command)) if !command.trim().is_empty() => Transport::Command {
            command: command.clone(),
        },
        _ => bail!(crate::UsageError(
            "give the remote as ssh://[user@]host[:port] or --command 'CMD'".into()
        )),
    };
    if let Some(s) = &a.server {
        check_server(s)?;
    }
    let remote = Remote {
        name: a.name.clone(),
        transport,
        server: a.server.clone(),
        added: chrono::Utc::now(),
        trees: Default::default(),
    };
    remotes::update(store, |all| {
        if all.remotes.contains_key(&a.name) {
            bail!(
                "remote '{}' exists already (`sidus remote remove {0}` first)",
                a.name
            );
        }
        all.remotes.insert(a.name.clone(), remote.clone());
        Ok(())
    })?;
    if json {
        print_json(&remote);
    } else {
        let nodes = remote
            .server
            .as_ref()
            .map(|s| format!("; its nodes mount from {s}"))
            .unwrap_or_default();
        println!(
            "added remote '{}' ({}{nodes})",
            remote.name,
            remote.transport.shown()
        );
    }
    Ok(())
}

fn list(store: &Store, json: bool) -> Result<()> {
    let all = Remotes::load(store.state_dir())?;
    let list: Vec<&Remote> = all.remotes.values().collect();
    if json {
        print_json(&list);
        return Ok(());
    }
    if list.is_empty() {
        println!("no remotes");
        return Ok(());
    }
    let rows = list
        .into_iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.transport.shown(),
                or_dash(r.server.clone()),
                r.added.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.trees.len().to_string(),
            ]
        })
        .collect();
    table(&["NAME", "REACHED BY", "SERVER", "ADDED", "TREES"], rows);
    Ok(())
}

pub fn replicate(store: &Store, json: bool, a: &ReplicateArgs) -> Result<()> {
    let sent = store.journaled("replicate", Some(&a.tree), || {
        let sent = send::replicate(store, &a.tree, &a.to, a.archive)?;
        let ids = sent
            .iter()
            .flat_map(|s| s.sent.iter().map(|id| format!("{}:{id}", s.remote)))
            .collect();
        Ok((sent, ids))
    })?;
    if json {
        print_json(&sent);
        return Ok(());
    }
    for s in sent {
        match (s.sent.first(), s.sent.last()) {
            (Some(first), Some(last)) => println!(
                "{}: sent {} snapshot(s) of '{}' ({first}..{last}, {} bytes{}); it has {last} now",
                s.remote,
                s.sent.len(),
                s.tree,
                s.bytes,
                if s.verified > 0 {
                    format!(", {} checked against the manifest", s.verified)
                } else {
                    String::new()
                }
            ),
            _ => println!(
                "{}: '{}' is up to date ({})",
                s.remote,
                s.tree,
                or_dash(s.newest)
            ),
        }
    }
    Ok(())
}

pub fn replica(store: &Store, json: bool, c: &ReplicaCommand) -> Result<()> {
    match c {
        ReplicaCommand::Promote(a) => {
            let latest = promote::promote(store, &a.tree)?;
            if json {
                print_json(
                    &serde_json::json!({ "tree": a.tree, "promoted": true, "latest": latest }),
                );
            } else {
                println!(
                    "'{}' is a tree of this store now (working tree: {})",
                    a.tree,
                    or_dash(latest)
                );
            }
            Ok(())
        }
    }
}

/// `replica-have`: always JSON, the primary reads it.
pub fn have(store: &Store, trees: &[TreeName]) -> Result<()> {
    print_json(&have::have(store, trees)?);
    Ok(())
}

/// `replica-receive TREE`: what it has, then snapshots from stdin, each
/// answered by a JSON line on stdout.
pub fn receive(store: &Store, tree: &TreeName) -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
    receive::serve(store, tree, &mut input, &mut std::io::stdout().lock())
}

/// Checks a remote's `--server`: the rule of `publish.server`.
fn check_server(s: &str) -> Result<()> {
    if s.is_empty()
        || s.starts_with('-')
        || s.chars()
            .any(|c| c.is_whitespace() || c == '/' || c == ':' && !s.starts_with('['))
    {
        bail!(crate::UsageError(format!(
            "--server '{s}' is not a host name or address (IPv6 in brackets)"
        )));
    }
    Ok(())
}
