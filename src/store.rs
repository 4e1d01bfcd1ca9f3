//! An opened store: the config, its backend, the journal and who is acting.

use crate::config::Config;
use crate::state::journal::{Entry, Journal};
use crate::state::lock::TreeLock;
use anyhow::{bail, Context, Result};
use sidus_backends::{Backend, TreeName};
use std::path::PathBuf;
use std::time::Duration;

/// Who runs this sidus process and with which command line; recorded in
/// snapshot metadata and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The login name behind the command (the sudo caller when run by sudo).
    pub user: String,
    /// The command line as typed.
    pub command: String,
}

impl Invocation {
    /// The current process's user and argv.
    pub fn current() -> Invocation {
        let user = std::env::var("SUDO_USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                let uid = nix::unistd::getuid();
                nix::unistd::User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_else(|| uid.to_string())
            });
        let command = std::env::args()
            .enumerate()
            .map(|(i, a)| {
                if i == 0 {
                    "sidus".to_string()
                } else {
                    shell_quote(&a)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Invocation { user, command }
    }
}

/// Quotes `s` for a shell when it needs it.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An opened store.
pub struct Store {
    /// Its configuration.
    pub config: Config,
    /// The backend holding the trees.
    pub backend: Box<dyn Backend>,
    /// The journal of state changes.
    pub journal: Journal,
    /// Who is acting.
    pub invocation: Invocation,
    state_dir: PathBuf,
}

impl Store {
    /// Opens the store `config` describes, mounting what the backend owns.
    pub fn open(config: Config, invocation: Invocation) -> Result<Store> {
        let backend = config.backend()?;
        backend.open()?;
        Ok(Store::with_backend(config, backend, invocation))
    }

    /// A store around an already opened backend.
    pub fn with_backend(
        config: Config,
        backend: Box<dyn Backend>,
        invocation: Invocation,
    ) -> Store {
        let state_dir = backend.state_dir();
        Store {
            journal: Journal::new(&state_dir),
            config,
            backend,
            invocation,
            state_dir,
        }
    }

    /// Where sidus keeps its own state for this store.
    pub fn state_dir(&self) -> &PathBuf {
        &self.state_dir
    }

    /// Takes the writer lock of `tree`.
    pub fn lock(&self, tree: &TreeName) -> Result<TreeLock> {
        let timeout = Duration::from_secs_f64(self.config.lock_timeout_secs);
        let lock = TreeLock::acquire(&self.state_dir, tree.as_str(), timeout)?;
        self.backend.forget_cached();
        // Holding the lock, we know the sidus of any unfinished run is dead.
        crate::transaction::recover(self, tree)?;
        Ok(lock)
    }

    /// Runs a state-changing action and journals its outcome, success or failure.
    /// `action` returns the snapshot IDs it touched.
    pub fn journaled<T>(
        &self,
        action: &str,
        tree: Option<&TreeName>,
        f: impl FnOnce() -> Result<(T, Vec<String>)>,
    ) -> Result<T> {
        let result = f();
        let (outcome, snapshots) = match &result {
            Ok((_, ids)) => ("ok".to_string(), ids.clone()),
            Err(e) => (format!("failed: {e:#}"), Vec::new()),
        };
        let entry = Entry {
            time: chrono::Utc::now(),
            user: self.invocation.user.clone(),
            command: self.invocation.command.clone(),
            action: action.to_string(),
            tree: tree.map(|t| t.to_string()),
            snapshots,
            outcome,
        };
        let journaled = self.journal.append(&entry);
        let value = result?.0;
        journaled.context("the change was made but could not be journaled")?;
        Ok(value)
    }

    /// Refuses when the backend's shared pool is above the configured use.
    pub fn check_pool_room(&self, action: &str) -> Result<()> {
        if !self.backend.capabilities().pool_usage {
            return Ok(());
        }
        let Some(usage) = self.backend.pool_usage()? else {
            return Ok(());
        };
        let max = self.config.max_pool_use_percent();
        let meta = usage.metadata_percent.unwrap_or(0.0);
        if usage.data_percent > max || meta > max {
            bail!(
                "refusing to {action}: thin pool {} is {:.1}% full (data) and {:.1}% (metadata), above the {max}% limit \
                 (lvm.max_pool_use_percent); delete snapshots or extend the pool first",
                usage.name,
                usage.data_percent,
                meta
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_what_a_shell_reads_back() {
        assert_eq!(shell_quote("lab@latest"), "lab@latest");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }
}
