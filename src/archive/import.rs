//! `sidus import`: a tree and a snapshot with the archive's ID and metadata,
//! checked against the manifest the archive carries before it counts as done.
//!
//! Order: read what the archive carries (a tar's first members, a squashfs's
//! `/.sidus-archive`) and check it holds together; refuse an existing tree
//! name; create the tree; unpack; take the snapshot with the carried ID and
//! metadata; read the snapshot back and compare it with the manifest; keep
//! the manifest. Any failure after the tree exists destroys it again, so a
//! failed import leaves nothing behind.

use super::extract::{member_attrs, Extractor};
use super::squashfs::{self, Mounted};
use super::{Info, FORMAT, META_DIR, META_FILES};
use crate::manifest::compare::compare;
use crate::manifest::{kept, scan, Manifest};
use crate::progress::Progress;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use sidus_backends::{argv, Runner, Snapshot, TreeName};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// What an archive carries besides the tree.
pub struct Carried {
    /// `archive.json`.
    pub info: Info,
    /// The snapshot's manifest.
    pub manifest: Manifest,
    /// The snapshot's metadata.
    pub snapshot: Snapshot,
}

/// Checks the `.sidus-archive` members (in [`META_FILES`] order) hold together.
pub fn carried(files: &[Vec<u8>]) -> Result<Carried> {
    let not = || {
        anyhow::anyhow!("not an archive of `sidus export` (its {META_DIR}/archive.json is not one)")
    };
    let info: Info = serde_json::from_slice(&files[0]).map_err(|_| not())?;
    if info.format != FORMAT {
        return Err(not());
    }
    if info.version != 1 {
        bail!(
            "the archive is of layout version {}, this sidus reads version 1",
            info.version
        );
    }
    let text = std::str::from_utf8(&files[1]).context("the archive's manifest is not text")?;
    let manifest = Manifest::parse(text).context("the archive's manifest")?;
    if manifest.root_hash() != info.root_hash {
        bail!(
            "the archive's manifest does not match the root hash it names ({}): damaged",
            info.root_hash
        );
    }
    let snapshot: Snapshot =
        serde_json::from_slice(&files[2]).context("the archive's snapshot.json")?;
    if (snapshot.tree.as_str(), snapshot.id.as_str()) != (info.tree.as_str(), info.id.as_str()) {
        bail!("the archive's snapshot.json is of another snapshot than its archive.json");
    }
    Ok(Carried {
        info,
        manifest,
        snapshot,
    })
}

/// What `sidus import` made.
#[derive(Debug, serde::Serialize)]
pub struct Imported {
    /// The new snapshot, with the archive's ID and metadata.
    pub snapshot: Snapshot,
    /// Its manifest's root hash (the archive's).
    pub root_hash: String,
    /// Entries checked against the manifest.
    pub entries: usize,
}

fn refuse_existing(store: &Store, tree: &TreeName) -> Result<()> {
    if store.backend.list_trees()?.iter().any(|t| &t.name == tree) {
        bail!("tree '{tree}' already exists: import under another name with --as NAME");
    }
    Ok(())
}

fn truncated(e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("the archive is truncated or damaged: {e}")
}

/// The next tar member, or why there is none.
fn next_member<'a, R: Read>(entries: &mut tar::Entries<'a, R>) -> Result<tar::Entry<'a, R>> {
    match entries.next() {
        Some(e) => e.map_err(truncated),
        None => bail!("the archive is truncated: it ends before the content"),
    }
}

/// Imports the archive at `file` (`-`: stdin).
pub fn import(store: &Store, file: &Path, as_tree: Option<&TreeName>) -> Result<Imported> {
    if let Some(t) = as_tree {
        refuse_existing(store, t)?;
    }
    let shown = if file == Path::new("-") {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let mut input: Box<dyn Read> = if file == Path::new("-") {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            bail!(crate::UsageError(
                "refusing to read an archive from a terminal: give FILE, or pipe one in (... | sidus import -)".into()
            ));
        }
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?)
    };
    let mut head = Vec::with_capacity(512);
    (&mut input)
        .take(512)
        .read_to_end(&mut head)
        .with_context(|| format!("read {shown}"))?;
    let stream = Cursor::new(head.clone()).chain(input);
    if head.starts_with(squashfs::MAGIC) {
        return import_squashfs(store, file, stream, as_tree);
    }
    if head.len() < 512 || &head[257..262] != b"ustar" {
        if head.is_empty() {
            bail!("{shown} is empty: not an archive of `sidus export`");
        }
        bail!("{shown} is not an archive of `sidus export` (neither a tar nor a squashfs image)");
    }
    let mut archive = tar::Archive::new(stream);
    let mut entries = archive.entries().context("read the archive")?;
    let (root_attrs, c) = read_head(&mut entries)?;
    let tree = target_tree(store, &c, as_tree)?;
    let progress = Progress::new(format!("{tree}@{}", c.info.id));
    progress.phase("importing", c.info.file_bytes);
    make(store, &tree, &c, |root| {
        unpack_rest(entries, root, &root_attrs, &c, &progress)
    })
}

