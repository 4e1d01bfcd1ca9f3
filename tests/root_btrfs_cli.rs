//! What an admin meets in the first week, on a real loop btrfs store: init
//! keeping the config as written, completions from the store, control
//! characters in tables, a failed run under --json, log -n 0.

mod common;
use common::TestStore;
use std::process::Command;

#[test]
fn root_btrfs_init_keeps_the_config_as_written_and_says_what_changed() {
    require_root_btrfs!();
    let store = TestStore::new();
    let mnt = store.mnt.to_str().unwrap();
    let mut text = std::fs::read_to_string(&store.config).unwrap();
    text.push_str(
        "\n# publishing for the lab, by hand\n[publish]\napply_exports = false  # no nfsd here\n\
         root = \"/srv/lab\"\n",
    );
    std::fs::write(&store.config, &text).unwrap();

    // The same store, with [publish] only in the file: not refused, not touched.
    let out = store.sidus(&["init", "--path", mnt]).ok();
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(std::fs::read_to_string(&store.config).unwrap(), text);
    let out = store.sidus(&["init"]).ok();
    assert!(out.contains("unchanged"), "{out}");
    let v = store.sidus(&["--json", "init", "--path", mnt]).json();
    assert_eq!(v["added"], serde_json::json!([]));
    assert_eq!(v["created"], false);
    assert_eq!(v["settings"]["publish"]["root"], "/srv/lab");

    // Another store is refused by name, and nothing changes.
    let err = store.sidus(&["init", "--path", "/srv/elsewhere"]).fails(1);
    assert!(
        err.contains("btrfs.path is") && err.contains("/srv/elsewhere"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&store.config).unwrap(), text);

    // A syntax error names the file, the line and the column.
    std::fs::write(
        &store.config,
        text.replace("root = \"/srv/lab\"", "root = /srv/lab"),
    )
    .unwrap();
    let err = store.sidus(&["list"]).fails(1);
    let line = text.lines().position(|l| l.starts_with("root =")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "config {}, line {line}, column 8:",
            store.config.display()
        )),
        "{err}"
    );
    let err = store.sidus(&["init"]).fails(1);
    assert!(err.contains(&format!("line {line}, column 8")), "{err}");
}

#[test]
fn root_btrfs_tables_escape_control_characters_and_json_keeps_them() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let message = "two\nlines \x1b[31mred\x1b[0m";
    let id = store.snapshot("lab", message);
    store
        .sidus(&["pin", &format!("lab@{id}"), "-m", "note\twith\rcontrol"])
        .ok();
    let root = store.path("lab");
    std::fs::write(root.join("evil\nname\x1b[2J"), "x").unwrap();

    let table = store.sidus(&["snapshots", "lab"]).ok();
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains("two\\nlines \\x1b[31mred\\x1b[0m"),
        "{table}"
    );
    let pins = store.sidus(&["pins"]).ok();
    assert!(pins.contains("note\\twith\\rcontrol"), "{pins}");
    let show = store.sidus(&["show", &format!("lab@{id}")]).ok();
    assert!(show.contains("message:  two\\nlines"), "{show}");
    let diff = store.sidus(&["diff", &format!("lab@{id}")]).ok();
    assert!(diff.contains("/evil\\nname\\x1b[2J"), "{diff}");
    for out in [&table, &pins, &show, &diff] {
        assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
    }

    let v = store.sidus(&["--json", "snapshots", "lab"]).json();
    assert_eq!(v[0]["message"], message);
    let v = store
        .sidus(&["--json", "diff", &format!("lab@{id}")])
        .json();
    assert_eq!(v["files"][0]["path"], "/evil\nname\x1b[2J");
}

#[test]
fn root_btrfs_log_n_0_prints_nothing() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    assert_eq!(store.sidus(&["log", "-n", "0"]).ok(), "");
    assert_eq!(store.sidus(&["log", "lab", "-n", "0"]).ok(), "");
    assert_eq!(
        store.sidus(&["--json", "log", "-n", "0"]).json(),
        serde_json::json!([])
    );
    assert!(store.sidus(&["log", "-n", "1"]).ok().contains("create"));
}

#[test]
fn root_btrfs_failed_run_under_json_is_one_document_with_its_report() {
    require_root_btrfs!();
    let store = TestStore::new();
    let src = store.dir.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", src.join("bin/busybox")).expect("busybox-static installed");
    std::os::unix::fs::symlink("busybox", src.join("bin/sh")).unwrap();
    store
        .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    let r = store.sidus(&["--json", "run", "lab", "--", "/bin/sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not one document ({e}): {}", r.stdout));
    assert_eq!(doc["exit"], 3, "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("rolled back"),
        "{doc}"
    );
    // The report of the run that failed rides along: its pre snapshot exists.
    let pre = doc["run"]["pre"].as_str().expect("run report");
    assert!(store.ids("lab").iter().any(|i| i == pre), "{doc}");
    assert_eq!(doc["run"]["status"], 3, "{doc}");
}

/// The candidates sidus gives fish for the command line `words` (the last
/// one being completed): fish's protocol is one candidate per line.
fn fish_candidates(store: &TestStore, words: &[&str]) -> Vec<String> {
    let mut args = vec!["--", "sidus"];
    args.extend_from_slice(words);
    let out = store.sidus_env(&args, &[("SIDUS_COMPLETE", "fish")]).ok();
    out.lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn root_btrfs_completing_tree_at_lists_that_trees_ids_and_labels() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    store.sidus(&["create", "other"]).ok();
    let a = store.snapshot("lab", "a");
    let b = store.snapshot("lab", "b");
    store.snapshot("other", "not lab's");
    store
        .sidus(&["pin", &format!("lab@{a}"), "--name", "paper"])
        .ok();

    let got = fish_candidates(&store, &["show", "lab@"]);
    let want: Vec<String> = ["paper", "latest", &b, &a]
        .iter()
        .map(|r| format!("lab@{r}"))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        fish_candidates(&store, &["rollback", &format!("lab@{}", &b[..b.len() - 1])]),
        [format!("lab@{b}")]
    );
    // Trees: bare for TREE, with @ for TREE@REF.
    let trees: Vec<String> = fish_candidates(&store, &["snapshots", ""])
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect();
    assert_eq!(trees, ["lab", "other"]);
    assert_eq!(fish_candidates(&store, &["show", "o"]), ["other@"]);
    assert_eq!(fish_candidates(&store, &["clone", "lab@p"]), ["lab@paper"]);
    // --config on the command line names the store completed from.
    let elsewhere = Command::new(env!("CARGO_BIN_EXE_sidus"))
        .args(["--", "sidus", "--config"])
        .arg(&store.config)
        .args(["snapshots", "l"])
        .env("SIDUS_COMPLETE", "fish")
        .env("SIDUS_CONFIG", "/nonexistent.toml")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&elsewhere.stdout), "lab\n");

    // The bash script itself, as bash calls it (no bash-completion loaded:
    // bash breaks the word at @ and replaces only what follows it).
    let script = store.sidus(&["completions", "bash"]).ok();
    let bin_dir = store.dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sidus"), bin_dir.join("sidus")).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{script}\nCOMP_LINE='sidus show lab@'; COMP_POINT=${{#COMP_LINE}}; _sidus sidus '' @; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ))
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display()),
        )
        .env("SIDUS_CONFIG", &store.config)
        .output()
        .unwrap();
    let replies = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        replies.lines().collect::<Vec<_>>(),
        ["paper", "latest", b.as_str(), a.as_str()],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
