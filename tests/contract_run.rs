//! `sidus run` on a busybox tree, on a real store of the backend
//! `SIDUS_TEST_BACKEND` names (see tests/common/mod.rs): what
//! the command writes is kept or rolled back, nothing it starts or mounts
//! survives it, a killed sidus is recovered by the next command, and no symlink
//! planted in the tree makes sidus touch anything outside it.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tree holding the host's busybox (with its libraries when it is not the
/// static one) with every applet linked, a start-stop-daemon among them, and an
/// empty etc/resolv.conf.
fn busybox_tree(store: &TestStore, name: &str, tweak: impl FnOnce(&Path)) -> PathBuf {
    let src = store.dir.path().join(format!("src-{name}"));
    for d in [
        "bin", "sbin", "usr/sbin", "etc", "root", "mnt", "tmp", "run",
    ] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    common::copy_busybox(&src);
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            symlink("busybox", src.join("bin").join(applet)).unwrap();
        }
    }
    symlink("../bin/busybox", src.join("sbin/start-stop-daemon")).unwrap();
    fs::write(src.join("etc/resolv.conf"), "").unwrap();
    tweak(&src);
    store
        .sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
        .ok();
    store.path(name)
}

fn snapshots(store: &TestStore, tree: &str) -> Vec<serde_json::Value> {
    store
        .sidus(&["snapshots", tree, "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

/// PIDs of processes whose argv is exactly `argv`.
fn processes(argv: &[&str]) -> Vec<String> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid = e.file_name().into_string().ok()?;
            pid.parse::<u32>().ok()?;
            (fs::read(e.path().join("cmdline")).ok()? == want).then_some(pid)
        })
        .collect()
}

/// Mount points under `dir` in the mount tables of this process and of init.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let dir = format!("{}/", dir.display());
    ["/proc/self/mountinfo", "/proc/1/mountinfo"]
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        .collect()
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

fn spawn_sidus(store: &TestStore, args: &[&str]) -> std::process::Child {
    Command::new(common::sidus_bin())
        .args(args)
        .env("SIDUS_CONFIG", &store.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn assert_wrappers_gone(tree: &Path) {
    assert_eq!(
        fs::read_link(tree.join("sbin/start-stop-daemon")).unwrap(),
        Path::new("../bin/busybox")
    );
    assert!(!tree.join("sbin/start-stop-daemon.REAL").exists());
    assert!(fs::symlink_metadata(tree.join("usr/sbin/policy-rc.d")).is_err());
}

#[test]
fn run_writes_files_between_pre_and_post_snapshots() {
    require_backend!();
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |_| {});
    let mut child = Command::new(common::sidus_bin())
        .args(["run", "bb", "-m", "write motd", "--", "sh", "-c"])
        .arg(
            "cat > /etc/motd; /usr/sbin/policy-rc.d; echo policy=$?; /sbin/start-stop-daemon -S -x /bin/true; \
             echo env=$DEBIAN_FRONTEND:$LANG:$container:${TMPDIR-unset}; echo > /tmp/t; echo > /run/r",
        )
        .env("SIDUS_CONFIG", &store.config)
        .env("TMPDIR", "/host/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"welcome\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("policy=101"), "{stdout}");
    assert!(
        stdout.contains("env=noninteractive:C.UTF-8:sidus:unset"),
        "{stdout}"
    );
    assert!(stderr.contains("fake start-stop-daemon"), "{stderr}");
    assert_eq!(
        fs::read_to_string(tree.join("etc/motd")).unwrap(),
        "welcome\n"
    );
    // /tmp and /run were the run's own tmpfs; the wrappers are gone.
    assert!(!tree.join("tmp/t").exists() && !tree.join("run/r").exists());
    assert_wrappers_gone(&tree);
    let snaps = snapshots(&store, "bb");
    assert_eq!(snaps.len(), 2);
    let (pre, post) = (&snaps[0], &snaps[1]);
    assert_eq!(
        (pre["kind"].as_str(), post["kind"].as_str()),
        (Some("pre"), Some("post"))
    );
    assert_eq!(post["pre"], pre["id"]);
    assert_eq!(post["status"], 0);
    assert_eq!(post["message"], "write motd");
    assert!(post["command"]
        .as_str()
        .unwrap()
        .starts_with("sh -c 'cat > /etc/motd;"));
    // The pre snapshot has neither the change nor any wrapper.
    let pre_path = store.path(&format!("bb@{}", pre["id"].as_str().unwrap()));
    assert!(!pre_path.join("etc/motd").exists());
    assert!(fs::symlink_metadata(pre_path.join("usr/sbin/policy-rc.d")).is_err());
}

#[test]
fn run_leaves_no_daemon_and_no_mount() {
    require_backend!();
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |_| {});
    let child = spawn_sidus(
        &store,
        &[
            "run",
            "bb",
            "--",
            "sh",
            "-c",
            "mount -t tmpfs leak /mnt && (setsid sleep 31337 &) && sleep 31338 & \
             sleep 0.3; touch /root/up; sleep 1; exit 0",
        ],
    );
    wait_for(&tree.join("root/up"));
    // While it runs: the daemons exist, the mount is invisible on the host.
    assert_eq!(processes(&["sleep", "31337"]).len(), 1);
    assert_eq!(host_mounts_under(&tree), Vec::<String>::new());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(processes(&["sleep", "31337"]), Vec::<String>::new());
    assert_eq!(processes(&["sleep", "31338"]), Vec::<String>::new());
    assert_eq!(host_mounts_under(&tree), Vec::<String>::new());
    // Only the file survives, in the tree itself (mnt was a tmpfs).
    assert!(tree.join("root/up").exists());
    assert_eq!(fs::read_dir(tree.join("mnt")).unwrap().count(), 0);
}

