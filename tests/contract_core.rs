//! The core commands driven as an admin would, on a real store of the backend
//! `SIDUS_TEST_BACKEND` names (see tests/common/mod.rs).

mod common;
use common::{Kind, TestStore};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A POSIX access ACL `user::rw- user:1234:r-- group::r-- mask::r-- other::r--`
/// in the kernel's xattr encoding (version 2; tag, perm, id per entry), set
/// with setfattr so the test needs no acl tools.
const ACL: &str = "0x02000000\
                   01000600ffffffff\
                   02000400d2040000\
                   04000400ffffffff\
                   10000400ffffffff\
                   20000400ffffffff";
/// `cap_net_raw+ep` as security.capability (VFS_CAP_REVISION_2, effective).
const CAP_NET_RAW: &str = "0x0100000200200000000000000000000000000000";

fn setfattr(path: &Path, name: &str, value: &str) {
    let ok = Command::new("setfattr")
        .args(["-h", "-n", name, "-v", value])
        .arg(path)
        .status()
        .expect("setfattr (attr) installed");
    assert!(ok.success(), "setfattr {name} {}", path.display());
}

/// Every extended attribute under `root` (ACLs and capabilities are xattrs
/// too), as `getfattr` dumps them, one block per file, sorted by path
/// (getfattr walks in directory order, which differs between file systems).
fn xattrs(root: &Path) -> Vec<String> {
    let out = Command::new("getfattr")
        .args(["-R", "-h", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut blocks: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| b.trim().to_string())
        .collect();
    blocks.sort();
    blocks
}

fn source_dir(store: &TestStore) -> PathBuf {
    let src = store.dir.path().join("src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::create_dir_all(src.join("usr/bin")).unwrap();
    fs::write(src.join("etc/motd"), "hello\n").unwrap();
    fs::write(src.join("etc/with space"), "spaced\n").unwrap();
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
    setfattr(&src.join("etc/owned"), "user.sidus", "kept");
    setfattr(&src.join("etc/motd"), "trusted.sidus", "0x00ff");
    setfattr(&src.join("etc"), "user.dir", "on a directory");
    fs::write(src.join("usr/bin/ping"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("usr/bin/ping"), fs::Permissions::from_mode(0o755)).unwrap();
    setfattr(
        &src.join("usr/bin/ping"),
        "security.capability",
        CAP_NET_RAW,
    );
    src
}

#[test]
fn create_from_dir_preserves_owners_modes_links_devices() {
    require_backend!();
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
fn create_from_dir_keeps_xattrs_and_capabilities_through_snapshot_and_clone() {
    require_backend!();
    let store = TestStore::new();
    let src = source_dir(&store);
    let want = xattrs(&src);
    for name in [
        "user.sidus",
        "trusted.sidus",
        "user.dir",
        "security.capability",
    ] {
        assert!(
            want.iter().any(|b| b.contains(name)),
            "the source lacks {name}: {want:?}"
        );
    }
    store
        .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    assert_eq!(xattrs(&store.path("lab")), want, "create --from-dir");
    let a = store.snapshot("lab", "with xattrs");
    assert_eq!(xattrs(&store.path(&format!("lab@{a}"))), want, "snapshot");
    store.sidus(&["clone", &format!("lab@{a}"), "copy"]).ok();
    assert_eq!(xattrs(&store.path("copy")), want, "clone");
    fs::remove_file(store.path("lab").join("usr/bin/ping")).unwrap();
    store.sidus(&["rollback", &format!("lab@{a}")]).ok();
    assert_eq!(xattrs(&store.path("lab")), want, "rollback");
}

#[test]
fn create_from_dir_keeps_posix_acls_through_snapshot_and_clone() {
    // On ZFS too: init makes the datasets with acltype=posixacl.
    require_backend!();
    let store = TestStore::new();
    let src = store.dir.path().join("src");
    fs::create_dir_all(src.join("var/log/journal")).unwrap();
    fs::write(src.join("etc-motd"), "hello\n").unwrap();
    setfattr(&src.join("etc-motd"), "system.posix_acl_access", ACL);
    // systemd's tmpfiles give /var/log/journal ACLs like these on every Debian.
    setfattr(&src.join("var/log/journal"), "system.posix_acl_access", ACL);
    setfattr(
        &src.join("var/log/journal"),
        "system.posix_acl_default",
        ACL,
    );
    let want = xattrs(&src);
    assert_eq!(want.len(), 2, "{want:?}");
    store
        .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    assert_eq!(xattrs(&store.path("lab")), want, "create --from-dir");
    let a = store.snapshot("lab", "with ACLs");
    assert_eq!(xattrs(&store.path(&format!("lab@{a}"))), want, "snapshot");
    store.sidus(&["clone", &format!("lab@{a}"), "copy"]).ok();
    assert_eq!(xattrs(&store.path("copy")), want, "clone");
}

#[test]
fn snapshots_get_unique_ordered_ids_and_metadata() {
    let backend = require_backend!();
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
    assert_eq!(list[0]["backend"], backend.name());
    assert_eq!(list[0]["path"], store.path("lab").to_str().unwrap());
    assert_eq!(list[0]["snapshots"], 4);
    assert_eq!(list[0]["latest"], one["id"]);
    // All four IDs share their first 12 characters: ambiguous, one line.
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
    assert_eq!(
        store.sidus(&["show", "lab@latest", "--json"]).json()["id"],
        one["id"]
    );
    assert!(store
        .sidus(&["show", "lab@19990101T000000Z"])
        .fails(1)
        .contains("no snapshot '19990101T000000Z' in tree 'lab'"));
}

#[test]
fn snapshot_views_are_read_only_and_keep_their_state() {
    require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let f = store.path("lab").join("f");
    fs::write(&f, "a").unwrap();
    let a = store.snapshot("lab", "a");
    fs::write(&f, "b").unwrap();
    let b = store.snapshot("lab", "b");
    let (va, vb) = (
        store.path(&format!("lab@{a}")),
        store.path(&format!("lab@{b}")),
    );
    assert_ne!(va, vb);
    assert_eq!(fs::read_to_string(va.join("f")).unwrap(), "a");
    assert_eq!(fs::read_to_string(vb.join("f")).unwrap(), "b");
    let err = fs::write(va.join("new"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert!(fs::write(va.join("f"), "changed").is_err());
    // Asking again gives the same view, still intact.
    assert_eq!(store.path(&format!("lab@{a}")), va);
    assert_eq!(fs::read_to_string(va.join("f")).unwrap(), "a");
}

#[test]
fn clone_is_independent_of_its_source() {
    require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    fs::write(store.path("lab").join("f"), "v1").unwrap();
    let a = store.snapshot("lab", "v1");
    store.sidus(&["clone", &format!("lab@{a}"), "paper"]).ok();
    assert_ne!(store.path("paper"), store.path("lab"));
    fs::write(store.path("lab").join("f"), "v2").unwrap();
    fs::write(store.path("paper").join("f"), "mine").unwrap();
    fs::write(store.path("paper").join("only-in-paper"), "").unwrap();
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{a}")).join("f")).unwrap(),
        "v1"
    );
    assert!(!store
        .path(&format!("lab@{a}"))
        .join("only-in-paper")
        .exists());
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
    // A clone has its own history.
    let p = store.snapshot("paper", "paper's own");
    assert_eq!(store.ids("paper"), [p]);
    assert_eq!(store.ids("lab").len(), 2);
}

#[test]
fn rollback_keeps_newer_snapshots_and_can_be_undone() {
    require_backend!();
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
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{safety}")).join("f")).unwrap(),
        "unsaved"
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
fn snapshots_newer_than_a_rollback_target_stay_usable() {
    let backend = require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let w = store.path("lab");
    fs::write(w.join("f"), "a").unwrap();
    let a = store.snapshot("lab", "a");
    fs::write(w.join("f"), "b").unwrap();
    fs::write(w.join("only-b"), "b").unwrap();
    let b = store.snapshot("lab", "b");
    let out = store
        .sidus(&["rollback", &format!("lab@{a}"), "--json"])
        .json();
    let safety = out["safety"]["id"].as_str().unwrap().to_string();
    assert_eq!(store.path("lab"), w, "the tree keeps its path");
    assert!(!w.join("only-b").exists());

    // B after the rollback: its view, a diff against it, a clone of it.
    let vb = store.path(&format!("lab@{b}"));
    assert_eq!(fs::read_to_string(vb.join("only-b")).unwrap(), "b");
    let d = store
        .sidus(&["diff", &format!("lab@{a}"), &format!("lab@{b}"), "--json"])
        .json();
    let changed: Vec<&str> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["/f", "/only-b"], "{d}");
    let live = store.sidus(&["diff", &format!("lab@{b}"), "--json"]).json();
    assert_eq!(live["files"].as_array().unwrap().len(), 2, "{live}");
    store.sidus(&["clone", &format!("lab@{b}"), "from-b"]).ok();
    assert_eq!(
        fs::read_to_string(store.path("from-b").join("f")).unwrap(),
        "b"
    );
    // New snapshots follow A, the state rolled back to.
    fs::write(w.join("f"), "c").unwrap();
    let c = store.snapshot("lab", "c");
    assert_eq!(
        store.ids("lab"),
        [a.clone(), b.clone(), safety.clone(), c.clone()]
    );
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{b}")).join("f")).unwrap(),
        "b"
    );

    // Deleting: B and the safety snapshot go as any other; A is the origin of
    // from-b's B on every backend, so from-b goes first.
    store.sidus(&["destroy", "from-b"]).ok();
    store.sidus(&["delete", &format!("lab@{b}")]).ok();
    if backend == Kind::Zfs {
        // ZFS keeps the snapshots taken before the rollback in a clone of A:
        // A can go only once they have, and the refusal names them.
        let err = store.sidus(&["delete", &format!("lab@{a}")]).fails(1);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&safety), "{err}");
        store.sidus(&["delete", &format!("lab@{safety}")]).ok();
        store.sidus(&["delete", &format!("lab@{a}")]).ok();
    } else {
        store.sidus(&["delete", &format!("lab@{a}")]).ok();
        store.sidus(&["delete", &format!("lab@{safety}")]).ok();
    }
    assert_eq!(store.ids("lab"), [c.as_str()]);
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{c}")).join("f")).unwrap(),
        "c"
    );
    store.sidus(&["destroy", "lab"]).ok();
    assert_eq!(store.storage_objects(), Vec::<String>::new());
}

#[test]
fn refusals_change_nothing() {
    require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "a");
    store.sidus(&["clone", &format!("lab@{a}"), "paper"]).ok();
    let before = (
        store.sidus(&["list", "--json"]).ok(),
        store.ids("lab"),
        store.storage_objects(),
    );

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
    let long = "x".repeat(49);
    assert!(store
        .sidus(&["create", &long])
        .fails(2)
        .contains("invalid name"));
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
        (
            store.sidus(&["list", "--json"]).ok(),
            store.ids("lab"),
            store.storage_objects()
        ),
        before
    );

    // Once the clone is gone, the origin can go too; then nothing is left.
    store.sidus(&["destroy", "paper"]).ok();
    store.sidus(&["delete", &format!("lab@{a}")]).ok();
    store.sidus(&["destroy", "lab"]).ok();
    assert_eq!(
        store.sidus(&["list", "--json"]).json(),
        serde_json::json!([])
    );
    assert_eq!(store.storage_objects(), Vec::<String>::new());
    assert_eq!(store.tree_mounts(), Vec::<PathBuf>::new());
    assert!(store
        .sidus(&["path", "lab"])
        .fails(1)
        .contains("no tree named 'lab'"));
}

