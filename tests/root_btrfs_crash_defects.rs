//! One test per defect found by killing sidus at chosen steps (issue 11's
//! numbered list), each failing before its fix, on a real loop btrfs store.

mod common;
use common::TestStore;
use std::fs;
use std::process::Command;

const KERNEL: &str = "6.1.0-26-amd64";

fn tree_with_kernel(store: &TestStore, name: &str) {
    let src = store.dir.path().join(format!("src-{name}"));
    fs::create_dir_all(src.join("boot")).unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/motd"), "one\n").unwrap();
    fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "K").unwrap();
    fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "I").unwrap();
    store
        .sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
        .ok();
}

fn with_publish(store: &TestStore) {
    let d = store.dir.path();
    let mut cfg = fs::read_to_string(&store.config).unwrap();
    cfg.push_str(&format!(
        "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = false\n",
        d.join("srv").display(),
        d.join("tftp").display(),
        d.join("exports").display()
    ));
    fs::write(&store.config, cfg).unwrap();
}

fn unmount_served(store: &TestStore) {
    let srv = store.dir.path().join("srv");
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut mounts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(srv.to_str().unwrap()))
        .collect();
    mounts.reverse();
    for m in mounts {
        let _ = Command::new("umount").arg(m).status();
    }
}

/// Defect 1: A publish killed after its boot entries name the new ID, before the
/// state does: the ID nodes boot is protected, and the next command makes
/// the state agree with the entries.
#[test]
fn root_btrfs_killed_publish_never_lets_the_booted_id_go() {
    require_root_btrfs!();
    let store = TestStore::new();
    with_publish(&store);
    tree_with_kernel(&store, "lab");
    let a = store.snapshot("lab", "a");
    let b = store.snapshot("lab", "b");
    store.sidus(&["publish", &format!("lab@{a}")]).ok();
    let killed = store.sidus_env(
        &["publish", &format!("lab@{b}")],
        &[("SIDUS_FAILPOINT", "publish:after-entries")],
    );
    assert_eq!(killed.code, -1, "aborted: {}", killed.stderr);
    let ipxe = fs::read_to_string(store.dir.path().join("tftp/sidus/lab.ipxe")).unwrap();
    assert!(ipxe.contains(&format!("sidus.snapshot={b}")), "{ipxe}");
    // Whatever the state file says, the ID the entries name stays.
    let e = store.sidus(&["delete", &format!("lab@{b}")]).fails(1);
    assert!(e.contains("published (current)"), "{e}");
    let e = store.sidus(&["unpublish", &format!("lab@{b}")]).fails(1);
    assert!(e.contains("nodes boot"), "{e}");
    let status = store.sidus(&["status", "--json"]).json();
    assert_eq!(status["trees"][0]["current"], b.as_str(), "{status}");
    assert_eq!(status["trees"][0]["boot"]["pxelinux_names"], b.as_str());
    let log = store.sidus(&["log", "--json"]).json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "publish"
                && e["outcome"]
                    .as_str()
                    .unwrap()
                    .contains("recovery finished it")),
        "{log}"
    );
    unmount_served(&store);
}

/// Defect 2: A tree record left by a clone or destroy cut short never gives the
/// next tree of that name a false origin.
#[test]
fn root_btrfs_stale_tree_record_never_makes_a_false_origin() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "a");
    // What a destroy of clone `copy` killed after its subvolumes left.
    let dir = store.mnt.join("snapshots/copy");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("tree.json"),
        format!(r#"{{"origin": {{"tree": "lab", "id": "{a}"}}}}"#),
    )
    .unwrap();
    store.sidus(&["create", "copy"]).ok();
    let list = store.sidus(&["list", "--json"]).json();
    let copy = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "copy")
        .unwrap();
    assert!(copy["origin"].is_null(), "{copy}");
    store.sidus(&["delete", &format!("lab@{a}")]).ok();
    store.sidus(&["destroy", "lab"]).ok();
}

/// Defect 3: One damaged tree record affects that tree only: the others list,
/// delete, prune, clone and destroy as before, and the broken one can go.
#[test]
fn root_btrfs_damaged_tree_record_affects_only_its_tree() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "a");
    store.snapshot("lab", "b");
    store.sidus(&["clone", &format!("lab@{a}"), "broken"]).ok();
    fs::write(store.mnt.join("snapshots/broken/tree.json"), "{\"orig").unwrap();
    let list = store.sidus(&["list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let broken = &list.as_array().unwrap()[0];
    assert_eq!(broken["name"], "broken");
    assert!(
        broken["damaged"]
            .as_str()
            .unwrap()
            .contains("snapshots/broken/tree.json"),
        "{broken}"
    );
    store.sidus(&["clone", "lab@latest", "other"]).ok();
    store.sidus(&["prune", "lab", "--keep-last", "5"]).ok();
    store.sidus(&["destroy", "other"]).ok();
    store.sidus(&["destroy", "broken"]).ok();
    store.sidus(&["delete", &format!("lab@{a}")]).ok();
    store.sidus(&["destroy", "lab"]).ok();
}

/// Defect 4: A torn last line, NUL padding and a byte that is not UTF-8 in the
/// journal: `log` works, says how many lines it skipped, and no good entry
/// after the damage is lost.
#[test]
fn root_btrfs_damaged_journal_lines_are_skipped_and_counted() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let journal = store.mnt.join(".sidus/journal.jsonl");
    let mut data = fs::read(&journal).unwrap();
    data.extend_from_slice(b"{\"time\": \"2026-\xff");
    data.extend_from_slice(&[0u8; 100]);
    fs::write(&journal, data).unwrap();
    let id = store.snapshot("lab", "after the damage");
    let out = store.sidus(&["log", "--json"]);
    assert!(
        out.stderr.contains("skipped 1 damaged line"),
        "{}",
        out.stderr
    );
    let log: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(log[0]["snapshots"][0], id.as_str(), "{log}");
    assert_eq!(log.as_array().unwrap().len(), 2);
}

