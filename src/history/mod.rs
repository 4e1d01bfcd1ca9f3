//! Living with many snapshots: pins and what protects a snapshot, retention
//! and prune, and diffs of files and packages.

pub mod diff;
pub mod extents;
pub mod packages;
pub mod pins;
pub mod protect;
pub mod prune;
pub mod retention;
