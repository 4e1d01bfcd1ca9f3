//! The fleet: an inventory of nodes by MAC, groups of nodes that each boot
//! their own published snapshot (a canary group first, then the others), and
//! what the NFS server sees each node run. State lives under
//! `<state_dir>/fleet/` (`nodes.json`, `groups.json`), boot entries under the
//! boot root (`sidus/groups/`, `sidus/nodes/`, `pxelinux.cfg/sidus-groups/`,
//! `pxelinux.cfg/01-<mac>`).

pub mod entries;
pub mod groups;
pub mod import;
pub mod inventory;
pub mod mac;
pub mod nfs;
pub mod ops;
pub mod publish;
pub mod sync;
pub mod view;
