//! Pin, prune, diff, log and du driven as an admin would, on a real loop-backed
//! btrfs store.

mod common;
use common::TestStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

/// Adds snapshots of `tree` taken at fixed past times, the way the btrfs
/// backend lays them out (a read-only subvolume and its JSON sidecar), so the
/// retention rules see a known history. `ids` are snapshot IDs (their time).
fn fabricate(store: &TestStore, tree: &str, ids: &[&str]) {
    let working = store.mnt.join("trees").join(tree);
    let dir = store.mnt.join("snapshots").join(tree);
    for id in ids {
        let created = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &id[0..4],
            &id[4..6],
            &id[6..8],
            &id[9..11],
            &id[11..13],
            &id[13..15]
        );
        let meta = serde_json::json!({
            "tree": tree, "id": id, "created": created, "kind": "manual",
            "message": format!("at {created}"), "parent": null, "user": "root",
            "command": "fabricated",
        });
        fs::write(dir.join(format!("{id}.json")), meta.to_string()).unwrap();
        let ok = Command::new("btrfs")
            .args(["-q", "subvolume", "snapshot", "-r"])
            .arg(&working)
            .arg(dir.join(id))
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// Writes a publish state as the publish feature does (src/publish/state.rs).
fn publish(store: &TestStore, tree: &str, current: &str, exported: &[&str]) {
    let dir = store.mnt.join(".sidus/publish");
    fs::create_dir_all(&dir).unwrap();
    let state = serde_json::json!({"trees": {tree: {
        "current": current, "previous": [], "exported": exported,
    }}});
    fs::write(dir.join("state.json"), state.to_string()).unwrap();
}

/// Writes the in-progress file of an unfinished `sidus run` where it keeps it
/// (see src/protect.rs).
/// The intent a `sidus run` whose sidus died leaves in the tree's state.
fn unfinished_run(store: &TestStore, tree: &str, pre: &str) {
    let dir = store.mnt.join(".sidus/trees");
    fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({
        "op": "run", "tree": tree, "pre": pre, "on_failure": "rollback",
        "command": "true", "message": "", "phase": "running", "pid": 1,
        "started": "2026-11-24T08:00:00Z",
        "wrappers": {"policy_dir": null, "policy_saved": false, "ssd_dirs": []},
    });
    let intent = serde_json::json!({
        "id": "test", "action": "run", "pid": 1, "started": "2026-11-24T08:00:00Z",
        "user": "root", "command": "sidus run", "change": record,
    });
    fs::write(
        dir.join(format!("{tree}.json")),
        serde_json::json!({ "last_id": null, "intent": intent }).to_string(),
    )
    .unwrap();
}

/// `prune --json` as ID -> (keep, every reason as text).
fn verdicts(out: &Value) -> BTreeMap<String, (bool, String)> {
    out["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let mut why: Vec<String> = v["kept_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{} {}",
                        r["rule"].as_str().unwrap(),
                        r["bucket"].as_str().unwrap()
                    )
                })
                .collect();
            why.extend(v["protected_by"].as_array().unwrap().iter().map(|p| {
                match p["reason"].as_str().unwrap() {
                    "pinned" => format!("pinned {}", p["label"].as_str().unwrap_or("-")),
                    "published" => format!("published current={}", p["current"]),
                    "clone_origin" => format!("origin of {}", p["clone"].as_str().unwrap()),
                    other => other.to_string(),
                }
            }));
            (
                v["id"].as_str().unwrap().to_string(),
                (v["keep"].as_bool().unwrap(), why.join(", ")),
            )
        })
        .collect()
}

const HISTORY: [&str; 10] = [
    "20260901T120000Z", // 0: September: clone origin
    "20261005T120000Z", // 1: October, older
    "20261020T080000Z", // 2: October, newest of the month: monthly
    "20261110T080000Z", // 3: pinned
    "20261117T080000Z", // 4: published, exported only
    "20261123T080000Z", // 5: Monday: published current
    "20261124T080000Z", // 6: run pre
    "20261124T200000Z", // 7: newest of Nov 24: daily
    "20261125T060000Z", // 8: last 2/2
    "20261125T070000Z", // 9: last 1/2, daily, monthly
];

