//! The receiving side: `replica-receive TREE` taking snapshots in, and the
//! recovery of a receive cut short.
//!
//! Order of a receive, under the tree's lock and a `Receive` intent: the
//! tree is marked a replica (in its state file), the backend gets ready (the
//! snapshot hidden until it is finished), the framed stream is fed to the
//! backend's receive command, the content is checked against the primary's
//! root hash when one came, the manifest is kept, and only then is the
//! snapshot listed. A receiver killed at any point leaves the intent; the next
//! writer lists the snapshot if it was complete, else removes it (ZFS keeps a
//! resumable partial state, offered to the sender as a token).

use super::wire::{self, Header, Received, PROTOCOL};
use super::ReplicaOf;
use crate::manifest::{kept, Manifest};
use crate::progress::Progress;
use crate::state::failpoint;
use crate::state::intent::{Change, Slot, TreeState};
use crate::store::Store;
use crate::trees::recover::Recovered;
use anyhow::{bail, Context, Result};
use sidus_backends::{Replication, Runner, SnapshotId, TreeName};
use std::io::{BufRead, Read, Write};
use std::process::Stdio;

/// Where in a stream the `receive:mid-stream` failpoint is.
pub(super) const MID_STREAM: usize = 1 << 20;

/// Longest header line accepted.
const HEADER_MAX: u64 = 1 << 20;

fn replication(store: &Store) -> Result<&dyn Replication> {
    store.backend.replication().ok_or_else(|| {
        anyhow::anyhow!(
            "this store's backend ({}) has no native snapshot stream to receive",
            store.backend.kind()
        )
    })
}

pub(super) fn tree_exists(store: &Store, tree: &TreeName) -> Result<bool> {
    Ok(store.backend.list_trees()?.iter().any(|t| &t.name == tree))
}

/// Reads the header line of a `replica-receive` stream.
fn read_header(input: &mut impl BufRead) -> Result<Header> {
    let mut line = Vec::new();
    input
        .take(HEADER_MAX)
        .read_until(b'\n', &mut line)
        .context("read the replication header")?;
    if line.last() != Some(&b'\n') {
        bail!("no replication header on stdin (this subcommand is run by `sidus replicate` on the primary)");
    }
    let header: Header =
        serde_json::from_slice(&line).context("the replication header is not one")?;
    if header.protocol != PROTOCOL {
        bail!(
            "the primary speaks replication protocol {}, this sidus {PROTOCOL}: install the same sidus on both",
            header.protocol
        );
    }
    Ok(header)
}