/// Reads an archive's first members: the root's attributes and what it carries.
fn read_head<R: Read>(
    entries: &mut tar::Entries<'_, R>,
) -> Result<(super::tarball::Attrs, Carried)> {
    let mut first = next_member(entries)?;
    if &*first.path_bytes() != b"./" {
        bail!("not an archive of `sidus export`: its first member is not ./");
    }
    let root_attrs = member_attrs(&mut first)?;
    drop(first);
    let _meta_dir = next_member(entries)?;
    let mut files = Vec::new();
    for name in META_FILES {
        let mut e = next_member(entries)?;
        if *e.path_bytes() != *format!("{META_DIR}/{name}").as_bytes() {
            bail!("not an archive of `sidus export`: {META_DIR}/{name} is not where it belongs");
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(truncated)?;
        files.push(data);
    }
    Ok((root_attrs, carried(&files)?))
}

/// Unpacks the content members into the empty directory `root`.
fn unpack_rest<R: Read>(
    mut entries: tar::Entries<'_, R>,
    root: &Path,
    root_attrs: &super::tarball::Attrs,
    c: &Carried,
    progress: &Progress,
) -> Result<()> {
    let mut x = Extractor::new(root, &c.manifest)?;
    x.root(root_attrs)?;
    for e in entries.by_ref() {
        let mut e = e.map_err(truncated)?;
        x.member(&mut e, progress)?;
    }
    x.finish()
}

/// Unpacks the tar of `sidus export` read from `input` into the empty
/// directory `root` (a replica's working tree), returning what it carries;
/// the caller checks the content against the carried manifest.
pub fn unpack_into(input: impl Read, root: &Path, progress: &Progress) -> Result<Carried> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().context("read the archive")?;
    let (root_attrs, c) = read_head(&mut entries)?;
    progress.phase("receiving", c.info.file_bytes);
    unpack_rest(entries, root, &root_attrs, &c, progress)?;
    Ok(c)
}

/// The tree to import into: `--as`, or the archive's own name; never an existing one.
fn target_tree(store: &Store, c: &Carried, as_tree: Option<&TreeName>) -> Result<TreeName> {
    let tree = match as_tree {
        Some(t) => t.clone(),
        None => c.snapshot.tree.clone(),
    };
    refuse_existing(store, &tree)?;
    Ok(tree)
}

/// Creates `tree`, fills it with `fill`, snapshots it as the carried
/// snapshot, and checks it; destroys it again on any failure.
fn make(
    store: &Store,
    tree: &TreeName,
    c: &Carried,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<Imported> {
    store.journaled("import", Some(tree), || {
        let _lock = store.lock(tree)?;
        store.check_pool_room(&format!("import tree '{tree}'"))?;
        let root = store.backend.create_tree(tree)?;
        let snap = Snapshot {
            tree: tree.clone(),
            ..c.snapshot.clone()
        };
        let made = (|| -> Result<Imported> {
            fill(&root)?;
            store.backend.snapshot(&snap)?;
            let path = store.backend.snapshot_path(tree, &snap.id)?;
            let progress = Progress::new(format!("{tree}@{}", snap.id));
            let (found, _) = scan::scan(&path, None, &progress).context("read the imported snapshot back")?;
            let diffs = compare(&c.manifest, &found);
            if let Some(d) = diffs.first() {
                bail!(
                    "the imported snapshot does not match the archive's manifest in {} places (first: {} {})",
                    diffs.len(),
                    d.what.as_str(),
                    d.path
                );
            }
            kept::save(store.state_dir(), &snap, &found)?;
            Ok(Imported {
                root_hash: c.info.root_hash.clone(),
                entries: found.entries.len(),
                snapshot: snap.clone(),
            })
        })();
        match made {
            Ok(done) => {
                let ids = vec![done.snapshot.id.to_string()];
                Ok((done, ids))
            }
            Err(e) => {
                kept::forget(store.state_dir(), tree, None);
                match store.backend.destroy_tree(tree) {
                    Ok(()) => Err(e.context(format!("import into tree '{tree}' failed; the tree was removed again"))),
                    Err(undo) => Err(e.context(format!(
                        "import into tree '{tree}' failed, and removing the half-made tree failed too ({undo}): run `sidus destroy {tree}`"
                    ))),
                }
            }
        }
    })
}

fn import_squashfs(
    store: &Store,
    file: &Path,
    mut stream: impl Read,
    as_tree: Option<&TreeName>,
) -> Result<Imported> {
    // A squashfs is read by mounting it: a pipe is spooled to a file first.
    let spooled: Option<super::export::RemoveOnDrop>;
    let image: PathBuf = if file == Path::new("-") {
        let t = std::env::temp_dir().join(format!("sidus-import.{}.sqfs", std::process::id()));
        spooled = Some(super::export::RemoveOnDrop(t.clone()));
        let mut f = std::fs::File::create(&t).with_context(|| format!("create {}", t.display()))?;
        std::io::copy(&mut stream, &mut f).context("read the archive from stdin")?;
        t
    } else {
        spooled = None;
        file.to_path_buf()
    };
    let mnt = Mounted::mount(&image).context("the archive is truncated or damaged")?;
    let mut files = Vec::new();
    for name in META_FILES {
        let p = mnt.dir.join(META_DIR).join(name);
        files.push(
            std::fs::read(&p).with_context(|| {
                format!("not an archive of `sidus export`: no {META_DIR}/{name}")
            })?,
        );
    }
    let c = carried(&files)?;
    let tree = target_tree(store, &c, as_tree)?;
    let imported = make(store, &tree, &c, |root| {
        let mut src = mnt.dir.clone().into_os_string();
        src.push("/.");
        Runner::new()
            .run(&argv!["cp", "-a", src, root])
            .map_err(|e| {
                anyhow::Error::new(e).context("copy the image's content (truncated or damaged?)")
            })?;
        let meta = root.join(META_DIR);
        std::fs::remove_dir_all(&meta).with_context(|| format!("remove {}", meta.display()))
    });
    drop(mnt);
    drop(spooled);
    imported
}
