//! The one way backends run external programs: argv logged, locale forced,
//! failures turned into a [`CommandError`] that carries the command and its stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};

/// How many bytes of stderr an error keeps: enough for the tool's own message,
/// not enough to flood a terminal.
const STDERR_KEEP: usize = 1024;

/// A command that could not be started or exited unsuccessfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The full argv, for the admin to re-run by hand.
    pub argv: Vec<String>,
    /// Exit code, or `None` when it could not start or died from a signal.
    pub status: Option<i32>,
    /// The tail of stderr (or the spawn error).
    pub stderr: String,
    /// Why it could not be started (`NotFound`: the program is not
    /// installed), or `None` when it ran.
    pub spawn_error: Option<std::io::ErrorKind>,
}

impl CommandError {
    /// The command line, shell-quoted where needed, as an admin would type it.
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if !a.is_empty()
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,%+".contains(&b))
                {
                    a.clone()
                } else {
                    format!("'{}'", a.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The last non-empty stderr line: usually the tool's own one-line reason.
    pub fn reason(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(code) => write!(f, "`{}` failed (exit {code})", self.command_line())?,
            None => write!(f, "`{}` failed", self.command_line())?,
        }
        let reason = self.reason();
        if !reason.is_empty() {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CommandError {}

/// Runs external programs. Cheap to clone; holds no process-wide state so tests
/// can build their own.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    _private: (),
}

impl Runner {
    /// A runner with the default settings.
    pub fn new() -> Runner {
        Runner::default()
    }

    fn command<S: AsRef<OsStr>>(argv: &[S]) -> Command {
        let mut cmd = Command::new(argv[0].as_ref());
        cmd.args(&argv[1..]);
        // Parsed output must not change with the admin's locale.
        cmd.env("LC_ALL", "C.UTF-8");
        // lvm2 warns about every inherited descriptor; we pass none on purpose.
        cmd.env("LVM_SUPPRESS_FD_WARNINGS", "1");
        cmd
    }

    fn argv_strings<S: AsRef<OsStr>>(argv: &[S]) -> Vec<String> {
        argv.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect()
    }

    /// Runs `argv` with `stdin` fed from `input`, returns stdout on success.
    pub fn run_with_input<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>, CommandError> {
        let strings = Self::argv_strings(argv);
        log::debug!("exec: {}", strings.join(" "));
        let mut cmd = Self::command(argv);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |e: std::io::Error| CommandError {
            argv: strings.clone(),
            status: None,
            stderr: e.to_string(),
            spawn_error: Some(e.kind()),
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let Some(data) = input {
            let mut stdin = child.stdin.take().expect("piped");
            stdin.write_all(data).map_err(spawn_err)?;
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let err = CommandError {
            argv: strings,
            status: out.status.code(),
            stderr: tail(&stderr).to_string(),
            spawn_error: None,
        };
        log::debug!("failed: {err}");
        Err(err)
    }

    /// Runs `argv`, returns stdout on success.
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Vec<u8>, CommandError> {
        self.run_with_input(argv, None)
    }

    /// Runs `argv`, returns stdout as (lossy) UTF-8.
    pub fn run_string<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<String, CommandError> {
        self.run(argv)
            .map(|o| String::from_utf8_lossy(&o).into_owned())
    }

    /// Runs `argv` and parses its stdout as JSON.
    pub fn run_json<T: serde::de::DeserializeOwned, S: AsRef<OsStr>>(
        &self,
        argv: &[S],
    ) -> Result<T, CommandError> {
        let out = self.run(argv)?;
        serde_json::from_slice(&out).map_err(|e| CommandError {
            argv: Self::argv_strings(argv),
            status: Some(0),
            stderr: format!("unexpected output: {e}"),
            spawn_error: None,
        })
    }
}

/// A program started by [`Runner::spawn`] whose stdin or stdout the caller
/// streams (a `btrfs send`, a `zfs recv`, a remote sidus); its stderr is kept
/// (the tail, for the error) by a thread so a chatty tool never blocks.
pub struct Streaming {
    argv: Vec<String>,
    /// The running program; take its piped stdin/stdout.
    pub child: std::process::Child,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Streaming {
    /// Waits for the program; a failure carries its argv, status and stderr tail.
    pub fn finish(mut self) -> Result<(), CommandError> {
        drop(self.child.stdin.take());
        let status = self.child.wait().map_err(|e| CommandError {
            argv: self.argv.clone(),
            status: None,
            stderr: e.to_string(),
            spawn_error: None,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&stderr);
        let err = CommandError {
            argv: self.argv,
            status: status.code(),
            stderr: tail(&stderr).to_string(),
            spawn_error: None,
        };
        log::debug!("failed: {err}");
        Err(err)
    }

    /// The program's argv, for messages.
    pub fn command_line(&self) -> String {
        CommandError {
            argv: self.argv.clone(),
            status: None,
            stderr: String::new(),
            spawn_error: None,
        }
        .command_line()
    }
}

/// The last [`STDERR_KEEP`] bytes of `stderr`, cut on a char boundary.
fn tail(stderr: &str) -> &str {
    let start = stderr.len().saturating_sub(STDERR_KEEP);
    let start = (start..stderr.len())
        .find(|&i| stderr.is_char_boundary(i))
        .unwrap_or(0);
    &stderr[start..]
}

impl Runner {
    /// Starts `argv` with the given stdin and stdout (pipes, files or
    /// another program's ends), for data streamed through it.
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        stdin: Stdio,
        stdout: Stdio,
    ) -> Result<Streaming, CommandError> {
        let strings = Self::argv_strings(argv);
        log::debug!("exec: {}", strings.join(" "));
        let mut cmd = Self::command(argv);
        cmd.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| CommandError {
            argv: strings.clone(),
            status: None,
            stderr: e.to_string(),
            spawn_error: Some(e.kind()),
        })?;
        let mut err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut buf);
            buf
        });
        Ok(Streaming {
            argv: strings,
            child,
            stderr: Some(stderr),
        })
    }
}

/// Builds an argv of mixed `&str`, `String`, `&Path`, ... values.
#[macro_export]
macro_rules! argv {
    ($($a:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from($a)),*] as Vec<::std::ffi::OsString>
    };
}

/// Helper so callers can pass `Vec<OsString>` without thinking about it.
pub type Argv = Vec<OsString>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keeps_argv_status_and_last_stderr_line() {
        let r = Runner::new();
        let err = r
            .run(&[
                "sh",
                "-c",
                "echo noise >&2; echo 'pool is full' >&2; exit 3",
            ])
            .unwrap_err();
        assert_eq!(err.status, Some(3));
        assert_eq!(err.reason(), "pool is full");
        assert_eq!(
            err.to_string(),
            "`sh -c 'echo noise >&2; echo '\\''pool is full'\\'' >&2; exit 3'` failed (exit 3): pool is full"
        );
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        let err = Runner::new().run(&["/nonexistent/sidus-test"]).unwrap_err();
        assert_eq!(err.status, None);
        assert_eq!(err.spawn_error, Some(std::io::ErrorKind::NotFound));
    }

    #[test]
    fn json_output_is_parsed_and_garbage_is_reported() {
        let r = Runner::new();
        let v: serde_json::Value = r.run_json(&["echo", r#"{"a": 1}"#]).unwrap();
        assert_eq!(v["a"], 1);
        let err = r
            .run_json::<serde_json::Value, _>(&["echo", "nope"])
            .unwrap_err();
        assert!(err.stderr.starts_with("unexpected output"));
    }

    #[test]
    fn stdin_is_fed() {
        let out = Runner::new().run_with_input(&["cat"], Some(b"hi")).unwrap();
        assert_eq!(out, b"hi");
    }
}