/// `replica-receive TREE`: says what this store has of `tree` (one line),
/// then takes in snapshots, each answered by a line, until `input` ends.
pub fn serve(
    store: &Store,
    tree: &TreeName,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<()> {
    answer(out, &super::have::have(store, std::slice::from_ref(tree))?)?;
    while !input
        .fill_buf()
        .context("read from the primary")?
        .is_empty()
    {
        receive(store, tree, input, out)?;
    }
    Ok(())
}

/// Writes one answer line for the primary.
fn answer(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(value).expect("serializable");
    line.push(b'\n');
    out.write_all(&line)
        .and_then(|_| out.flush())
        .context("answer the primary")
}

/// Takes one snapshot of `tree` in from the framed stream on `input` and
/// answers on `out` as soon as it is listed: the journal entry, the end of
/// the intent and the kept manifest are written while the primary goes on
/// (a manifest lost in a crash is computed again when asked for).
fn receive(
    store: &Store,
    tree: &TreeName,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<()> {
    let header = read_header(input)?;
    if &header.snapshot.tree != tree {
        bail!(
            "the primary sends a snapshot of '{}' on a connection for '{tree}'",
            header.snapshot.tree
        );
    }
    let repl = if header.format == super::stream::FORMAT {
        None
    } else {
        let repl = replication(store)?;
        if header.format != repl.format() {
            bail!(
                "the primary sends a {} stream, this store ({}) receives {} or {}",
                header.format,
                store.backend.kind(),
                repl.format(),
                super::stream::FORMAT
            );
        }
        Some(repl)
    };
    let tree = header.snapshot.tree.clone();
    let _lock = store.write_lock(&tree)?;
    let mut answered = Ok(());
    let state_dir = store.state_dir().to_path_buf();
    let snap = &header.snapshot;
    std::thread::scope(|s| {
        let mut keeping = None;
        store.journaled("replica-receive", Some(&tree), || {
            let (r, checked) = receive_locked(store, repl, &header, input)?;
            // Before the bookkeeping below; a primary gone by now does not
            // undo the listing, so its error is returned after the journal.
            answered = answer(out, &r);
            // Kept while the journal entry is written: their flushes overlap.
            keeping = checked.map(|m| s.spawn(move || kept::save(&state_dir, snap, &m)));
            Ok(((), vec![r.id.to_string()]))
        })?;
        answered?;
        // The snapshot is listed either way; the failure is said.
        match keeping.map(|k| k.join().expect("keeping a manifest panicked")) {
            Some(Err(e)) => Err(e.context(format!(
                "keep the manifest of the received {}@{}",
                snap.tree, snap.id
            ))),
            _ => Ok(()),
        }
    })
}

fn receive_locked(
    store: &Store,
    repl: Option<&dyn Replication>,
    header: &Header,
    input: &mut impl BufRead,
) -> Result<(Received, Option<Manifest>)> {
    let snap = &header.snapshot;
    let (tree, id) = (&snap.tree, &snap.id);
    let exists = tree_exists(store, tree)?;
    let mut st = TreeState::load(store.state_dir(), tree)?;
    if exists && st.replica.is_none() {
        bail!("tree '{tree}' here is not a replica: refusing to receive into it (destroy it, or replicate under another store)");
    }
    let ids = if exists {
        store.backend.snapshot_ids(tree)?
    } else {
        Vec::new()
    };
    if ids.contains(id) {
        bail!("{tree}@{id} is here already");
    }
    match &header.parent {
        Some(p) if !ids.contains(p) => {
            bail!("the stream of {tree}@{id} is incremental from {p}, which is not here")
        }
        None if exists => bail!("tree '{tree}' exists here: only incremental streams go into it"),
        _ => {}
    }
    let mut resume = false;
    if let (Some(repl), Some(pending)) =
        (repl, st.replica.as_ref().and_then(|r| r.resumable.clone()))
    {
        if header.resume && &pending == id {
            resume = true;
        } else {
            // Another snapshot comes: the partial state of this one goes.
            repl.abort_receive(tree, &pending)?;
        }
    }
    store.begin(
        Slot::Tree(tree.clone()),
        Change::Receive {
            tree: tree.clone(),
            id: id.clone(),
            archive: repl.is_none(),
        },
        Some(id),
    )?;
    st = TreeState::load(store.state_dir(), tree)?;
    let of = ReplicaOf {
        source: header.source.clone(),
        since: st
            .replica
            .as_ref()
            .map_or_else(chrono::Utc::now, |r| r.since),
        format: Some(header.format.clone()),
        resumable: None,
    };
    // Written only when it changes (the first snapshot, a new primary).
    if st.replica.as_ref() != Some(&of) {
        st.replica = Some(of);
        st.save(store.state_dir(), tree)?;
    }
    let Some(repl) = repl else {
        if let Err(e) = super::stream::receive(store, header, exists, input) {
            let put_back = super::stream::settle(store, tree, id).and_then(|_| {
                if !tree_exists(store, tree)? {
                    super::forget(store.state_dir(), tree)?;
                }
                Ok(())
            });
            return Err(match put_back {
                Ok(()) => e.context(format!("receive {tree}@{id} (nothing of it is kept)")),
                Err(u) => e.context(format!(
                    "receive {tree}@{id}; putting the replica back failed too: {u:#}"
                )),
            });
        }
        let r = Received {
            tree: tree.clone(),
            id: id.clone(),
            verified: true,
        };
        return Ok((r, None));
    };
    let argv = repl.begin_receive(tree, id, header.parent.as_ref(), resume)?;
    if let Err(e) = feed(&argv, input) {
        return Err(give_up(store, repl, tree, id, e));
    }
    failpoint::hit("receive:after-stream");
    let mut checked = None;
    if let Some(expected) = &header.root_hash {
        if let Some(path) = repl.received_path(tree, id) {
            match check_root(store, snap, &path, header.parent.is_some(), expected) {
                Ok(m) => checked = Some(m),
                Err(e) => {
                    discard(store, repl, tree, id)?;
                    return Err(e);
                }
            }
        }
    }
    repl.finish_receive(snap)?;
    if let (Some(expected), None) = (&header.root_hash, &checked) {
        // The backend lists a received snapshot at once (ZFS): check it now.
        let path = store.backend.snapshot_path(tree, id)?;
        match check_root(store, snap, &path, header.parent.is_some(), expected) {
            Ok(m) => checked = Some(m),
            Err(e) => {
                store.backend.delete_snapshot(tree, id)?;
                return Err(e);
            }
        }
    }
    let r = Received {
        tree: tree.clone(),
        id: id.clone(),
        verified: checked.is_some(),
    };
    Ok((r, checked))
}

/// After a failed stream: keeps a partial state the storage can resume (and
/// says so), else removes what was received.
fn give_up(
    store: &Store,
    repl: &dyn Replication,
    tree: &TreeName,
    id: &SnapshotId,
    e: anyhow::Error,
) -> anyhow::Error {
    let kept = (|| -> Result<bool> {
        if repl.resume_token(tree)?.is_some() {
            mark_resumable(store, tree, id)?;
            return Ok(true);
        }
        discard(store, repl, tree, id)?;
        Ok(false)
    })();
    match kept {
        Ok(true) => e.context(format!(
            "receive {tree}@{id} (its partial state is kept: the next replicate resumes it)"
        )),
        Ok(false) => e.context(format!(
            "receive {tree}@{id} (what was received is removed)"
        )),
        Err(u) => e.context(format!(
            "receive {tree}@{id}; removing what was received failed too: {u:#}"
        )),
    }
}

/// Removes a receive of `tree@id`, and the replica mark of a tree it was to begin.
fn discard(store: &Store, repl: &dyn Replication, tree: &TreeName, id: &SnapshotId) -> Result<()> {
    repl.abort_receive(tree, id)?;
    if !tree_exists(store, tree)? {
        super::forget(store.state_dir(), tree)?;
    }
    Ok(())
}

fn mark_resumable(store: &Store, tree: &TreeName, id: &SnapshotId) -> Result<()> {
    let mut st = TreeState::load(store.state_dir(), tree)?;
    if let Some(r) = st.replica.as_mut() {
        r.resumable = Some(id.clone());
    }
    st.save(store.state_dir(), tree)
}

/// Runs the backend's receive command on the framed stream of `input`.
fn feed(argv: &[std::ffi::OsString], input: &mut impl Read) -> Result<()> {
    let mut child = Runner::new().spawn(argv, Stdio::piped(), Stdio::null())?;
    let mut stdin = child.child.stdin.take().expect("piped");
    let mut buf = vec![0u8; wire::CHUNK];
    let mut total = 0usize;
    let mut ended = false;
    let mut broken = None;
    loop {
        let Some(n) = wire::read_chunk(input, &mut buf).context("read the stream")? else {
            break;
        };
        if n == 0 {
            ended = true;
            break;
        }
        if let Err(e) = stdin.write_all(&buf[..n]) {
            broken = Some(e);
            break;
        }
        let before = total;
        total += n;
        // A test's kill lands once a good part of the stream is in.
        if before < MID_STREAM && total >= MID_STREAM {
            failpoint::hit("receive:mid-stream");
        }
    }
    if !ended && broken.is_none() {
        // Cut short: the receive must not finish on what it got.
        let _ = child.child.kill();
        let _ = child.finish();
        bail!("the stream was cut short after {total} bytes (the sender died or its send failed)");
    }
    drop(stdin);
    child.finish()?;
    if let Some(e) = broken {
        bail!("the receive command stopped reading: {e}");
    }
    Ok(())
}

/// Checks the received content at `path` against the primary's root hash;
/// returns its manifest, for the caller to keep.
fn check_root(
    store: &Store,
    snap: &sidus_backends::Snapshot,
    path: &std::path::Path,
    incremental: bool,
    expected: &str,
) -> Result<Manifest> {
    // Against the kept manifest of the snapshot before it here: only what
    // changed is read, as on the primary.
    let (m, computed) = kept::of_received(store, snap, path, incremental, &Progress::quiet())
        .with_context(|| format!("read the received {}@{}", snap.tree, snap.id))?;
    if let Some(c) = computed {
        log::debug!(
            "manifest of the received {}@{}: reference {:?}, {:?}",
            snap.tree,
            snap.id,
            c.reference,
            c.stats
        );
    }
    let got = m.root_hash();
    if got != expected {
        bail!(
            "the received {}@{} has root hash {got}, the primary's manifest says {expected}: not listed",
            snap.tree,
            snap.id
        );
    }
    Ok(m)
}

/// The recovery of a receive whose sidus died.
pub fn recover(
    store: &Store,
    tree: &TreeName,
    id: &SnapshotId,
    archive: bool,
) -> Result<Recovered> {
    let listed = |what: &str| {
        Ok(Recovered::Finished(
            format!("the received {tree}@{id} was complete{what}: it is listed"),
            vec![id.to_string()],
        ))
    };
    if archive {
        if super::stream::settle(store, tree, id)? {
            return listed(" and checked");
        }
        if !tree_exists(store, tree)? {
            super::forget(store.state_dir(), tree)?;
        }
        return Ok(Recovered::Failed(
            format!("dropped the half-received {tree}@{id}; the working tree is the newest snapshot again"),
            vec![],
        ));
    }
    let repl = replication(store)?;
    if repl.settle_receive(tree, id)? {
        return listed("");
    }
    if repl.resume_token(tree)?.is_some() {
        mark_resumable(store, tree, id)?;
        return Ok(Recovered::Failed(
            format!("the partial stream of {tree}@{id} is kept for the next replicate to resume"),
            vec![],
        ));
    }
    if !tree_exists(store, tree)? {
        super::forget(store.state_dir(), tree)?;
    }
    Ok(Recovered::Failed(
        format!("removed the half-received {tree}@{id}"),
        vec![],
    ))
}
