//! Replication between two loop btrfs stores on this host, the remote reached
//! through `--command` (a second sidus with the other store's config).

mod common;
use common::TestStore;
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_sidus");

/// A primary with tree `lab` and a replica store added to it as remote `b`
/// (and as `b-<failpoint>`, the same store whose sidus dies at that failpoint).
fn pair(failpoints: &[&str]) -> (TestStore, TestStore) {
    let a = TestStore::new();
    let b = TestStore::new();
    a.sidus(&["create", "lab"]).ok();
    let cmd = format!("{BIN} --config {}", b.config.display());
    a.sidus(&["remote", "add", "b", "--command", &cmd]).ok();
    for fp in failpoints {
        let name = format!("b-{}", fp.replace(':', "-"));
        let cmd = format!("env SIDUS_FAILPOINT={fp} {cmd}");
        a.sidus(&["remote", "add", &name, "--command", &cmd]).ok();
    }
    (a, b)
}

/// Changes the working tree of `lab` a little and snapshots it.
fn change_and_snapshot(s: &TestStore, n: usize, big: usize) -> String {
    let root = s.path("lab");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/motd"), format!("version {n}\n")).unwrap();
    std::fs::write(root.join(format!("file{n}")), vec![n as u8; big]).unwrap();
    std::os::unix::fs::symlink("motd", root.join(format!("etc/link{n}"))).unwrap();
    s.snapshot("lab", &format!("change {n}"))
}

fn snapshots(s: &TestStore) -> serde_json::Value {
    s.sidus(&["snapshots", "lab", "--json"]).json()
}

/// Same IDs, same metadata, same content in every snapshot.
#[track_caller]
fn assert_same(a: &TestStore, b: &TestStore) {
    assert_eq!(snapshots(a), snapshots(b));
    for id in a.ids("lab") {
        let target = format!("lab@{id}");
        assert_eq!(
            TestStore::listing(&a.path(&target)),
            TestStore::listing(&b.path(&target)),
            "{target}"
        );
    }
}

