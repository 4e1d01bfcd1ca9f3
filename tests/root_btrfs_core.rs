//! The core commands driven as an admin would, on a real loop-backed btrfs store.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

fn source_dir(store: &TestStore) -> std::path::PathBuf {
    let src = store.dir.path().join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::create_dir_all(src.join("usr/bin")).unwrap();
    fs::write(src.join("etc/motd"), "hello\n").unwrap();
    std::os::unix::fs::symlink("../../etc/motd", src.join("usr/bin/link")).unwrap();
    fs::hard_link(src.join("etc/motd"), src.join("etc/motd.hard")).unwrap();
    fs::write(src.join("usr/bin/suid"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("usr/bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(src.join("etc/owned"), "x").unwrap();
    std::os::unix::fs::chown(src.join("etc/owned"), Some(1234), Some(5678)).unwrap();
    let ok = Command::new("mknod")
        .arg(src.join("etc/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("setfattr")
        .args(["-n", "user.sidus", "-v", "kept"])
        .arg(src.join("etc/owned"))
        .status();
    assert!(ok.map(|s| s.success()).unwrap_or(true));
    src
}

#[test]
fn root_btrfs_create_from_dir_preserves_owners_modes_links_devices() {
    require_root_btrfs!();
    let store = TestStore::new();
    let src = source_dir(&store);
    store
        .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    let tree = store.path("lab");
    assert_eq!(TestStore::listing(&src), TestStore::listing(&tree));
    let motd = fs::metadata(tree.join("etc/motd")).unwrap();
    assert_eq!(motd.nlink(), 2, "hard link kept");
    assert_eq!(
        fs::metadata(tree.join("usr/bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    let owned = fs::metadata(tree.join("etc/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
    assert_eq!(
        fs::read_link(tree.join("usr/bin/link")).unwrap().to_str(),
        Some("../../etc/motd")
    );
    assert_eq!(
        fs::metadata(tree.join("etc/null")).unwrap().rdev(),
        fs::metadata(src.join("etc/null")).unwrap().rdev()
    );
}

#[test]
fn root_btrfs_snapshots_get_unique_ordered_ids_and_metadata() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "one");
    let b = store.snapshot("lab", "two");
    let c = store.snapshot("lab", "three");
    assert_eq!(store.ids("lab"), [a.clone(), b.clone(), c.clone()]);
    let snaps = store.sidus(&["snapshots", "lab", "--json"]).json();
    let second = &snaps[1];
    for field in [
        "tree", "id", "created", "kind", "message", "parent", "user", "command",
    ] {
        assert!(second.get(field).is_some(), "missing {field} in {second}");
    }
    assert_eq!(second["parent"], a.as_str());
    assert_eq!(second["kind"], "manual");
    assert_eq!(second["message"], "two");
    assert_eq!(second["command"], "sidus snapshot lab -m two");
    let one = store
        .sidus(&["snapshot", "lab", "--json", "-m", "json"])
        .json();
    assert_eq!(one["parent"], c.as_str());
    let list = store.sidus(&["list", "--json"]).json();
    assert_eq!(list[0]["name"], "lab");
    assert_eq!(list[0]["backend"], "btrfs");
    assert_eq!(list[0]["snapshots"], 4);
    assert_eq!(list[0]["latest"], one["id"]);
    assert_eq!(
        store
            .sidus(&["show", &format!("lab@{}", &b[..12]), "--json"])
            .fails(1)
            .lines()
            .count(),
        1
    );
    assert_eq!(
        store.sidus(&["show", &format!("lab@{b}"), "--json"]).json()["message"],
        "two"
    );
}

#[test]
fn root_btrfs_clone_is_independent_of_its_source() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    fs::write(store.path("lab").join("f"), "v1").unwrap();
    let a = store.snapshot("lab", "v1");
    store.sidus(&["clone", &format!("lab@{a}"), "paper"]).ok();
    fs::write(store.path("lab").join("f"), "v2").unwrap();
    fs::write(store.path("paper").join("f"), "mine").unwrap();
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{a}")).join("f")).unwrap(),
        "v1"
    );
    assert_eq!(
        fs::read_to_string(store.path("lab").join("f")).unwrap(),
        "v2"
    );
    // Without a REF the current state is snapshotted (kind clone) and cloned.
    store.sidus(&["clone", "lab", "now"]).ok();
    assert_eq!(
        fs::read_to_string(store.path("now").join("f")).unwrap(),
        "v2"
    );
    let snaps = store.sidus(&["snapshots", "lab", "--json"]).json();
    assert_eq!(snaps[1]["kind"], "clone");
    let list = store.sidus(&["list", "--json"]).json();
    let now = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "now")
        .unwrap();
    assert_eq!(now["origin"]["tree"], "lab");
}

#[test]
fn root_btrfs_rollback_keeps_newer_snapshots_and_can_be_undone() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let f = || store.path("lab").join("f");
    fs::write(f(), "a").unwrap();
    let a = store.snapshot("lab", "a");
    fs::write(f(), "b").unwrap();
    let b = store.snapshot("lab", "b");
    fs::write(f(), "unsaved").unwrap();
    let out = store
        .sidus(&["rollback", &format!("lab@{a}"), "--json"])
        .json();
    let safety = out["safety"]["id"].as_str().unwrap().to_string();
    assert_eq!(out["safety"]["kind"], "safety");
    assert_eq!(fs::read_to_string(f()).unwrap(), "a");
    assert_eq!(store.ids("lab"), [a.clone(), b.clone(), safety.clone()]);
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{b}")).join("f")).unwrap(),
        "b"
    );
    // Roll forward to the newer snapshot, then undo via the safety snapshot.
    store.sidus(&["rollback", &format!("lab@{b}")]).ok();
    assert_eq!(fs::read_to_string(f()).unwrap(), "b");
    store.sidus(&["rollback", &format!("lab@{safety}")]).ok();
    assert_eq!(fs::read_to_string(f()).unwrap(), "unsaved");
    assert_eq!(store.ids("lab").len(), 5);
    // The working tree stays writable after a rollback.
    fs::write(f(), "after").unwrap();
    let log = store.sidus(&["log", "lab", "--json"]).json();
    assert_eq!(log[0]["action"], "rollback");
    assert_eq!(log[0]["outcome"], "ok");
}

#[test]
fn root_btrfs_refusals_change_nothing() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "a");
    store.sidus(&["clone", &format!("lab@{a}"), "paper"]).ok();
    let before = (store.sidus(&["list", "--json"]).ok(), store.ids("lab"));

    let err = store.sidus(&["delete", &format!("lab@{a}")]).fails(1);
    assert_eq!(
        err.trim(),
        format!("sidus: refusing to delete lab@{a}: it is the origin of clone 'paper'")
    );
    let err = store.sidus(&["destroy", "lab"]).fails(1);
    assert!(err.contains("clones depend on it: 'paper'"), "{err}");
    assert!(store
        .sidus(&["create", "Bad Name"])
        .fails(2)
        .contains("invalid name 'Bad Name'"));
    assert!(store
        .sidus(&["snapshot", "a/b"])
        .fails(2)
        .contains("invalid name"));
    assert!(store
        .sidus(&["delete", "lab@1999"])
        .fails(1)
        .contains("no snapshot '1999' in tree 'lab'"));
    assert!(store
        .sidus(&["delete", "lab"])
        .fails(1)
        .contains("names no snapshot"));
    assert!(store
        .sidus(&["snapshot", "ghost"])
        .fails(1)
        .contains("no tree named 'ghost'"));
    assert!(store
        .sidus(&["create", "lab"])
        .fails(1)
        .contains("tree 'lab' already exists"));
    assert!(store
        .sidus(&["clone", "lab@latest", "paper"])
        .fails(1)
        .contains("tree 'paper' already exists"));
    assert!(store
        .sidus(&["create", "x", "--from-dir", "/nonexistent"])
        .fails(1)
        .contains("not a directory"));
    assert_eq!(
        (store.sidus(&["list", "--json"]).ok(), store.ids("lab")),
        before
    );

    // Once the clone is gone, the origin can go too.
    store.sidus(&["destroy", "paper"]).ok();
    store.sidus(&["delete", &format!("lab@{a}")]).ok();
    store.sidus(&["destroy", "lab"]).ok();
    assert_eq!(
        store.sidus(&["list", "--json"]).json(),
        serde_json::json!([])
    );
    assert!(fs::read_dir(store.mnt.join("trees"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn root_btrfs_second_writer_gets_tree_is_busy() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let lock = store.mnt.join(".sidus/locks/lab.lock");
    let file = fs::OpenOptions::new().write(true).open(&lock).unwrap();
    let holder =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let cfg = fs::read_to_string(&store.config)
        .unwrap()
        .replace("lock_timeout_secs = 5.0", "lock_timeout_secs = 0.3");
    fs::write(&store.config, cfg).unwrap();
    let err = store.sidus(&["snapshot", "lab"]).fails(1);
    assert!(err.contains("tree 'lab' is busy"), "{err}");
    // Readers never wait for the lock.
    store.sidus(&["snapshots", "lab"]).ok();
    drop(holder);
    store.snapshot("lab", "after");
}

#[test]
fn root_btrfs_store_is_remounted_after_a_reboot_and_missing_store_is_clear() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "kept");
    assert!(Command::new("umount")
        .arg(&store.mnt)
        .status()
        .unwrap()
        .success());
    assert_eq!(store.ids("lab"), [a]);
    let other = store.dir.path().join("other.toml");
    fs::write(&other, "backend = \"btrfs\"\n[btrfs]\npath = \"/tmp\"\n").unwrap();
    let err = store
        .sidus_env(&["list"], &[("SIDUS_CONFIG", other.to_str().unwrap())])
        .fails(1);
    assert!(err.contains("/tmp is not on a btrfs file system"), "{err}");
    let none = store.dir.path().join("none.toml");
    let err = store
        .sidus_env(&["list"], &[("SIDUS_CONFIG", none.to_str().unwrap())])
        .fails(1);
    assert!(err.contains("run `sidus init`"), "{err}");
}