#[test]
fn root_btrfs_prune_keeps_what_rules_and_protections_keep_and_says_why() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    fabricate(&store, "lab", &HISTORY);
    let h = HISTORY;
    store
        .sidus(&["pin", &format!("lab@{}", h[3]), "--name", "paper-2026"])
        .ok();
    store
        .sidus(&["clone", &format!("lab@{}", h[0]), "replay"])
        .ok();
    publish(&store, "lab", h[5], &[h[4], h[5]]);
    unfinished_run(&store, "lab", h[6]);
    let policy = [
        "--keep-last",
        "2",
        "--keep-daily",
        "2",
        "--keep-monthly",
        "2",
    ];

    let mut args = vec!["prune", "lab", "--dry-run", "--json"];
    args.extend(policy);
    let plan = verdicts(&store.sidus(&args).json());
    let want: BTreeMap<String, (bool, String)> = [
        (h[0], true, "origin of replay"),
        (h[1], false, ""),
        (h[2], true, "monthly 2026-10"),
        (h[3], true, "pinned paper-2026"),
        (h[4], true, "published current=false"),
        (h[5], true, "published current=true"),
        (h[6], true, "run_pre"),
        (h[7], true, "daily 2026-11-24"),
        (h[8], true, "last 2/2"),
        (h[9], true, "last 1/2, daily 2026-11-25, monthly 2026-11"),
    ]
    .into_iter()
    .map(|(id, keep, why)| (id.to_string(), (keep, why.to_string())))
    .collect();
    assert_eq!(plan, want);
    assert_eq!(store.ids("lab").len(), 10, "a dry run deletes nothing");

    // The table says the same to a person, one line per snapshot.
    let mut args = vec!["prune", "lab", "--dry-run"];
    args.extend(policy);
    let table = store.sidus(&args).ok();
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} missing from\n{table}"))
            .to_string()
    };
    assert!(line(h[1]).contains("would remove"), "{table}");
    assert!(line(h[1]).contains("no rule keeps it"), "{table}");
    assert!(line(h[3]).contains("pinned as 'paper-2026'"), "{table}");
    assert!(
        line(h[0]).contains("the origin of clone 'replay'"),
        "{table}"
    );
    assert!(line(h[5]).contains("published (current)"), "{table}");
    assert!(line(h[6]).contains("the pre snapshot of an unfinished `sidus run`"));
    assert!(
        table.contains("dry run: would remove 1 of 10 snapshots of 'lab', kept 9"),
        "{table}"
    );

    // Without the protections, the policy alone would take five more.
    fs::remove_file(store.mnt.join(".sidus/trees/lab.json")).unwrap();
    fs::remove_file(store.mnt.join(".sidus/publish/state.json")).unwrap();
    store.sidus(&["unpin", "lab@paper-2026"]).ok();
    let mut args = vec!["prune", "lab"];
    args.extend(policy);
    let out = store.sidus(&args).ok();
    assert!(
        out.contains("removed 5 of 10 snapshots of 'lab', kept 5"),
        "{out}"
    );
    assert_eq!(store.ids("lab"), [h[0], h[2], h[7], h[8], h[9]]);
    let log = store.sidus(&["log", "lab", "-n", "1", "--json"]).json();
    assert_eq!(log[0]["action"], "prune");
    assert_eq!(
        log[0]["snapshots"],
        serde_json::json!([h[1], h[3], h[4], h[5], h[6]])
    );

    // The config's [prune] section applies when no --keep option is given.
    let err = store.sidus(&["prune", "lab"]).fails(2);
    assert!(err.contains("no keep rule"), "{err}");
    let mut cfg = fs::read_to_string(&store.config).unwrap();
    cfg.push_str("\n[prune]\nkeep_last = 1\n");
    fs::write(&store.config, cfg).unwrap();
    let out = store.sidus(&["prune", "lab", "--dry-run"]).ok();
    assert!(
        out.contains("would remove 3 of 5 snapshots of 'lab', kept 2 (--keep-last 1)"),
        "{out}"
    );
    assert!(store
        .sidus(&["prune", "ghost", "--keep-last", "1"])
        .fails(1)
        .contains("no tree named 'ghost'"));
}

