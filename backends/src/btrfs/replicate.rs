//! btrfs replication: `btrfs send [-p PARENT]` on the sender, `btrfs receive`
//! into the tree's snapshot directory on the receiver, the sidecar written
//! from the metadata sidus carries beside the stream.
//!
//! `btrfs receive` names the new subvolume as the sender's (the ID) and sets
//! it read-only only once the stream is complete; a read-only subvolume cannot
//! be moved to another directory (EROFS), so it is received in place and kept
//! out of every listing by a `.recv-ID` marker, made first and removed
//! (durably) only after the sidecar is written. A receiver that dies leaves the marker: the
//! half-received subvolume is never listed and [`Replication::settle_receive`]
//! removes it (btrfs streams do not resume: the sender sends it again).

use super::Btrfs;
use crate::fsutil::{read_json, write_json_atomic};
use crate::runner::Argv;
use crate::{argv, BackendError, Replication, Result, Snapshot, SnapshotId, TreeName};
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

impl Btrfs {
    /// Makes the working tree of a tree whose first snapshot was received: a
    /// writable copy of it, so the tree lists (and, once promoted, can change).
    fn ensure_working(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let working = self.working(tree);
        if working.exists() {
            return Ok(());
        }
        fs::create_dir_all(self.trees_dir())
            .map_err(|e| BackendError::io("create", self.trees_dir(), e))?;
        self.snapshot_subvolume(
            format!("make the working tree of replica '{tree}'"),
            &self.snap_dir(tree, id),
            &working,
            false,
        )
    }

    /// Removes a received subvolume with its marker and sidecar, and the
    /// snapshot directory of a tree that never got a working tree.
    fn remove_received(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let path = self.snap_dir(tree, id);
        if path.exists() {
            self.delete_subvolumes(
                &format!("remove the partial receive of {tree}@{id}"),
                &[path],
            )?;
        }
        for file in [self.meta_file(tree, id), self.receive_marker(tree, id)] {
            crate::durable::remove_durable(&file)
                .map_err(|e| BackendError::io("remove", &file, e))?;
        }
        let dir = self.snaps_dir(tree);
        if !self.working(tree).exists() {
            // Only empty: a directory that holds snapshots is a tree's.
            let _ = fs::remove_dir(&dir);
        }
        Ok(())
    }
}

impl Replication for Btrfs {
    fn format(&self) -> &'static str {
        "btrfs"
    }

    fn send_command(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Argv> {
        let path = self.require_snapshot(tree, id)?;
        let mut cmd = argv!["btrfs", "send", "-q"];
        if let Some(p) = parent {
            cmd.extend(argv!["-p", self.require_snapshot(tree, p)?]);
        }
        cmd.push(path.into());
        Ok(cmd)
    }

    fn estimate(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Option<u64>> {
        // `--no-data` sends the changed extents' places, not their bytes;
        // `receive --dump` prints them as `update_extent ... len=N`.
        let mut send = self.send_command(tree, id, parent)?;
        send.insert(2, "--no-data".into());
        let action = || format!("estimate the stream of {tree}@{id}");
        let mut sender = self
            .runner
            .spawn(&send, Stdio::null(), Stdio::piped())
            .map_err(|e| BackendError::command(action(), e))?;
        let stream = sender.child.stdout.take().expect("piped");
        let mut dump = self
            .runner
            .spawn(
                &argv!["btrfs", "receive", "--dump"],
                Stdio::from(stream),
                Stdio::piped(),
            )
            .map_err(|e| BackendError::command(action(), e))?;
        let out = BufReader::new(dump.child.stdout.take().expect("piped"));
        let mut bytes = 0u64;
        for line in out.lines() {
            let line = line.map_err(|e| BackendError::io("read the dump of", tree.as_str(), e))?;
            bytes += dumped_bytes(&line);
        }
        sender
            .finish()
            .map_err(|e| BackendError::command(action(), e))?;
        dump.finish()
            .map_err(|e| BackendError::command(action(), e))?;
        Ok(Some(bytes))
    }

    fn begin_receive(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
        _resume: bool,
    ) -> Result<Argv> {
        if let Some(p) = parent {
            self.require_snapshot(tree, p)?;
        }
        let dir = self.snaps_dir(tree);
        crate::durable::create_dir_all(&dir).map_err(|e| BackendError::io("create", &dir, e))?;
        if self.snap_dir(tree, id).exists() {
            return Err(BackendError::Exists(crate::Object::Snapshot(
                tree.clone(),
                id.clone(),
            )));
        }
        // No fsync: btrfs commits in order, so any committed state that has
        // the received subvolume has the marker made before it.
        let marker = self.receive_marker(tree, id);
        fs::File::create(&marker).map_err(|e| BackendError::io("write", &marker, e))?;
        Ok(argv!["btrfs", "receive", "-q", dir])
    }

    fn received_path(&self, tree: &TreeName, id: &SnapshotId) -> Option<std::path::PathBuf> {
        Some(self.snap_dir(tree, id))
    }

    fn finish_receive(&self, snap: &Snapshot) -> Result<()> {
        let (tree, id) = (&snap.tree, &snap.id);
        let path = self.snap_dir(tree, id);
        if !path.is_dir() {
            return Err(BackendError::snapshot_not_found(tree, id));
        }
        // The sidecar before the marker goes: once listed, it has its metadata.
        write_json_atomic(&self.meta_file(tree, id), snap)?;
        let marker = self.receive_marker(tree, id);
        crate::durable::remove_durable(&marker)
            .map_err(|e| BackendError::io("remove", &marker, e))?;
        self.ensure_working(tree, id)
    }

    fn settle_receive(&self, tree: &TreeName, id: &SnapshotId) -> Result<bool> {
        if !self.receiving(tree, id) {
            // The marker went after the sidecar: the snapshot is complete.
            if let Some(snap) = read_json::<Snapshot>(&self.meta_file(tree, id))? {
                if self.snap_dir(tree, id).is_dir() {
                    self.ensure_working(tree, &snap.id)?;
                    return Ok(true);
                }
            }
        }
        self.remove_received(tree, id)?;
        Ok(false)
    }

    fn abort_receive(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        if self.receiving(tree, id) {
            self.remove_received(tree, id)?;
        }
        Ok(())
    }

    fn working_follows(&self) -> bool {
        false
    }
}

/// The data bytes one line of `btrfs receive --dump` stands for.
fn dumped_bytes(line: &str) -> u64 {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("update_extent") | Some("write") | Some("clone") => words
            .filter_map(|w| w.strip_prefix("len="))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_lines_count_extent_lengths_only() {
        assert_eq!(
            dumped_bytes("update_extent   ./etc/hostname             offset=0 len=4096"),
            4096
        );
        assert_eq!(dumped_bytes("mkfile          ./o257-7-0"), 0);
        assert_eq!(dumped_bytes("truncate        ./a size=4096"), 0);
    }
}
