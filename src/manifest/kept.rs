//! Manifests kept with their snapshots: `<state_dir>/manifests/TREE/ID`, one
//! file per snapshot, written once by [`crate::state::atomic::write_atomic`].
//! Snapshots are immutable, so a manifest is computed once; files live in the
//! state directory so every backend keeps them the same way.
//!
//! A kept file is the manifest text with two additions that are not part of
//! it: a second line `# kept TREE@ID created=TIME root=HASH`, and after each
//! entry a tab and its stamp (`ino mtime ctime`), which the next snapshot's
//! scan uses to reuse unchanged entries. A file whose `created` is not the
//! snapshot's is another snapshot's (a tree destroyed and made again) and is
//! ignored; one whose root hash does not match its text is damaged and refused.

use super::incremental;
use super::scan::{self, Reference, ScanStats, TRUST_MARGIN_SECS};
use super::{Manifest, RootHasher, Stamp, HEADER};
use crate::progress::Progress;
use crate::state::atomic::write_atomic;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use sidus_backends::{Snapshot, SnapshotChanges, SnapshotId, TreeName};
use std::path::{Path, PathBuf};

/// Where the manifest of `tree@id` is kept.
pub fn path(state_dir: &Path, tree: &TreeName, id: &SnapshotId) -> PathBuf {
    state_dir
        .join("manifests")
        .join(tree.as_str())
        .join(id.as_str())
}

fn created(snap: &Snapshot) -> String {
    snap.created
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The kept file's text for `m`, the manifest of `snap`.
pub fn render(snap: &Snapshot, m: &Manifest) -> String {
    let mut body = String::with_capacity(m.entries.len() * 200);
    let mut root = RootHasher::new();
    for e in &m.entries {
        let start = body.len();
        e.push_line(&mut body);
        root.line(&body[start..]);
        if let Some(st) = e.stamp {
            body.push('\t');
            super::line::push_decimal(&mut body, st.ino);
            for t in [st.mtime, st.ctime] {
                body.push(' ');
                push_time(&mut body, t);
            }
        }
        body.push('\n');
    }
    let head = format!(
        "{HEADER}\n# kept {}@{} created={} root={}\n",
        snap.tree,
        snap.id,
        created(snap),
        root.finish()
    );
    body.insert_str(0, &head);
    body
}

/// Appends a time as `SECONDS.NANOSECONDS` (nine digits).
fn push_time(s: &mut String, (secs, nanos): (i64, u32)) {
    if secs < 0 {
        s.push('-');
    }
    super::line::push_decimal(s, secs.unsigned_abs());
    s.push('.');
    let start = s.len();
    super::line::push_decimal(s, u64::from(nanos));
    let digits = s.len() - start;
    if digits < 9 {
        s.insert_str(start, &"000000000"[digits..]);
    }
}

fn parse_time(t: &str) -> Option<(i64, u32)> {
    let (s, ns) = t.split_once('.')?;
    Some((s.parse().ok()?, ns.parse().ok()?))
}

fn parse_stamp(s: &str) -> Option<Stamp> {
    let mut f = s.split(' ');
    let stamp = Stamp {
        ino: f.next()?.parse().ok()?,
        mtime: parse_time(f.next()?)?,
        ctime: parse_time(f.next()?)?,
    };
    f.next().is_none().then_some(stamp)
}

/// Parses a kept file; `None` when it was written for another snapshot of
/// the same name.
pub fn parse(text: &str, snap: &Snapshot) -> Result<Option<Manifest>> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        bail!("not a sidus manifest");
    }
    let meta = lines.next().unwrap_or_default();
    let field = |k: &str| {
        meta.split(' ')
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    if !meta.starts_with("# kept ") {
        bail!("no '# kept' line");
    }
    if field("created") != Some(created(snap).as_str()) {
        return Ok(None);
    }
    let mut entries = Vec::new();
    let mut root = RootHasher::new();
    for (n, line) in lines.enumerate() {
        let (line, stamp) = match line.split_once('\t') {
            Some((l, s)) => (l, Some(s)),
            None => (line, None),
        };
        root.line(line);
        let mut e = super::Entry::parse(line).with_context(|| format!("line {}", n + 3))?;
        e.stamp = match stamp {
            Some(s) => Some(parse_stamp(s).with_context(|| format!("line {}: bad stamp", n + 3))?),
            None => None,
        };
        entries.push(e);
    }
    let m = Manifest { entries };
    // The text as read is hashed: a damaged line cannot parse into
    // something that renders back clean.
    if field("root") != Some(root.finish().as_str()) {
        bail!("its root hash does not match its entries (damaged)");
    }
    Ok(Some(m))
}

/// The kept manifest of `snap`, if there is one.
pub fn load(state_dir: &Path, snap: &Snapshot) -> Result<Option<Manifest>> {
    let p = path(state_dir, &snap.tree, &snap.id);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
    };
    parse(&text, snap).with_context(|| {
        format!(
            "kept manifest {} (remove it and sidus computes it again)",
            p.display()
        )
    })
}

