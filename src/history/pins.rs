//! Pins: snapshots that must never be deleted or pruned, optionally with a label
//! that works as a REF (`lab@paper-2026`). Kept in `<state_dir>/pins.json`.
//!
//! Writers hold the tree's lock and, for the read-modify-write of the shared
//! file, the store-wide `.pins` lock (tree names never start with a dot).

use crate::store::Store;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::{Label, SnapshotId, TreeName};
use std::path::{Path, PathBuf};

/// The hold tag pins put on snapshots of backends with storage-enforced holds.
pub const HOLD_TAG: &str = "sidus-pin";

/// One pinned snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    /// The tree.
    pub tree: TreeName,
    /// The pinned snapshot.
    pub id: SnapshotId,
    /// Its label, a REF of the tree; unique within the tree.
    #[serde(default)]
    pub label: Option<Label>,
    /// Why it is pinned.
    #[serde(default)]
    pub note: String,
    /// Who pinned it.
    #[serde(default)]
    pub user: String,
    /// When.
    pub pinned_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PinFile {
    version: u32,
    pins: Vec<Pin>,
}

/// Parses a pin label: the tree-name charset, but not `latest` and not a string
/// that could be the prefix of a snapshot ID (only digits and dots), so a REF is
/// never both.
pub fn parse_label(s: &str) -> std::result::Result<Label, String> {
    let label: Label = s.parse().map_err(|e: sidus_backends::NameError| {
        e.to_string().replacen("invalid name", "invalid label", 1)
    })?;
    if s == "latest" {
        return Err("'latest' is reserved: choose another label".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "label '{s}' could be read as a snapshot ID prefix: add a letter or '-'"
        ));
    }
    Ok(label)
}

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum PinOutcome {
    /// A new pin.
    Pinned(Pin),
    /// The snapshot was pinned already; its label or note changed.
    Updated(Pin),
    /// The snapshot was pinned already, exactly so.
    Unchanged(Pin),
}

/// Adds `new` to `pins`, or updates the snapshot's existing pin (a label or note
/// left out keeps the old one). A label used by another snapshot of the tree is
/// refused.
pub fn add(pins: &mut Vec<Pin>, new: Pin) -> Result<PinOutcome> {
    if let Some(label) = &new.label {
        if let Some(other) = pins
            .iter()
            .find(|p| p.tree == new.tree && p.label.as_ref() == Some(label) && p.id != new.id)
        {
            bail!(
                "label '{label}' already names {}@{} (see `sidus pins {}`)",
                other.tree,
                other.id,
                other.tree
            );
        }
    }
    match pins
        .iter_mut()
        .find(|p| p.tree == new.tree && p.id == new.id)
    {
        None => {
            pins.push(new.clone());
            Ok(PinOutcome::Pinned(new))
        }
        Some(old) => {
            let before = old.clone();
            if new.label.is_some() {
                old.label = new.label;
            }
            if !new.note.is_empty() {
                old.note = new.note;
            }
            if *old == before {
                Ok(PinOutcome::Unchanged(before))
            } else {
                Ok(PinOutcome::Updated(old.clone()))
            }
        }
    }
}

/// The pin of `tree` labelled `label`.
pub fn find_label<'a>(pins: &'a [Pin], tree: &TreeName, label: &str) -> Option<&'a Pin> {
    pins.iter()
        .find(|p| &p.tree == tree && p.label.as_ref().is_some_and(|l| l.as_str() == label))
}

/// The pins file of a store.
#[derive(Debug, Clone)]
pub struct Pins {
    path: PathBuf,
    state_dir: PathBuf,
}

impl Pins {
    /// The pins of the store whose state directory is `state_dir`.
    pub fn new(state_dir: &Path) -> Pins {
        Pins {
            path: state_dir.join("pins.json"),
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// Every pin; none when the file does not exist.
    pub fn load(&self) -> Result<Vec<Pin>> {
        Ok(
            crate::state::record::read::<PinFile>(&self.path, "the pins file")?
                .map(|f| f.pins)
                .unwrap_or_default(),
        )
    }

    /// The pins of one tree.
    pub fn of_tree(&self, tree: &TreeName) -> Result<Vec<Pin>> {
        let mut pins = self.load()?;
        pins.retain(|p| &p.tree == tree);
        Ok(pins)
    }

    /// Changes the pins under the store-wide pins lock: `f` edits the list and
    /// returns a value; the list is written back atomically (temp, fsync, rename)
    /// when `f` succeeds.
    pub fn update<T>(
        &self,
        store: &Store,
        f: impl FnOnce(&mut Vec<Pin>) -> Result<T>,
    ) -> Result<T> {
        let timeout = store.lock_timeout();
        let _lock = crate::state::lock::TreeLock::acquire(&self.state_dir, ".pins", timeout)?;
        let mut pins = self.load()?;
        let value = f(&mut pins)?;
        self.save(&pins)?;
        Ok(value)
    }

    fn save(&self, pins: &[Pin]) -> Result<()> {
        let file = PinFile {
            version: 1,
            pins: pins.to_vec(),
        };
        crate::state::record::write(&self.path, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(tree: &str, id: &str, label: Option<&str>, note: &str) -> Pin {
        Pin {
            tree: tree.parse().unwrap(),
            id: id.parse().unwrap(),
            label: label.map(|l| l.parse().unwrap()),
            note: note.into(),
            user: "root".into(),
            pinned_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        }
    }

    const A: &str = "20261125T101500Z";
    const B: &str = "20261125T101600Z";

    #[test]
    fn labels_cannot_be_refs_already() {
        assert!(parse_label("paper-2026").is_ok());
        assert!(parse_label("2026-paper").is_ok());
        assert!(parse_label("latest").unwrap_err().contains("reserved"));
        assert!(parse_label("2026")
            .unwrap_err()
            .contains("snapshot ID prefix"));
        assert!(parse_label("1.0")
            .unwrap_err()
            .contains("snapshot ID prefix"));
        assert!(parse_label("Paper")
            .unwrap_err()
            .starts_with("invalid label 'Paper'"));
        assert!(parse_label("a@b").is_err());
    }

    #[test]
    fn a_label_is_unique_per_tree_and_repinning_updates() {
        let mut pins = Vec::new();
        assert!(matches!(
            add(&mut pins, pin("lab", A, Some("paper"), "")).unwrap(),
            PinOutcome::Pinned(_)
        ));
        let err = add(&mut pins, pin("lab", B, Some("paper"), "")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("label 'paper' already names lab@{A} (see `sidus pins lab`)")
        );
        // The same label in another tree is fine.
        add(&mut pins, pin("other", B, Some("paper"), "")).unwrap();
        assert!(matches!(
            add(&mut pins, pin("lab", A, None, "")).unwrap(),
            PinOutcome::Unchanged(_)
        ));
        let PinOutcome::Updated(p) = add(&mut pins, pin("lab", A, None, "for the paper")).unwrap()
        else {
            panic!("not updated")
        };
        assert_eq!(
            (p.label.unwrap().as_str(), p.note.as_str()),
            ("paper", "for the paper")
        );
        assert_eq!(pins.len(), 2);
        let lab: TreeName = "lab".parse().unwrap();
        assert_eq!(find_label(&pins, &lab, "paper").unwrap().id.as_str(), A);
        assert!(find_label(&pins, &lab, "nope").is_none());
    }

    #[test]
    fn missing_file_means_no_pins() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Pins::new(dir.path()).load().unwrap().is_empty());
        std::fs::write(dir.path().join("pins.json"), "{bad").unwrap();
        assert!(Pins::new(dir.path()).load().is_err());
    }
}
