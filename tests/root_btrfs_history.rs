//! btrfs itself, on a real loop-backed btrfs store: retention over a history
//! fabricated in the btrfs layout, space reported by quotas, and btrfs refusing
//! to delete a busy snapshot midway through a prune. The rest of pin, prune,
//! diff, log and du is the contract (contract_history.rs).

mod common;
use common::TestStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
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
