//! Publishing: which immutable snapshot nodes boot, served read-only over NFS
//! with a stable fsid, and the boot entries that name it.

pub mod atomic;
pub mod boot;
pub mod clients;
pub mod config;
pub mod exports;
pub mod state;
pub mod system;
pub mod undo;
