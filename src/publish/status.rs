//! `sidus status [TREE]`: what is published, read from the state and checked
//! against the system (mounts, nfsd's export table, boot entries, clients).

use super::boot;
use super::clients::{v3_clients, v4_clients};
use super::config::PublishConfig;
use super::exports::{export_options, fsid, serve_path};
use super::state::PublishState;
use super::steps::entry_names;
use super::system;
use crate::store::Store;
use anyhow::Result;
use serde::Serialize;
use sidus_backends::{SnapshotId, TreeName};
use std::path::PathBuf;

/// Everything `status` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The exports file sidus owns.
    pub exports_file: PathBuf,
    /// Whether the kernel NFS server runs here.
    pub nfsd_running: bool,
    /// Connected NFSv4 clients (nfsd does not say which export they use).
    pub nfsv4_clients: Vec<String>,
    /// Per published tree.
    pub trees: Vec<TreeStatus>,
    /// What `clients` lets happen that the admin should know about (every
    /// host may mount, or it is unset).
    pub warnings: Vec<String>,
}

/// One tree's publish status.
#[derive(Debug, Serialize)]
pub struct TreeStatus {
    /// The tree.
    pub tree: TreeName,
    /// The ID nodes boot from now on.
    pub current: Option<SnapshotId>,
    /// Earlier current IDs, oldest first (what `--rollback` walks back through).
    pub previous: Vec<SnapshotId>,
    /// Every ID still exported.
    pub exported: Vec<ExportStatus>,
    /// The tree's boot entries.
    pub boot: BootStatus,
}

/// One exported snapshot.
#[derive(Debug, Serialize)]
pub struct ExportStatus {
    /// Its ID.
    pub id: SnapshotId,
    /// Whether it is the current one.
    pub current: bool,
    /// The exported path.
    pub path: PathBuf,
    /// `client(options)` as in the exports file.
    pub options: String,
    /// Its fsid.
    pub fsid: String,
    /// Whether the snapshot is mounted at the path.
    pub mounted: bool,
    /// Whether nfsd's export table has the path (`null`: unknown, no etab).
    pub in_kernel: Option<bool>,
    /// NFSv3 clients mounting it, per rmtab.
    pub clients: Vec<String>,
}

/// The boot entries of a tree.
#[derive(Debug, Serialize)]
pub struct BootStatus {
    /// The iPXE script.
    pub ipxe: PathBuf,
    /// The ID it names, if it exists.
    pub ipxe_names: Option<SnapshotId>,
    /// The PXELINUX entry.
    pub pxelinux: PathBuf,
    /// The ID it names, if it exists.
    pub pxelinux_names: Option<SnapshotId>,
    /// The kernel version copied for the current ID.
    pub kernel: Option<String>,
}

/// Gathers the status of every published tree, or of `only`.
pub fn status(store: &Store, only: Option<&TreeName>) -> Result<Status> {
    let cfg: PublishConfig = store.config.publish();
    let state = PublishState::load(store.state_dir())?;
    let etab = system::etab_paths();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = system::mount_points(&text);
    let mut trees = Vec::new();
    for (tree, ts) in &state.trees {
        if only.is_some_and(|o| o != tree) {
            continue;
        }
        let exported = ts
            .exported
            .iter()
            .map(|id| {
                let path = serve_path(&cfg.root, tree, id);
                ExportStatus {
                    current: ts.current.as_ref() == Some(id),
                    options: export_options(&cfg, tree, id),
                    fsid: fsid(tree, id),
                    mounted: mounts.contains(&path),
                    in_kernel: etab
                        .as_ref()
                        .map(|e| e.iter().any(|p| path.as_os_str() == p.as_str())),
                    clients: v3_clients(&path),
                    id: id.clone(),
                    path,
                }
            })
            .collect();
        let ipxe = boot::ipxe_path(&cfg.boot_root, tree);
        let pxelinux = boot::pxelinux_path(&cfg.boot_root, tree);
        trees.push(TreeStatus {
            boot: BootStatus {
                ipxe_names: entry_names(&ipxe),
                pxelinux_names: entry_names(&pxelinux),
                kernel: ts.current.as_ref().and_then(|id| {
                    system::copied_kernel_version(&boot::boot_dir(&cfg.boot_root, tree, id))
                }),
                ipxe,
                pxelinux,
            },
            tree: tree.clone(),
            current: ts.current.clone(),
            previous: ts.previous.clone(),
            exported,
        });
    }
    Ok(Status {
        exports_file: cfg.exports_file.clone(),
        nfsd_running: system::nfsd_running(),
        nfsv4_clients: v4_clients(),
        trees,
        warnings: super::clients_policy::warnings(&cfg),
    })
}
