//! `sidus doctor` on a real loop-backed btrfs store: healthy after every
//! ordinary command; each problem made for real (a sidus killed mid-run, a
//! failpoint abort, a scratch copy, damaged records, a drifted mode, a stray
//! mount and process, an unjournaled snapshot, publish state out of step) is
//! reported with exit 1 in text and JSON, changes nothing until `--repair`,
//! which fixes what is safe, after which doctor exits 0.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KERNEL: &str = "6.1.0-26-amd64";

/// A store with a `[publish]` section (no nfsd: `apply_exports = false`) and
/// a busybox tree `lab` with a fake kernel. Unmounts what it mounted on drop.
struct Env {
    store: TestStore,
    srv: PathBuf,
    tftp: PathBuf,
}

impl Env {
    fn new() -> Env {
        let store = TestStore::new();
        let d = store.dir.path().to_path_buf();
        let env = Env {
            srv: d.join("srv"),
            tftp: d.join("tftp"),
            store,
        };
        let mut cfg = fs::read_to_string(&env.store.config).unwrap();
        cfg.push_str(&format!(
            "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = false\n",
            env.srv.display(),
            env.tftp.display(),
            d.join("exports.d/sidus.exports").display()
        ));
        fs::write(&env.store.config, cfg).unwrap();
        env
    }

    fn make_tree(&self, name: &str) -> PathBuf {
        let src = self.store.dir.path().join(format!("src-{name}"));
        for d in [
            "bin", "sbin", "usr/sbin", "etc", "root", "mnt", "tmp", "run", "boot",
        ] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        fs::copy("/bin/busybox", src.join("bin/busybox")).expect("busybox-static installed");
        for applet in ["sh", "sleep", "touch", "true", "echo"] {
            symlink("busybox", src.join("bin").join(applet)).unwrap();
        }
        symlink("../bin/busybox", src.join("sbin/start-stop-daemon")).unwrap();
        fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "KERNEL").unwrap();
        fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "INITRD").unwrap();
        self.sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
            .ok();
        self.store.path(name)
    }

    fn sidus(&self, args: &[&str]) -> common::Run {
        self.store.sidus(args)
    }

    /// `sidus doctor ARGS --json`, whatever its exit status.
    fn doctor(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut all = vec!["doctor", "--json"];
        all.extend(args);
        let r = self.sidus(&all);
        let v = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("bad json {e}: {} {}", r.stdout, r.stderr));
        (r.code, v)
    }

    #[track_caller]
    fn assert_healthy(&self) {
        let text = self.sidus(&["doctor"]);
        assert_eq!(text.code, 0, "{}{}", text.stdout, text.stderr);
        assert!(text.stdout.contains("healthy: "), "{}", text.stdout);
        let (code, v) = self.doctor(&[]);
        assert_eq!(code, 0, "{v:#}");
        assert_eq!(v["healthy"], true);
        assert!(
            v["problems"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["severity"] == "warning"),
            "{v:#}"
        );
    }

    /// Everything doctor could change: the store's files (names, sizes,
    /// modes, times), the boot and serve folders, and the mount table.
    fn fingerprint(&self) -> Vec<String> {
        let mut out = Vec::new();
        for root in [self.store.mnt.as_path(), &self.tftp, &self.srv] {
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                let Ok(entries) = fs::read_dir(&d) else {
                    continue;
                };
                for e in entries.flatten() {
                    let m = fs::symlink_metadata(e.path()).unwrap();
                    out.push(format!(
                        "{} {} {:o} {}.{}",
                        e.path().display(),
                        m.len(),
                        m.mode(),
                        m.mtime(),
                        m.mtime_nsec()
                    ));
                    if m.is_dir() && !e.path().starts_with(self.store.mnt.join("snapshots/lab/")) {
                        stack.push(e.path());
                    }
                }
            }
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        out.extend(
            mounts
                .lines()
                .map(|l| l.split(' ').nth(4).unwrap().to_string())
                .filter(|m| Path::new(m).starts_with(self.store.dir.path())),
        );
        out.sort();
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = self.store.dir.path();
        let mut mounts: Vec<PathBuf> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|m| m.starts_with(dir) && m != &self.store.mnt)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            let _ = Command::new("umount").arg(&m).status();
        }
    }
}

/// A process started in a tree, killed if the test fails before doctor ends it.
struct Stray(std::process::Child);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The checks of the problems of a doctor report.
fn checks(v: &serde_json::Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["check"].as_str().unwrap().to_string())
        .collect()
}