#[test]
fn root_btrfs_pin_label_works_as_a_ref_and_blocks_delete_until_unpinned() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    fs::write(store.path("lab").join("f"), "paper").unwrap();
    let a = store.snapshot("lab", "for the paper");
    fs::write(store.path("lab").join("f"), "later").unwrap();
    let b = store.snapshot("lab", "later");

    let out = store
        .sidus(&[
            "pin",
            &format!("lab@{a}"),
            "--name",
            "paper-2026",
            "-m",
            "Nature 2026",
        ])
        .ok();
    assert_eq!(
        out.trim(),
        format!("pinned lab@{a} as 'paper-2026' (usable as lab@paper-2026)")
    );
    // The label is a REF everywhere.
    assert_eq!(
        store.sidus(&["show", "lab@paper-2026", "--json"]).json()["id"],
        a.as_str()
    );
    assert_eq!(
        store.path("lab@paper-2026"),
        store.path(&format!("lab@{a}"))
    );
    store.sidus(&["clone", "lab@paper-2026", "replay"]).ok();
    assert_eq!(
        fs::read_to_string(store.path("replay").join("f")).unwrap(),
        "paper"
    );
    let diff = store
        .sidus(&["diff", "lab@paper-2026", &format!("lab@{b}"), "--json"])
        .json();
    assert_eq!(diff["files"][0]["path"], "/f");

    // Listed as a table and as JSON.
    let table = store.sidus(&["pins"]).ok();
    assert!(table.starts_with(" TREE"), "{table}");
    let row = table.lines().nth(1).unwrap();
    for cell in ["lab", a.as_str(), "paper-2026", "root", "Nature 2026"] {
        assert!(row.contains(cell), "{cell} not in {row}");
    }
    let pins = store.sidus(&["pins", "--json"]).json();
    assert_eq!(pins[0]["id"], a.as_str());
    assert_eq!(pins[0]["label"], "paper-2026");
    assert_eq!(pins[0]["note"], "Nature 2026");

    // Pinned: never deleted, nor its tree destroyed; the message names the label.
    store.sidus(&["destroy", "replay"]).ok();
    let err = store.sidus(&["delete", "lab@paper-2026"]).fails(1);
    assert_eq!(
        err.trim(),
        format!("sidus: refusing to delete lab@{a}: it is pinned as 'paper-2026'")
    );
    let err = store.sidus(&["destroy", "lab"]).fails(1);
    assert!(err.contains("pinned as 'paper-2026'"), "{err}");
    assert_eq!(store.ids("lab"), [a.clone(), b.clone()]);

    // A label names one snapshot per tree; re-pinning updates the note.
    let err = store
        .sidus(&["pin", &format!("lab@{b}"), "--name", "paper-2026"])
        .fails(1);
    assert!(err.contains("label 'paper-2026' already names"), "{err}");
    let out = store
        .sidus(&["pin", "lab@paper-2026", "-m", "accepted"])
        .ok();
    assert!(out.starts_with("updated the pin of"), "{out}");
    assert!(store
        .sidus(&["pin", "lab@latest", "--name", "Paper"])
        .fails(2)
        .contains("invalid label 'Paper'"));
    assert!(store
        .sidus(&["pin", "lab@latest", "--name", "latest"])
        .fails(2)
        .contains("reserved"));

    // Unknown labels and refs: one clear line each.
    for (args, want) in [
        (
            vec!["show", "lab@no-such-label"],
            "no snapshot or pin label 'no-such-label' in tree 'lab'",
        ),
        (
            vec!["clone", "lab@1999", "x"],
            "no snapshot '1999' in tree 'lab'",
        ),
        (
            vec!["unpin", "no-such-label"],
            "no pin labelled 'no-such-label'",
        ),
        (vec!["unpin", &format!("lab@{b}")], "is not pinned"),
        (vec!["pins", "ghost"], "no tree named 'ghost'"),
    ] {
        let err = store.sidus(&args).fails(1);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }

    // Unpin by bare label; the label stops working, delete works.
    let out = store.sidus(&["unpin", "paper-2026"]).ok();
    assert_eq!(
        out.trim(),
        format!("unpinned lab@{a} (label 'paper-2026' removed)")
    );
    assert!(store
        .sidus(&["show", "lab@paper-2026"])
        .fails(1)
        .contains("no snapshot or pin label"));
    assert_eq!(store.sidus(&["pins"]).ok().trim(), "no snapshot is pinned");
    // By TREE@ID and TREE@LABEL too.
    store.sidus(&["pin", &format!("lab@{b}")]).ok();
    store.sidus(&["unpin", &format!("lab@{b}")]).ok();
    store
        .sidus(&["pin", &format!("lab@{b}"), "--name", "v2"])
        .ok();
    store.sidus(&["unpin", "lab@v2"]).ok();
    store.sidus(&["delete", "lab@latest"]).ok();
    store.sidus(&["delete", &format!("lab@{a}")]).ok();
    assert!(store.ids("lab").is_empty());
    let actions: Vec<String> = store
        .sidus(&["log", "lab", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .map(|e| e["action"].as_str().unwrap().to_string())
        .take(4)
        .collect();
    assert_eq!(actions, ["delete", "delete", "unpin", "pin"]);
}

/// True when a line of `table` has exactly the cells of `row` (split on blanks).
fn has_row(table: &str, row: &str) -> bool {
    let want: Vec<&str> = row.split_whitespace().collect();
    table
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == want)
}

