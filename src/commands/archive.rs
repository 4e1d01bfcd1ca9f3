//! Moving snapshots between stores: `export` and `import`.

use crate::archive::{export as exp, import as imp};
use crate::cli::{ArchiveFormat, ExportArgs, ImportArgs};
use crate::output::json as print_json;
use crate::store::Store;
use crate::trees;
use crate::UsageError;
use anyhow::{bail, Result};
use std::io::IsTerminal;
use std::path::Path;

pub fn export(store: &Store, json: bool, a: &ExportArgs) -> Result<()> {
    let to_stdout = a.output == Path::new("-");
    if to_stdout && std::io::stdout().is_terminal() {
        bail!(UsageError(
            "refusing to write an archive to a terminal: give -o FILE, or pipe it (-o - | ...)"
                .into()
        ));
    }
    let snap = trees::resolve_ref(store, &a.target)?;
    let done = exp::export(store, &snap, a.format == ArchiveFormat::Squashfs, &a.output)?;
    // With -o -, stdout is the archive: the report goes to stderr.
    if to_stdout {
        eprintln!(
            "sidus: exported {} ({}, {} bytes, root {})",
            done.snapshot, done.format, done.bytes, done.root_hash
        );
    } else if json {
        print_json(&done);
    } else {
        println!(
            "exported {} to {} ({}, {} bytes, root {})",
            done.snapshot, done.output, done.format, done.bytes, done.root_hash
        );
    }
    Ok(())
}

pub fn import(store: &Store, json: bool, a: &ImportArgs) -> Result<()> {
    let done = imp::import(store, &a.file, a.as_tree.as_ref())?;
    if json {
        print_json(&done);
    } else {
        println!(
            "imported {}@{} ({} entries, root {}; verified against the archive's manifest)",
            done.snapshot.tree, done.snapshot.id, done.entries, done.root_hash
        );
    }
    Ok(())
}
