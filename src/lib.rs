//! sidus: version control for the system trees of diskless clusters.
//!
//! The binary is a thin shim over [`run`]; the modules hold the policy (what is
//! refused, what is journaled) above the storage mechanism in `sidus-backends`.

pub mod cli;
mod commands;
pub mod config;
pub mod doctor;
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
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sidus: {}", error_chain(&e));
            // `sidus run`: the command's own status passes through.
            if let Some(failed) = e.downcast_ref::<transaction::CommandFailed>() {
                return ExitCode::from(failed.code);
            }
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
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
}