/// Writes a dpkg status file with `(package, version)` installed.
fn dpkg_status(root: &std::path::Path, packages: &[(&str, &str)]) {
    let dir = root.join("var/lib/dpkg");
    fs::create_dir_all(&dir).unwrap();
    let text: String = packages
        .iter()
        .map(|(p, v)| {
            format!(
                "Package: {p}\nStatus: install ok installed\nPriority: optional\n\
                 Architecture: amd64\nVersion: {v}\nDescription: {p}\n long text\n\n"
            )
        })
        .collect();
    fs::write(dir.join("status"), text).unwrap();
}

#[test]
fn root_btrfs_diff_reports_files_and_packages_that_differ() {
    require_root_btrfs!();
    let store = TestStore::new();
    let src = store.dir.path().join("src");
    fs::create_dir_all(src.join("etc/old")).unwrap();
    fs::create_dir_all(src.join("usr/bin")).unwrap();
    fs::write(src.join("etc/motd"), "hello\n").unwrap();
    fs::write(src.join("etc/hosts"), "127.0.0.1 a\n").unwrap();
    fs::write(src.join("etc/old/gone.conf"), "x").unwrap();
    fs::write(src.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    fs::write(src.join("etc/owned"), "o").unwrap();
    symlink("/usr/bin/python3.11", src.join("usr/bin/python3")).unwrap();
    // Big enough for real extents, which two snapshots share while unchanged.
    fs::create_dir_all(src.join("usr/lib")).unwrap();
    let lib: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    fs::write(src.join("usr/lib/big.so"), &lib).unwrap();
    fs::write(src.join("usr/lib/same.so"), &lib).unwrap();
    dpkg_status(
        &src,
        &[
            ("bash", "5.2.15-2+b2"),
            ("curl", "7.88.1-10+deb12u5"),
            ("ntp", "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1"),
        ],
    );
    store
        .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    let a = store.snapshot("lab", "before");
    assert_eq!(
        store.sidus(&["diff", &format!("lab@{a}")]).ok().trim(),
        format!("no file differs between lab@{a} and lab (working tree)")
    );

    let w = store.path("lab");
    fs::write(w.join("etc/motd"), "HELLO\n").unwrap(); // same size, new content
    fs::write(w.join("etc/hosts"), "127.0.0.1 a b\n").unwrap(); // size and content
    fs::remove_dir_all(w.join("etc/old")).unwrap();
    fs::create_dir_all(w.join("opt/new")).unwrap();
    fs::write(w.join("opt/new/app"), "app").unwrap();
    fs::set_permissions(w.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(w.join("etc/owned"), Some(1000), Some(1000)).unwrap();
    fs::remove_file(w.join("usr/bin/python3")).unwrap();
    symlink("/usr/bin/python3.12", w.join("usr/bin/python3")).unwrap();
    // One byte, same size, not synced: still in the page cache when diffed.
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(w.join("usr/lib/big.so"))
            .unwrap();
        f.write_all_at(b"X", 700_000).unwrap();
    }
    let live = store.sidus(&["diff", &format!("lab@{a}"), "--json"]).json();
    assert!(
        live["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/usr/lib/big.so" && e["what"] == serde_json::json!(["content"])),
        "{live}"
    );
    dpkg_status(
        &w,
        &[
            ("bash", "5.2.15-2+b2"),
            ("curl", "7.88.1-10+deb12u12"),
            ("htop", "3.2.2-2"),
            ("ntp", "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-0"),
        ],
    );
    let b = store.snapshot("lab", "after");

    let d = store
        .sidus(&["diff", &format!("lab@{a}"), &format!("lab@{b}"), "--json"])
        .json();
    assert_eq!(d["from"], format!("lab@{a}"));
    assert_eq!(d["to"], format!("lab@{b}"));
    let got: Vec<String> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let what: Vec<&str> = e["what"]
                .as_array()
                .map(|w| w.iter().map(|a| a.as_str().unwrap()).collect())
                .unwrap_or_default();
            format!(
                "{} {} {}",
                e["change"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                what.join(",")
            )
            .trim()
            .to_string()
        })
        .collect();
    assert_eq!(
        got,
        [
            "modified /etc/hosts size,content",
            "modified /etc/motd content",
            "removed /etc/old",
            "removed /etc/old/gone.conf",
            "modified /etc/owned owner",
            "added /opt",
            "added /opt/new",
            "added /opt/new/app",
            "modified /usr/bin/python3 target",
            "modified /usr/bin/tool mode",
            "modified /usr/lib/big.so content",
            "modified /var/lib/dpkg/status size,content",
        ]
    );
    let link = &d["files"][8];
    assert_eq!(link["old"]["target"], "/usr/bin/python3.11");
    assert_eq!(link["new"]["target"], "/usr/bin/python3.12");
    assert_eq!(d["files"][9]["new"]["mode"], "0755");
    assert_eq!(d["files"][4]["new"]["uid"], 1000);

    // The table, and the working tree as default new side.
    let table = store.sidus(&["diff", &format!("lab@{a}")]).ok();
    for want in [
        "M symlink /usr/bin/python3 target /usr/bin/python3.11 -> /usr/bin/python3.12",
        "M file /usr/bin/tool mode 0644 -> 0755",
        "M file /etc/owned owner 0:0 -> 1000:1000",
        "M file /etc/motd content",
        "+ file /opt/new/app",
        "- file /etc/old/gone.conf",
        "+ dir /opt",
    ] {
        assert!(has_row(&table, want), "{want} not in\n{table}");
    }
    assert!(
        table.contains("(working tree): 3 added, 2 removed, 7 modified"),
        "{table}"
    );

    // Packages: installed, upgraded, downgraded (epoch and ~ respected).
    let p = store
        .sidus(&[
            "diff",
            &format!("lab@{a}"),
            "lab@latest",
            "--packages",
            "--json",
        ])
        .json();
    let pk = &p["packages"];
    assert_eq!(
        pk["installed"],
        serde_json::json!([{"name": "htop", "arch": "amd64", "version": "3.2.2-2"}])
    );
    assert_eq!(pk["removed"], serde_json::json!([]));
    assert_eq!(
        pk["upgraded"],
        serde_json::json!([{"name": "curl", "arch": "amd64", "old": "7.88.1-10+deb12u5", "new": "7.88.1-10+deb12u12"}])
    );
    assert_eq!(pk["downgraded"][0]["name"], "ntp");
    let table = store
        .sidus(&["diff", "lab@latest", &format!("lab@{a}"), "--packages"])
        .ok();
    for want in [
        "removed htop 3.2.2-2 -",
        "downgraded curl 7.88.1-10+deb12u12 7.88.1-10+deb12u5",
        "upgraded ntp 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-0 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1",
    ] {
        assert!(has_row(&table, want), "{want} not in\n{table}");
    }
    assert!(
        table.contains("0 installed, 1 removed, 1 upgraded, 1 downgraded"),
        "{table}"
    );
    // A tree without dpkg is not a Debian tree: clear error, exit 1.
    store.sidus(&["create", "bare"]).ok();
    store.snapshot("bare", "");
    let err = store.sidus(&["diff", "bare@latest", "--packages"]).fails(1);
    assert!(err.contains("not Debian trees"), "{err}");
    assert!(store
        .sidus(&["diff", "lab"])
        .fails(2)
        .contains("'lab' names no snapshot"));
}

