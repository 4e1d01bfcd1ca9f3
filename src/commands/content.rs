//! What a snapshot holds: `manifest`, `verify`, `sbom`.

use crate::cli::{ManifestArgs, SbomArgs, SbomFormat, VerifyArgs};
use crate::manifest::compare::{compare, Difference};
use crate::manifest::{kept, scan};
use crate::output::{json as print_json, table};
use crate::progress::Progress;
use crate::store::Store;
use crate::trees;
use crate::WithDetail;
use anyhow::{bail, Context, Result};
use serde::Serialize;

/// `manifest --json`.
#[derive(Serialize)]
struct ManifestReport<'a> {
    tree: &'a str,
    id: &'a str,
    root_hash: String,
    entries: usize,
    file_bytes: u64,
    /// How it was computed, when it was not kept already.
    computed: Option<kept::Computed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
}

pub fn manifest(store: &Store, json: bool, a: &ManifestArgs) -> Result<()> {
    let snap = trees::resolve_ref(store, &a.target)?;
    let what = format!("{}@{}", snap.tree, snap.id);
    let (m, computed) = kept::of_snapshot(store, &snap, &Progress::new(&what))
        .with_context(|| format!("manifest of {what}"))?;
    if json {
        print_json(&ManifestReport {
            tree: snap.tree.as_str(),
            id: snap.id.as_str(),
            root_hash: m.root_hash(),
            entries: m.entries.len(),
            file_bytes: m.file_bytes(),
            computed,
            manifest: a.full.then(|| m.text()),
        });
    } else if a.full {
        print!("{}", m.text());
    } else {
        println!("{}", m.root_hash());
    }
    Ok(())
}

/// `verify --json`.
#[derive(Serialize)]
struct VerifyReport<'a> {
    snapshot: String,
    root_hash: String,
    checked: String,
    matches: bool,
    differences: &'a [Difference],
}

pub fn verify(store: &Store, json: bool, a: &VerifyArgs) -> Result<()> {
    let snap = trees::resolve_ref(store, &a.target)?;
    let what = format!("{}@{}", snap.tree, snap.id);
    let progress = Progress::new(&what);
    let (want, computed) = kept::of_snapshot(store, &snap, &progress)
        .with_context(|| format!("manifest of {what}"))?;
    let dir = match &a.path {
        Some(p) => {
            if !p.is_dir() {
                bail!("--path {}: not a directory", p.display());
            }
            p.clone()
        }
        None => {
            if computed.is_some() && !json {
                eprintln!(
                    "sidus: note: {what} had no kept manifest; it was computed now, so this checks it reads back the same"
                );
            }
            store.backend.snapshot_path(&snap.tree, &snap.id)?
        }
    };
    let (got, _) =
        scan::scan(&dir, None, &progress).with_context(|| format!("read {}", dir.display()))?;
    let diffs = compare(&want, &got);
    let shown = match &a.path {
        Some(p) => p.display().to_string(),
        None => what.clone(),
    };
    let failure = (!diffs.is_empty()).then(|| {
        anyhow::anyhow!(
            "{shown} differs from the manifest of {what} in {} place{}",
            diffs.len(),
            if diffs.len() == 1 { "" } else { "s" }
        )
    });
    if json {
        let report = VerifyReport {
            snapshot: what.clone(),
            root_hash: want.root_hash(),
            checked: shown.clone(),
            matches: diffs.is_empty(),
            differences: &diffs,
        };
        // One document: a mismatch's report's fields beside the error's.
        return match failure {
            Some(error) => Err(WithDetail {
                error,
                key: "",
                value: serde_json::to_value(&report).expect("report serializes"),
            }
            .into()),
            None => {
                print_json(&report);
                Ok(())
            }
        };
    } else if diffs.is_empty() {
        println!(
            "{shown} matches the manifest of {what}: {} entries, root {}",
            want.entries.len(),
            want.root_hash()
        );
    } else {
        let rows = diffs
            .iter()
            .map(|d| {
                vec![
                    d.what.as_str().to_string(),
                    d.path.clone(),
                    d.expected.clone().unwrap_or_else(|| "-".into()),
                    d.found.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        table(&["DIFFERENCE", "PATH", "EXPECTED", "FOUND"], rows);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn sbom(store: &Store, a: &SbomArgs) -> Result<()> {
    let snap = trees::resolve_ref(store, &a.target)?;
    let what = format!("{}@{}", snap.tree, snap.id);
    let doc = crate::sbom::for_snapshot(store, &snap, a.format == SbomFormat::CyclonedxJson)
        .with_context(|| format!("SBOM of {what}"))?;
    print!("{doc}");
    Ok(())
}
