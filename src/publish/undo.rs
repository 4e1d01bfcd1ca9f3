//! An undo stack for multi-step changes: each step that changed something pushes
//! how to take it back; on failure they run newest first, and a failing undo is
//! reported together with the original error.

use anyhow::Result;

type UndoStep<'a> = Box<dyn FnOnce() -> Result<()> + 'a>;

/// Steps to take back if the change does not complete.
#[derive(Default)]
pub struct Undo<'a> {
    steps: Vec<(String, UndoStep<'a>)>,
}

impl<'a> Undo<'a> {
    /// Records how to undo a step just done.
    pub fn push(&mut self, what: impl Into<String>, f: impl FnOnce() -> Result<()> + 'a) {
        self.steps.push((what.into(), Box::new(f)));
    }

    /// Runs every undo step, newest first, and returns `err` with any undo
    /// failure attached.
    pub fn unwind(self, err: anyhow::Error) -> anyhow::Error {
        let mut failed = Vec::new();
        for (what, f) in self.steps.into_iter().rev() {
            if let Err(e) = f() {
                failed.push(format!("{what}: {e:#}"));
            }
        }
        if failed.is_empty() {
            err.context("nothing was changed")
        } else {
            err.context(format!(
                "and undoing the partial change failed too, fix by hand: {}",
                failed.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn unwinds_newest_first_and_reports_undo_failures() {
        let log = RefCell::new(Vec::new());
        let mut u = Undo::default();
        u.push("one", || {
            log.borrow_mut().push(1);
            Ok(())
        });
        u.push("two", || {
            log.borrow_mut().push(2);
            anyhow::bail!("stuck")
        });
        let e = u.unwind(anyhow::anyhow!("boom"));
        assert_eq!(*log.borrow(), [2, 1]);
        let text = format!("{e:#}");
        assert!(
            text.contains("two: stuck") && text.ends_with("boom"),
            "{text}"
        );
        let e = Undo::default().unwind(anyhow::anyhow!("boom"));
        assert_eq!(format!("{e:#}"), "nothing was changed: boom");
    }
}
