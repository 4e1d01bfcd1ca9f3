//! The processes of a run. sidus forks a helper that unshares the namespaces and
//! forks PID 1 of the new PID namespace; PID 1 builds the root, forks the command
//! and reaps every orphan until the command exits, then exits itself. The kernel
//! then kills whatever the command left in the namespace (and waits for it), and
//! the mount namespace, holding no process any more, takes every mount with it.
//!
//! Both helpers die with their parent (`PR_SET_PDEATHSIG`), so a `kill -9` of
//! sidus takes the whole sandbox down at once.

use super::exec::Exec;
use super::mounts::RealSys;
use super::paths::TreeRoot;
use super::{build_root, enter_namespaces, Spec};
use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// This signal killed it.
    Signaled(i32),
    /// It started, but the sandbox failed before its status was known: the
    /// tree may hold part of what it did, so the run's failure policy applies.
    Lost,
}

impl Outcome {
    /// The status a shell would report: the exit status, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Outcome::Exited(c) => c,
            Outcome::Signaled(s) => 128 + s,
            // podman's "the container runtime failed".
            Outcome::Lost => 125,
        }
    }

    /// Whether the command succeeded.
    pub fn success(self) -> bool {
        self == Outcome::Exited(0)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Outcome::Exited(c) => write!(f, "exited with status {c}"),
            Outcome::Signaled(s) => {
                let name = Signal::try_from(s).map(|s| s.as_str()).unwrap_or("?");
                write!(f, "was killed by signal {s} ({name})")
            }
            Outcome::Lost => f.write_str("ran, but the sandbox failed before its status was known"),
        }
    }
}

/// The helper's host PID while a sandbox runs, for the SIGTERM/SIGHUP handler.
static HELPER: AtomicI32 = AtomicI32::new(0);
/// The signal that made sidus kill the sandbox, if one did.
static ABORTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn abort_sandbox(sig: libc::c_int) {
    ABORTED.store(sig, Ordering::SeqCst);
    let pid = HELPER.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; the helper's death kills PID 1
        // (parent-death signal) and so the whole namespace.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Runs the command of `spec` in a new sandbox on `tree` and waits for it and
/// everything it started. An error means the sandbox could not be built (the
/// command did not run); the command's own failure is an [`Outcome`].
pub fn run(tree: &TreeRoot, spec: &Spec) -> Result<Outcome> {
    let exec = Exec::new(spec)?;
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("create the sandbox's report pipe")?;
    let parent = nix::unistd::getpid();
    let tty = Foreground::save();
    // SAFETY: sidus is single-threaded here; the child only runs `helper`, which
    // ends in `_exit` and never returns into sidus.
    let helper = match unsafe { fork() }.context("fork the sandbox")? {
        ForkResult::Child => {
            drop(report_r);
            child_main(|| helper(tree, spec, &exec, parent, report_w))
        }
        ForkResult::Parent { child } => child,
    };
    drop(report_w);
    ABORTED.store(0, Ordering::SeqCst);
    let guard = SignalGuard::install(helper);
    let waited = wait_for(helper);
    drop(guard);
    tty.restore();
    let mut report = String::new();
    std::fs::File::from(report_r)
        .read_to_string(&mut report)
        .context("read the sandbox's report")?;
    let status = waited?;
    let aborted = ABORTED.swap(0, Ordering::SeqCst);
    if aborted != 0 && report.is_empty() {
        // sidus was told to stop: the run ends as if the command had got the signal.
        return Ok(Outcome::Signaled(aborted));
    }
    parse_report(&report, status)
}

/// Turns what PID 1 wrote (or, when it wrote nothing, how the helper ended) into
/// the outcome.
fn parse_report(report: &str, helper: WaitStatus) -> Result<Outcome> {
    for line in report.lines() {
        if let Some(e) = line.strip_prefix("error: ") {
            bail!("{e}");
        }
        if let Some(c) = line.strip_prefix("exit ") {
            return Ok(Outcome::Exited(c.parse().context("sandbox report")?));
        }
        if let Some(s) = line.strip_prefix("signal ") {
            return Ok(Outcome::Signaled(s.parse().context("sandbox report")?));
        }
        if let Some(e) = line.strip_prefix("lost: ") {
            log::warn!("the command's status is unknown: {e}");
            return Ok(Outcome::Lost);
        }
    }
    // No error before the command started and no status: it may have run.
    log::warn!("the sandbox ended without reporting the command's status ({helper:?})");
    Ok(Outcome::Lost)
}

fn wait_for(pid: Pid) -> Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.context("wait for the sandbox"),
        }
    }
}

/// Runs a forked child's body and exits; a panic must not unwind into the
/// parent's code, which the child holds a copy of.
fn child_main(body: impl FnOnce() -> i32) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(125);
    // SAFETY: _exit skips the parent's atexit handlers and buffered output,
    // which belong to the parent.
    unsafe { libc::_exit(code) }
}

fn report(pipe: &OwnedFd, line: &str) {
    let mut f = std::fs::File::from(pipe.try_clone().expect("dup report pipe"));
    let _ = f.write_all(format!("{line}\n").as_bytes());
}

/// Dies when the parent does; returns false when it is already gone. `None`
/// for PID 1, whose parent is outside its PID namespace (getppid gives 0).
fn die_with(parent: Option<Pid>) -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    parent.is_none_or(|p| nix::unistd::getppid() == p)
}

fn ignore(signals: &[libc::c_int]) {
    for &s in signals {
        // SAFETY: SIG_IGN runs no code.
        unsafe { libc::signal(s, libc::SIG_IGN) };
    }
}

