//! `sidus doctor`: the report as text or JSON; exit 1 when problems remain.

use crate::cli::DoctorArgs;
use crate::doctor::{doctor as check, Report, Severity};
use crate::output::json as print_json;
use crate::store::Store;
use crate::transaction::CommandFailed;
use anyhow::Result;

pub fn doctor(store: &Store, json: bool, a: &DoctorArgs) -> Result<()> {
    let r = check(store, a.tree.as_ref(), a.repair)?;
    if !json {
        print_text(&r);
    }
    if r.healthy {
        if json {
            print_json(&r);
        }
        return Ok(());
    }
    let errors = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let failed: anyhow::Error = CommandFailed {
        code: 1,
        message: format!(
            "{errors} problem(s) found{}",
            if a.repair {
                " that --repair could not fix (see each fix)"
            } else {
                ": each is shown with the command that fixes it"
            }
        ),
        snapshots: vec![],
    }
    .into();
    if !json {
        return Err(failed);
    }
    // One document: the report's fields beside the error's.
    Err(crate::WithDetail {
        error: failed,
        key: "",
        value: serde_json::to_value(&r).expect("report serializes"),
    }
    .into())
}

fn print_text(r: &Report) {
    for done in &r.repaired {
        println!("repaired: {done}");
    }
    for p in &r.problems {
        let tree = p.tree.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
        let level = match p.severity {
            Severity::Error => "",
            Severity::Warning => " (warning)",
        };
        println!("{}{tree}{level}: {}", p.check, p.what);
        println!("    fix: {}", p.fix);
    }
    for b in &r.busy {
        println!("busy: {b}: a sidus command is changing it; not checked");
    }
    let c = &r.checked;
    println!(
        "{}: {} tree(s), {} snapshot(s), {} published ID(s) checked",
        if r.healthy { "healthy" } else { "unhealthy" },
        c.trees,
        c.snapshots,
        c.published
    );
}
