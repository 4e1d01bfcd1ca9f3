//! ZFS replication: `zfs send -p [-i PARENT] SNAP` on the sender, `zfs recv
//! -s` on the receiver, the `sidus:*` properties set again from the metadata
//! sidus carries beside the stream (so they are the primary's whatever the
//! sending ZFS put in its stream).
//!
//! A receive into an existing tree goes into its working dataset, where ZFS
//! keeps the partial state hidden (`%recv`) and makes the snapshot appear
//! only once complete; the working dataset becomes the new snapshot by
//! itself. A tree's first snapshot is received into `D/recv/<tree>`, outside
//! `D/trees`, and renamed in once complete. `-s` keeps an interrupted stream's
//! state: its `receive_resume_token` lets the sender go on with `zfs send -t`.

use super::Zfs;
use crate::runner::Argv;
use crate::{argv, BackendError, Replication, Result, Snapshot, SnapshotId, TreeName};

impl Zfs {
    fn recv_parent(&self) -> String {
        format!("{}/recv", self.dataset)
    }

    fn recv_ds(&self, tree: &TreeName) -> String {
        format!("{}/recv/{tree}", self.dataset)
    }

    /// The resume token of `dataset`, if it has one.
    fn token_of(&self, dataset: &str) -> Result<Option<String>> {
        if !self.exists(dataset)? {
            return Ok(None);
        }
        let out = self.zfs(
            format!("read the resume token of {dataset}"),
            argv![
                "get",
                "-H",
                "-p",
                "-o",
                "value",
                "receive_resume_token",
                dataset
            ],
        )?;
        let token = out.trim();
        Ok((!token.is_empty() && token != "-").then(|| token.to_string()))
    }

    /// Moves a tree's first received dataset into `D/trees` and mounts it.
    fn install_first(&self, tree: &TreeName) -> Result<()> {
        let (from, to) = (self.recv_ds(tree), self.working_ds(tree));
        self.zfs(
            format!("rename the received {from} to {to}"),
            argv!["rename", &from, &to],
        )?;
        self.zfs(
            format!("mark {to} as tree '{tree}'"),
            argv!["set", super::props::prop("tree", tree.as_str()), &to],
        )?;
        if super::mounts::zfs_mounts().contains_key(&to) {
            return Ok(());
        }
        self.zfs(format!("mount {to}"), argv!["mount", &to])
            .map(drop)
    }
}

