//! Serving snapshots to nodes: publish, unpublish, status, restore, prepare-node.

use crate::cli::{PublishArgs, UnpublishArgs};
use crate::output::{escape, json as print_json, or_dash, table};
use crate::publish::secrets::{self, SecretsFound};
use crate::publish::{clients_policy, node, ops, restore as restore_mod, status as status_mod};
use crate::store::Store;
use crate::trees;
use crate::UsageError;
use anyhow::Result;
use sidus_backends::TreeName;
use std::time::Instant;

pub(super) fn note(applied: crate::publish::system::Applied, store: &Store) {
    if let Some(n) = applied.note(&store.config.publish().exports_file) {
        eprintln!("sidus: note: {}", escape(&n));
    }
}

/// `publish --json`: what was published, and what to warn about.
#[derive(serde::Serialize)]
struct PublishOut<'a> {
    #[serde(flatten)]
    published: &'a ops::Published,
    /// The `clients` warnings of [`clients_policy::world_warnings`].
    warnings: Vec<String>,
}

/// A refusal for secrets carries the secrets it names, so `--json` prints
/// them in the one error document.
pub(super) fn with_secrets(e: anyhow::Error) -> anyhow::Error {
    let Some(found) = e.downcast_ref::<SecretsFound>() else {
        return e;
    };
    let value = serde_json::json!({
        "tree": found.tree,
        "id": found.id,
        "secrets": found.secrets,
    });
    crate::WithDetail {
        error: e,
        key: "refused",
        value,
    }
    .into()
}

pub fn publish(store: &Store, json: bool, a: &PublishArgs) -> Result<()> {
    if !a.on.is_empty() {
        return super::publish_on::publish_on(store, json, a);
    }
    if !a.fallback.is_empty() {
        return with_fallbacks(store, json, a);
    }
    let start = Instant::now();
    for w in clients_policy::world_warnings(&store.config.publish()) {
        eprintln!("sidus: warning: {w}");
    }
    if let Some(g) = &a.group {
        return super::fleet::publish_group(store, json, a, g, start);
    }
    let target = a
        .target
        .as_ref()
        .expect("clap requires TREE without --group");
    if a.rollback && target.reference.is_some() {
        return Err(UsageError(format!(
            "--rollback goes back to the previously published snapshot: give the tree only ({}), not {target}",
            target.tree
        ))
        .into());
    }
    let action = if a.rollback {
        "publish-rollback"
    } else {
        "publish"
    };
    let p = store
        .journaled(action, Some(&target.tree), || {
            let p = if a.rollback {
                ops::rollback(store, &target.tree, start, a.allow_secrets)?
            } else {
                ops::publish(store, target, start, a.allow_secrets)?
            };
            if let Some(n) = secrets::journal_note(&p.secrets) {
                store.note_outcome(n);
            }
            let ids = vec![p.id.to_string()];
            Ok((p, ids))
        })
        .map_err(with_secrets)?;
    for s in &p.secrets {
        // A one-off flag is warned about; the config's list is a lasting choice.
        let by = s.allowed_by.as_deref().unwrap_or_default();
        let level = if by == "--allow-secrets" {
            "warning"
        } else {
            "note"
        };
        eprintln!(
            "sidus: {level}: {}@{} shares {} ({}) with every client: allowed by {by}",
            p.tree, p.id, s.path, s.what
        );
    }
    if json {
        print_json(&PublishOut {
            published: &p,
            warnings: clients_policy::world_warnings(&store.config.publish()),
        });
        return Ok(());
    }
    note(p.exports, store);
    if p.unchanged {
        println!(
            "{}@{} is already published (checked: mounted, exported, boot entries)",
            p.tree, p.id
        );
    } else {
        let was = p
            .previous
            .as_ref()
            .map(|x| format!(" (was {x}, still exported)"))
            .unwrap_or_default();
        println!(
            "published {}@{}{was}: nodes boot kernel {} from {} (fsid {}); boot entries {} and {} ({} ms)",
            p.tree,
            p.id,
            p.kernel,
            p.path.display(),
            p.fsid,
            p.ipxe.display(),
            p.pxelinux.display(),
            p.boot_entry_ms
        );
    }
    Ok(())
}

