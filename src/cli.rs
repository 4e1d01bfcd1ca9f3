//! The command line: one clap struct per subcommand, no logic.

use crate::config::{BackendKind, DEFAULT_PATH};
use crate::sandbox::{caps::Cap, Network};
use crate::trees::refs::TreeRef;
use clap::{Args, Parser, Subcommand};
use sidus_backends::TreeName;
use std::path::PathBuf;

mod replica;
pub use replica::*;

/// Version control for the system trees of diskless clusters.
///
/// sidus keeps named system trees (btrfs subvolumes, ZFS datasets or LVM thin
/// volumes), snapshots them with stable IDs, clones them instantly and rolls them
/// back without losing history. Exit status: 0 success, 1 the operation failed,
/// 2 usage error; `run`, `shell` and `update` give the command's own status,
/// or 125 (sidus failed), 126 (the command cannot be run), 127 (not found).
#[derive(Debug, Parser)]
#[command(name = "sidus", version, max_term_width = 100)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "SIDUS_CONFIG", default_value = DEFAULT_PATH, value_name = "PATH")]
    pub config: PathBuf,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log every external command sidus runs, on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the config and prepare the store (default: a btrfs loop image under /var/lib/sidus).
    Init(InitArgs),
    /// Create a tree, empty or as a copy of a directory.
    Create(CreateArgs),
    /// List trees with their snapshot count and latest snapshot.
    List,
    /// Take a snapshot of a tree and print its ID.
    Snapshot(SnapshotArgs),
    /// List a tree's snapshots, oldest first.
    Snapshots(TreeArg),
    /// Show one snapshot.
    Show(RefArg),
    /// Delete one snapshot.
    Delete(RefArg),
    /// Remove a tree and all of its snapshots.
    Destroy(TreeArg),
    /// Make a new tree from a snapshot (or the current state) of another, instantly.
    Clone(CloneArgs),
    /// Make the working tree the content of a snapshot, keeping every snapshot.
    Rollback(RefArg),
    /// Print where a tree, or a read-only view of a snapshot, is.
    Path(PathArgs),
    /// Show the journal of changes, newest first.
    Log(LogArgs),
    /// Pin a snapshot so it is never deleted or pruned, optionally naming it with a label.
    Pin(PinArgs),
    /// Remove a pin (and its label).
    Unpin(UnpinArgs),
    /// List pinned snapshots.
    Pins(PinsArgs),
    /// Delete the snapshots a retention policy does not keep (never protected ones).
    Prune(PruneArgs),
    /// Show the files or Debian packages that differ between two snapshots.
    Diff(DiffArgs),
    /// Print a snapshot's content root hash; with --full, every entry of its manifest.
    ///
    /// The manifest lists every entry sorted by path: type, mode, uid, gid, size,
    /// BLAKE3 of the content, link target, device numbers and xattrs; no times,
    /// so identical content has one root hash. It is computed once per snapshot
    /// and kept; a later snapshot reuses the entries of an earlier one that did
    /// not change.
    Manifest(ManifestArgs),
    /// Check a snapshot, or a directory (--path), against the snapshot's manifest.
    ///
    /// Lists each difference (content, mode, owner, xattr, target, device, type,
    /// added, removed) and exits 1 if there is any.
    Verify(VerifyArgs),
    /// Write a snapshot as a deterministic archive (tar or squashfs) carrying its
    /// manifest, metadata and package list: the same snapshot gives the same bytes.
    Export(ExportArgs),
    /// Make a tree and a snapshot with the same ID and metadata from an archive
    /// of `sidus export`, verified against its manifest before it succeeds.
    ///
    /// On any failure (truncated archive, content not matching the manifest, a
    /// tree of that name already there) nothing is left behind.
    Import(ImportArgs),
    /// Print a software bill of materials of a snapshot's Debian packages
    /// (var/lib/dpkg/status), identical on every run of the same snapshot.
    Sbom(SbomArgs),
    /// Show the space each snapshot holds exclusively, where the backend reports it (btrfs: with quotas on).
    Du(TreeArg),
    /// Serve a snapshot to nodes over NFS and point the tree's boot entries at it.
    Publish(PublishArgs),
    /// Stop serving a published snapshot (never the current one, nor one clients mount, without --force).
    Unpublish(UnpublishArgs),
    /// Show what is published: current ID, exported IDs, paths, options, boot entries, clients.
    Status(StatusArgs),
    /// Mount and export every published snapshot again after a reboot (run by sidus-restore.service).
    Restore,
    /// Check every invariant of the store; print each problem with the command that fixes it.
    ///
    /// Checks: changes a sidus that died left unfinished (naming its pid,
    /// command and start), damaged records, what interrupted steps left in
    /// storage (scratch copies, swap volumes, records of gone trees), mounts
    /// and processes left in a tree and the daemon wrappers of a run that did
    /// not finish, the journal against the storage, publishing (each
    /// published ID mounted read-only, exported with its fsid, named by the
    /// boot entries, its kernel copy present), clone origins, and the modes
    /// of state and boot files. Without --repair nothing is changed and no
    /// lock is waited for: a tree a writer is changing is shown as busy.
    /// Exit status: 0 healthy, 1 problems found.
    Doctor(DoctorArgs),
    /// Change the node inventory: add, set, remove, import nodes by MAC.
    Node(NodeArgs),
    /// List the nodes: group, the TREE@ID each is assigned and the one it runs, stale or not.
    Nodes(NodesArgs),
    /// List the groups of nodes and the TREE@ID each boots.
    Groups,
    /// Install into a tree what a diskless node needs: NFS root with a tmpfs overlay, /run/sidus-node.
    PrepareNode(TreeArg),
    /// Run a command inside a tree, between a pre and a post snapshot; roll back if it fails.
    ///
    /// The command runs chrooted in the tree, in new mount, PID, IPC and UTS
    /// namespaces: fresh /proc with the host kernel's knobs (/proc/sys, SysRq...)
    /// read-only or masked, read-only /sys, a minimal /dev, tmpfs /run and /tmp,
    /// the host's network and resolv.conf (or none: --network none), a clean
    /// environment, and no daemon started by package scripts (policy-rc.d, fake
    /// start-stop-daemon). It keeps only the capabilities package scripts need:
    /// no module loading, clock setting, reboot, raw I/O or host network
    /// configuration (--capability adds one back). When it ends, every process
    /// it left is killed and every mount it made vanishes.
    ///
    /// Exit status, as podman's: the command's own; 125 when sidus itself
    /// failed (no such tree, the sandbox or a snapshot failed); 126 when the
    /// command exists but cannot be run; 127 when it is not in the tree; 2
    /// for a usage error, such as an empty command.
    Run(RunArgs),
    /// Open an interactive shell inside a tree, wrapped as `sidus run` is.
    ///
    /// Whatever the shell's exit status, the changes are kept as a post snapshot;
    /// `sidus rollback TREE@PRE` undoes them. Exit status as for `run`.
    Shell(ShellArgs),
    /// Upgrade a tree's packages (apt-get update, then full-upgrade) as one run.
    ///
    /// Exit status as for `run`.
    Update(UpdateArgs),
    /// List the failpoints crash tests can make sidus die at (SIDUS_FAILPOINT=NAME).
    #[command(hide = true)]
    Failpoints,
    /// Other boot servers to replicate trees to: add, list, remove, status.
    Remote(RemoteArgs),
    /// Send a remote every snapshot of a tree it lacks, incrementally, with IDs and metadata.
    ///
    /// Each remote is asked which snapshots it has; every newer one is sent
    /// from the one before it (the first from the newest both have) with the
    /// backend's own stream (btrfs send -p | btrfs receive, zfs send -i | zfs
    /// recv) and its metadata. The remote lists a snapshot only once it is
    /// complete and, where this store kept its manifest, its root hash matches.
    /// An interrupted transfer is removed there (ZFS: resumed with its token)
    /// by the next command.
    Replicate(ReplicateArgs),
    /// Replicas received from another store: promote.
    Replica(ReplicaArgs),
    /// What this store has of some trees, as JSON (for `replicate` on a primary).
    #[command(hide = true)]
    ReplicaHave(ReplicaHaveArgs),
    /// Say what this store has of a tree, then receive its snapshots from
    /// stdin (for `replicate` on a primary).
    #[command(hide = true)]
    ReplicaReceive(ReplicaReceiveArgs),
    /// Print the completion script of a shell (bash, zsh, fish).
    ///
    /// The script asks sidus for candidates, so tree names, snapshot IDs and
    /// labels (TREE@ID, TREE@LABEL) come from the store. Packages install it;
    /// by hand: `sidus completions bash > /etc/bash_completion.d/sidus`.
    Completions(CompletionsArgs),
}

