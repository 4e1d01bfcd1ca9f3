//! The fleet: node inventory, nodes and groups listings, per-group publish.

use crate::cli::{NodeCommand, NodesArgs, PublishArgs};
use crate::output::{json as print_json, or_dash, table};
use crate::publish::fleet::groups::Groups;
use crate::publish::fleet::inventory::{GroupName, Inventory, Node, NodeChange};
use crate::publish::fleet::ops::{self, InventoryChanged};
use crate::publish::fleet::view::{self, NodeState};
use crate::publish::fleet::{import, nfs, publish as gpublish};
use crate::publish::state::PublishState;
use crate::store::Store;
use crate::UsageError;
use anyhow::{bail, Result};
use std::time::Instant;

/// `sidus node add|set|remove|import`.
pub fn node(store: &Store, json: bool, cmd: &NodeCommand) -> Result<()> {
    let (action, changed) = match cmd {
        NodeCommand::Add(a) => {
            let n = Node {
                name: a.name.clone(),
                mac: a.mac,
                ip: a.ip,
                group: a.group.clone(),
            };
            let c = store.journaled("node-add", None, || {
                let c = ops::change(store, |inv| {
                    inv.with_added(vec![n], |_| "refusing to add".to_string())
                })?;
                Ok((c, vec![]))
            })?;
            ("added", c)
        }
        NodeCommand::Set(a) => {
            let change = NodeChange {
                mac: a.mac,
                ip: if a.no_ip { Some(None) } else { a.ip.map(Some) },
                group: if a.no_group {
                    Some(None)
                } else {
                    a.group.clone().map(Some)
                },
            };
            if change == NodeChange::default() {
                return Err(UsageError(
                    "nothing to change: give --mac, --ip, --no-ip, --group or --no-group".into(),
                )
                .into());
            }
            let c = store.journaled("node-set", None, || {
                Ok((
                    ops::change(store, |inv| inv.with_changed(&a.name, &change))?,
                    vec![],
                ))
            })?;
            ("changed", c)
        }
        NodeCommand::Remove(a) => {
            let c = store.journaled("node-remove", None, || {
                Ok((ops::change(store, |inv| inv.without(&a.names))?, vec![]))
            })?;
            ("removed", c)
        }
        NodeCommand::Import(a) => {
            let c = store.journaled("node-import", None, || {
                let parsed = import::read(&a.file)?;
                let whence = |i: usize| parsed.whence[i].clone();
                let c = ops::change(store, |inv| {
                    let base = if a.replace {
                        Inventory::default()
                    } else {
                        inv.clone()
                    };
                    base.with_added(parsed.nodes.clone(), whence).map_err(|e| {
                        anyhow::anyhow!("{}: {e}; nothing was imported", a.file.display())
                    })
                })?;
                Ok((c, vec![]))
            })?;
            ("imported", c)
        }
    };
    if json {
        print_json(&changed);
        return Ok(());
    }
    say(action, &changed);
    Ok(())
}

fn say(action: &str, c: &InventoryChanged) {
    let list = |v: &[String]| match v.len() {
        0 => String::new(),
        1..=3 => v.join(", "),
        n => format!("{n} nodes"),
    };
    let what = match action {
        "added" | "imported" => list(&c.added),
        "removed" => list(&c.removed),
        _ => list(&c.changed),
    };
    let mut line = if what.is_empty() {
        format!("nothing {action}: the inventory already says so")
    } else {
        format!("{action} {what}")
    };
    if action == "imported" && (!c.removed.is_empty() || !c.changed.is_empty()) {
        line.push_str(&format!(
            " (removed {}, changed {})",
            c.removed.len(),
            c.changed.len()
        ));
    }
    if !c.new_groups.is_empty() {
        let g: Vec<String> = c.new_groups.iter().map(|g| g.to_string()).collect();
        line.push_str(&format!("; new group(s): {}", g.join(", ")));
    }
    println!(
        "{line}; {} node(s) in the inventory; {} boot entry file(s) written, {} removed",
        c.nodes, c.entries.written, c.entries.removed
    );
}