fn no_receive_leftovers(b: &TestStore) {
    let dir = b.mnt.join("snapshots/lab");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".recv-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn root_btrfs_replica_incremental_keeps_ids_metadata_and_content() {
    require_root_btrfs!();
    let (a, b) = pair(&[]);
    for n in 0..3 {
        change_and_snapshot(&a, n, 256 << 10);
    }
    let first = a.sidus(&["replicate", "lab", "--json"]).json();
    assert_eq!(first[0]["sent"].as_array().unwrap().len(), 3);
    assert_same(&a, &b);
    for n in 3..5 {
        change_and_snapshot(&a, n, 4096);
    }
    let status = a.sidus(&["remote", "status", "--json"]).json();
    assert_eq!(status[0]["behind"], 2, "{status}");
    assert_eq!(status[0]["newest_common"], a.ids("lab")[2].as_str());
    let second = a.sidus(&["replicate", "lab", "--to", "b", "--json"]).json();
    let sent = second[0]["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 2);
    // Incremental: two small changes, not the 768 KiB the tree holds.
    let bytes = second[0]["bytes"].as_u64().unwrap();
    assert!(bytes < 64 << 10, "{bytes} bytes for two small changes");
    assert_same(&a, &b);
    let status = a.sidus(&["remote", "status", "--json"]).json();
    assert_eq!(
        (status[0]["behind"].clone(), status[0]["bytes"].clone()),
        (0.into(), 0.into())
    );
    assert!(status[0]["last_replicated"].is_string());
    let again = a.sidus(&["replicate", "lab"]).ok();
    assert!(again.contains("up to date"), "{again}");
    // The replica lists it, with the primary's latest.
    let list = b.sidus(&["list", "--json"]).json();
    assert_eq!(list[0]["latest"], a.ids("lab")[4].as_str());
}

#[test]
fn root_btrfs_replica_killed_receive_is_never_listed_and_replicates_again() {
    require_root_btrfs!();
    let (a, b) = pair(&["receive:mid-stream", "receive:after-stream"]);
    for n in 0..3 {
        change_and_snapshot(&a, n, 2 << 20);
    }
    // Killed in the first snapshot's stream: no tree at all there.
    let err = a
        .sidus(&["replicate", "lab", "--to", "b-receive-mid-stream"])
        .fails(1);
    assert!(
        err.contains("remote 'b-receive-mid-stream' failed"),
        "{err}"
    );
    assert!(b
        .sidus(&["list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    a.sidus(&["replicate", "lab", "--to", "b"]).ok();
    assert_same(&a, &b);
    for n in 3..5 {
        change_and_snapshot(&a, n, 3 << 20);
    }
    let listed = b.ids("lab");
    for remote in ["b-receive-mid-stream", "b-receive-after-stream"] {
        a.sidus(&["replicate", "lab", "--to", remote]).fails(1);
        // Half received, or whole but not yet checked and listed: not listed.
        assert_eq!(b.ids("lab"), listed, "after a kill at {remote}");
        let missing = &a.ids("lab")[3];
        b.sidus(&["path", &format!("lab@{missing}")]).fails(1);
        b.sidus(&["publish", &format!("lab@{missing}")]).fails(1);
    }
    let again = a.sidus(&["replicate", "lab", "--json"]).json();
    assert_eq!(again[0]["sent"].as_array().unwrap().len(), 2, "{again}");
    assert_same(&a, &b);
    no_receive_leftovers(&b);
    // The replica journaled what recovery did with the dead receive.
    let log = b.sidus(&["log", "lab", "--json"]).json();
    assert!(
        log.as_array().unwrap().iter().any(|e| e["outcome"]
            .as_str()
            .unwrap()
            .contains("recovery ended it: removed the half-received")),
        "{log}"
    );
}

#[test]
fn root_btrfs_replica_is_read_only_until_promoted() {
    require_root_btrfs!();
    let (a, b) = pair(&[]);
    let first = change_and_snapshot(&a, 0, 1024);
    change_and_snapshot(&a, 1, 1024);
    a.sidus(&["replicate", "lab"]).ok();
    let latest = format!("lab@{}", b.ids("lab")[1]);
    for args in [
        vec!["snapshot", "lab"],
        vec!["rollback", &format!("lab@{first}")],
        vec!["delete", &latest],
        vec!["prune", "lab", "--keep-last", "1"],
        vec!["clone", "lab", "copy"],
    ] {
        let err = b.sidus(&args).fails(1);
        assert!(err.contains("read-only replica"), "{args:?}: {err}");
        assert!(err.contains("sidus replica promote lab"), "{err}");
    }
    let err = b.sidus(&["run", "lab", "--", "true"]).fails(125);
    assert!(err.contains("read-only replica"), "{err}");
    assert_eq!(b.ids("lab").len(), 2);
    // A clone of a received snapshot is a new tree of the replica's store.
    b.sidus(&["clone", &latest, "copy"]).ok();
    b.sidus(&["snapshot", "copy"]).ok();
    // A replica does not replicate onwards.
    let err = b.sidus(&["replicate", "lab"]).fails(1);
    assert!(err.contains("is a replica of"), "{err}");

    let out = b.sidus(&["replica", "promote", "lab", "--json"]).json();
    assert_eq!(out["latest"], b.ids("lab")[1].as_str());
    // The working tree is the newest snapshot received.
    assert_eq!(
        std::fs::read_to_string(b.path("lab").join("etc/motd")).unwrap(),
        "version 1\n"
    );
    b.snapshot("lab", "mine now");
    b.sidus(&["rollback", &format!("lab@{first}")]).ok();
    let err = a.sidus(&["replicate", "lab"]).fails(1);
    assert!(err.contains("of its own (not a replica)"), "{err}");
    let err = b.sidus(&["replica", "promote", "lab"]).fails(1);
    assert!(err.contains("not a replica"), "{err}");
}

#[test]
fn root_btrfs_replica_checks_the_primary_root_hash() {
    require_root_btrfs!();
    let (a, b) = pair(&[]);
    let id = change_and_snapshot(&a, 0, 1 << 20);
    let hash = a.sidus(&["manifest", &format!("lab@{id}")]).ok();
    let out = a.sidus(&["replicate", "lab", "--json"]).json();
    assert_eq!(out[0]["verified"], 1, "{out}");
    // The replica kept the manifest it checked: the same root hash.
    assert_eq!(b.sidus(&["manifest", &format!("lab@{id}")]).ok(), hash);
    b.sidus(&["verify", &format!("lab@{id}")]).ok();
    // An incremental receive is checked against the replica's manifest of
    // its parent for what did not change: a file rewritten in place (same
    // inode and size), one added, one removed are all seen.
    let root = a.path("lab");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("file0"))
        .unwrap();
    std::io::Write::write_all(&mut f, &[7u8; 4096]).unwrap();
    drop(f);
    std::fs::remove_file(root.join("etc/link0")).unwrap();
    let next = change_and_snapshot(&a, 1, 4096);
    let hash = a.sidus(&["manifest", &format!("lab@{next}")]).ok();
    let out = a.sidus(&["replicate", "lab", "--json"]).json();
    assert_eq!(out[0]["verified"], 1, "{out}");
    assert_eq!(b.sidus(&["manifest", &format!("lab@{next}")]).ok(), hash);
    b.sidus(&["verify", &format!("lab@{next}")]).ok();
}

#[test]
fn root_btrfs_replica_remotes_are_added_listed_and_removed() {
    require_root_btrfs!();
    let s = TestStore::new();
    s.sidus(&["remote", "add", "boot2", "ssh://root@boot2:2222"])
        .ok();
    s.sidus(&[
        "remote",
        "add",
        "pipe",
        "--command",
        "sidus --config /x.toml",
    ])
    .ok();
    let list = s.sidus(&["remote", "list", "--json"]).json();
    assert_eq!(list[0]["name"], "boot2");
    assert_eq!(list[0]["transport"]["kind"], "ssh");
    assert_eq!(list[0]["transport"]["port"], 2222);
    assert_eq!(list[1]["transport"]["command"], "sidus --config /x.toml");
    let table = s.sidus(&["remote", "list"]).ok();
    assert!(table.contains("ssh://root@boot2:2222"), "{table}");
    for (args, code, says) in [
        (
            vec!["remote", "add", "boot2", "ssh://other"],
            1,
            "exists already",
        ),
        (
            vec!["remote", "add", "Bad Name", "ssh://h"],
            2,
            "bad remote name",
        ),
        (
            vec!["remote", "add", "x", "http://h"],
            2,
            "not an ssh:// URL",
        ),
        (vec!["remote", "add", "x"], 2, "required"),
        (
            vec!["remote", "remove", "nope"],
            1,
            "no remote named 'nope'",
        ),
        (
            vec!["replicate", "lab", "--to", "boot2"],
            1,
            "no tree named 'lab'",
        ),
    ] {
        let err = s.sidus(&args).fails(code);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    s.sidus(&["remote", "remove", "boot2"]).ok();
    let list = s.sidus(&["remote", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!Path::new(&s.mnt).join(".sidus/remotes.json.tmp").exists());
}

#[test]
fn root_btrfs_replica_archive_stream_checks_and_survives_a_kill() {
    require_root_btrfs!();
    let (a, b) = pair(&["receive:mid-stream"]);
    for n in 0..2 {
        change_and_snapshot(&a, n, 1 << 20);
    }
    // --archive: the path LVM and cross-backend pairs take.
    let out = a.sidus(&["replicate", "lab", "--archive", "--json"]).json();
    assert_eq!(out[0]["verified"], 2, "{out}");
    assert_same(&a, &b);
    change_and_snapshot(&a, 2, 2 << 20);
    a.sidus(&[
        "replicate",
        "lab",
        "--archive",
        "--to",
        "b-receive-mid-stream",
    ])
    .fails(1);
    assert_eq!(b.ids("lab").len(), 2, "the killed receive is not listed");
    let out = a.sidus(&["replicate", "lab", "--archive", "--json"]).json();
    assert_eq!(out[0]["sent"].as_array().unwrap().len(), 1, "{out}");
    assert_same(&a, &b);
    // What an archive receive leaves as the working tree is the newest snapshot.
    assert_eq!(
        TestStore::listing(&b.path("lab")),
        TestStore::listing(&b.path("lab@latest"))
    );
    // A replica begun with archives has no native base: it stays on them.
    change_and_snapshot(&a, 3, 4096);
    let out = a.sidus(&["replicate", "lab", "--json"]).json();
    assert_eq!(out[0]["verified"], 1, "{out}");
    assert_same(&a, &b);
}

/// Adds a `[publish]` section serving under the store's temp dir, without
/// nfsd, nodes mounting from `server`.
fn publish_here(s: &TestStore, server: &str) -> std::path::PathBuf {
    let d = s.dir.path();
    let exports = d.join("exports");
    let mut cfg = std::fs::read_to_string(&s.config).unwrap();
    cfg.push_str(&format!(
        "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"{server}\"\nclients = [\"127.0.0.1\"]\napply_exports = false\n",
        d.join("srv").display(),
        d.join("tftp").display(),
        exports.display()
    ));
    std::fs::write(&s.config, cfg).unwrap();
    exports
}

#[test]
fn root_btrfs_replica_publish_on_gives_the_same_fsid_and_entries_list_both_servers() {
    require_root_btrfs!();
    let (a, b) = pair(&[]);
    let cmd = format!("{BIN} --config {}", b.config.display());
    let add = [
        "remote",
        "add",
        "bs",
        "--command",
        &cmd,
        "--server",
        "192.0.2.2",
    ];
    a.sidus(&add).ok();
    assert!(a.sidus(&["remote", "list"]).ok().contains(" 192.0.2.2 "));
    let root = a.path("lab");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.1.0-test"), "KERNEL").unwrap();
    std::fs::write(root.join("boot/initrd.img-6.1.0-test"), "INITRD").unwrap();
    let id = a.snapshot("lab", "bootable");
    a.sidus(&["replicate", "lab"]).ok();
    let (ea, eb) = (publish_here(&a, "192.0.2.1"), publish_here(&b, "192.0.2.2"));
    let target = format!("lab@{id}");
    a.sidus(&["publish", &target]).ok();
    // On the replica, by the primary's `publish --on`: `latest` is resolved here.
    let out = a.sidus(&["publish", "lab", "--on", "b", "--json"]).json();
    assert_eq!(out["b"]["id"], id.as_str(), "{out}");
    assert_eq!(
        b.sidus(&["status", "--json"]).json()["trees"][0]["current"],
        id.as_str()
    );
    let fsid = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap();
        let at = text
            .find("fsid=")
            .unwrap_or_else(|| panic!("no fsid in {text}"));
        text[at..].split([',', ')']).next().unwrap().to_string()
    };
    assert_eq!(fsid(&ea), fsid(&eb));
    // `b` has no --server: entries name one server each, as before.
    let ipxe =
        |s: &TestStore| std::fs::read_to_string(s.dir.path().join("tftp/sidus/lab.ipxe")).unwrap();
    assert!(!ipxe(&a).contains("goto"), "{}", ipxe(&a));
    // `bs` has one: each server's entries try itself, then the other.
    a.sidus(&["publish", "lab", "--on", "bs"]).ok();
    let (srv_a, srv_b) = (a.dir.path().join("srv"), b.dir.path().join("srv"));
    for (s, first, second, path) in [
        (&a, "192.0.2.1", "192.0.2.2", &srv_b),
        (&b, "192.0.2.2", "192.0.2.1", &srv_a),
    ] {
        let text = ipxe(s);
        assert!(
            text.contains(&format!("tried in this order: {first}, {second}."))
                && text.contains(&format!("kernel tftp://{second}/sidus/lab/{id}/vmlinuz"))
                && text.contains(&format!("nfsroot={second}:{}/lab/{id},ro", path.display())),
            "{text}"
        );
    }
    let e = b
        .sidus(&["publish", &target, "--fallback", "192.0.2.9"])
        .fails(2);
    assert!(e.contains("expected SERVER:PATH"), "{e}");
    for s in [&a, &b] {
        s.sidus(&["unpublish", &target, "--force"]).ok();
    }
}

#[test]
fn root_btrfs_replica_an_unreachable_remote_is_named_and_the_others_replicated() {
    require_root_btrfs!();
    let (a, b) = pair(&[]);
    a.sidus(&[
        "remote",
        "add",
        "down",
        "--command",
        "echo no route to host >&2; exit 255; :",
    ])
    .ok();
    change_and_snapshot(&a, 0, 4096);
    let err = a.sidus(&["replicate", "lab"]).fails(1);
    assert!(err.contains("failed to 1 of 2 remotes: down"), "{err}");
    assert!(err.contains("no route to host"), "{err}");
    assert_same(&a, &b);
    // Status says per remote what it knows; an unreachable one is a row with its error.
    let rows = a.sidus(&["remote", "status", "--json"]).json();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["remote"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("b")["behind"], 0);
    assert!(
        row("down")["error"]
            .as_str()
            .unwrap()
            .contains("no route to host"),
        "{rows}"
    );
    let table = a.sidus(&["remote", "status"]).ok();
    assert!(table.contains("no route to host"), "{table}");
}