/// `sidus completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: crate::completion::Shell,
}

/// `sidus publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The snapshot to serve, as TREE@REF; TREE alone means TREE@latest.
    #[arg(
        value_name = "TREE[@REF]",
        required_unless_present_all = ["rollback", "group"],
        add = crate::completion::tree_or_ref()
    )]
    pub target: Option<TreeRef>,
    /// Go back to the snapshot published before the current one (give TREE only,
    /// or nothing with --group).
    #[arg(long)]
    pub rollback: bool,
    /// Repoint only this group's nodes (one rename); the tree's default entry,
    /// and every other group, stay as they are.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<TreeName>,
    /// Publish even though the snapshot holds secrets every client would read
    /// (SSH host keys, munge.key, krb5.keytab, TLS keys, password hashes);
    /// the journal records which. See [publish.allow_secrets] for a lasting choice.
    #[arg(long)]
    pub allow_secrets: bool,
    /// Publish on this remote instead of here (repeatable): its own sidus
    /// publishes the ID this store resolves REF to, which it must have
    /// (`sidus replicate` first); the same TREE@ID has the same fsid everywhere.
    #[arg(long = "on", value_name = "REMOTE")]
    pub on: Vec<String>,
    /// Another server that serves the same TREE@ID at PATH (repeatable, in
    /// order): the iPXE entries try it when this server fails. Kept per ID;
    /// `publish --on` passes it to each remote for you.
    #[arg(long, value_name = "SERVER:PATH", conflicts_with_all = ["on", "rollback"])]
    pub fallback: Vec<String>,
}