/// The problem of `check` whose `what` contains `needle`.
#[track_caller]
fn problem<'a>(v: &'a serde_json::Value, check: &str, needle: &str) -> &'a serde_json::Value {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["check"] == check && p["what"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no {check} problem with '{needle}' in {v:#}"))
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn root_btrfs_doctor_healthy_on_a_fresh_store_and_after_ordinary_commands() {
    require_root_btrfs!();
    let env = Env::new();
    env.assert_healthy();
    env.make_tree("lab");
    let a = env.store.snapshot("lab", "one");
    env.sidus(&["clone", "lab", "copy"]).ok();
    env.sidus(&["clone", &format!("lab@{a}"), "copy2"]).ok();
    env.store.snapshot("lab", "two");
    env.sidus(&["rollback", &format!("lab@{a}")]).ok();
    env.sidus(&[
        "run",
        "lab",
        "--",
        "sh",
        "-c",
        "echo hi > /root/x; echo > /tmp/t",
    ])
    .ok();
    env.sidus(&["run", "lab", "--", "sh", "-c", "exit 3"])
        .fails(3);
    env.sidus(&[
        "run",
        "lab",
        "--keep-on-failure",
        "--",
        "sh",
        "-c",
        "exit 4",
    ])
    .fails(4);
    env.sidus(&["prune", "lab", "--keep-last", "3"]).ok();
    env.sidus(&["publish", "lab"]).ok();
    let b = env.store.snapshot("lab", "three");
    env.sidus(&["publish", "lab"]).ok();
    env.sidus(&["publish", "--rollback", "lab"]).ok();
    env.sidus(&["unpublish", &format!("lab@{b}")]).ok();
    env.sidus(&["delete", &format!("lab@{b}")]).ok();
    env.sidus(&["destroy", "copy2"]).ok();
    env.sidus(&["pin", &format!("lab@{a}"), "--name", "keep"])
        .ok();
    env.assert_healthy();
    let (_, v) = env.doctor(&[]);
    assert_eq!(v["checked"]["trees"], 2);
    assert_eq!(v["checked"]["published"], 1);
    // One tree only, and a tree that is not there.
    assert_eq!(env.doctor(&["copy"]).0, 0);
    let err = env.sidus(&["doctor", "nosuch"]).fails(1);
    assert!(err.contains("no tree named 'nosuch'"), "{err}");
}

