//! sidus: version control for the system trees of diskless clusters.
//!
//! The binary is a thin shim over [`run`]; the modules hold the policy (what is
//! refused, what is journaled) above the storage mechanism in `sidus-backends`.

pub mod archive;
pub mod cli;
mod commands;
pub mod completion;
pub mod config;
pub mod config_keys;
pub mod doctor;
pub mod history;
mod logging;
pub mod man;
pub mod manifest;
#[cfg(test)]
mod orchestration_tests;
pub mod output;
pub mod progress;
pub mod publish;
pub mod replica;
pub mod sandbox;
pub mod sbom;
pub mod state;
pub mod store;
pub mod transaction;
pub mod trees;

use std::process::ExitCode;

/// A mistake in how sidus was called, found after argument parsing: exit 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An error that brings what the failed command had done, for `--json`: the
/// error document carries `value` under `key` (a failed `sidus run` adds its
/// report, with the pre and post snapshot IDs), or, with `key` empty, the
/// fields of the object `value` beside `error` (a report whose failure is
/// its content, as `verify` and `doctor`: the document a script reads is the
/// same on success and failure). People see only the error.
#[derive(Debug)]
pub struct WithDetail {
    /// The failure itself.
    pub error: anyhow::Error,
    /// The field of the error document that holds `value`.
    pub key: &'static str,
    /// What the command had done.
    pub value: serde_json::Value,
}

impl std::fmt::Display for WithDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The outermost message only: the chain goes on through `source`.
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for WithDetail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The failure under any [`WithDetail`] wrapping.
fn failure(e: &anyhow::Error) -> &anyhow::Error {
    match e.downcast_ref::<WithDetail>() {
        Some(d) => failure(&d.error),
        None => e,
    }
}

/// The messages of the error and its causes, outermost first. A cause whose
/// text the line so far already ends with is left out: backend errors print
/// their source in their own message, and it must not appear twice.
fn chain_parts(e: &anyhow::Error) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        parts.push(text);
    }
    parts
}

/// The error and its causes as one line, `a: b: c`, each cause once.
pub fn error_chain(e: &anyhow::Error) -> String {
    chain_parts(e).join(": ")
}

/// The `--json` document of a failure, fields in this order: `error` is the
/// whole line stderr gets, `causes` the messages under the outermost one
/// (outermost first), `exit` the exit status, then any [`WithDetail`].
#[derive(Debug, serde::Serialize)]
pub struct ErrorDocument {
    /// The error and its causes as one line.
    pub error: String,
    /// The causes under the outermost message.
    pub causes: Vec<String>,
    /// The exit status.
    pub exit: u8,
    /// What the failed command had done, by field.
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// The `--json` document of the failure `e` that exits with `exit`.
pub fn error_document(e: &anyhow::Error, exit: u8) -> ErrorDocument {
    let mut parts = chain_parts(e);
    let error = parts.join(": ");
    let causes = if parts.is_empty() {
        parts
    } else {
        parts.split_off(1)
    };
    let mut detail = serde_json::Map::new();
    let mut at = e;
    while let Some(d) = at.downcast_ref::<WithDetail>() {
        match (d.key, d.value.as_object()) {
            ("", Some(fields)) => {
                for (k, v) in fields {
                    if !["error", "causes", "exit"].contains(&k.as_str()) {
                        detail.insert(k.clone(), v.clone());
                    }
                }
            }
            (key, _) => {
                detail.insert(key.to_string(), d.value.clone());
            }
        }
        at = &d.error;
    }
    ErrorDocument {
        error,
        causes,
        exit,
        detail,
    }
}

/// Whether the command line asks for `--json`, looked up before clap parses
/// it, so that a usage error is a JSON document too. Arguments after `--`
/// (the command of `sidus run`) are not sidus's.
fn asks_for_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// A command line clap refused: help and version print as usual; a usage
/// error prints clap's message on stderr and, under `--json`, its document.
fn usage_failure(e: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    // clap's message is several lines (the error, tips, usage): the first
    // says what was wrong.
    let text = e.render().to_string();
    let error = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let _ = e.print();
    output::json(&ErrorDocument {
        error,
        causes: vec![],
        exit: code,
        detail: Default::default(),
    });
    ExitCode::from(code)
}

/// Parses the command line, runs it, prints any error once, and gives the exit code.
pub fn run() -> ExitCode {
    // `sidus log | head` must end quietly, as other Unix tools do, not panic.
    // SAFETY: setting a signal disposition to SIG_DFL runs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // State, exports and boot files are read by nfsd, tftpd and nodes, and a
    // tree's files by every node: none may be writable by group or others, nor
    // unreadable to them, because of the umask of the shell sidus was started
    // from (000, or 077). The writers set their modes too; this also covers the
    // tools sidus runs (mkfs, btrfs, zfs, mount helpers) and `sidus run`.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    completion::answer_if_asked();
    let json = asks_for_json(std::env::args_os());
    let cli = match cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_failure(e, json),
    };
    let json = cli.json;
    logging::init(cli.verbose);
    let runs_a_command = matches!(
        cli.command,
        cli::Command::Run(_) | cli::Command::Shell(_) | cli::Command::Update(_)
    );
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e, runs_a_command);
            // The one print site of a failure: a line for people on stderr,
            // and under --json the one document on stdout.
            eprintln!("sidus: {}", output::escape(&error_chain(&e)));
            if json {
                output::json(&error_document(&e, code));
            }
            ExitCode::from(code)
        }
    }
}