/// `sidus unpublish`
#[derive(Debug, Args)]
pub struct UnpublishArgs {
    /// The published snapshot, as TREE@REF.
    #[arg(
        value_name = "TREE@REF",
        required_unless_present = "group",
        conflicts_with = "group",
        add = crate::completion::snapshot_ref()
    )]
    pub target: Option<TreeRef>,
    /// Also unpublish the current snapshot (removing the tree's boot entries) or
    /// one NFS clients still mount (they get ESTALE).
    #[arg(long)]
    pub force: bool,
    /// Instead: this group stops booting a snapshot of its own, and its nodes
    /// boot the default entry again (the snapshot stays exported).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<TreeName>,
}

/// `sidus node`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// What to change.
    #[command(subcommand)]
    pub command: NodeCommand,
}

/// The inventory changes.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a node (NAME follows the tree-name rule; MAC, address and name are unique).
    Add(NodeAddArgs),
    /// Change a node's MAC, address or group.
    Set(NodeSetArgs),
    /// Remove nodes from the inventory (their boot entries go).
    Remove(NodeRemoveArgs),
    /// Add the nodes of a CSV file (name,mac[,ip[,group]], or a header naming
    /// those columns) or a JSON file ([{"name", "mac", "ip", "group"}, ...]),
    /// all or none.
    Import(NodeImportArgs),
}

/// `sidus node add`
#[derive(Debug, Args)]
pub struct NodeAddArgs {
    /// The node's name.
    #[arg(value_name = "NAME")]
    pub name: TreeName,
    /// Its boot NIC's MAC (52:54:00:12:34:56, 52-54-00-12-34-56, 5254.0012.3456, ...).
    #[arg(long, value_name = "MAC")]
    pub mac: crate::publish::fleet::mac::Mac,
    /// Its fixed address (else the server's neighbour table finds it by MAC).
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<std::net::IpAddr>,
    /// Its group (a new name makes a new group).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<TreeName>,
}

/// `sidus node set`
#[derive(Debug, Args)]
pub struct NodeSetArgs {
    /// The node.
    #[arg(value_name = "NAME")]
    pub name: TreeName,
    /// A new MAC.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<crate::publish::fleet::mac::Mac>,
    /// A new fixed address.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_ip")]
    pub ip: Option<std::net::IpAddr>,
    /// No fixed address any more.
    #[arg(long)]
    pub no_ip: bool,
    /// A new group.
    #[arg(long, value_name = "GROUP", conflicts_with = "no_group")]
    pub group: Option<TreeName>,
    /// In no group any more: the node boots the default entry.
    #[arg(long)]
    pub no_group: bool,
}

/// `sidus node remove`
#[derive(Debug, Args)]
pub struct NodeRemoveArgs {
    /// The nodes.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<TreeName>,
}

/// `sidus node import`
#[derive(Debug, Args)]
pub struct NodeImportArgs {
    /// The CSV or JSON file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The file is the whole inventory: nodes not in it are removed.
    #[arg(long)]
    pub replace: bool,
}

/// `sidus nodes`
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Only the names of nodes that run another snapshot than they are
    /// assigned, one per line (for `scontrol reboot ASAP`).
    #[arg(long)]
    pub stale: bool,
    /// Only this group's nodes.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<TreeName>,
}

/// `sidus status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: Option<TreeName>,
}