impl Replication for Zfs {
    fn format(&self) -> &'static str {
        "zfs"
    }

    fn send_command(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Argv> {
        let snap = self.locate(tree, id)?.name;
        let mut cmd = argv!["zfs", "send", "-p"];
        if let Some(p) = parent {
            cmd.extend(argv!["-i", self.locate(tree, p)?.name]);
        }
        cmd.push(snap.into());
        Ok(cmd)
    }

    fn can_send(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<bool> {
        // `zfs send -i` goes from an earlier snapshot of the same dataset;
        // after a rollback the tree's snapshots are spread over its working
        // and history datasets, and the replica's one dataset cannot follow.
        let dataset = |n: &SnapshotId| -> Result<String> {
            let name = self.locate(tree, n)?.name;
            Ok(name
                .split_once('@')
                .map_or(name.clone(), |(d, _)| d.to_string()))
        };
        let here = dataset(id)?;
        Ok(match parent {
            Some(p) => dataset(p)? == here,
            None => here == self.working_ds(tree),
        })
    }

    fn resume_command(&self, token: &str) -> Option<Argv> {
        Some(argv!["zfs", "send", "-t", token])
    }

    fn estimate(
        &self,
        tree: &TreeName,
        id: &SnapshotId,
        parent: Option<&SnapshotId>,
    ) -> Result<Option<u64>> {
        let mut cmd = self.send_command(tree, id, parent)?;
        cmd.splice(2..2, argv!["-n", "-v", "-P"]);
        let out = self.runner.run_string(&cmd).map_err(|e| {
            super::errors::classify(format!("estimate the stream of {tree}@{id}"), e)
        })?;
        // `-nvP` ends with a parsable `size\tBYTES` line.
        Ok(out.lines().rev().find_map(|l| {
            let (key, value) = l.split_once('\t')?;
            (key == "size").then(|| value.trim().parse().ok()).flatten()
        }))
    }

    fn begin_receive(
        &self,
        tree: &TreeName,
        _id: &SnapshotId,
        parent: Option<&SnapshotId>,
        _resume: bool,
    ) -> Result<Argv> {
        let working = self.working_ds(tree);
        if parent.is_some() {
            // -F: a replica's working dataset is only ever what was received;
            // atime updates must not make ZFS refuse the stream.
            return Ok(argv![
                "zfs",
                "recv",
                "-s",
                "-F",
                "-x",
                "sidus:origin",
                working
            ]);
        }
        if self.exists(&working)? {
            return Err(BackendError::tree_exists(tree));
        }
        let parent_ds = self.recv_parent();
        if !self.exists(&parent_ds)? {
            self.zfs(
                format!("create {parent_ds}"),
                argv!["create", "-o", "canmount=off", &parent_ds],
            )?;
        }
        Ok(argv![
            "zfs",
            "recv",
            "-s",
            "-u",
            "-x",
            "sidus:origin",
            self.recv_ds(tree)
        ])
    }

    fn received_path(&self, _tree: &TreeName, _id: &SnapshotId) -> Option<std::path::PathBuf> {
        None
    }

    fn finish_receive(&self, snap: &Snapshot) -> Result<()> {
        let tree = &snap.tree;
        if !self.exists(&self.working_ds(tree))? {
            self.install_first(tree)?;
        }
        let name = format!("{}@{}", self.working_ds(tree), snap.id);
        let mut args = argv!["set", super::props::prop("tree", tree.as_str())];
        for (key, value) in snap.properties() {
            args.push(super::props::prop(key, &value));
        }
        args.push(name.clone().into());
        self.zfs(format!("set the metadata of {name}"), args)
            .map(drop)
    }

    fn settle_receive(&self, tree: &TreeName, id: &SnapshotId) -> Result<bool> {
        let working = self.working_ds(tree);
        if self.exists(&format!("{working}@{id}"))? {
            return Ok(true);
        }
        let first = self.recv_ds(tree);
        if self.exists(&format!("{first}@{id}"))? && self.token_of(&first)?.is_none() {
            self.install_first(tree)?;
            return Ok(true);
        }
        if self.token_of(&working)?.is_some() || self.token_of(&first)?.is_some() {
            // Kept for `zfs send -t`; hidden from every listing meanwhile.
            return Ok(false);
        }
        if self.exists(&first)? {
            self.zfs(
                format!("remove the partial receive of '{tree}'"),
                argv!["destroy", "-r", &first],
            )?;
        }
        Ok(false)
    }

    fn abort_receive(&self, tree: &TreeName, id: &SnapshotId) -> Result<()> {
        let working = self.working_ds(tree);
        if self.token_of(&working)?.is_some() {
            self.zfs(
                format!("abort the partial receive of {tree}@{id}"),
                argv!["recv", "-A", &working],
            )?;
        }
        let first = self.recv_ds(tree);
        if self.exists(&first)? {
            self.zfs(
                format!("remove the partial receive of {tree}@{id}"),
                argv!["destroy", "-r", &first],
            )?;
        }
        Ok(())
    }

    fn resume_token(&self, tree: &TreeName) -> Result<Option<String>> {
        match self.token_of(&self.working_ds(tree))? {
            Some(t) => Ok(Some(t)),
            None => self.token_of(&self.recv_ds(tree)),
        }
    }

    fn working_follows(&self) -> bool {
        true
    }
}