#[test]
fn root_btrfs_log_is_newest_first_and_filters_by_tree() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    store.sidus(&["create", "other"]).ok();
    let a = store.snapshot("lab", "one");
    store.snapshot("other", "x");
    store.sidus(&["pin", "lab@latest", "--name", "keep"]).ok();
    store.sidus(&["clone", "lab@keep", "copy"]).ok();
    let _ = store.sidus(&["delete", "lab@keep"]).fails(1);

    let all = store.sidus(&["log", "--json"]).json();
    let actions = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["action"].as_str().unwrap(),
                    e["tree"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        actions(&all),
        [
            "delete lab",
            "clone copy",
            "pin lab",
            "snapshot other",
            "snapshot lab",
            "create other",
            "create lab"
        ]
    );
    assert!(all[0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("failed: refusing to delete"));
    // The clone concerns its source tree too.
    let lab = store.sidus(&["log", "lab", "--json"]).json();
    assert_eq!(
        actions(&lab),
        [
            "delete lab",
            "clone copy",
            "pin lab",
            "snapshot lab",
            "create lab"
        ]
    );
    assert_eq!(lab[1]["snapshots"][0], format!("lab@{a}"));
    assert_eq!(
        actions(&store.sidus(&["log", "other", "--json"]).json()),
        ["snapshot other", "create other"]
    );
    let two = store.sidus(&["log", "lab", "-n", "2"]).ok();
    assert_eq!(two.lines().count(), 3, "{two}");
    assert!(two.lines().nth(1).unwrap().contains("delete"), "{two}");
    assert_eq!(
        store.sidus(&["log", "ghost"]).ok().trim(),
        "no journal entry concerns tree 'ghost'"
    );
}

