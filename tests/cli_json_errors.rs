//! Every failure under `--json` is one JSON document on stdout,
//! `{"error", "causes", "exit"}`, whatever the subcommand and whether clap or
//! sidus refuses. Needs no root: the store is a config with a syntax error.

use clap::CommandFactory;
use std::process::Command;

/// A subcommand, arguments clap refuses, and valid arguments that fail later.
type Case = (
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
);

/// Per subcommand: arguments clap refuses (exit 2), and valid arguments that
/// fail once the (broken) config is read (exit 1; `None`: the subcommand
/// reads no config).
const CASES: &[Case] = &[
    ("init", &["--backend", "ext4"], Some(&[])),
    ("create", &["Bad!"], Some(&["lab"])),
    ("list", &["extra"], Some(&[])),
    ("snapshot", &["lab", "--bogus"], Some(&["lab"])),
    ("snapshots", &["Bad!"], Some(&["lab"])),
    ("show", &["lab@"], Some(&["lab@latest"])),
    ("delete", &["Bad!@x"], Some(&["lab@latest"])),
    ("destroy", &[], Some(&["lab"])),
    ("clone", &["lab"], Some(&["lab", "lab2"])),
    ("rollback", &["lab@"], Some(&["lab@latest"])),
    ("path", &["Bad!"], Some(&["lab"])),
    ("log", &["-n", "minus"], Some(&[])),
    (
        "pin",
        &["lab@1", "--name", "Bad Label"],
        Some(&["lab@latest"]),
    ),
    ("unpin", &["Bad!"], Some(&["lab@latest"])),
    ("pins", &["Bad!"], Some(&[])),
    (
        "prune",
        &["lab", "--keep-last", "-1"],
        Some(&["lab", "--keep-last", "1"]),
    ),
    ("diff", &["Bad!@x"], Some(&["lab@latest"])),
    ("du", &["Bad!"], Some(&["lab"])),
    ("publish", &["Bad!"], Some(&["lab"])),
    ("unpublish", &["lab@"], Some(&["lab@latest"])),
    ("status", &["Bad!"], Some(&[])),
    ("restore", &["extra"], Some(&[])),
    ("prepare-node", &["Bad!"], Some(&["lab"])),
    ("run", &["lab"], Some(&["lab", "--", "true"])),
    ("shell", &["Bad!"], Some(&["lab"])),
    ("update", &["Bad!"], Some(&["lab"])),
    ("manifest", &["Bad!@x"], Some(&["lab@latest"])),
    ("verify", &["lab@"], Some(&["lab@latest"])),
    (
        "export",
        &["lab@latest"],
        Some(&["lab@latest", "-o", "/dev/null"]),
    ),
    ("import", &[], Some(&["/nonexistent.tar"])),
    ("sbom", &["Bad!@x"], Some(&["lab@latest"])),
    ("doctor", &["Bad!"], Some(&[])),
    ("node", &["add", "n1"], Some(&["remove", "n1"])),
    ("nodes", &["extra"], Some(&[])),
    ("groups", &["extra"], Some(&[])),
    ("remote", &["bogus"], Some(&["list"])),
    ("replicate", &["Bad!"], Some(&["lab"])),
    ("replica", &["promote", "Bad!"], Some(&["promote", "lab"])),
    ("replica-have", &["Bad!"], Some(&["lab"])),
    ("replica-receive", &["Bad!"], Some(&["lab"])),
    ("completions", &["tcsh"], None),
    ("failpoints", &["extra"], None),
];

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sidus(config: &std::path::Path, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_sidus"))
        .args(args)
        .env("SIDUS_CONFIG", config)
        .env_remove("SIDUS_COMPLETE")
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Asserts that `o` is a failure with status `code` whose stdout is exactly
/// one error document; returns the document.
#[track_caller]
fn error_document(o: &Outcome, code: i32, what: &str) -> serde_json::Value {
    assert_eq!(
        o.code, code,
        "{what}: stdout {} stderr {}",
        o.stdout, o.stderr
    );
    // from_str refuses trailing content: one document, nothing else.
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON document ({e}): {}",
            o.stdout
        )
    });
    let error = doc["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{what}: no error text: {doc}");
    assert!(doc["causes"].is_array(), "{what}: no causes: {doc}");
    assert_eq!(doc["exit"], code, "{what}: exit field: {doc}");
    // People still get the message on stderr.
    assert!(!o.stderr.is_empty(), "{what}: nothing on stderr");
    doc
}

#[test]
fn every_subcommand_fails_with_one_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidus.toml");
    std::fs::write(&config, "backend = \"btrfs\"\n[btrfs]\npath = /srv/sidus\n").unwrap();

    let mut names: Vec<String> = sidus::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    names.sort();
    let mut covered: Vec<String> = CASES.iter().map(|c| c.0.to_string()).collect();
    covered.sort();
    assert_eq!(covered, names, "every subcommand has a case here");

    for (name, bad, good) in CASES {
        for json_first in [true, false] {
            let mut args = vec![*name];
            args.extend_from_slice(bad);
            if json_first {
                args.insert(0, "--json");
            } else {
                args.push("--json");
            }
            let what = format!("sidus {}", args.join(" "));
            error_document(&sidus(&config, &args), 2, &what);
        }
        if let Some(good) = good {
            let mut args = vec!["--json", *name];
            args.extend_from_slice(good);
            let what = format!("sidus {}", args.join(" "));
            // run, shell and update keep 1..124 for the command: sidus's own
            // failure there is 125 (podman's convention).
            let own = if ["run", "shell", "update"].contains(name) {
                125
            } else {
                1
            };
            let doc = error_document(&sidus(&config, &args), own, &what);
            let error = doc["error"].as_str().unwrap();
            assert!(
                error.contains(&format!("config {}, line 3, column 8", config.display())),
                "{what}: {error}"
            );
        }
    }
}

#[test]
fn without_json_a_failure_prints_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("missing.toml");
    for args in [&["snapshots", "Bad!"][..], &["list"][..]] {
        let o = sidus(&config, args);
        assert_ne!(o.code, 0);
        assert_eq!(o.stdout, "", "sidus {args:?}");
        assert!(
            o.stderr.contains("sidus") || o.stderr.contains("error"),
            "{}",
            o.stderr
        );
    }
    // A missing store is a plain failure under --json too.
    let o = sidus(&config, &["--json", "list"]);
    let doc = error_document(&o, 1, "sidus --json list");
    assert!(
        doc["error"].as_str().unwrap().contains("run `sidus init`"),
        "{doc}"
    );
}

#[test]
fn help_and_version_are_not_errors_under_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("missing.toml");
    let o = sidus(&config, &["--json", "--version"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("sidus "), "{}", o.stdout);
    let o = sidus(&config, &["--json", "list", "--help"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Usage"), "{}", o.stdout);
}