#[test]
fn root_btrfs_doctor_names_a_run_killed_mid_command_and_repair_settles_it() {
    require_root_btrfs!();
    let env = Env::new();
    let tree = env.make_tree("lab");
    let marker = tree.join("root/started");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidus"))
        .args([
            "run",
            "lab",
            "--",
            "sh",
            "-c",
            "touch /root/started; sleep 31341",
        ])
        .env("SIDUS_CONFIG", &env.store.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&marker);
    // A writer at work: its tree is busy, not broken.
    let (code, v) = env.doctor(&[]);
    assert_eq!(
        (code, &v["busy"]),
        (0, &serde_json::json!(["lab"])),
        "{v:#}"
    );
    let pid = child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    let before = env.fingerprint();
    let text = env.sidus(&["doctor"]);
    assert_eq!(text.code, 1, "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("sidus pid {pid} is dead")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("fix: sidus doctor --repair lab"),
        "{}",
        text.stdout
    );
    let (code, v) = env.doctor(&[]);
    assert_eq!(code, 1);
    assert_eq!(v["healthy"], false);
    let p = problem(&v, "intent", "sidus run lab -- sh -c");
    assert_eq!(p["tree"], "lab");
    assert_eq!(p["fix"], "sidus doctor --repair lab");
    problem(&v, "diversion", "sbin/start-stop-daemon.REAL");
    assert_eq!(
        env.fingerprint(),
        before,
        "doctor without --repair changes nothing"
    );

    let r = env.sidus(&["doctor", "--repair", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the interrupted run"), "{}", r.stderr);
    env.assert_healthy();
    assert!(!tree.join("sbin/start-stop-daemon.REAL").exists());
    assert!(!marker.exists(), "rolled back to pre");
}

#[test]
fn root_btrfs_doctor_settles_a_snapshot_aborted_at_a_failpoint() {
    require_root_btrfs!();
    let env = Env::new();
    env.make_tree("lab");
    let r = env.store.sidus_env(
        &["snapshot", "lab"],
        &[("SIDUS_FAILPOINT", "snapshot:after-snapshot")],
    );
    assert_ne!(r.code, 0);
    let id = env.store.ids("lab").pop().expect("the snapshot was made");
    let (code, v) = env.doctor(&[]);
    assert_eq!(code, 1);
    assert_eq!(checks(&v), ["intent"], "{v:#}");
    let p = problem(&v, "intent", "`sidus snapshot lab`");
    assert!(
        p["what"]
            .as_str()
            .unwrap()
            .contains(&format!("snapshot lab@{id} was made")),
        "{p}"
    );
    let text = env.sidus(&["doctor", "lab"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout
            .starts_with("intent lab: an interrupted `sidus snapshot lab`"),
        "{}",
        text.stdout
    );

    let r = env.sidus(&["doctor", "--repair", "lab"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    env.assert_healthy();
    let log = env.sidus(&["log", "lab", "--json"]).json();
    let last = &log.as_array().unwrap()[0];
    assert_eq!(
        (&last["action"], &last["snapshots"][0]),
        (&"snapshot".into(), &id.as_str().into()),
        "{last}"
    );
}

#[test]
fn root_btrfs_doctor_finds_leftovers_damage_modes_mounts_processes_and_repairs_them() {
    require_root_btrfs!();
    let env = Env::new();
    let tree = env.make_tree("lab");
    env.store.snapshot("lab", "one");
    let mnt = &env.store.mnt;
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    // A rollback's scratch copy, a sidecar without its snapshot, a snapshot
    // made outside sidus (so unjournaled).
    ok(Command::new("btrfs")
        .args(["-q", "subvolume", "snapshot"])
        .arg(&tree)
        .arg(mnt.join("trees/.lab.swap")));
    fs::write(mnt.join("snapshots/lab/20200101T000000Z.json"), "{}").unwrap();
    ok(Command::new("btrfs")
        .args(["-q", "subvolume", "snapshot", "-r"])
        .arg(&tree)
        .arg(mnt.join("snapshots/lab/20200102T000000Z")));
    // A damaged tree state, a drifted mode, a stray mount and process.
    let state = mnt.join(".sidus/trees/lab.json");
    fs::write(&state, "{\"last_id\": 12").unwrap();
    let journal = mnt.join(".sidus/journal.jsonl");
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o666)).unwrap();
    ok(Command::new("mount")
        .args(["-t", "tmpfs", "stray"])
        .arg(tree.join("mnt")));
    let mut stray = Stray(
        Command::new("chroot")
            .arg(&tree)
            .args(["/bin/sleep", "31342"])
            .spawn()
            .unwrap(),
    );

    let before = env.fingerprint();
    let (code, v) = env.doctor(&[]);
    assert_eq!(code, 1);
    problem(&v, "leftover", ".lab.swap");
    problem(&v, "leftover", "20200101T000000Z.json");
    problem(&v, "record", "lab.json is damaged");
    problem(
        &v,
        "mode",
        "journal.jsonl is writable by its group or others (mode 0666)",
    );
    problem(
        &v,
        "mount",
        &format!(
            "{} is mounted inside tree 'lab'",
            tree.join("mnt").display()
        ),
    );
    let p = problem(&v, "process", &format!("{} (sleep)", stray.0.id()));
    assert!(
        p["fix"]
            .as_str()
            .unwrap()
            .starts_with(&format!("kill {}", stray.0.id())),
        "{p}"
    );
    problem(&v, "journal", "snapshot lab@20200102T000000Z (manual");
    let text = env.sidus(&["doctor"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("leftover lab: ") && text.stdout.contains("    fix: "),
        "{}",
        text.stdout
    );
    assert_eq!(
        env.fingerprint(),
        before,
        "doctor without --repair changes nothing"
    );

    let r = env.sidus(&["doctor", "--repair"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("repaired: "), "{}", r.stdout);
    env.assert_healthy();
    let status = stray.0.wait().unwrap();
    assert!(!status.success(), "doctor --repair ended it: {status}");
    assert!(!mnt.join("trees/.lab.swap").exists());
    assert!(!mnt.join("snapshots/lab/20200101T000000Z.json").exists());
    assert!(
        mnt.join("snapshots/lab/20200102T000000Z").exists(),
        "a snapshot is never removed"
    );
    assert_eq!(fs::metadata(&journal).unwrap().mode() & 0o777, 0o644);
    let log = env.sidus(&["log", "lab", "--json"]).json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "adopt" && e["snapshots"][0] == "20200102T000000Z"),
        "{log:#}"
    );
    // The rebuilt state keeps IDs from being given again.
    let st: serde_json::Value = serde_json::from_slice(
        &sidus_backends::ordered::read_record(&state)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(st["last_id"].as_str().is_some(), "{st}");
    env.store.snapshot("lab", "after repair");
}

#[test]
fn root_btrfs_doctor_checks_publishing_and_repairs_it_as_restore_would() {
    require_root_btrfs!();
    let env = Env::new();
    env.make_tree("lab");
    let id = env.store.snapshot("lab", "one");
    env.sidus(&["publish", "lab"]).ok();
    env.assert_healthy();
    let served = env.srv.join("lab").join(&id);
    assert!(Command::new("umount")
        .arg(&served)
        .status()
        .unwrap()
        .success());
    fs::remove_file(env.tftp.join("pxelinux.cfg/sidus-lab")).unwrap();
    fs::set_permissions(
        env.tftp.join("sidus/lab.ipxe"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    fs::create_dir_all(env.tftp.join("sidus/lab/20200101T000000Z")).unwrap();
    let (code, v) = env.doctor(&[]);
    assert_eq!(code, 1);
    let p = problem(
        &v,
        "publish",
        &format!(
            "lab@{id} is published but not mounted at {}",
            served.display()
        ),
    );
    assert_eq!(p["fix"], "sidus restore");
    problem(&v, "publish", "sidus-lab names nothing");
    problem(
        &v,
        "publish",
        "20200101T000000Z is the kernel copy of lab@20200101T000000Z, which is not published",
    );
    problem(&v, "mode", "lab.ipxe is writable");

    let r = env.sidus(&["doctor", "--repair"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    env.assert_healthy();
    assert!(fs::read_to_string(env.tftp.join("pxelinux.cfg/sidus-lab"))
        .unwrap()
        .contains(&format!("sidus.snapshot={id}")));
    assert!(!env.tftp.join("sidus/lab/20200101T000000Z").exists());

    // A publish aborted after its exports: named as an intent, settled by --repair.
    env.store.snapshot("lab", "two");
    let r = env.store.sidus_env(
        &["publish", "lab"],
        &[("SIDUS_FAILPOINT", "publish:after-exports")],
    );
    assert_ne!(r.code, 0);
    let (code, v) = env.doctor(&[]);
    assert_eq!((code, checks(&v)), (1, vec!["intent".to_string()]), "{v:#}");
    assert_eq!(env.sidus(&["doctor", "--repair"]).code, 0);
    env.assert_healthy();
}

#[test]
fn root_btrfs_doctor_never_removes_data_and_says_what_is_left_to_the_admin() {
    require_root_btrfs!();
    let env = Env::new();
    env.make_tree("lab");
    let mnt = &env.store.mnt;
    // Snapshots of a tree that is gone: they hold data.
    fs::create_dir_all(mnt.join("snapshots/gone")).unwrap();
    let orphan = mnt.join("snapshots/gone/20200101T000000Z");
    assert!(Command::new("btrfs")
        .args(["-q", "subvolume", "snapshot", "-r"])
        .arg(mnt.join("trees/lab"))
        .arg(&orphan)
        .status()
        .unwrap()
        .success());
    fs::write(mnt.join(".sidus/pins.json"), "{\"pins\": [").unwrap();
    let (code, v) = env.doctor(&[]);
    assert_eq!(code, 1);
    let p = problem(
        &v,
        "leftover",
        "a snapshot of tree 'gone', which no longer exists (it holds data)",
    );
    assert!(
        p["fix"]
            .as_str()
            .unwrap()
            .contains("btrfs subvolume delete"),
        "{p}"
    );
    let p = problem(&v, "record", "pins file");
    assert!(
        p["fix"].as_str().unwrap().contains("mend its JSON by hand"),
        "{p}"
    );
    let r = env.sidus(&["doctor", "--repair"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("that --repair could not fix"),
        "{}",
        r.stderr
    );
    assert!(orphan.exists());
    // By hand, as the fixes say; then healthy.
    assert!(Command::new("btrfs")
        .args(["-q", "subvolume", "delete"])
        .arg(&orphan)
        .status()
        .unwrap()
        .success());
    fs::write(
        mnt.join(".sidus/pins.json"),
        "{\"version\": 1, \"pins\": []}",
    )
    .unwrap();
    assert_eq!(env.sidus(&["doctor", "--repair"]).code, 0);
    env.assert_healthy();
    assert!(
        !mnt.join("snapshots/gone").exists(),
        "its empty folder went with --repair"
    );
}
