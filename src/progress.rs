//! Progress of long reads and writes (manifest, export, import), on stderr and
//! only when stderr is a terminal: pipes and logs get no carriage returns.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A progress line shared by the threads doing the work.
pub struct Progress {
    what: String,
    enabled: bool,
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<(&'static str, Instant)>,
    shown: AtomicBool,
}

impl Progress {
    /// A progress line for `what` (e.g. `lab@2026...`), shown if stderr is a tty.
    pub fn new(what: impl Into<String>) -> Progress {
        Progress::with(what, std::io::stderr().is_terminal())
    }

    /// A progress line that is never shown.
    pub fn quiet() -> Progress {
        Progress::with("", false)
    }

    fn with(what: impl Into<String>, enabled: bool) -> Progress {
        Progress {
            what: what.into(),
            enabled,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            phase: Mutex::new(("", Instant::now())),
            shown: AtomicBool::new(false),
        }
    }

    /// Starts a phase counting up to `total` (0: no known total; counts items).
    pub fn phase(&self, label: &'static str, total: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        if let Ok(mut p) = self.phase.lock() {
            // As if drawn a while ago: the first update draws at once.
            let ago = Instant::now().checked_sub(Duration::from_secs(1));
            *p = (label, ago.unwrap_or_else(Instant::now));
        }
    }

    /// Counts `n` more bytes (or items) done, redrawing at most 5 times a second.
    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if !self.enabled {
            return;
        }
        // Whoever holds the lock draws; the others do not wait.
        let Ok(mut p) = self.phase.try_lock() else {
            return;
        };
        if p.1.elapsed() < Duration::from_millis(200) {
            return;
        }
        p.1 = Instant::now();
        let total = self.total.load(Ordering::Relaxed);
        let line = if total > 0 {
            format!(
                "{}: {} {} / {} MiB ({}%)",
                self.what,
                p.0,
                done >> 20,
                total >> 20,
                done * 100 / total.max(1)
            )
        } else {
            format!("{}: {} {done}", self.what, p.0)
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
        self.shown.store(true, Ordering::Relaxed);
    }

    /// Clears the line if anything was drawn.
    pub fn finish(&self) {
        if self.shown.swap(false, Ordering::Relaxed) {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