#[test]
fn run_failure_rolls_back_and_passes_the_status() {
    require_backend!();
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |_| {});
    let err = store
        .sidus(&["run", "bb", "--", "sh", "-c", "echo x > /root/bad; exit 7"])
        .fails(7);
    assert!(
        err.contains("exited with status 7; tree 'bb' rolled back to"),
        "{err}"
    );
    assert!(!tree.join("root/bad").exists());
    assert_wrappers_gone(&tree);
    let snaps = snapshots(&store, "bb");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["kind"], "pre");
    let log = store.sidus(&["log", "bb", "--json"]).json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.starts_with(&["run", "rollback"]), "{actions:?}");
    assert!(log[0]["outcome"].as_str().unwrap().starts_with("failed: "));
    // Success and signal deaths pass through too.
    store.sidus(&["run", "bb", "--", "true"]).ok();
    store
        .sidus(&["run", "bb", "--", "sh", "-c", "kill -TERM $$"])
        .fails(143);
    // A command that does not exist is a failure of the command: 127.
    let err = store
        .sidus(&["run", "bb", "--", "no-such-command"])
        .fails(127);
    assert!(
        err.contains("no-such-command: command not found in the tree"),
        "{err}"
    );
    // Usage errors stay sidus's own.
    store.sidus(&["run", "bb"]).fails(2);
    store.sidus(&["run", "nosuchtree", "--", "true"]).fails(125);
}

#[test]
fn run_keep_on_failure_keeps_the_state_as_post() {
    require_backend!();
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |_| {});
    let err = store
        .sidus(&[
            "run",
            "bb",
            "--keep-on-failure",
            "--",
            "sh",
            "-c",
            "echo x > /root/half; exit 3",
        ])
        .fails(3);
    assert!(err.contains("kept as post snapshot"), "{err}");
    assert!(tree.join("root/half").exists());
    assert_wrappers_gone(&tree);
    let snaps = snapshots(&store, "bb");
    assert_eq!(snaps[1]["kind"], "post");
    assert_eq!(snaps[1]["status"], 3);
    assert_eq!(snaps[1]["pre"], snaps[0]["id"]);
}