/// `sidus doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Fix what is safe, then check again: finish or undo interrupted changes
    /// as the next command would, do what `sidus restore` does, remove
    /// leftovers that hold no data (never a snapshot), end processes and
    /// unmount what a run left in a tree, journal snapshots no entry names,
    /// take group and world write off state and boot files.
    #[arg(long)]
    pub repair: bool,
    /// Only this tree, and the store-wide checks that concern it.
    #[arg(value_name = "TREE")]
    pub tree: Option<TreeName>,
}

/// `sidus init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Storage backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// btrfs: a directory on a mounted btrfs file system.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// btrfs: a loop image file to create and mount (at --path, default /var/lib/sidus/store).
    #[arg(long = "loop", value_name = "FILE")]
    pub loop_file: Option<PathBuf>,
    /// btrfs: size of a new loop image.
    #[arg(long, value_name = "SIZE", default_value = "20G")]
    pub size: String,
    /// zfs: the parent dataset of the store, e.g. tank/sidus.
    #[arg(long, value_name = "DATASET")]
    pub dataset: Option<String>,
    /// zfs: where the store dataset is mounted.
    #[arg(long, value_name = "DIR")]
    pub mountpoint: Option<PathBuf>,
    /// lvm: the volume group.
    #[arg(long, value_name = "VG")]
    pub vg: Option<String>,
    /// lvm: the thin pool in the volume group.
    #[arg(long, value_name = "POOL")]
    pub thinpool: Option<String>,
    /// Who may mount published trees: addresses, networks (10.0.0.0/24), host
    /// names (*.cluster) or @netgroups, written as [publish] clients. Until it is
    /// set, publish refuses.
    #[arg(long, value_name = "NET", num_args = 1.., value_delimiter = ',')]
    pub clients: Vec<String>,
}

/// `sidus create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new tree.
    #[arg(value_name = "TREE")]
    pub tree: TreeName,
    /// Copy this directory's content into the new tree.
    #[arg(long, value_name = "DIR", conflicts_with = "debootstrap")]
    pub from_dir: Option<PathBuf>,
    /// Bootstrap a Debian or Ubuntu SUITE into the new tree and prepare it for diskless nodes.
    #[arg(long, value_name = "SUITE")]
    pub debootstrap: Option<String>,
    /// With --debootstrap: the mirror (default: the host's apt source for SUITE).
    #[arg(long, value_name = "URL", requires = "debootstrap")]
    pub mirror: Option<String>,
    /// With --debootstrap: extra packages, comma-separated.
    #[arg(long, value_name = "PKGS", requires = "debootstrap")]
    pub include: Option<String>,
    /// With --debootstrap: the debootstrap variant.
    #[arg(
        long,
        value_name = "VARIANT",
        default_value = "minbase",
        requires = "debootstrap"
    )]
    pub variant: String,
}

/// A single TREE argument.
#[derive(Debug, Args)]
pub struct TreeArg {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
}

/// A TREE@REF argument (REF: a snapshot ID, a unique prefix of one, or `latest`).
#[derive(Debug, Args)]
pub struct RefArg {
    /// The snapshot, as TREE@REF.
    #[arg(value_name = "TREE@REF", add = crate::completion::snapshot_ref())]
    pub target: TreeRef,
}

/// `sidus snapshot`
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
    /// Why the snapshot is taken.
    #[arg(short, long, default_value = "")]
    pub message: String,
}

/// `sidus clone`
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The source: TREE (its current state) or TREE@REF.
    #[arg(value_name = "TREE[@REF]", add = crate::completion::tree_or_ref())]
    pub source: TreeRef,
    /// Name of the new tree.
    #[arg(value_name = "NEWTREE")]
    pub new: TreeName,
}

/// `sidus path`
#[derive(Debug, Args)]
pub struct PathArgs {
    /// TREE for the working tree, TREE@REF for a snapshot.
    #[arg(value_name = "TREE[@REF]", add = crate::completion::tree_or_ref())]
    pub target: TreeRef,
}

/// `sidus log`
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only the entries that concern this tree (its own, and clones made from it).
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: Option<TreeName>,
    /// At most this many entries.
    #[arg(short = 'n', long, value_name = "N")]
    pub limit: Option<usize>,
}

/// `sidus pin`
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The snapshot to pin, as TREE@REF.
    #[arg(value_name = "TREE@REF", add = crate::completion::snapshot_ref())]
    pub target: TreeRef,
    /// A label for it, usable as a REF everywhere (TREE@LABEL); unique within the tree.
    #[arg(long, value_name = "LABEL", value_parser = crate::history::pins::parse_label)]
    pub name: Option<sidus_backends::Label>,
    /// Why it is pinned.
    #[arg(short, long, value_name = "NOTE", default_value = "")]
    pub message: String,
}

