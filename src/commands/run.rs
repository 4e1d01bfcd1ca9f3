//! Commands that run something inside a tree: `run`, `shell`, `update`, and
//! `create --debootstrap`.

use super::tree_views;
use crate::cli::{CreateArgs, RunArgs, SandboxArgs, ShellArgs, UpdateArgs};
use crate::output::{escape, json as print_json};
use crate::sandbox::paths::TreeRoot;
use crate::sandbox::Access;
use crate::store::Store;
use crate::transaction::{self, CommandFailed, OnFailure, Report, Request};
use crate::trees::debootstrap::{self, Bootstrap};
use crate::WithDetail;
use anyhow::Result;
use rustix::fs::OFlags;

/// What `sidus update` runs: non-interactive, keeping locally changed
/// configuration files (the admin's) over the packages' new ones.
const UPGRADE: &str = "apt-get update && apt-get -y -o Dpkg::Options::=--force-confdef \
-o Dpkg::Options::=--force-confold full-upgrade";

fn access(a: &SandboxArgs) -> Access {
    Access {
        network: a.network,
        capabilities: a.capabilities.clone(),
    }
}

/// Refuses an empty command name (`sidus run TREE -- ''`) as the usage error
/// it is, before anything is opened.
pub fn check_command(argv: &[String]) -> Result<()> {
    match argv.first() {
        Some(prog) if !prog.is_empty() => Ok(()),
        _ => Err(crate::UsageError(
            "no command to run: give it after `--` (e.g. sidus run TREE -- apt-get install -y hello)"
                .into(),
        )
        .into()),
    }
}

fn policy(keep: bool) -> OnFailure {
    if keep {
        OnFailure::Keep
    } else {
        OnFailure::Rollback
    }
}

pub fn run(store: &Store, json: bool, a: &RunArgs) -> Result<()> {
    execute(
        store,
        json,
        Request {
            tree: a.tree.clone(),
            argv: a.command.clone(),
            message: a.message.clone(),
            on_failure: policy(a.keep_on_failure),
            extra_env: vec![],
            access: access(&a.sandbox),
        },
    )
}

pub fn update(store: &Store, json: bool, a: &UpdateArgs) -> Result<()> {
    execute(
        store,
        json,
        Request {
            tree: a.tree.clone(),
            argv: vec!["/bin/sh".into(), "-c".into(), UPGRADE.into()],
            message: Some(a.message.clone().unwrap_or_else(|| "update".into())),
            on_failure: policy(a.keep_on_failure),
            extra_env: vec![],
            access: access(&a.sandbox),
        },
    )
}

pub fn shell(store: &Store, json: bool, a: &ShellArgs) -> Result<()> {
    let root = TreeRoot::open(&store.backend.tree_path(&a.tree)?)?;
    let shell = if root.open_in("bin/bash", OFlags::PATH).is_ok() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    drop(root);
    let tag = format!("sidus:{}", a.tree);
    eprintln!(
        "sidus: shell in tree '{}'; when it exits, the changes are kept as a post snapshot",
        a.tree
    );
    execute(
        store,
        json,
        Request {
            tree: a.tree.clone(),
            argv: vec![shell.into()],
            message: Some(a.message.clone().unwrap_or_else(|| "shell".into())),
            // A shell's status is its last command's: no reason to throw the
            // session away.
            on_failure: OnFailure::Keep,
            extra_env: vec![
                ("PS1".into(), format!("({tag}) \\w # ")),
                ("debian_chroot".into(), tag),
            ],
            access: access(&a.sandbox),
        },
    )
}

/// Runs the transaction, journals it (a failed command as a failure), says
/// what happened, and passes the command's status on.
fn execute(store: &Store, json: bool, req: Request) -> Result<()> {
    let mut got: Option<Report> = None;
    let result = store.journaled("run", Some(&req.tree), || {
        let r = transaction::run(store, &req)?;
        let ids: Vec<String> = std::iter::once(r.pre.to_string())
            .chain(r.post.iter().map(|p| p.to_string()))
            .collect();
        let failed = (!r.outcome.success()).then(|| CommandFailed {
            code: u8::try_from(r.status).unwrap_or(1).max(1),
            message: describe_failure(&r),
            snapshots: ids.clone(),
        });
        got = Some(r);
        match failed {
            Some(f) => Err(f.into()),
            None => Ok(((), ids)),
        }
    });
    if let Some(r) = &got {
        for w in &r.warnings {
            eprintln!("sidus: warning: {}", escape(w));
        }
        if json {
            // One document: a failed command's report rides in the error's.
            if let Err(e) = result {
                return Err(WithDetail {
                    error: e,
                    key: "run",
                    value: serde_json::to_value(r).expect("report serializes"),
                }
                .into());
            }
            print_json(r);
        } else if let (true, Some(post)) = (r.outcome.success(), &r.post) {
            // stdout is the command's: sidus speaks on stderr.
            eprintln!(
                "sidus: tree '{}': post snapshot {post} (pre {})",
                r.tree, r.pre
            );
        }
    }
    result
}

fn describe_failure(r: &Report) -> String {
    match (&r.post, r.rolled_back) {
        (Some(post), _) => format!(
            "`{}` {}; tree '{tree}' kept as post snapshot {post} (sidus rollback {tree}@{} undoes it)",
            r.command,
            r.outcome,
            r.pre,
            tree = r.tree,
        ),
        _ => format!(
            "`{}` {}; tree '{}' rolled back to {} (--keep-on-failure keeps a failed run)",
            r.command, r.outcome, r.tree, r.pre
        ),
    }
}

pub fn create(store: &Store, json: bool, a: &CreateArgs) -> Result<()> {
    let b = Bootstrap {
        suite: a.debootstrap.clone().expect("dispatched on --debootstrap"),
        mirror: a.mirror.clone(),
        include: a.include.clone(),
        variant: a.variant.clone(),
    };
    let (path, snap) = store.journaled("create", Some(&a.tree), || {
        let (path, snap) = debootstrap::create(store, &a.tree, &b)?;
        let ids = vec![snap.id.to_string()];
        Ok(((path, snap), ids))
    })?;
    if !json {
        println!(
            "created tree '{}' at {} ({} {}); snapshot {}",
            a.tree,
            path.display(),
            b.suite,
            b.variant,
            snap.id
        );
    }
    // A kernel from --include made its initramfs before the node support was
    // in the tree: make it again, as one run, so the tree can be published.
    if boots(&path) {
        execute(
            store,
            false,
            Request {
                tree: a.tree.clone(),
                argv: ["update-initramfs", "-u", "-k", "all"]
                    .map(String::from)
                    .to_vec(),
                message: Some("initramfs with the sidus node support".into()),
                on_failure: OnFailure::Rollback,
                extra_env: vec![],
                access: Access::default(),
            },
        )?;
    }
    if json {
        print_json(&tree_views(store, Some(&a.tree))?.first());
    }
    Ok(())
}

/// Whether the tree at `path` has a kernel in /boot and initramfs-tools.
fn boots(path: &std::path::Path) -> bool {
    crate::publish::boot::find_kernel(path, "the new tree").is_ok()
        && crate::publish::intree::TreeRoot::open(path)
            .is_ok_and(|r| crate::publish::node::has_initramfs_tools(&r))
}