#[test]
fn root_btrfs_du_and_prune_report_space_when_quotas_are_on() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let data: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    fs::write(store.path("lab").join("big"), &data).unwrap();
    let a = store.snapshot("lab", "with big");
    fs::remove_file(store.path("lab").join("big")).unwrap();
    store.snapshot("lab", "without");

    // Without quotas btrfs cannot tell: said plainly, not an error.
    let out = store.sidus(&["du", "lab"]).ok();
    assert!(
        out.contains("unknown (btrfs reports it only with quotas enabled: btrfs quota enable"),
        "{out}"
    );
    let plan = store
        .sidus(&["prune", "lab", "--keep-last", "1", "--dry-run", "--json"])
        .json();
    assert_eq!(plan["freed_bytes"], Value::Null);

    let ok = Command::new("btrfs")
        .args(["quota", "enable"])
        .arg(&store.mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("btrfs")
        .args(["quota", "rescan", "-w"])
        .arg(&store.mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let du = store.sidus(&["du", "lab", "--json"]).json();
    assert_eq!(du["reported"], true);
    assert_eq!(du["snapshots"][0]["id"], a.as_str());
    let held = du["snapshots"][0]["exclusive_bytes"].as_u64().unwrap();
    assert!(held >= 2 * 1024 * 1024, "{du}");
    let table = store.sidus(&["du", "lab"]).ok();
    assert!(
        table.contains("total held exclusively by snapshots of 'lab'"),
        "{table}"
    );
    let plan = store
        .sidus(&["prune", "lab", "--keep-last", "1", "--dry-run", "--json"])
        .json();
    assert_eq!(plan["freed_bytes"].as_u64(), Some(held));
    let out = store.sidus(&["prune", "lab", "--keep-last", "1"]).ok();
    assert!(out.contains("; freed at least 2."), "{out}");
    assert_eq!(store.ids("lab").len(), 1);
}

#[test]
fn root_btrfs_du_says_when_the_space_is_not_known() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    store.snapshot("lab", "");
    let out = store.sidus(&["du", "lab", "--json"]).json();
    assert_eq!(out["tree"], "lab");
    assert_eq!(out["snapshots"].as_array().unwrap().len(), 1);
    assert!(store
        .sidus(&["du", "ghost"])
        .fails(1)
        .contains("no tree named 'ghost'"));
}

#[test]
fn root_btrfs_prune_failing_midway_says_which_snapshots_are_gone() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    for _ in 0..3 {
        store.snapshot("lab", "");
    }
    let ids = store.ids("lab");
    // A mount on the oldest snapshot makes btrfs refuse to delete it.
    let busy = store.mnt.join("snapshots/lab").join(&ids[0]);
    let empty = store.dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let ok = Command::new("mount")
        .arg("--bind")
        .arg(&empty)
        .arg(&busy)
        .status()
        .unwrap();
    assert!(ok.success());
    let err = store.sidus(&["prune", "lab", "--keep-last", "1"]).fails(1);
    let _ = Command::new("umount").arg(&busy).status();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "sidus: prune 'lab': removed 1 of 2 snapshots ({}) before this failed",
            ids[1]
        )),
        "{err}"
    );
    assert_eq!(err.matches("btrfs subvolume delete").count(), 1, "{err}");
    assert_eq!(store.ids("lab"), [ids[0].clone(), ids[2].clone()]);
    // The sidecar went with its subvolume; the survivor keeps its own.
    assert!(!store
        .mnt
        .join(format!("snapshots/lab/{}.json", ids[1]))
        .exists());
    assert!(store
        .mnt
        .join(format!("snapshots/lab/{}.json", ids[0]))
        .exists());
    store.sidus(&["prune", "lab", "--keep-last", "1"]).ok();
    assert_eq!(store.ids("lab"), [ids[2].clone()]);
}