/// `publish TREE@REF --fallback SERVER:PATH...`: the list of other servers
/// of that ID replaced for this publish, and put back if it fails.
fn with_fallbacks(store: &Store, json: bool, a: &PublishArgs) -> Result<()> {
    use crate::publish::{fallback::Fallback, served_by};
    let list = a
        .fallback
        .iter()
        .map(|f| Fallback::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let target = a
        .target
        .as_ref()
        .expect("clap requires TREE without --group");
    let id = super::publish_on::target_id(store, target)?;
    let tree = &target.tree;
    let old = served_by::update(store, |s| {
        let old = s.of(tree, &id);
        s.set(tree, &id, list);
        old
    })?;
    let plain = PublishArgs {
        target: Some(crate::trees::refs::TreeRef {
            tree: tree.clone(),
            reference: Some(id.to_string()),
        }),
        rollback: false,
        group: a.group.clone(),
        allow_secrets: a.allow_secrets,
        on: Vec::new(),
        fallback: Vec::new(),
    };
    publish(store, json, &plain).inspect_err(|_| {
        if let Err(e) = served_by::update(store, |s| s.set(tree, &id, old)) {
            eprintln!("sidus: warning: the servers of {tree}@{id} were not put back: {e:#}");
        }
    })
}

pub fn unpublish(store: &Store, json: bool, a: &UnpublishArgs) -> Result<()> {
    if let Some(g) = &a.group {
        return super::fleet::unpublish_group(store, json, g);
    }
    let target = a
        .target
        .as_ref()
        .expect("clap requires TREE@REF without --group");
    let u = store.journaled("unpublish", Some(&target.tree), || {
        let u = ops::unpublish(store, target, a.force)?;
        let ids = vec![u.id.to_string()];
        Ok((u, ids))
    })?;
    for w in &u.warnings {
        eprintln!("sidus: warning: {}", escape(w));
    }
    if json {
        print_json(&u);
        return Ok(());
    }
    note(u.exports, store);
    if !u.cut_off_clients.is_empty() {
        eprintln!(
            "sidus: warning: cut off NFS clients {}",
            escape(&u.cut_off_clients.join(", "))
        );
    }
    let extra = if u.was_current {
        "; it was current: the tree's boot entries are removed until the next publish"
    } else {
        ""
    };
    println!("unpublished {}@{}{extra}", u.tree, u.id);
    Ok(())
}

pub fn status(store: &Store, json: bool, tree: Option<&TreeName>) -> Result<()> {
    if let Some(t) = tree {
        trees::find_tree(store, t)?;
    }
    let s = status_mod::status(store, tree)?;
    for w in &s.warnings {
        eprintln!("sidus: warning: {w}");
    }
    if json {
        print_json(&s);
        return Ok(());
    }
    if s.trees.is_empty() {
        match tree {
            Some(t) => println!("tree '{t}' is not published"),
            None => println!("nothing is published"),
        }
    }
    for t in &s.trees {
        println!(
            "{}: current {}, kernel {}",
            t.tree,
            or_dash(t.current.as_ref()),
            or_dash(t.boot.kernel.as_ref())
        );
        println!(
            "  ipxe     {} (names {})",
            t.boot.ipxe.display(),
            or_dash(t.boot.ipxe_names.as_ref())
        );
        println!(
            "  pxelinux {} (names {})",
            t.boot.pxelinux.display(),
            or_dash(t.boot.pxelinux_names.as_ref())
        );
        let rows = t
            .exported
            .iter()
            .map(|e| {
                vec![
                    format!("  {}{}", e.id, if e.current { " *" } else { "" }),
                    if e.mounted { "yes" } else { "NO" }.into(),
                    match e.in_kernel {
                        Some(true) => "yes".into(),
                        Some(false) => "NO".into(),
                        None => "?".into(),
                    },
                    if e.clients.is_empty() {
                        "-".into()
                    } else {
                        e.clients.join(",")
                    },
                    e.path.display().to_string(),
                    e.options.clone(),
                ]
            })
            .collect();
        table(
            &["  ID", "MOUNTED", "EXPORTED", "CLIENTS", "PATH", "OPTIONS"],
            rows,
        );
    }
    if !s.nfsd_running {
        println!("nfsd is not running here");
    } else if !s.nfsv4_clients.is_empty() {
        println!("NFSv4 clients: {}", escape(&s.nfsv4_clients.join(", ")));
    }
    Ok(())
}

pub fn restore(store: &Store, json: bool) -> Result<()> {
    let r = store.journaled("restore", None, || {
        let r = restore_mod::restore(store)?;
        let ids = r.served.clone();
        Ok((r, ids))
    })?;
    if json {
        print_json(&r);
        return Ok(());
    }
    note(r.exports, store);
    for t in &r.boot_entries_fixed {
        println!("rewrote the boot entries of '{t}' to name its current snapshot");
    }
    println!("restored {} export(s)", r.served.len());
    Ok(())
}

pub fn prepare_node(store: &Store, json: bool, tree: &TreeName) -> Result<()> {
    let p = store.journaled("prepare-node", Some(tree), || {
        let _lock = store.lock(tree)?;
        let root = trees::path(
            store,
            &crate::trees::refs::TreeRef {
                tree: tree.clone(),
                reference: None,
            },
        )?;
        Ok((node::install(&root)?, vec![]))
    })?;
    if json {
        print_json(&p);
        return Ok(());
    }
    for f in &p.files {
        println!("wrote {f}");
    }
    if !p.has_initramfs_tools {
        eprintln!(
            "sidus: warning: tree '{tree}' has no initramfs-tools: install a kernel and initramfs-tools in it, or these files do nothing"
        );
    }
    println!(
        "next: regenerate the tree's initramfs (inside the tree: update-initramfs -u -k all), then `sidus snapshot {tree}` and `sidus publish {tree}`"
    );
    Ok(())
}
