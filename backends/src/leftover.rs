//! What an interrupted step of a backend can leave in storage besides the
//! trees and snapshots it lists: a scratch copy, a swap volume, a record that
//! outlived its tree. `sidus doctor` reports them; [`crate::Backend::recover`]
//! removes those that hold no data.

use crate::TreeName;

/// One thing in storage that belongs to no tree or snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    /// What it is, in words, e.g. "the scratch copy of an interrupted rollback".
    pub what: String,
    /// Where: a path, a dataset or an LV name, as the storage tool spells it.
    pub object: String,
    /// The tree it belongs to (possibly one that no longer exists).
    pub tree: Option<TreeName>,
    /// Removing it would lose data that no listed snapshot or tree keeps.
    pub holds_data: bool,
    /// [`crate::Backend::recover`] of its tree settles it (removes it, or
    /// puts it in its place); never true when that would lose data.
    pub recover: bool,
    /// What an admin does about it by hand, e.g. `btrfs subvolume delete PATH`.
    pub by_hand: String,
}