#[test]
fn run_sigkill_is_recovered_by_the_next_command() {
    require_backend!();
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |_| {});
    for keep in [false, true] {
        let marker = tree.join("root/started");
        let mut args = vec!["run", "bb"];
        if keep {
            args.push("--keep-on-failure");
        }
        args.extend([
            "--",
            "sh",
            "-c",
            "touch /root/started; sleep 31339 & sleep 31339",
        ]);
        let mut child = spawn_sidus(&store, &args);
        wait_for(&marker);
        assert!(
            tree.join("usr/sbin/policy-rc.d").exists(),
            "wrappers in place mid-run"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        // The sandbox died with sidus: no process and no mount left.
        let start = Instant::now();
        while !processes(&["sleep", "31339"]).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "sandbox outlived sidus"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(host_mounts_under(&tree), Vec::<String>::new());
        // The next command on the tree finishes the run first.
        let out = store.sidus(&["snapshot", "bb", "-m", "next"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stderr.contains("ended the interrupted run as failed"),
            "{}",
            out.stderr
        );
        assert_wrappers_gone(&tree);
        // The record may be in the file or in its xattr (src/state/record.rs).
        let state: serde_json::Value = serde_json::from_slice(
            &sidus_backends::ordered::read_record(&store.state_dir().join("trees/bb.json"))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert!(
            state["intent"].is_null(),
            "the run's intent is settled: {state}"
        );
        let snaps = snapshots(&store, "bb");
        let kinds: Vec<&str> = snaps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
        if keep {
            assert!(marker.exists(), "kept");
            assert!(kinds.ends_with(&["pre", "post", "manual"]), "{kinds:?}");
            fs::remove_file(&marker).unwrap();
        } else {
            assert!(!marker.exists(), "rolled back");
            assert_eq!(kinds, ["pre", "manual"]);
        }
        // The dead run is journaled once, by recovery, under its own action.
        let log = store.sidus(&["log", "bb", "--json"]).json();
        let recovered: Vec<_> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "run")
            .collect();
        assert_eq!(recovered.len(), if keep { 2 } else { 1 }, "{log}");
        // Cut short, the command did not succeed: journaled as a failure,
        // as `sidus run` itself would have, whether the tree was kept or not.
        assert!(
            recovered[0]["outcome"]
                .as_str()
                .unwrap()
                .starts_with("failed: sidus pid "),
            "{log}"
        );
    }
}

/// A directory on the host that planted links point at, with its listing.
fn canary(store: &TestStore) -> (PathBuf, Vec<String>) {
    let dir = store.dir.path().join("host-canary");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("victim"), "host data\n").unwrap();
    fs::write(dir.join("sub/file"), "host data\n").unwrap();
    let listing = TestStore::listing(&dir);
    (dir, listing)
}

