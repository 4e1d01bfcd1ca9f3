//! `sidus doctor [--repair] [TREE]`: checks every invariant the store must
//! hold and names each problem with the command that fixes it.
//!
//! Without `--repair` it only reads: it never waits for a lock and never
//! recovers; a tree whose lock a writer holds is skipped as busy (its state is
//! in motion), and the other trees are read and checked while doctor holds
//! their locks (taken only when free), so a writer's step in progress is
//! never taken for a crash: a writer that starts meanwhile waits for doctor.
//! With `--repair` it does what the next writer would (settles intents under
//! the tree's lock), what `sidus restore` does, and what else is safe (never
//! removing anything that holds data), then checks again.
//!
//! One file per group of checks: [`intents`], [`records`], [`leftovers`],
//! [`sandbox`] (mounts, processes, diversions), [`journal`], [`publish`],
//! [`modes`]; [`repair`] carries the fixes out.

mod fixes;
mod intents;
mod journal;
mod leftovers;
mod modes;
mod publish;
mod records;
mod repair;
mod sandbox;
mod scan;

use crate::store::Store;
use anyhow::Result;
use serde::Serialize;
use sidus_backends::TreeName;

pub use scan::Scan;

/// How much a problem matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An invariant is broken: doctor exits 1.
    Error,
    /// Worth knowing, nothing is wrong with the store (skipped journal
    /// lines, files a run would purge).
    Warning,
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The group of checks that found it: `intent`, `record`, `leftover`,
    /// `mount`, `process`, `diversion`, `tree-files`, `journal`, `publish`,
    /// `origin`, `mode`.
    pub check: &'static str,
    /// The tree it concerns, if one.
    pub tree: Option<TreeName>,
    /// What is wrong, naming the file, dataset, process...
    pub what: String,
    /// The command that fixes it (or what to do by hand).
    pub fix: String,
    /// Error or warning.
    pub severity: Severity,
    /// What `--repair` does about it; `None`: it is left to the admin.
    #[serde(skip)]
    pub repair: Option<repair::Action>,
}

impl Problem {
    fn error(check: &'static str, tree: Option<&TreeName>, what: String, fix: String) -> Problem {
        Problem {
            check,
            tree: tree.cloned(),
            what,
            fix,
            severity: Severity::Error,
            repair: None,
        }
    }

    fn warning(check: &'static str, tree: Option<&TreeName>, what: String, fix: String) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(check, tree, what, fix)
        }
    }

    fn repaired_by(mut self, action: repair::Action) -> Problem {
        self.repair = Some(action);
        self
    }
}

/// The `--repair` command line for `tree` (or the whole store).
fn repair_cmd(tree: Option<&TreeName>) -> String {
    match tree {
        Some(t) => format!("sidus doctor --repair {t}"),
        None => "sidus doctor --repair".into(),
    }
}

/// What doctor found (and did).
#[derive(Debug, Serialize)]
pub struct Report {
    /// No error-severity problem is left.
    pub healthy: bool,
    /// Every problem found (after the repairs, with `--repair`).
    pub problems: Vec<Problem>,
    /// What `--repair` did, and what it could not do.
    pub repaired: Vec<String>,
    /// Trees a writer was changing: not checked.
    pub busy: Vec<String>,
    /// How much was checked.
    pub checked: Checked,
}

/// The size of what was checked.
#[derive(Debug, Default, Serialize)]
pub struct Checked {
    /// Trees.
    pub trees: usize,
    /// Snapshots.
    pub snapshots: usize,
    /// Published (exported) snapshot IDs.
    pub published: usize,
}

/// Runs every check (on `only`, and the store-wide ones that concern it);
/// with `repair`, fixes what is safe and checks again.
pub fn doctor(store: &Store, only: Option<&TreeName>, repair: bool) -> Result<Report> {
    let mut found = check(store, only)?;
    let mut repaired = Vec::new();
    // A repair can bring checks back that its problem kept from running (a
    // rebuilt publish state is then checked): another round, while the
    // repairs change what is found.
    let mut last = String::new();
    for _ in 0..3 {
        let todo: Vec<String> = found
            .problems
            .iter()
            .filter(|p| p.repair.is_some())
            .map(|p| p.what.clone())
            .collect();
        let todo = todo.join("\n");
        if !repair || todo.is_empty() || todo == last {
            break;
        }
        repaired.extend(repair::run(store, &found.problems));
        found = check(store, only)?;
        last = todo;
    }
    let healthy = !found.problems.iter().any(|p| p.severity == Severity::Error);
    Ok(Report {
        healthy,
        problems: found.problems,
        repaired,
        busy: found.busy.iter().map(|b| b.to_string()).collect(),
        checked: found.checked,
    })
}

/// What one pass of the checks found.
struct Found {
    problems: Vec<Problem>,
    busy: Vec<String>,
    checked: Checked,
}

fn check(store: &Store, only: Option<&TreeName>) -> Result<Found> {
    let scan = Scan::new(store, only)?;
    let mut problems = Vec::new();
    records::check(&scan, &mut problems)?;
    let mut busy = scan.busy.clone();
    for tree in &scan.trees {
        let before = problems.len();
        intents::check_tree(&scan, tree, &mut problems)?;
        let pending = problems.len() > before;
        leftovers::check_tree(&scan, tree, &mut problems);
        if scan.exists(tree) {
            sandbox::check_tree(&scan, tree, &mut problems)?;
            leftovers::check_origin(&scan, tree, &mut problems);
            if !pending {
                journal::check_tree(&scan, tree, &mut problems);
            }
        }
    }
    intents::check_clones(&scan, &mut problems, &mut busy)?;
    if !scan.publish_busy {
        let before = problems.len();
        intents::check_publish(&scan, &mut problems, &mut busy)?;
        // Settling the intent decides what is served: checked after.
        if problems.len() == before {
            publish::check(&scan, &mut problems)?;
        }
    }
    journal::check_store(&scan, &mut problems);
    modes::check(&scan, &mut problems)?;
    let checked = Checked {
        trees: scan.listed.iter().filter(|t| scan.wants(&t.name)).count(),
        snapshots: scan
            .snapshots
            .iter()
            .filter(|s| scan.wants(&s.tree))
            .count(),
        published: scan.published(),
    };
    Ok(Found {
        problems,
        busy,
        checked,
    })
}
