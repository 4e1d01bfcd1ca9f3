//! One connection to a remote's `sidus replica-receive TREE`: it first
//! answers what it has of the tree (one [`Have`] line), then takes snapshots
//! one after the other (a [`Header`] line and the framed stream each,
//! answered by a [`Received`] line) until its stdin closes. One ssh
//! handshake and one remote sidus per replication, however many snapshots.

use super::remotes::Remote;
use super::wire::{self, Have, Header, Received};
use crate::manifest::Manifest;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use sidus_backends::runner::Streaming;
use sidus_backends::{argv, Runner, Snapshot, TreeName};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Stdio};

/// Where a snapshot's stream comes from.
pub enum Source<'a> {
    /// The backend's send command (its stdout).
    Command(&'a [OsString]),
    /// The deterministic archive of the snapshot (content at the path).
    Archive(&'a Snapshot, &'a Manifest, PathBuf),
}

/// An open connection to a remote's `replica-receive`.
pub struct Session {
    remote: String,
    receiver: Option<Streaming>,
    to: Option<ChildStdin>,
    from: BufReader<ChildStdout>,
    _pipe: IgnoreSigpipe,
}

impl Session {
    /// Connects to `remote` for `tree` and reads what it has.
    pub fn open(remote: &Remote, tree: &TreeName) -> Result<(Session, Have)> {
        let pipe = IgnoreSigpipe::new();
        let mut receiver = Runner::new().spawn(
            &remote
                .transport
                .argv(&argv!["replica-receive", tree.as_str()]),
            Stdio::piped(),
            Stdio::piped(),
        )?;
        let to = receiver.child.stdin.take();
        let from = BufReader::new(receiver.child.stdout.take().expect("piped"));
        let mut session = Session {
            remote: remote.name.clone(),
            receiver: Some(receiver),
            to,
            from,
            _pipe: pipe,
        };
        let have: Have = session.answer("replica-receive")?;
        if have.protocol != wire::PROTOCOL || have.trees.len() != 1 {
            bail!(
                "remote '{}' speaks replication protocol {}, this sidus {}",
                remote.name,
                have.protocol,
                wire::PROTOCOL
            );
        }
        Ok((session, have))
    }

    /// Reads the remote's next answer line; when there is none, the error
    /// is the remote sidus's own.
    fn answer<T: serde::de::DeserializeOwned>(&mut self, what: &str) -> Result<T> {
        let mut line = String::new();
        let read = self.from.read_line(&mut line);
        if matches!(read, Ok(n) if n > 0) {
            if let Ok(v) = serde_json::from_str(&line) {
                return Ok(v);
            }
        }
        Err(self.remote_error().unwrap_or_else(|| {
            anyhow::anyhow!(
                "remote '{}' answered something else than `sidus {what}` does: {:?}",
                self.remote,
                line.chars().take(200).collect::<String>()
            )
        }))
    }

    /// Ends the connection after a failure: the remote sidus's own error,
    /// if it failed.
    fn remote_error(&mut self) -> Option<anyhow::Error> {
        drop(self.to.take());
        match self.receiver.take().map(Streaming::finish) {
            Some(Err(e)) => Some(anyhow::anyhow!(
                "the sidus of remote '{}' failed: {}",
                self.remote,
                e.reason()
            )),
            _ => None,
        }
    }

    /// Sends one snapshot; returns the stream's bytes and the remote's answer.
    pub fn send(&mut self, header: &Header, source: &Source) -> Result<(u64, Received)> {
        let Some(to) = self.to.as_mut() else {
            bail!("remote '{}': the connection is closed", self.remote);
        };
        let sent = (|| -> Result<u64> {
            let mut line = serde_json::to_vec(header).expect("serializable");
            line.push(b'\n');
            to.write_all(&line).context("stream to the remote")?;
            let bytes = produce(source, to)?;
            // The end marker only when the whole stream was made: anything
            // else makes the receiver drop what it got.
            wire::write_chunk(to, b"").context("stream to the remote")?;
            to.flush().context("stream to the remote")?;
            Ok(bytes)
        })();
        let bytes = match sent {
            Ok(b) => b,
            // A broken pipe says less than the remote's own reason.
            Err(e) => return Err(self.remote_error().unwrap_or(e)),
        };
        let received: Received = self.answer("replica-receive")?;
        if received.id != header.snapshot.id {
            bail!(
                "remote '{}' says it received {}, not {}",
                self.remote,
                received.id,
                header.snapshot.id
            );
        }
        Ok((bytes, received))
    }

    /// Closes the connection; the remote sidus must end successfully.
    pub fn close(mut self) -> Result<()> {
        drop(self.to.take());
        match self.receiver.take().map(Streaming::finish) {
            Some(Err(e)) => bail!(
                "the sidus of remote '{}' failed: {}",
                self.remote,
                e.reason()
            ),
            _ => Ok(()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.to.take());
        if let Some(r) = self.receiver.take() {
            let _ = r.finish();
        }
    }
}

/// Writes the stream of `source` framed into `to`; returns its bytes.
fn produce(source: &Source, to: &mut impl Write) -> Result<u64> {
    match source {
        Source::Command(command) => {
            let mut sender = Runner::new().spawn(command, Stdio::null(), Stdio::piped())?;
            let mut from = sender.child.stdout.take().expect("piped");
            let mut bytes = 0u64;
            let copied = (|| -> std::io::Result<()> {
                let mut buf = vec![0u8; wire::CHUNK];
                loop {
                    let n = from.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    wire::write_chunk(to, &buf[..n])?;
                    bytes += n as u64;
                }
            })();
            drop(from);
            sender.finish()?;
            copied.context("stream to the remote")?;
            Ok(bytes)
        }
        Source::Archive(snap, m, root) => {
            let mut out =
                std::io::BufWriter::with_capacity(wire::CHUNK, super::stream::ChunkWriter(to));
            let progress = Progress::new(format!("{}@{}", snap.tree, snap.id));
            let n = crate::archive::export::write_tar(snap, m, root, &mut out, &progress)?;
            out.flush().context("stream to the remote")?;
            Ok(n)
        }
    }
}

/// While it lives, a receiver that dies makes writes to it fail with EPIPE
/// (reported with the remote's own error) instead of killing this sidus.
struct IgnoreSigpipe;

impl IgnoreSigpipe {
    fn new() -> IgnoreSigpipe {
        // SAFETY: setting a signal disposition runs no handler code.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        IgnoreSigpipe
    }
}

impl Drop for IgnoreSigpipe {
    fn drop(&mut self) {
        // SAFETY: as above; back to what `crate::run` set.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}