/// Defect 6: When the journal cannot be written after the change landed, sidus
/// still prints the new ID and succeeds (a retrying script makes no second
/// one), and the next writer journals the change.
#[test]
fn root_btrfs_unwritable_journal_still_prints_the_id_and_is_caught_up() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let journal = store.mnt.join(".sidus/journal.jsonl");
    assert!(Command::new("chattr")
        .arg("+i")
        .arg(&journal)
        .status()
        .unwrap()
        .success());
    let out = store.sidus(&["snapshot", "lab", "-m", "landed"]);
    let _ = Command::new("chattr").arg("-i").arg(&journal).status();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim().to_string();
    assert_eq!(store.ids("lab"), std::slice::from_ref(&id));
    assert!(
        out.stderr.contains("could not be written"),
        "{}",
        out.stderr
    );
    store.snapshot("lab", "next");
    let log = store.sidus(&["log", "--json"]).json();
    let entries: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["snapshots"][0] == id.as_str())
        .collect();
    assert_eq!(entries.len(), 1, "journaled once, by recovery: {log}");
    assert!(entries[0]["outcome"].as_str().unwrap().starts_with("ok"));
}

/// Defect 8: Commands that only read change nothing: a scratch copy a rollback left
/// stays until a writer holds the lock.
#[test]
fn root_btrfs_readers_never_clean_up() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let a = store.snapshot("lab", "a");
    let scratch = store.mnt.join("trees/.lab.swap");
    assert!(Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(&scratch)
        .status()
        .unwrap()
        .success());
    store.path("lab");
    store.sidus(&["list"]).ok();
    store.sidus(&["snapshots", "lab"]).ok();
    store.path("lab@latest");
    assert!(scratch.exists(), "a reader removed the scratch copy");
    // A writer that needs the scratch name clears it, holding the lock.
    store.sidus(&["rollback", &format!("lab@{a}")]).ok();
    assert!(!scratch.exists(), "the writer cleans it up");
}

/// Defect 9: An ID is never given twice in a tree, even after its snapshot is
/// deleted within the same second.
#[test]
fn root_btrfs_ids_are_never_reused() {
    require_root_btrfs!();
    let store = TestStore::new();
    store.sidus(&["create", "lab"]).ok();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let id = store.snapshot("lab", "");
        assert!(seen.insert(id.clone()), "{id} given twice");
        store.sidus(&["delete", &format!("lab@{id}")]).ok();
    }
    // A destroyed and re-created tree does not start over either.
    store.sidus(&["destroy", "lab"]).ok();
    store.sidus(&["create", "lab"]).ok();
    let id = store.snapshot("lab", "");
    assert!(!seen.contains(&id), "{id} given again after destroy");
}

/// Defect 12: A lock timeout no Duration can hold is a one-line config error, not a
/// panic.
#[test]
fn root_btrfs_huge_lock_timeout_is_a_config_error() {
    require_root_btrfs!();
    let store = TestStore::new();
    let cfg = fs::read_to_string(&store.config).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("lock_timeout_secs"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&store.config, format!("lock_timeout_secs = 1e300\n{cfg}")).unwrap();
    let e = store.sidus(&["list"]).fails(1);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("lock_timeout_secs must be between 0 and 86400"),
        "{e}"
    );
}

/// Defect 7: When the sandbox fails after the command ran (its status is lost), the
/// run's own failure policy applies: `--keep-on-failure` keeps the work as a
/// post snapshot instead of rolling back and dropping `pre`.
#[test]
fn root_btrfs_sandbox_lost_after_the_command_ran_keeps_the_policy() {
    require_root_btrfs!();
    let store = TestStore::new();
    let src = store.dir.path().join("src-bb");
    for d in ["bin", "etc", "root", "tmp", "run"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", src.join("bin/busybox")).expect("busybox-static installed");
    for applet in ["sh", "sleep", "touch"] {
        std::os::unix::fs::symlink("busybox", src.join("bin").join(applet)).unwrap();
    }
    store
        .sidus(&["create", "bb", "--from-dir", src.to_str().unwrap()])
        .ok();
    let tree = store.path("bb");
    let child = Command::new(env!("CARGO_BIN_EXE_sidus"))
        .args(["run", "bb", "--keep-on-failure", "--", "sh", "-c"])
        .arg("touch /root/work; sleep 60")
        .env("SIDUS_CONFIG", &store.config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !tree.join("root/work").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Kill the sandbox's helper (sidus's child): the status is lost.
    let pid = child.id();
    let children =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for c in children.split_whitespace() {
        let _ = Command::new("kill").args(["-9", c]).status();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps = store.sidus(&["snapshots", "bb", "--json"]).json();
    let kinds: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pre", "post"], "{snaps}");
    assert!(
        store.path("bb").join("root/work").exists(),
        "the work is kept"
    );
}