/// `sidus unpin`
#[derive(Debug, Args)]
pub struct UnpinArgs {
    /// The pinned snapshot: TREE@REF, TREE@LABEL, or a LABEL used in one tree only.
    #[arg(value_name = "TREE@REF|LABEL", add = crate::completion::snapshot_ref())]
    pub target: TreeRef,
}

/// `sidus pins`
#[derive(Debug, Args)]
pub struct PinsArgs {
    /// Only this tree's pins.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: Option<TreeName>,
}

/// `sidus prune`: without any --keep option, the config's [prune] section applies;
/// with one, only the options given do.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent hours (UTC) that have snapshots.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent days (UTC) that have snapshots.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have snapshots.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent months that have snapshots.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Print what would be removed and why the rest stays; delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `sidus diff`
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old side, as TREE@REF.
    #[arg(value_name = "TREE@REF", add = crate::completion::snapshot_ref())]
    pub from: TreeRef,
    /// The new side: TREE@REF, or TREE for a working tree (default: the old side's working tree).
    #[arg(value_name = "TREE[@REF]", add = crate::completion::tree_or_ref())]
    pub to: Option<TreeRef>,
    /// Compare the Debian package sets (var/lib/dpkg/status) instead of files.
    #[arg(long)]
    pub packages: bool,
}

/// `sidus run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
    /// The snapshots' message (default: the command).
    #[arg(short, long, value_name = "MESSAGE")]
    pub message: Option<String>,
    /// When the command fails, keep what it did (as a post snapshot) instead of rolling back.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// The network and capabilities of the command.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `sidus shell`
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
    /// The snapshots' message.
    #[arg(short, long, value_name = "MESSAGE")]
    pub message: Option<String>,
    /// The network and capabilities of the shell.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `sidus update`
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The tree.
    #[arg(value_name = "TREE", add = crate::completion::trees())]
    pub tree: TreeName,
    /// The snapshots' message (default: the command).
    #[arg(short, long, value_name = "MESSAGE")]
    pub message: Option<String>,
    /// When the upgrade fails, keep what it did instead of rolling back.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// The network and capabilities of the upgrade.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// What of the host a run's command reaches, for `run`, `shell` and `update`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The command's network: the host's (apt needs it), or none (a new
    /// network namespace with only `lo`).
    #[arg(long, value_enum, value_name = "NET", default_value = "host")]
    pub network: Network,
    /// Give the command this capability too (e.g. CAP_SYS_TIME), beyond the
    /// default set; repeatable. Recorded in the run's snapshots and journal.
    #[arg(long = "capability", value_name = "CAP")]
    pub capabilities: Vec<Cap>,
}

/// `sidus manifest`
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The snapshot, as TREE@REF.
    #[arg(value_name = "TREE@REF")]
    pub target: TreeRef,
    /// Print every entry, one line each, sorted by path.
    #[arg(long)]
    pub full: bool,
}

/// `sidus verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot whose manifest is the reference, as TREE@REF.
    #[arg(value_name = "TREE@REF")]
    pub target: TreeRef,
    /// Check this directory (a node's NFS root, an unpacked archive) instead of the snapshot.
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// Archive formats of `sidus export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    /// POSIX tar (pax): streams through pipes.
    Tar,
    /// A squashfs image (mksquashfs): mountable read-only as it is.
    Squashfs,
}

/// `sidus export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The snapshot, as TREE@REF.
    #[arg(value_name = "TREE@REF")]
    pub target: TreeRef,
    /// Where to write the archive; `-` for stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The archive format.
    #[arg(long, value_enum, default_value = "tar")]
    pub format: ArchiveFormat,
}

/// `sidus import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive (tar or squashfs, as `sidus export` writes it); `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Name of the new tree (default: the tree name the archive carries).
    #[arg(long = "as", value_name = "TREE")]
    pub as_tree: Option<TreeName>,
}

/// SBOM formats of `sidus sbom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON.
    SpdxJson,
    /// CycloneDX 1.5, JSON.
    CyclonedxJson,
}

/// `sidus sbom`
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The snapshot, as TREE@REF.
    #[arg(value_name = "TREE@REF")]
    pub target: TreeRef,
    /// The document format.
    #[arg(long, value_enum, default_value = "spdx-json")]
    pub format: SbomFormat,
}

/// The clap command sidus parses: [`Cli`] with `--help` (the long form) of
/// each subcommand ending with a pointer to its man page.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command().after_long_help(crate::man::see_page(None));
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(&name, |s| {
            s.after_long_help(crate::man::see_page(Some(&name)))
        });
    }
    cmd
}

/// Parses the process's command line with [`command`].
pub fn try_parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
}
