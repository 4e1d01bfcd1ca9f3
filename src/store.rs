//! An opened store: the config, its backend, the journal and who is acting.

use crate::config::Config;
use crate::state::intent::{Change, Intent, Slot, TreeState};
use crate::state::journal::{Entry, Journal};
use crate::state::lock::TreeLock;
use crate::state::record::Durability;
use anyhow::{bail, Result};
use sidus_backends::{Backend, SnapshotId, TreeName};
use std::cell::RefCell;
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
    /// The journal action of the change [`Store::journaled`] is making.
    action: RefCell<Option<String>>,
    /// The intent of that change, once [`Store::begin`] wrote it.
    pending: RefCell<Option<(Slot, Intent)>>,
    /// What the journal entry of that change says after `ok: `.
    note: RefCell<Option<String>>,
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
            action: RefCell::new(None),
            pending: RefCell::new(None),
            note: RefCell::new(None),
        }
    }

    /// Where sidus keeps its own state for this store.
    pub fn state_dir(&self) -> &PathBuf {
        &self.state_dir
    }

    /// Takes the writer lock of `tree`, and nothing else: see
    /// [`Store::write_lock`] for opening a tree to change it.
    pub fn lock(&self, tree: &TreeName) -> Result<TreeLock> {
        let lock = TreeLock::acquire(&self.state_dir, tree.as_str(), self.lock_timeout())?;
        self.backend.forget_cached();
        Ok(lock)
    }

    /// Takes the writer lock of `tree` if it is free now, without waiting.
    pub fn try_lock(&self, tree: &TreeName) -> Result<Option<TreeLock>> {
        let lock = TreeLock::try_acquire(&self.state_dir, tree.as_str())?;
        if lock.is_some() {
            self.backend.forget_cached();
        }
        Ok(lock)
    }

    /// How long a writer waits for a lock.
    pub fn lock_timeout(&self) -> Duration {
        self.config.lock_timeout()
    }

    /// Opens `tree` for writing: takes its lock, then finishes or undoes what
    /// a sidus that died while changing it left (its intents, a run, the
    /// backend's half-done steps), journaling what recovery did. Holding the
    /// lock, we know the process that wrote any intent found is gone.
    pub fn write_lock(&self, tree: &TreeName) -> Result<TreeLock> {
        let lock = self.lock(tree)?;
        crate::trees::recover::recover_pending(self, tree)?;
        Ok(lock)
    }

    /// The ID the next snapshot of `tree` gets, after every ID the tree has
    /// now and every one it ever had (`last_id`), so an ID is never reused;
    /// and its parent, the newest snapshot now. The caller holds the lock and
    /// records the ID with [`Store::begin`].
    pub fn next_id(&self, tree: &TreeName) -> Result<(SnapshotId, Option<SnapshotId>)> {
        let mut ids = self
            .backend
            .snapshot_ids(tree)
            .map_err(crate::trees::not_found_hint)?;
        let parent = ids.iter().max().cloned();
        ids.extend(TreeState::load(&self.state_dir, tree)?.last_id);
        Ok((SnapshotId::next_after(chrono::Utc::now(), &ids), parent))
    }

    /// Gives the next ID of `tree` (with its parent, the newest snapshot now)
    /// for a snapshot taken as one step of a change whose intent is already
    /// written, recording it durably as the tree's `last_id` first.
    pub fn reserve_id(&self, tree: &TreeName) -> Result<(SnapshotId, Option<SnapshotId>)> {
        let next = self.next_id(tree)?;
        let mut st = TreeState::load(&self.state_dir, tree)?;
        st.last_id = Some(next.0.clone());
        // The snapshot that takes the ID is the next step.
        st.save_with(&self.state_dir, tree, self.before_storage_step())?;
        Ok(next)
    }

    /// How durable a state record written just before a storage step must
    /// be made by itself: not at all when the backend orders state (the step
    /// commits it), else now.
    fn before_storage_step(&self) -> Durability {
        if self.backend.capabilities().orders_state {
            Durability::Ordered
        } else {
            Durability::Synced
        }
    }

    /// Writes the intent of the change being made durably, before its first
    /// step (`last_id`: a snapshot ID the change will give, recorded in the
    /// same write). When that step is a storage step of a backend that orders
    /// state, the step itself makes the intent durable (no fsync here; see
    /// `Capabilities::orders_state`). [`Store::journaled`] clears it once the change is journaled.
    pub fn begin(&self, slot: Slot, change: Change, last_id: Option<&SnapshotId>) -> Result<()> {
        // Every change to a tree begins here: the one place a replica is
        // kept read-only.
        crate::replica::refuse_change_to_replica(&self.state_dir, &change)?;
        let action = self
            .action
            .borrow()
            .clone()
            .unwrap_or_else(|| "change".into());
        let started = chrono::Utc::now();
        let intent = Intent {
            id: format!(
                "{}-{}",
                started.format("%Y%m%dT%H%M%S%.6fZ"),
                std::process::id()
            ),
            action,
            pid: std::process::id(),
            started,
            user: self.invocation.user.clone(),
            command: self.invocation.command.clone(),
            change,
        };
        let how = if intent.change.begins_with_storage_step() {
            self.before_storage_step()
        } else {
            Durability::Synced
        };
        slot.save(&self.state_dir, &intent, last_id, how)?;
        *self.pending.borrow_mut() = Some((slot, intent));
        Ok(())
    }

    /// Rewrites the pending intent with a new `change` (a run that moves on to
    /// its next phase), durably.
    pub fn update_intent(&self, change: Change, last_id: Option<&SnapshotId>) -> Result<()> {
        let mut pending = self.pending.borrow_mut();
        let (slot, intent) = pending
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no change in progress to update"))?;
        intent.change = change;
        slot.save(&self.state_dir, intent, last_id, Durability::Synced)
    }

    /// Adds `note` to the journal entry of the change [`Store::journaled`] is
    /// making: its outcome reads `ok: NOTE` (what an admin must find later,
    /// e.g. the secrets a publish was told to share).
    pub fn note_outcome(&self, note: String) {
        *self.note.borrow_mut() = Some(note);
    }

    /// Runs a state-changing action and journals its outcome, success or
    /// failure; `action` returns the snapshot IDs it touched. The change's
    /// intent (if `f` began one) is cleared only once the journal has the
    /// entry: when the journal cannot be written (a full disk) after the
    /// change landed, sidus says so, returns the result (so the new ID is
    /// printed and a retrying script does not make a second one) and leaves
    /// the intent for the next writer to journal.
    pub fn journaled<T>(
        &self,
        action: &str,
        tree: Option<&TreeName>,
        f: impl FnOnce() -> Result<(T, Vec<String>)>,
    ) -> Result<T> {
        let outer = self.action.replace(Some(action.to_string()));
        let result = f();
        self.action.replace(outer);
        let pending = self.pending.borrow_mut().take();
        let note = self.note.borrow_mut().take();
        let (outcome, snapshots) = match &result {
            Ok((_, ids)) => match note {
                Some(n) => (format!("ok: {n}"), ids.clone()),
                None => ("ok".to_string(), ids.clone()),
            },
            Err(e) => (
                format!("failed: {e:#}"),
                e.downcast_ref::<crate::transaction::CommandFailed>()
                    .map(|f| f.snapshots.clone())
                    .unwrap_or_default(),
            ),
        };
        let entry = Entry {
            time: chrono::Utc::now(),
            user: self.invocation.user.clone(),
            command: self.invocation.command.clone(),
            action: action.to_string(),
            tree: tree.map(|t| t.to_string()),
            snapshots,
            outcome,
            intent: pending.as_ref().map(|(_, i)| i.id.clone()),
        };
        let journaled = self.journal.append(&entry);
        if let Err(e) = &journaled {
            if result.is_ok() {
                eprintln!(
                    "sidus: warning: the {action} was made but its journal entry could not be written ({e:#}); \
                     the next command that changes the tree writes it"
                );
            }
        }
        crate::state::failpoint::hit("done:before-clear");
        if let Some((slot, _)) = pending {
            if journaled.is_ok() || result.is_err() {
                if let Err(e) = slot.clear(&self.state_dir) {
                    log::warn!("{e:#}");
                }
            }
        }
        let value = result?.0;
        if let Err(e) = journaled {
            log::debug!("journal: {e:#}");
        }
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
