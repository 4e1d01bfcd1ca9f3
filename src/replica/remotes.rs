//! Remotes: other boot servers running sidus, reached by ssh or by any
//! command (a pipe), kept in the store's `.sidus/remotes.json` with when
//! each tree was last replicated there.
//!
//! How the remote sidus is started: for `ssh://[user@]host[:port]`, `ssh
//! -o BatchMode=yes [-p PORT] [USER@]HOST -- sidus ARGS...` (each argument
//! shell-quoted, since ssh hands the remote shell one line; the remote's
//! default config). For `--command CMD`, `sh -c 'CMD "$@"' sidus ARGS...`:
//! CMD is a shell command line (`ssh -i key host sudo sidus`, `sidus --config
//! /other/sidus.toml`) and the remote sidus's arguments are appended to it as
//! separate words, never parsed by a shell.

use crate::state::lock::TreeLock;
use crate::state::record;
use crate::store::{shell_quote, Store};
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::{argv, SnapshotId, TreeName};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The lock serializing writers of the remotes file (no tree name starts with `-`).
const LOCK: &str = "-remotes";

/// How a remote sidus is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Transport {
    /// ssh to the host, which runs `sidus` from its PATH.
    Ssh {
        /// The login, if not the current user's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// Port, if not 22.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
    /// Any command line; the remote sidus's arguments are appended.
    Command {
        /// The shell command line.
        command: String,
    },
}

impl Transport {
    /// Parses `ssh://[user@]host[:port]`.
    pub fn parse_url(url: &str) -> Result<Transport> {
        let bad = |why: &str| {
            anyhow::anyhow!("remote URL '{url}': {why} (expected ssh://[user@]host[:port])")
        };
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| bad("not an ssh:// URL"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("bad port")))
            .transpose()?;
        let ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        };
        if !ok(host) || user.as_deref().is_some_and(|u| !ok(u)) || rest.contains('/') {
            bail!(bad("bad user, host or path"));
        }
        Ok(Transport::Ssh {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// The argv that runs the remote sidus with `args`.
    pub fn argv(&self, args: &[OsString]) -> Vec<OsString> {
        match self {
            Transport::Ssh { user, host, port } => {
                let mut v = argv!["ssh", "-o", "BatchMode=yes"];
                if let Some(p) = port {
                    v.extend(argv!["-p", p.to_string()]);
                }
                v.push(match user {
                    Some(u) => format!("{u}@{host}").into(),
                    None => host.into(),
                });
                v.extend(argv!["--", "sidus"]);
                v.extend(
                    args.iter()
                        .map(|a| shell_quote(&a.to_string_lossy()).into()),
                );
                v
            }
            Transport::Command { command } => {
                let mut v = argv!["sh", "-c", format!("{command} \"$@\""), "sidus"];
                v.extend(args.iter().cloned());
                v
            }
        }
    }

    /// The transport as `remote list` shows it.
    pub fn shown(&self) -> String {
        match self {
            Transport::Ssh { user, host, port } => {
                let mut s = "ssh://".to_string();
                if let Some(u) = user {
                    s.push_str(&format!("{u}@"));
                }
                if host.contains(':') {
                    s.push_str(&format!("[{host}]"));
                } else {
                    s.push_str(host);
                }
                if let Some(p) = port {
                    s.push_str(&format!(":{p}"));
                }
                s
            }
            Transport::Command { command } => format!("command: {command}"),
        }
    }
}

/// One remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remote {
    /// Its name.
    pub name: String,
    /// How it is reached.
    pub transport: Transport,
    /// The address its nodes mount from (its `publish.server`): boot entries
    /// of an ID published there too list it after this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// When it was added.
    pub added: DateTime<Utc>,
    /// Per tree, the last replication that completed there.
    #[serde(default)]
    pub trees: BTreeMap<TreeName, Replicated>,
}

/// The last completed replication of a tree to a remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replicated {
    /// When it ended.
    pub time: DateTime<Utc>,
    /// The newest snapshot the remote had then.
    pub id: SnapshotId,
}

/// The remotes file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Remotes {
    /// By name.
    #[serde(default)]
    pub remotes: BTreeMap<String, Remote>,
}

fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("remotes.json")
}

/// Checks a remote name: the rule of tree names.
pub fn check_name(name: &str) -> Result<()> {
    if name.parse::<TreeName>().is_err() {
        bail!(crate::UsageError(format!(
            "bad remote name '{name}': use [a-z0-9][a-z0-9._-]{{0,47}}"
        )));
    }
    Ok(())
}

impl Remotes {
    /// Reads the remotes file; empty when there is none.
    pub fn load(state_dir: &Path) -> Result<Remotes> {
        Ok(record::read(&file(state_dir), "the remotes file")?.unwrap_or_default())
    }

    /// The named remotes, or every one when `names` is empty; an unknown name is an error.
    pub fn pick(&self, names: &[String]) -> Result<Vec<Remote>> {
        if names.is_empty() {
            if self.remotes.is_empty() {
                bail!("no remotes (add one with `sidus remote add NAME ssh://HOST`)");
            }
            return Ok(self.remotes.values().cloned().collect());
        }
        names
            .iter()
            .map(|n| {
                self.remotes.get(n).cloned().ok_or_else(|| {
                    anyhow::anyhow!("no remote named '{n}' (see `sidus remote list`)")
                })
            })
            .collect()
    }
}

/// Changes the remotes file under its lock, durably.
pub fn update<T>(store: &Store, f: impl FnOnce(&mut Remotes) -> Result<T>) -> Result<T> {
    let _lock = TreeLock::acquire(store.state_dir(), LOCK, store.lock_timeout())?;
    let mut remotes = Remotes::load(store.state_dir())?;
    let out = f(&mut remotes)?;
    record::write(&file(store.state_dir()), &remotes)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_parse_with_user_and_port() {
        assert_eq!(
            Transport::parse_url("ssh://root@boot2:2222").unwrap(),
            Transport::Ssh {
                user: Some("root".into()),
                host: "boot2".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            Transport::parse_url("ssh://10.0.0.2").unwrap(),
            Transport::Ssh {
                user: None,
                host: "10.0.0.2".into(),
                port: None
            }
        );
        let t = Transport::parse_url("ssh://[fe80::1]:22").unwrap();
        assert_eq!(t.shown(), "ssh://[fe80::1]:22");
        for bad in [
            "http://x",
            "ssh://",
            "ssh://-oProxyCommand=x",
            "ssh://h:port",
            "ssh://h/path",
        ] {
            assert!(Transport::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_arguments_are_quoted_for_ssh_and_appended_for_a_command() {
        let ssh = Transport::parse_url("ssh://u@h:2").unwrap();
        let args = argv!["replica-have", "it's"];
        let v: Vec<String> = ssh
            .argv(&args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            v,
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-p",
                "2",
                "u@h",
                "--",
                "sidus",
                "replica-have",
                r"'it'\''s'"
            ]
        );
        let cmd = Transport::Command {
            command: "sidus --config /b.toml".into(),
        };
        let out = sidus_backends::Runner::new()
            .run_string(&{
                let mut v = cmd.argv(&argv!["a b", "$HOME"]);
                v[2] = "printf '%s|' \"$@\"".into();
                v
            })
            .unwrap();
        assert_eq!(out, "a b|$HOME|");
    }
}