/// Status for a failure of sidus itself under `run`, `shell` and `update`,
/// where every other status is the command's (podman's convention).
pub const SIDUS_FAILED: u8 = 125;

/// The exit status for `e`: the command's own for a failed `sidus run`
/// (126 and 127 when it could not be started), 2 for a usage error, and for
/// any other failure 125 in a command that runs one in a tree, else 1.
pub fn exit_code(e: &anyhow::Error, runs_a_command: bool) -> u8 {
    let e = failure(e);
    if let Some(failed) = e.downcast_ref::<transaction::CommandFailed>() {
        return failed.code;
    }
    if e.downcast_ref::<UsageError>().is_some() {
        2
    } else if runs_a_command {
        SIDUS_FAILED
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_names_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let backend = sidus_backends::BackendError::io("read", "/x", io);
        let e = anyhow::Error::new(backend).context("prune 'lab'");
        assert_eq!(error_chain(&e), "prune 'lab': read /x: disk on fire");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&e), "outer: inner");
    }

    #[test]
    fn error_document_has_the_line_the_causes_and_the_status() {
        let io = std::io::Error::other("disk on fire");
        let backend = sidus_backends::BackendError::io("read", "/x", io);
        let e = anyhow::Error::new(backend).context("prune 'lab'");
        let doc = serde_json::to_value(error_document(&e, 1)).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "error": "prune 'lab': read /x: disk on fire",
                "causes": ["read /x: disk on fire"],
                "exit": 1,
            })
        );
        let e = anyhow::anyhow!("alone");
        assert!(error_document(&e, 1).causes.is_empty());
    }

    #[test]
    fn a_detailed_failure_keeps_its_status_and_adds_its_detail() {
        let inner = anyhow::Error::new(UsageError("bad".into())).context("outer");
        let e = anyhow::Error::new(WithDetail {
            error: inner,
            key: "run",
            value: serde_json::json!({ "pre": "X" }),
        });
        assert_eq!(exit_code(&e, false), 2);
        assert_eq!(error_chain(&e), "outer: bad");
        let doc = serde_json::to_value(error_document(&e, 2)).unwrap();
        assert_eq!(doc["run"]["pre"], "X");
        assert_eq!(doc["error"], "outer: bad");
    }

    #[test]
    fn json_is_looked_up_before_the_command_separator_only() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(asks_for_json(
            args(&["sidus", "list", "--json"]).into_iter()
        ));
        assert!(asks_for_json(
            args(&["sidus", "--json", "run", "x"]).into_iter()
        ));
        assert!(!asks_for_json(
            args(&["sidus", "run", "x", "--", "tool", "--json"]).into_iter()
        ));
        assert!(!asks_for_json(args(&["--json"]).into_iter()));
    }

    #[test]
    fn run_exit_codes_tell_sidus_from_the_command() {
        let failed = |code| {
            anyhow::Error::new(transaction::CommandFailed {
                code,
                message: String::new(),
                snapshots: vec![],
            })
        };
        assert_eq!(exit_code(&failed(127), true), 127);
        assert_eq!(exit_code(&failed(3), true), 3);
        let own = anyhow::anyhow!("no tree named 'x'");
        assert_eq!(exit_code(&own, true), 125);
        assert_eq!(exit_code(&own, false), 1);
        let usage = anyhow::Error::new(UsageError("no command".into()));
        assert_eq!(exit_code(&usage, true), 2);
        // Context added on the way keeps the kind.
        assert_eq!(exit_code(&failed(126).context("run"), true), 126);
    }
}
