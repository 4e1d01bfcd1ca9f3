//! One function per subcommand: open the store, call the policy in `trees`, print.

mod archive;
mod content;
mod diff;
mod doctor;
mod fleet;
mod history;
mod init;
mod publish;
mod publish_on;
mod read;
mod replica;
mod run;
mod write;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::store::{Invocation, Store};
use anyhow::Result;
use serde::Serialize;
use sidus_backends::{Origin, Snapshot, TreeName};
use std::path::PathBuf;

/// A tree as `list` and `--json` show it.
#[derive(Debug, Serialize)]
pub struct TreeView {
    /// Its name.
    pub name: TreeName,
    /// The backend holding it.
    pub backend: &'static str,
    /// Where the working tree is mounted.
    pub path: PathBuf,
    /// How many snapshots it has.
    pub snapshots: usize,
    /// Its newest snapshot's ID.
    pub latest: Option<String>,
    /// The snapshot it was cloned from.
    pub origin: Option<Origin>,
    /// Why its record cannot be read (its origin is then unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    if let Command::Init(args) = &cli.command {
        return init::init(&cli, args);
    }
    if let Command::Failpoints = &cli.command {
        crate::state::failpoint::ALL
            .iter()
            .for_each(|f| println!("{f}"));
        return Ok(());
    }
    if let Command::Completions(a) = &cli.command {
        let mut out = std::io::stdout().lock();
        return crate::completion::write_script(a.shell, &mut out)
            .map_err(|e| anyhow::anyhow!("write the {:?} completion script: {e}", a.shell));
    }
    if let Command::Run(a) = &cli.command {
        run::check_command(&a.command)?;
    }
    let config = Config::load(&cli.config)?;
    let store = Store::open(config, Invocation::current())?;
    let json = cli.json;
    match cli.command {
        Command::Init(_) | Command::Failpoints | Command::Completions(_) => {
            unreachable!("handled above")
        }
        Command::Create(a) if a.debootstrap.is_some() => run::create(&store, json, &a),
        Command::Create(a) => write::create(&store, json, &a),
        Command::List => read::list(&store, json),
        Command::Snapshot(a) => write::snapshot(&store, json, &a),
        Command::Snapshots(a) => read::snapshots(&store, json, &a.tree),
        Command::Show(a) => read::show(&store, json, &a.target),
        Command::Delete(a) => write::delete(&store, json, &a.target),
        Command::Destroy(a) => write::destroy(&store, json, &a.tree),
        Command::Clone(a) => write::clone(&store, json, &a),
        Command::Rollback(a) => write::rollback(&store, json, &a.target),
        Command::Path(a) => read::path(&store, json, &a.target),
        Command::Log(a) => read::log(&store, json, &a),
        Command::Pin(a) => history::pin(&store, json, &a),
        Command::Unpin(a) => history::unpin(&store, json, &a),
        Command::Pins(a) => history::pins(&store, json, &a),
        Command::Prune(a) => history::prune(&store, json, &a),
        Command::Diff(a) => diff::diff(&store, json, &a),
        Command::Manifest(a) => content::manifest(&store, json, &a),
        Command::Verify(a) => content::verify(&store, json, &a),
        Command::Export(a) => archive::export(&store, json, &a),
        Command::Import(a) => archive::import(&store, json, &a),
        Command::Sbom(a) => content::sbom(&store, &a),
        Command::Du(a) => history::du(&store, json, &a.tree),
        Command::Publish(a) => publish::publish(&store, json, &a),
        Command::Unpublish(a) => publish::unpublish(&store, json, &a),
        Command::Status(a) => publish::status(&store, json, a.tree.as_ref()),
        Command::Restore => publish::restore(&store, json),
        Command::Doctor(a) => doctor::doctor(&store, json, &a),
        Command::Node(a) => fleet::node(&store, json, &a.command),
        Command::Nodes(a) => fleet::nodes(&store, json, &a),
        Command::Groups => fleet::groups(&store, json),
        Command::PrepareNode(a) => publish::prepare_node(&store, json, &a.tree),
        Command::Run(a) => run::run(&store, json, &a),
        Command::Shell(a) => run::shell(&store, json, &a),
        Command::Update(a) => run::update(&store, json, &a),
        Command::Remote(a) => replica::remote(&store, json, &a.command),
        Command::Replicate(a) => replica::replicate(&store, json, &a),
        Command::Replica(a) => replica::replica(&store, json, &a.command),
        Command::ReplicaHave(a) => replica::have(&store, &a.trees),
        Command::ReplicaReceive(a) => replica::receive(&store, &a.tree),
    }
}

/// Builds the views of `trees` from one snapshot listing.
pub fn tree_views(store: &Store, only: Option<&TreeName>) -> Result<Vec<TreeView>> {
    let trees = store.backend.list_trees()?;
    let snaps: Vec<Snapshot> = store.backend.list_snapshots(None)?;
    Ok(trees
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == &t.name))
        .map(|t| {
            let mine = snaps.iter().filter(|s| s.tree == t.name);
            let count = mine.clone().count();
            let latest = mine.map(|s| &s.id).max().map(|id| id.to_string());
            TreeView {
                backend: store.backend.kind(),
                path: t.path,
                snapshots: count,
                latest,
                origin: t.origin,
                damaged: t.damaged,
                name: t.name,
            }
        })
        .collect())
}
