//! The clap structs of remotes and replication.

use clap::{Args, Subcommand};
use sidus_backends::TreeName;

/// `sidus remote`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// What to do with remotes.
    #[command(subcommand)]
    pub command: RemoteCommand,
}

/// The subcommands of `sidus remote`.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote: another boot server running sidus, by ssh or by any command.
    ///
    /// With a URL, `ssh -o BatchMode=yes [-p PORT] [USER@]HOST -- sidus ARGS...`
    /// reaches it (the remote's default config). With --command, `sh -c` runs
    /// CMD with the remote sidus's arguments appended as separate words, e.g.
    /// `--command 'ssh -i /root/.ssh/replica boot2 sidus'` or, for a second store
    /// on this host, `--command 'sidus --config /etc/sidus/second.toml'`.
    Add(RemoteAddArgs),
    /// List remotes.
    List,
    /// Remove a remote (what it holds is untouched).
    Remove(RemoteNameArg),
    /// Per remote and tree: the newest common snapshot, how many behind, bytes to send, last replication.
    Status(RemoteStatusArgs),
}

/// `sidus remote add`.
#[derive(Debug, Args)]
pub struct RemoteAddArgs {
    /// The remote's name.
    pub name: String,
    /// `ssh://[user@]host[:port]`.
    #[arg(required_unless_present = "command", conflicts_with = "command")]
    pub url: Option<String>,
    /// A shell command line that runs the remote sidus; its arguments are appended.
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// The address nodes mount from on that server (its publish.server): when
    /// `publish --on` serves an ID there, the boot entries here and there
    /// list both servers, and iPXE tries the next when one fails.
    #[arg(long, value_name = "ADDRESS")]
    pub server: Option<String>,
}

/// A remote's name.
#[derive(Debug, Args)]
pub struct RemoteNameArg {
    /// The remote's name.
    pub name: String,
}

/// `sidus remote status`.
#[derive(Debug, Args)]
pub struct RemoteStatusArgs {
    /// Remotes to ask (default: every one).
    pub names: Vec<String>,
    /// Only this tree (default: every tree that is not itself a replica).
    #[arg(long, value_name = "TREE", add = crate::completion::trees())]
    pub tree: Option<TreeName>,
}

/// `sidus replicate`.
#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
    /// Remote to replicate to (repeatable; default: every remote).
    #[arg(long = "to", value_name = "REMOTE")]
    pub to: Vec<String>,
    /// Send each snapshot whole as the archive of `sidus export` (checked
    /// against its manifest there), even where both stores have the same
    /// native stream; the default only between different backends and for LVM.
    #[arg(long)]
    pub archive: bool,
}

/// `sidus replica`.
#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// What to do with a replica.
    #[command(subcommand)]
    pub command: ReplicaCommand,
}

/// The subcommands of `sidus replica`.
#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Make a replica a tree of this store: writable, its working tree the newest snapshot received.
    ///
    /// Until then run, rollback, snapshot, delete and prune refuse it; replication
    /// from the old primary refuses it afterwards.
    Promote(PromoteArgs),
}

/// `sidus replica promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The replica tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
}

/// `sidus replica-have` (run by a primary's `replicate` on its remotes).
#[derive(Debug, Args)]
pub struct ReplicaHaveArgs {
    /// Trees to report on.
    pub trees: Vec<TreeName>,
}

/// `sidus replica-receive` (run by a primary's `replicate` on its remotes).
#[derive(Debug, Args)]
pub struct ReplicaReceiveArgs {
    /// The tree to receive snapshots of.
    pub tree: TreeName,
}