/// `sidus nodes [--stale] [--group G]`.
pub fn nodes(store: &Store, json: bool, a: &NodesArgs) -> Result<()> {
    let inv = Inventory::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    if let Some(g) = &a.group {
        check_group(&inv, &groups, g)?;
    }
    let state = PublishState::load(store.state_dir())?;
    let seen = nfs::scan(&store.config.publish().root);
    let views: Vec<view::NodeView> = view::node_views(&inv, &groups, &state, &seen)
        .into_iter()
        .filter(|v| a.group.is_none() || v.group == a.group)
        .filter(|v| !a.stale || v.state == NodeState::Stale)
        .collect();
    if a.stale {
        if json {
            print_json(&views.iter().map(|v| &v.name).collect::<Vec<_>>());
        } else {
            for v in &views {
                println!("{}", v.name);
            }
        }
        return Ok(());
    }
    if json {
        print_json(&serde_json::json!({ "nodes": views }));
        return Ok(());
    }
    if views.is_empty() {
        println!("no nodes (add them with `sidus node add` or `sidus node import`)");
    }
    let rows = views
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                v.mac.to_string(),
                or_dash(v.ip),
                or_dash(v.group.as_ref()),
                match (&v.assigned, &v.assigned_by) {
                    (Some(t), Some(by)) if by != "default" => t.clone(),
                    (Some(t), _) => format!("{t} (default)"),
                    _ => "-".into(),
                },
                or_dash(v.booted.as_ref()),
                format!("{:?}", v.state).to_lowercase(),
            ]
        })
        .collect();
    table(
        &["NAME", "MAC", "IP", "GROUP", "ASSIGNED", "BOOTED", "STATE"],
        rows,
    );
    Ok(())
}

fn check_group(inv: &Inventory, groups: &Groups, g: &GroupName) -> Result<()> {
    if inv.in_group(g).next().is_none() && !groups.groups.contains_key(g) {
        bail!("unknown group '{g}': no node is in it (see `sidus groups`)");
    }
    Ok(())
}

/// `sidus groups`.
pub fn groups(store: &Store, json: bool) -> Result<()> {
    let inv = Inventory::load(store.state_dir())?;
    let groups = Groups::load(store.state_dir())?;
    let v = view::group_views(&inv, &groups);
    if json {
        print_json(&serde_json::json!({ "groups": v }));
        return Ok(());
    }
    if v.is_empty() {
        println!("no groups (give nodes one with `sidus node add NAME --mac MAC --group GROUP`)");
    }
    let rows = v
        .iter()
        .map(|g| {
            vec![
                g.name.to_string(),
                g.nodes.to_string(),
                g.current
                    .clone()
                    .unwrap_or_else(|| "- (default entry)".into()),
                g.previous.last().cloned().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["GROUP", "NODES", "BOOTS", "PREVIOUS"], rows);
    Ok(())
}

/// `sidus publish TREE@REF --group G` and `publish --rollback --group G [TREE]`.
pub fn publish_group(
    store: &Store,
    json: bool,
    a: &PublishArgs,
    g: &GroupName,
    start: Instant,
) -> Result<()> {
    let p = if a.rollback {
        if let Some(t) = a.target.as_ref().filter(|t| t.reference.is_some()) {
            return Err(UsageError(format!(
                "--rollback --group goes back to the group's previous snapshot: give no snapshot ({t})"
            ))
            .into());
        }
        let tree = a.target.as_ref().map(|t| t.tree.clone()).or_else(|| {
            let groups = Groups::load(store.state_dir()).ok()?;
            groups
                .groups
                .get(g)?
                .previous
                .last()
                .map(|t| t.tree.clone())
        });
        store.journaled("publish-group-rollback", tree.as_ref(), || {
            let p = gpublish::rollback(
                store,
                g,
                a.target.as_ref().map(|t| &t.tree),
                start,
                a.allow_secrets,
            )?;
            let ids = vec![p.id.to_string()];
            Ok((p, ids))
        })?
    } else {
        let target = a
            .target
            .as_ref()
            .expect("clap requires TREE unless --rollback");
        store
            .journaled("publish-group", Some(&target.tree), || {
                let p = gpublish::publish(store, g, target, start, a.allow_secrets)?;
                let ids = vec![p.id.to_string()];
                Ok((p, ids))
            })
            .map_err(super::publish::with_secrets)?
    };
    if json {
        print_json(&p);
        return Ok(());
    }
    super::publish::note(p.exports, store);
    if p.unchanged {
        println!(
            "group {} already boots {}@{} (checked: mounted, exported, boot entries)",
            p.group, p.tree, p.id
        );
    } else {
        let was = p
            .previous
            .as_ref()
            .map(|x| format!("{x}, still exported"))
            .unwrap_or_else(|| "the default entry".into());
        println!(
            "published {}@{} to group {} ({} node(s); was {was}): kernel {} from {}; entries {} and {} ({} ms)",
            p.tree,
            p.id,
            p.group,
            p.nodes,
            p.kernel,
            p.path.display(),
            p.ipxe.display(),
            p.pxelinux.display(),
            p.boot_entry_ms
        );
    }
    Ok(())
}

/// `sidus unpublish --group G`.
pub fn unpublish_group(store: &Store, json: bool, g: &GroupName) -> Result<()> {
    let d = store.journaled("unpublish-group", None, || {
        Ok((gpublish::to_default(store, g)?, vec![]))
    })?;
    if json {
        print_json(&d);
        return Ok(());
    }
    println!(
        "group {} boots the default entry again (it booted {}, still exported); entry {}",
        d.group,
        d.was,
        d.ipxe.display()
    );
    Ok(())
}
