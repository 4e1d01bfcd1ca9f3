//! Pin, prune, diff, log and du driven as an admin would, on a real store of
//! the backend `SIDUS_TEST_BACKEND` names (see tests/common/mod.rs). Retention
//! over a fabricated past, btrfs quotas and btrfs refusing a delete are in
//! root_btrfs_history.rs.

mod common;
use common::{Kind, TestStore};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

#[test]
fn pin_label_works_as_a_ref_and_blocks_delete_until_unpinned() {
    require_backend!();
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
fn diff_reports_files_and_packages_that_differ() {
    require_backend!();
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
fn log_is_newest_first_and_filters_by_tree() {
    require_backend!();
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

/// `n` bytes no file system compresses (xorshift), so space figures are real.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn du_says_which_snapshot_holds_what_or_that_the_backend_cannot_tell() {
    let backend = require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    assert!(store
        .sidus(&["du", "lab"])
        .ok()
        .contains("tree 'lab' has no snapshots"));
    fs::write(store.path("lab").join("big"), incompressible(2 << 20)).unwrap();
    let a = store.snapshot("lab", "with big");
    fs::remove_file(store.path("lab").join("big")).unwrap();
    store.snapshot("lab", "without");
    let du = store.sidus(&["du", "lab", "--json"]).json();
    assert_eq!(du["tree"], "lab");
    assert_eq!(du["backend"], backend.name());
    assert_eq!(du["snapshots"][0]["id"], a.as_str());
    assert_eq!(du["snapshots"].as_array().unwrap().len(), 2);
    let table = store.sidus(&["du", "lab"]).ok();
    let plan = store
        .sidus(&["prune", "lab", "--keep-last", "1", "--dry-run", "--json"])
        .json();
    match backend {
        Kind::Zfs => {
            // A snapshot's `used`: what only it still holds.
            assert_eq!(du["reported"], true, "{du}");
            let held = du["snapshots"][0]["exclusive_bytes"].as_u64().unwrap();
            assert!(held >= 2 << 20, "{du}");
            assert!(
                table.contains("total held exclusively by snapshots of 'lab'"),
                "{table}"
            );
            assert_eq!(plan["freed_bytes"].as_u64(), Some(held), "{plan}");
            let out = store.sidus(&["prune", "lab", "--keep-last", "1"]).ok();
            assert!(out.contains("; freed at least 2."), "{out}");
        }
        // Without quotas (root_btrfs_history.rs turns them on) btrfs cannot
        // tell, and LVM thin snapshots have no such figure: said plainly.
        Kind::Btrfs | Kind::Lvm => {
            assert_eq!(du["reported"], false, "{du}");
            assert_eq!(du["snapshots"][0]["exclusive_bytes"], Value::Null);
            let why = match backend {
                Kind::Btrfs => "unknown (btrfs reports it only with quotas enabled",
                _ => "not reported by the lvm backend",
            };
            assert!(table.contains(why), "{table}");
            assert_eq!(plan["freed_bytes"], Value::Null, "{plan}");
            store.sidus(&["prune", "lab", "--keep-last", "1"]).ok();
        }
    }
    assert_eq!(store.ids("lab").len(), 1);
    assert!(store
        .sidus(&["du", "ghost"])
        .fails(1)
        .contains("no tree named 'ghost'"));
}

/// The ZFS name of `tree@id` in `store`, wherever rollbacks moved it.
fn zfs_snapshot(store: &TestStore, id: &str) -> String {
    let out = Command::new("zfs")
        .args(["list", "-H", "-o", "name", "-t", "snapshot", "-r"])
        .arg(store.zfs_dataset())
        .output()
        .unwrap();
    let names = String::from_utf8(out.stdout).unwrap();
    let found: Vec<&str> = names
        .lines()
        .filter(|n| n.ends_with(&format!("@{id}")))
        .collect();
    assert_eq!(found.len(), 1, "{id} in {names}");
    found[0].to_string()
}

fn zfs_holds(snapshot: &str) -> Vec<String> {
    let out = Command::new("zfs")
        .args(["holds", "-H", snapshot])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('\t').nth(1).map(str::to_string))
        .collect()
}

#[test]
fn pin_puts_a_zfs_hold_on_the_snapshot_that_follows_it_through_a_rollback() {
    let backend = require_backend!();
    only_on!(
        backend,
        Kind::Zfs,
        "only ZFS has holds; elsewhere a pin is sidus's own record (pin_label_works_as_a_ref...)"
    );
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "a");
    let b = store.snapshot("lab", "b");
    store
        .sidus(&["pin", &format!("lab@{b}"), "--name", "paper"])
        .ok();
    let snap = zfs_snapshot(&store, &b);
    assert_eq!(zfs_holds(&snap), ["sidus-pin"]);
    // The hold is ZFS's own refusal, whatever deletes it.
    let raw = Command::new("zfs")
        .args(["destroy", &snap])
        .output()
        .unwrap();
    assert!(
        !raw.status.success(),
        "zfs destroy of a held snapshot worked"
    );
    // Pinning again (a new note) takes no second hold.
    store.sidus(&["pin", "lab@paper", "-m", "note"]).ok();
    assert_eq!(zfs_holds(&snap), ["sidus-pin"]);
    // A rollback to A moves B into a history dataset; the hold goes along.
    store.sidus(&["rollback", &format!("lab@{a}")]).ok();
    let moved = zfs_snapshot(&store, &b);
    assert_eq!(zfs_holds(&moved), ["sidus-pin"], "{snap} is now {moved}");
    store.sidus(&["unpin", "paper"]).ok();
    assert_eq!(zfs_holds(&moved), Vec::<String>::new());
    store.sidus(&["delete", &format!("lab@{b}")]).ok();
}

