//! sidus: version control for the system trees of diskless clusters.
//!
//! The binary is a thin shim over [`run`]; the modules hold the policy (what is
//! refused, what is journaled) above the storage mechanism in `sidus-backends`.

pub mod cli;
mod commands;
pub mod config;
pub mod history;
mod logging;
pub mod man;
#[cfg(test)]
mod orchestration_tests;
pub mod output;
pub mod publish;
pub mod sandbox;
pub mod state;
pub mod store;
pub mod transaction;
pub mod trees;

use clap::Parser;
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

/// The error and its causes as one line, `a: b: c`. A cause whose text the
/// line already ends with is left out: backend errors print their source in
/// their own message, and it must not appear twice.
pub fn error_chain(e: &anyhow::Error) -> String {
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
    }
    line
}

/// Parses the command line, runs it, prints any error once, and gives the exit code.
pub fn run() -> ExitCode {
    // `sidus log | head` must end quietly, as other Unix tools do, not panic.
    // SAFETY: setting a signal disposition to SIG_DFL runs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    logging::init(cli.verbose);
    let runs_a_command = matches!(
        cli.command,
        cli::Command::Run(_) | cli::Command::Shell(_) | cli::Command::Update(_)
    );
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sidus: {}", error_chain(&e));
            ExitCode::from(exit_code(&e, runs_a_command))
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
    fn run_exit_codes_tell_sidus_from_the_command() {
        let failed = |code| {
            anyhow::Error::new(transaction::CommandFailed {
                code,
                message: String::new(),
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
