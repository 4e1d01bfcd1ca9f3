//! Publishing: which immutable snapshot nodes boot, served read-only over NFS
//! with a stable fsid, and the boot entries that name it; plus what a node needs
//! inside its tree to boot that way (`prepare-node`).

pub mod boot;
pub mod clients;
pub mod clients_policy;
pub mod config;
pub mod exports;
pub mod fallback;
pub mod fleet;
pub mod intree;
pub mod node;
pub mod node_hooks;
pub mod ops;
pub mod recover;
pub mod restore;
pub mod secrets;
pub mod served_by;
pub mod state;
pub mod status;
pub mod steps;
pub mod system;
pub mod undo;