/// The first child: new namespaces, then PID 1 of the new PID namespace.
fn helper(tree: &TreeRoot, spec: &Spec, exec: &Exec, parent: Pid, pipe: OwnedFd) -> i32 {
    if !die_with(Some(parent)) {
        return 125;
    }
    // Ctrl-C and Ctrl-\ are for the command; the helpers must outlive it.
    ignore(&[libc::SIGINT, libc::SIGQUIT]);
    if let Err(e) = enter_namespaces(&mut RealSys::new(tree), spec.access.network) {
        report(&pipe, &format!("error: {e:#}"));
        return 125;
    }
    // SAFETY: single-threaded; the child ends in `_exit`.
    match unsafe { fork() } {
        Err(e) => {
            report(&pipe, &format!("error: fork PID 1 of the sandbox: {e}"));
            125
        }
        Ok(ForkResult::Child) => child_main(|| init(tree, spec, exec, pipe)),
        Ok(ForkResult::Parent { child }) => {
            drop(pipe);
            match wait_for(child) {
                Ok(WaitStatus::Exited(_, c)) => c,
                _ => 125,
            }
        }
    }
}

/// PID 1 of the sandbox: builds the root, starts the command, reaps orphans.
fn init(tree: &TreeRoot, spec: &Spec, exec: &Exec, pipe: OwnedFd) -> i32 {
    // The helper only waits for us: it can die only by a signal, and then we
    // die too from here on.
    die_with(None);
    if let Err(e) = build_root(&mut RealSys::new(tree), spec) {
        report(&pipe, &format!("error: {e:#}"));
        return 125;
    }
    // SAFETY: single-threaded; the child execs or ends in `_exit`.
    let command = match unsafe { fork() } {
        Err(e) => {
            report(&pipe, &format!("error: fork the command: {e}"));
            return 125;
        }
        Ok(ForkResult::Child) => child_main(|| exec.exec()),
        Ok(ForkResult::Parent { child }) => child,
    };
    loop {
        // Every orphan of the namespace is reparented to us: reap them all,
        // until the command itself ends.
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, c)) if pid == command => {
                report(&pipe, &format!("exit {c}"));
                return c;
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                report(&pipe, &format!("signal {}", sig as i32));
                return 128 + sig as i32;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                report(&pipe, &format!("lost: wait for the command: {e}"));
                return 125;
            }
        }
    }
}

/// While a sandbox runs, sidus ignores Ctrl-C and Ctrl-\ (they reach the command,
/// which decides) and turns SIGTERM/SIGHUP into killing the sandbox, so the run
/// ends as a failure and is handled like one.
struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    fn install(helper: Pid) -> SignalGuard {
        HELPER.store(helper.as_raw(), Ordering::SeqCst);
        let mut old = Vec::new();
        for (sig, handler) in [
            (libc::SIGINT, libc::SIG_IGN),
            (libc::SIGQUIT, libc::SIG_IGN),
            (
                libc::SIGTERM,
                abort_sandbox as *const () as libc::sighandler_t,
            ),
            (
                libc::SIGHUP,
                abort_sandbox as *const () as libc::sighandler_t,
            ),
        ] {
            // SAFETY: plain sigaction calls; the handler is async-signal-safe.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler;
                new.sa_flags = libc::SA_RESTART;
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores what was there before.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
        HELPER.store(0, Ordering::SeqCst);
    }
}

/// An interactive shell in the sandbox takes the terminal's foreground; sidus
/// takes it back when the shell is gone.
struct Foreground(Option<Pid>);

impl Foreground {
    fn save() -> Foreground {
        let stdin = std::io::stdin();
        let ours = nix::unistd::getpgrp();
        Foreground(match nix::unistd::tcgetpgrp(&stdin) {
            Ok(fg) if fg == ours => Some(ours),
            _ => None,
        })
    }

    fn restore(self) {
        let Some(pgrp) = self.0 else { return };
        // SAFETY: ignoring SIGTTOU runs no code; tcsetpgrp from a background
        // group would otherwise stop sidus.
        let prev = unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) };
        let _ = nix::unistd::tcsetpgrp(std::io::stdin(), pgrp);
        // SAFETY: restores the previous disposition.
        unsafe { libc::signal(libc::SIGTTOU, prev) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_codes_are_what_a_shell_reports() {
        assert_eq!(Outcome::Exited(3).code(), 3);
        assert_eq!(Outcome::Signaled(9).code(), 137);
        assert!(Outcome::Exited(0).success());
        assert!(!Outcome::Signaled(15).success());
        assert_eq!(
            Outcome::Signaled(9).to_string(),
            "was killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn report_lines_become_outcomes_or_errors() {
        let ok = WaitStatus::Exited(Pid::from_raw(1), 0);
        assert_eq!(parse_report("exit 4\n", ok).unwrap(), Outcome::Exited(4));
        assert_eq!(
            parse_report("signal 15\n", ok).unwrap(),
            Outcome::Signaled(15)
        );
        let e = parse_report("error: refusing to mount on tmp\n", ok).unwrap_err();
        assert_eq!(e.to_string(), "refusing to mount on tmp");
        // Killed with no status reported: the command may have run, so the
        // run's failure policy applies rather than the setup undo.
        let killed = WaitStatus::Signaled(Pid::from_raw(1), Signal::SIGKILL, false);
        assert_eq!(parse_report("", killed).unwrap(), Outcome::Lost);
        assert_eq!(
            parse_report("lost: wait for the command: EINTR\n", ok).unwrap(),
            Outcome::Lost
        );
        assert_eq!(Outcome::Lost.code(), 125);
    }
}
