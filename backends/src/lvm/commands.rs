//! Running lvm2: every command that may change the store goes through
//! [`Lvm::run_changing`], which empties the cached `lvs` report first; creates,
//! removes and renames with their undo.

use super::errors::{self, CreateFailure};
use super::Lvm;
use crate::runner::CommandError;
use crate::{argv, BackendError, Result};
use std::ffi::OsString;

impl Lvm {
    /// Runs an lvm2 (or mkfs) command; known failures become typed errors here
    /// and nowhere else.
    pub(super) fn lvm(&self, action: impl Into<String>, args: Vec<OsString>) -> Result<Vec<u8>> {
        self.run_changing(&args)
            .map_err(|e| errors::classify(action.into(), e))
    }

    /// Runs a command that may change the store's LVs: the cached `lvs`
    /// report goes first, so no later lookup in this process reads it stale.
    pub(super) fn run_changing(
        &self,
        argv: &[OsString],
    ) -> std::result::Result<Vec<u8>, CommandError> {
        self.cached_lvs().take();
        self.runner.run(argv)
    }

    /// `lvcreate` with the given arguments, making LV `name`. On failure
    /// anything lvm2 left of `name` is removed, so a failed create changes
    /// nothing; a name already taken, or an origin that does not exist
    /// ([`errors::classify`] says which), come back as such for the caller to
    /// name, and nothing is removed.
    pub(super) fn lvcreate(
        &self,
        action: &str,
        name: &str,
        args: Vec<OsString>,
    ) -> std::result::Result<(), CreateFailure> {
        let mut full = argv!["lvcreate", "-q", "-y", "-n", name];
        full.extend(args);
        let Err(e) = self.run_changing(&full) else {
            return Ok(());
        };
        match errors::classify(action.to_string(), e) {
            BackendError::Exists(_) => Err(CreateFailure::Exists),
            BackendError::NotFound(_) => Err(CreateFailure::NoOrigin),
            err => {
                self.remove_quietly(name);
                Err(CreateFailure::Other(err))
            }
        }
    }

    /// Removes LV `name` if it exists, for undo paths: errors are logged only.
    pub(super) fn remove_quietly(&self, name: &str) {
        let full = self.full(name);
        if let Err(e) = self
            .runner
            .run(&argv!["lvs", "--noheadings", "-o", "lv_name", &full])
        {
            log::debug!("{name} was not created: {e}");
            return;
        }
        if let Err(e) = self.run_changing(&argv!["lvremove", "-q", "-y", &full]) {
            log::warn!("could not remove {full} while undoing: {e}");
        }
    }

    pub(super) fn lvremove(&self, action: &str, names: &[&str]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        // One command for all: destroying a tree with many snapshots must not
        // reload the VG metadata once per snapshot.
        let mut args = argv!["lvremove", "-q", "-y"];
        args.extend(names.iter().map(|n| OsString::from(self.full(n))));
        self.lvm(action, args).map(drop)
    }

    pub(super) fn lvrename(&self, action: &str, from: &str, to: &str) -> Result<()> {
        self.lvm(action, argv!["lvrename", "-q", &self.vg, from, to])
            .map(drop)
    }
}
