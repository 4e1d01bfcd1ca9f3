//! The command's own process: its argv, environment and the candidate paths
//! to exec, prepared before any fork, and what it says (and which status it
//! gives, as shells and podman do) when it cannot be started.

use super::{Spec, PATH};
use anyhow::{bail, Context, Result};
use std::ffi::CString;

/// The status of a command that exists but cannot be run (shells and podman).
pub const CANNOT_RUN: i32 = 126;
/// The status of a command that is not in the tree.
pub const NOT_FOUND: i32 = 127;

/// The command's argv, environment and candidate paths, prepared before any fork.
pub struct Exec {
    argv: Vec<CString>,
    env: Vec<CString>,
    candidates: Vec<CString>,
}

impl Exec {
    /// Prepares the command of `spec` (a NUL byte in it is refused).
    pub fn new(spec: &Spec) -> Result<Exec> {
        let cstr = |s: &str| CString::new(s).with_context(|| format!("NUL byte in {s:?}"));
        let Some(prog) = spec.argv.first() else {
            bail!("no command to run")
        };
        let argv = spec
            .argv
            .iter()
            .map(|a| cstr(a))
            .collect::<Result<Vec<_>>>()?;
        let env = spec
            .env
            .iter()
            .map(|(k, v)| cstr(&format!("{k}={v}")))
            .collect::<Result<Vec<_>>>()?;
        // execvp would search sidus's own PATH; the command gets the sandbox's.
        let candidates = if prog.contains('/') {
            vec![cstr(prog)?]
        } else {
            PATH.split(':')
                .map(|d| cstr(&format!("{d}/{prog}")))
                .collect::<Result<_>>()?
        };
        Ok(Exec {
            argv,
            env,
            candidates,
        })
    }

    /// In the command's process: default signal handling, then exec.
    pub fn exec(&self) -> i32 {
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                // SAFETY: resetting dispositions runs no code.
                unsafe { libc::signal(s, libc::SIG_DFL) };
            }
        }
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        );
        // As execvp: a file found but not executable is remembered while the
        // search goes on; any other error of a file that exists ends it.
        let mut cannot = None;
        for path in &self.candidates {
            let err = nix::unistd::execve(path, &self.argv, &self.env).unwrap_err();
            let exists = nix::sys::stat::stat(path.as_c_str()).is_ok();
            if exists && cannot.is_none() {
                cannot = Some((path, err));
            }
            if exists && err != nix::errno::Errno::EACCES {
                break;
            }
        }
        let prog = self.argv[0].to_string_lossy();
        match cannot {
            None if prog.contains('/') => {
                eprintln!("sidus: {prog}: no such file in the tree");
                NOT_FOUND
            }
            None => {
                eprintln!("sidus: {prog}: command not found in the tree (PATH={PATH})");
                NOT_FOUND
            }
            Some((path, err)) => {
                let why = match err {
                    // The file is there: what is missing is what runs it.
                    nix::errno::Errno::ENOENT => {
                        "its interpreter (#! line) or dynamic loader is missing in the tree"
                    }
                    e => e.desc(),
                };
                eprintln!("sidus: cannot run {}: {why}", path.to_string_lossy());
                CANNOT_RUN
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_searched_in_the_sandbox_path() {
        let spec = Spec {
            argv: vec!["apt-get".into(), "update".into()],
            env: vec![],
            resolv: super::super::Resolv::Off(String::new()),
            host_resolv: (Default::default(), vec![]),
            access: Default::default(),
        };
        let e = Exec::new(&spec).unwrap();
        assert_eq!(e.candidates[0].to_str().unwrap(), "/usr/local/sbin/apt-get");
        assert_eq!(e.candidates.len(), PATH.split(':').count());
        let spec = Spec {
            argv: vec!["/bin/sh".into()],
            ..spec
        };
        assert_eq!(Exec::new(&spec).unwrap().candidates.len(), 1);
    }
}