/// Keeps `m` as the manifest of `snap`.
pub fn save(state_dir: &Path, snap: &Snapshot, m: &Manifest) -> Result<()> {
    write_atomic(
        &path(state_dir, &snap.tree, &snap.id),
        render(snap, m).as_bytes(),
        0o644,
    )
}

/// Forgets the kept manifest of a deleted snapshot (or, without `id`, of
/// every snapshot of a destroyed tree). Failing to is only a leftover file.
pub fn forget(state_dir: &Path, tree: &TreeName, id: Option<&SnapshotId>) {
    let dir = state_dir.join("manifests").join(tree.as_str());
    let gone = match id {
        Some(id) => std::fs::remove_file(dir.join(id.as_str())),
        None => std::fs::remove_dir_all(&dir),
    };
    if let Err(e) = gone {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!(
                "could not remove a kept manifest under {}: {e}",
                dir.display()
            );
        }
    }
}

/// What [`of_snapshot`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Computed {
    /// The snapshot whose kept manifest was reused for unchanged entries.
    pub reference: Option<SnapshotId>,
    /// How the hashes were found.
    #[serde(flatten)]
    pub stats: ScanStats,
}

/// An earlier snapshot, its kept manifest, and what changed since, where
/// storage can tell.
type Earlier = (Snapshot, Manifest, Option<SnapshotChanges>);

/// The snapshot of the same tree whose kept manifest `snap`'s scan reuses:
/// its parent if that has one, else the newest older one that has one;
/// with what storage says changed since when `changes` asks for it (a
/// snapshot being received is not listed yet: storage cannot compare it).
fn reference_for(store: &Store, snap: &Snapshot, changes: bool) -> Result<Option<Earlier>> {
    let mut older: Vec<Snapshot> = store
        .backend
        .list_snapshots(Some(&snap.tree))?
        .into_iter()
        .filter(|s| s.id < snap.id)
        .collect();
    older.sort_by(|a, b| b.id.cmp(&a.id));
    if let Some(p) = older
        .iter()
        .position(|s| Some(&s.id) == snap.parent.as_ref())
    {
        let parent = older.remove(p);
        older.insert(0, parent);
    }
    let state = store.state_dir();
    for s in older {
        if !path(state, &s.tree, &s.id).exists() {
            continue;
        }
        // Both take a while and need nothing of each other: the kept
        // manifest is read while storage works out the changes.
        let (kept, changes) = std::thread::scope(|scope| {
            let reading = scope.spawn(|| load(state, &s));
            let changes = changes.then(|| changes_since(store, &s, snap)).flatten();
            (reading.join().expect("manifest reader panicked"), changes)
        });
        if let Some(m) = kept? {
            return Ok(Some((s, m, changes)));
        }
    }
    Ok(None)
}

/// What storage says changed from `earlier` to `snap`, where it can tell.
fn changes_since(store: &Store, earlier: &Snapshot, snap: &Snapshot) -> Option<SnapshotChanges> {
    if !store.backend.capabilities().snapshot_changes {
        return None;
    }
    match store
        .backend
        .snapshot_changes(&snap.tree, &earlier.id, &snap.id)
    {
        Ok(changes) => Some(changes),
        Err(e) => {
            log::debug!("{e}; reading the whole snapshot");
            None
        }
    }
}

/// The manifest of `snap`: the kept one, or computed now and kept. An earlier
/// snapshot's kept manifest is reused for what did not change: what storage
/// says changed is read ([`incremental`]), or where it cannot tell, the
/// snapshot is scanned with the earlier entries' stamps and extents.
pub fn of_snapshot(
    store: &Store,
    snap: &Snapshot,
    progress: &Progress,
) -> Result<(Manifest, Option<Computed>)> {
    let t0 = std::time::Instant::now();
    let tm = |what: &str| {
        log::debug!(
            "manifest of {}@{}: {what} after {:?}",
            snap.tree,
            snap.id,
            t0.elapsed()
        )
    };
    if let Some(m) = load(store.state_dir(), snap)? {
        return Ok((m, None));
    }
    tm("load self");
    let root = store.backend.snapshot_path(&snap.tree, &snap.id)?;
    let mut reference = reference_for(store, snap, true)?;
    tm("reference and changes");
    let built = match &mut reference {
        Some((_, rm, Some(changes))) => incremental::build(&root, rm, changes, progress)?,
        _ => None,
    };
    let reference_id = reference.as_ref().map(|(s, ..)| s.id.clone());
    let (m, stats) = match built {
        Some(built) => built,
        None => {
            let reference = reference.map(|(rs, rm, _)| (rs, rm));
            // Taken here: the two snapshots' creation times bound every ctime
            // written after the reference's content was fixed.
            scan_with(store, &root, reference.as_ref(), true, progress, |rs, _| {
                let oldest = rs.created.min(snap.created);
                (
                    oldest.timestamp() - TRUST_MARGIN_SECS,
                    oldest.timestamp_subsec_nanos(),
                )
            })?
        }
    };
    tm("scan");
    let text = render(snap, &m);
    tm("render");
    write_atomic(
        &path(store.state_dir(), &snap.tree, &snap.id),
        text.as_bytes(),
        0o644,
    )?;
    tm("save");
    Ok((
        m,
        Some(Computed {
            reference: reference_id,
            stats,
        }),
    ))
}