/// Leaves the intent a `sidus run` whose sidus died leaves in the tree's state
/// (src/state: no other way leaves one on purpose); returns what the file held,
/// for [`settle_run`].
fn unfinished_run(store: &TestStore, tree: &str, pre: &str) -> Option<Vec<u8>> {
    let file = store.state_dir().join(format!("trees/{tree}.json"));
    // The record may be in the file or in its xattr (src/state/record.rs).
    let saved = sidus_backends::ordered::read_record(&file).unwrap();
    let last_id = saved
        .as_ref()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .map_or(Value::Null, |v| v["last_id"].clone());
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
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(
        &file,
        serde_json::json!({ "last_id": last_id, "intent": intent }).to_string(),
    )
    .unwrap();
    saved
}

/// Puts back what [`unfinished_run`] replaced.
fn settle_run(store: &TestStore, tree: &str, saved: Option<Vec<u8>>) {
    let file = store.state_dir().join(format!("trees/{tree}.json"));
    match saved {
        Some(b) => fs::write(&file, b).unwrap(),
        None => fs::remove_file(&file).unwrap(),
    }
}

#[test]
fn prune_deletes_only_what_no_rule_or_protection_keeps() {
    require_backend!();
    let store = TestStore::new();
    let d = store.dir.path();
    let mut cfg = fs::read_to_string(&store.config).unwrap();
    cfg.push_str(&format!(
        "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = false\n",
        d.join("srv").display(),
        d.join("tftp").display(),
        d.join("sidus.exports").display()
    ));
    fs::write(&store.config, cfg).unwrap();
    store.sidus(&["create", "lab"]).ok();
    let w = store.path("lab");
    fs::create_dir_all(w.join("boot")).unwrap();
    fs::write(w.join("boot/vmlinuz-6.1.0-26-amd64"), "K").unwrap();
    fs::write(w.join("boot/initrd.img-6.1.0-26-amd64"), "I").unwrap();
    let s: Vec<String> = (0..7)
        .map(|i| {
            fs::write(w.join("n"), i.to_string()).unwrap();
            store.snapshot("lab", &format!("s{i}"))
        })
        .collect();
    store
        .sidus(&["pin", &format!("lab@{}", s[1]), "--name", "paper"])
        .ok();
    store
        .sidus(&["clone", &format!("lab@{}", s[2]), "replay"])
        .ok();
    store.sidus(&["publish", &format!("lab@{}", s[3])]).ok();
    let saved = unfinished_run(&store, "lab", &s[4]);

    let plan = store
        .sidus(&["prune", "lab", "--keep-last", "1", "--dry-run", "--json"])
        .json();
    let why: Vec<(String, bool, String)> = plan["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let mut reasons: Vec<String> = v["protected_by"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["reason"].as_str().unwrap().to_string())
                .collect();
            reasons.extend(
                v["kept_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["rule"].as_str().unwrap().to_string()),
            );
            // Each reason once, in order (a published ID is named by its
            // export and by each boot entry).
            reasons.sort();
            reasons.dedup();
            (
                v["id"].as_str().unwrap().to_string(),
                v["keep"].as_bool().unwrap(),
                reasons.join(","),
            )
        })
        .collect();
    let want: Vec<(String, bool, String)> = [
        (false, ""),
        (true, "pinned"),
        (true, "clone_origin"),
        (true, "boot_entry,published"),
        (true, "run_pre"),
        (false, ""),
        (true, "last"),
    ]
    .iter()
    .zip(&s)
    .map(|((keep, why), id)| (id.clone(), *keep, why.to_string()))
    .collect();
    assert_eq!(why, want);
    assert_eq!(store.ids("lab"), s, "a dry run deletes nothing");

    settle_run(&store, "lab", saved);
    let out = store.sidus(&["prune", "lab", "--keep-last", "1"]).ok();
    assert!(
        out.contains("removed 3 of 7 snapshots of 'lab', kept 4"),
        "{out}"
    );
    assert_eq!(
        store.ids("lab"),
        [s[1].clone(), s[2].clone(), s[3].clone(), s[6].clone()]
    );
    // What was kept is intact, and serves still.
    for (i, id) in [(1, &s[1]), (2, &s[2]), (3, &s[3]), (6, &s[6])] {
        let v = store.path(&format!("lab@{id}"));
        assert_eq!(fs::read_to_string(v.join("n")).unwrap(), i.to_string());
    }
    let st = store.sidus(&["status", "lab", "--json"]).json();
    assert_eq!(st["trees"][0]["current"], s[3].as_str());
    assert_eq!(
        store.sidus(&["log", "lab", "-n", "1", "--json"]).json()[0]["action"],
        "prune"
    );
}