#[test]
fn run_symlinks_in_the_tree_never_reach_the_host() {
    require_backend!();
    let store = TestStore::new();
    let (host, before) = canary(&store);
    let h = host.clone();
    let tree = busybox_tree(&store, "bb", move |src| {
        symlink(h.join("victim"), src.join("usr/sbin/policy-rc.d")).unwrap();
        fs::remove_file(src.join("sbin/start-stop-daemon")).unwrap();
        symlink(h.join("victim"), src.join("sbin/start-stop-daemon")).unwrap();
        fs::remove_file(src.join("etc/resolv.conf")).unwrap();
        symlink(h.join("victim"), src.join("etc/resolv.conf")).unwrap();
        symlink(&h, src.join("run/escape")).unwrap();
        symlink(h.join("victim"), src.join("tmp/escape")).unwrap();
    });
    // The command itself writes through the links: inside, they resolve in the tree.
    store
        .sidus(&[
            "run", "bb", "--", "sh", "-c",
            "echo pwned > /etc/resolv.conf; /usr/sbin/policy-rc.d; echo pwned > /run/escape/victim || true",
        ])
        .ok();
    assert_eq!(TestStore::listing(&host), before, "host untouched");
    assert_eq!(
        fs::read_link(tree.join("usr/sbin/policy-rc.d")).unwrap(),
        host.join("victim")
    );
    assert_eq!(
        fs::read_link(tree.join("sbin/start-stop-daemon")).unwrap(),
        host.join("victim")
    );
    assert!(!tree.join("sbin/start-stop-daemon.REAL").exists());
    // The tree's run and tmp were purged: the links themselves, not their targets.
    assert_eq!(fs::read_dir(tree.join("run")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(tree.join("tmp")).unwrap().count(), 0);
}

#[test]
fn run_refuses_mount_points_that_are_links() {
    require_backend!();
    let store = TestStore::new();
    let (host, before) = canary(&store);
    for dir in ["tmp", "run", "proc", "dev"] {
        let h = host.clone();
        let name = format!("bb-{dir}");
        let tree = busybox_tree(&store, &name, move |src| {
            let _ = fs::remove_dir(src.join(dir));
            symlink(&h, src.join(dir)).unwrap();
        });
        let err = store
            .sidus(&["run", &name, "--", "touch", "/root/ran"])
            .fails(125);
        assert!(
            err.contains(&format!("refusing to mount on {dir}")),
            "{err}"
        );
        assert!(!tree.join("root/ran").exists());
        assert_eq!(fs::read_link(tree.join(dir)).unwrap(), host);
        assert_wrappers_gone(&tree);
        // The tree is as it was: no snapshot left behind either.
        assert_eq!(snapshots(&store, &name).len(), 0, "{dir}");
        assert_eq!(host_mounts_under(&tree), Vec::<String>::new());
    }
    assert_eq!(TestStore::listing(&host), before, "host untouched");
}

#[test]
fn run_resolv_conf_linking_into_run_gets_the_hosts_in_the_runs_tmpfs() {
    require_backend!();
    if !Path::new("/etc/resolv.conf").exists() {
        eprintln!("SKIP: the host has no /etc/resolv.conf");
        return;
    }
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |src| {
        fs::remove_file(src.join("etc/resolv.conf")).unwrap();
        symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            src.join("etc/resolv.conf"),
        )
        .unwrap();
    });
    let out = store
        .sidus(&["run", "bb", "--", "cat", "/etc/resolv.conf"])
        .ok();
    assert_eq!(out.as_bytes(), fs::read("/etc/resolv.conf").unwrap());
    assert_eq!(fs::read_dir(tree.join("run")).unwrap().count(), 0);
    // A regular file is bound over, read-only, and left as it was.
    let tree2 = busybox_tree(&store, "bb2", |_| {});
    let out = store
        .sidus(&[
            "run",
            "bb2",
            "--",
            "sh",
            "-c",
            "cat /etc/resolv.conf; echo x >> /etc/resolv.conf && echo WROTE; true",
        ])
        .ok();
    assert!(
        out.starts_with(&fs::read_to_string("/etc/resolv.conf").unwrap()),
        "{out}"
    );
    assert!(!out.contains("WROTE"));
    assert_eq!(fs::read(tree2.join("etc/resolv.conf")).unwrap(), b"");
}

#[test]
fn shell_keeps_the_session_whatever_its_status() {
    require_backend!();
    let store = TestStore::new();
    let tree = busybox_tree(&store, "bb", |_| {});
    let mut child = Command::new(common::sidus_bin())
        .args(["shell", "bb", "-m", "by hand"])
        .env("SIDUS_CONFIG", &store.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo $debian_chroot > /root/session\nexit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("kept as post snapshot"), "{stderr}");
    assert_eq!(
        fs::read_to_string(tree.join("root/session")).unwrap(),
        "sidus:bb\n"
    );
    let snaps = snapshots(&store, "bb");
    assert_eq!(snaps[1]["kind"], "post");
    assert_eq!(snaps[1]["status"], 3);
    assert_eq!(snaps[1]["command"], "/bin/sh");
    assert_eq!(snaps[1]["message"], "by hand");
}