/// The manifest of a snapshot being received (not listed yet where the
/// backend hides it until checked), its content at `root`, reusing the kept
/// manifest of an earlier snapshot of the tree here as [`of_snapshot`] does:
/// an incremental receive reads what changed, not the tree. Not kept: the
/// caller keeps it once it matches the primary's root hash. `incremental`
/// says the tree has snapshots here (a whole stream begins the tree).
///
/// The snapshots' creation times are the primary's and bound nothing here
/// (`btrfs receive` writes with this host's clock, `zfs recv` sets the
/// primary's times). What does: the newest ctime in the reference's manifest
/// is no later than the moment its content was fixed, so anything changed
/// after it, by that receive or a later one, has a newer ctime (less the
/// coarseness of file times, which the margin covers).
pub fn of_received(
    store: &Store,
    snap: &Snapshot,
    root: &Path,
    incremental: bool,
    progress: &Progress,
) -> Result<(Manifest, Option<Computed>)> {
    let reference = match incremental {
        true => reference_for(store, snap, false)?.map(|(s, m, _)| (s, m)),
        false => None,
    };
    let (m, stats) = scan_with(store, root, reference.as_ref(), false, progress, |_, rm| {
        let newest = rm
            .entries
            .iter()
            .filter_map(|e| e.stamp.map(|s| s.ctime))
            .max()
            .unwrap_or((i64::MIN + TRUST_MARGIN_SECS, 0));
        (newest.0 - TRUST_MARGIN_SECS, newest.1)
    })?;
    Ok((
        m,
        Some(Computed {
            reference: reference.map(|(s, _)| s.id),
            stats,
        }),
    ))
}

/// Scans `root`, reusing the kept manifest of `reference` (a snapshot of the
/// same tree) for entries whose stamp is older than `trusted_before` says
/// (see [`Reference`] for `extents_of_retouched`).
fn scan_with(
    store: &Store,
    root: &Path,
    reference: Option<&(Snapshot, Manifest)>,
    extents_of_retouched: bool,
    progress: &Progress,
    trusted_before: impl Fn(&Snapshot, &Manifest) -> (i64, u32),
) -> Result<(Manifest, ScanStats)> {
    let Some((rs, rm)) = reference else {
        return scan::scan(root, None, progress);
    };
    // Shared extents only tell on btrfs: elsewhere the reference's content
    // is not needed (and not mounted for it).
    let on_btrfs = std::fs::File::open(root)
        .ok()
        .and_then(crate::history::extents::btrfs_fsid)
        .is_some();
    let r = Reference {
        root: match on_btrfs {
            true => Some(store.backend.snapshot_path(&rs.tree, &rs.id)?),
            false => None,
        },
        manifest: rm,
        trusted_before: trusted_before(rs, rm),
        extents_of_retouched,
    };
    scan::scan(root, Some(&r), progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(created: &str) -> Snapshot {
        let mut s = Snapshot::from_properties(
            "lab".parse().unwrap(),
            "20261125T101500Z".parse().unwrap(),
            |_| None,
        )
        .unwrap();
        s.created = created.parse().unwrap();
        s
    }

    #[test]
    fn kept_files_round_trip_stamps_and_refuse_other_snapshots_or_damage() {
        let mut e = crate::manifest::tests::file("/etc/motd", b"hi\n");
        e.stamp = Some(Stamp {
            ino: 257,
            mtime: (1764065700, 5),
            ctime: (-1, 999_999_999),
        });
        let m = Manifest::from_entries(vec![e, crate::manifest::tests::file("/a", b"")]);
        let s = snap("2026-11-25T10:15:00.123456789Z");
        // Backends that keep times to the second (ZFS, LVM properties) still match.
        assert!(parse(&render(&s, &m), &snap("2026-11-25T10:15:00Z"))
            .unwrap()
            .is_some());
        let text = render(&s, &m);
        assert_eq!(parse(&text, &s).unwrap(), Some(m.clone()));
        assert_eq!(parse(&text, &snap("2026-11-25T10:15:01Z")).unwrap(), None);
        let damaged = text.replace("/etc/motd file 0644", "/etc/motd file 0600");
        assert!(parse(&damaged, &s)
            .unwrap_err()
            .to_string()
            .contains("damaged"));

        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path(), &s).unwrap(), None);
        save(d.path(), &s, &m).unwrap();
        assert_eq!(load(d.path(), &s).unwrap(), Some(m));
        forget(d.path(), &s.tree, Some(&s.id));
        assert_eq!(load(d.path(), &s).unwrap(), None);
        forget(d.path(), &s.tree, None);
    }
}