#[test]
fn names_at_the_edge_of_what_is_allowed_work() {
    require_backend!();
    let store = TestStore::new();
    // One character; a leading digit and every allowed punctuation (LVM maps
    // '_'); the longest, whose LV names would not fit device-mapper's limit in
    // a long VG name. Each is created, snapshotted and cloned into a name as
    // long; the longest is also rolled back (LVM swaps in a copy by renames).
    let longest = format!("z{}", "-_.9".repeat(12))[..48].to_string();
    let names = ["a", "0.y_z-9", longest.as_str()];
    for name in names {
        store.sidus(&["create", name]).ok();
        fs::write(store.path(name).join("f"), name).unwrap();
        let id = store.snapshot(name, name);
        let copy = format!("{}c", &name[..name.len().min(47)]);
        store.sidus(&["clone", &format!("{name}@{id}"), &copy]).ok();
        assert_eq!(
            fs::read_to_string(store.path(&copy).join("f")).unwrap(),
            name
        );
        assert_eq!(
            fs::read_to_string(store.path(&format!("{name}@{id}")).join("f")).unwrap(),
            name
        );
    }
    fs::write(store.path(&longest).join("f"), "changed").unwrap();
    let id = &store.ids(&longest)[0];
    store.sidus(&["rollback", &format!("{longest}@{id}")]).ok();
    assert_eq!(
        fs::read_to_string(store.path(&longest).join("f")).unwrap(),
        longest
    );
    let listed: Vec<String> = store
        .sidus(&["list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 6, "{listed:?}");
    for name in listed.iter().filter(|n| n.ends_with('c')) {
        store.sidus(&["destroy", name]).ok();
    }
    for name in names {
        // Newest first: on ZFS the safety snapshot lives in a clone of the older.
        for id in store.ids(name).iter().rev() {
            store.sidus(&["delete", &format!("{name}@{id}")]).ok();
        }
        store.sidus(&["destroy", name]).ok();
    }
    assert_eq!(store.storage_objects(), Vec::<String>::new());
}

#[test]
fn second_writer_gets_tree_is_busy() {
    require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let lock = store.state_dir().join("locks/lab.lock");
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
fn store_comes_back_after_a_reboot() {
    require_backend!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    fs::write(store.path("lab").join("f"), "kept").unwrap();
    let a = store.snapshot("lab", "kept");
    store.sidus(&["clone", &format!("lab@{a}"), "copy"]).ok();
    store.path(&format!("lab@{a}"));
    store.simulate_reboot();
    assert_eq!(store.ids("lab"), [a.as_str()]);
    assert_eq!(
        fs::read_to_string(store.path("lab").join("f")).unwrap(),
        "kept"
    );
    assert_eq!(
        fs::read_to_string(store.path("copy").join("f")).unwrap(),
        "kept"
    );
    assert_eq!(
        fs::read_to_string(store.path(&format!("lab@{a}")).join("f")).unwrap(),
        "kept"
    );
    fs::write(store.path("lab").join("f"), "after").unwrap();
    store.snapshot("lab", "after the reboot");
}

#[test]
fn a_missing_store_or_config_is_named() {
    let backend = require_backend!();
    let store = TestStore::new();
    let none = store.dir.path().join("none.toml");
    let err = store
        .sidus_env(&["list"], &[("SIDUS_CONFIG", none.to_str().unwrap())])
        .fails(1);
    assert!(err.contains("run `sidus init`"), "{err}");
    // A config naming storage that is not there.
    let (config, want) = match backend {
        Kind::Btrfs => (
            "backend = \"btrfs\"\n[btrfs]\npath = \"/tmp\"\n".to_string(),
            "/tmp is not on a btrfs file system".to_string(),
        ),
        Kind::Zfs => {
            let cfg = fs::read_to_string(&store.config).unwrap();
            let ds = cfg
                .lines()
                .find_map(|l| l.strip_prefix("dataset = "))
                .unwrap()
                .trim_matches('"')
                .to_string();
            (
                format!("backend = \"zfs\"\n[zfs]\ndataset = \"{ds}-gone\"\n"),
                format!("ZFS dataset {ds}-gone does not exist"),
            )
        }
        Kind::Lvm => {
            let cfg = fs::read_to_string(&store.config).unwrap();
            (
                cfg.replace("thinpool = \"", "thinpool = \"gone")
                    .replace(store.mnt.to_str().unwrap(), "/nonexistent/sidus-lvm"),
                "gone".to_string(),
            )
        }
    };
    let other = store.dir.path().join("other.toml");
    fs::write(&other, config).unwrap();
    let err = store
        .sidus_env(&["list"], &[("SIDUS_CONFIG", other.to_str().unwrap())])
        .fails(1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&want), "{err}");
    assert!(!Path::new("/nonexistent/sidus-lvm").exists());
}
