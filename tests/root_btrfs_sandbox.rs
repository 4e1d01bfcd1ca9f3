//! What a `sidus run` command cannot do to the host, on a static busybox tree
//! in a real loop-backed btrfs store: /proc's kernel knobs are read-only or
//! masked, `--network none` leaves only loopback, the capabilities that reach
//! the host kernel are gone (and `--capability` gives one back, on the record),
//! exit statuses tell sidus from the command, and path errors name the path.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tree holding a static busybox with every applet linked and an empty
/// etc/resolv.conf.
fn busybox_tree(store: &TestStore, name: &str, tweak: impl FnOnce(&Path)) -> PathBuf {
    let src = store.dir.path().join(format!("src-{name}"));
    for d in ["bin", "sbin", "usr/sbin", "etc", "root", "tmp", "run"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", src.join("bin/busybox")).expect("busybox-static installed");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            symlink("busybox", src.join("bin").join(applet)).unwrap();
        }
    }
    fs::write(src.join("etc/resolv.conf"), "").unwrap();
    tweak(&src);
    store
        .sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
        .ok();
    store.path(name)
}

/// The mount table of a run, as (mount point, options) pairs.
fn run_mounts(store: &TestStore, tree: &str) -> Vec<(String, String)> {
    let out = store
        .sidus(&["run", tree, "--", "cat", "/proc/self/mountinfo"])
        .ok();
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[4].to_string(), f[5].to_string())
        })
        .collect()
}

/// A capability mask from a `Cap*:` line of /proc/self/status.
fn mask(status: &str, key: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

const CAP_NET_ADMIN: u64 = 12;
const CAP_SYS_MODULE: u64 = 16;
const CAP_SYS_RAWIO: u64 = 17;
const CAP_SYS_ADMIN: u64 = 21;
const CAP_SYS_BOOT: u64 = 22;
const CAP_SYS_TIME: u64 = 25;
const CAP_MKNOD: u64 = 27;

#[test]
fn root_btrfs_sandbox_proc_sys_is_read_only_and_the_host_value_is_unchanged() {
    require_root_btrfs!();
    let store = TestStore::new();
    busybox_tree(&store, "bb", |_| {});
    let knob = Path::new("/proc/sys/vm/swappiness");
    let before = fs::read_to_string(knob).unwrap().trim().to_string();
    let other = if before == "17" { "18" } else { "17" };
    let script = format!(
        "sysctl -w vm.swappiness={other}; echo sysctl=$?; \
         echo {other} > /proc/sys/vm/swappiness; echo write=$?; \
         cat /proc/sys/vm/swappiness"
    );
    let out = store.sidus(&["run", "bb", "--", "sh", "-c", &script]);
    let after = fs::read_to_string(knob).unwrap().trim().to_string();
    if after != before {
        // Put the host back before failing.
        fs::write(knob, &before).unwrap();
        panic!("the run changed the host's vm.swappiness from {before} to {after}");
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["sysctl=1", "write=1", before.as_str()],
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );

    // What is read-only and what is masked, as the run's mount table says.
    let mounts = run_mounts(&store, "bb");
    let opts = |m: &str| {
        mounts
            .iter()
            .find(|(p, _)| p == m)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| panic!("{m} not mounted in the run: {mounts:?}"))
    };
    for rel in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        if Path::new("/proc").join(rel).exists() {
            assert!(
                opts(&format!("/proc/{rel}")).starts_with("ro,"),
                "/proc/{rel}"
            );
        }
    }
    for rel in [
        "kcore",
        "keys",
        "kallsyms",
        "timer_list",
        "sched_debug",
        "acpi",
        "scsi",
    ] {
        if Path::new("/proc").join(rel).exists() {
            opts(&format!("/proc/{rel}"));
        }
    }
    if Path::new("/sys/firmware").exists() {
        assert!(opts("/sys/firmware").starts_with("ro,"));
    }
    // Masked files read as empty, masked directories are empty.
    let out = store
        .sidus(&[
            "run",
            "bb",
            "--",
            "sh",
            "-c",
            "cat /proc/keys /proc/kallsyms | wc -c; ls -A /proc/acpi | wc -l",
        ])
        .ok();
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
}

#[test]
fn root_btrfs_sandbox_network_none_leaves_only_loopback_up() {
    require_root_btrfs!();
    let store = TestStore::new();
    busybox_tree(&store, "bb", |_| {});
    let script = "ls /sys/class/net; cat /sys/class/net/lo/flags; \
                  ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping=ok";
    let out = store
        .sidus(&["run", "bb", "--network", "none", "--", "sh", "-c", script])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up: {out}");
    assert_eq!(lines[2..], ["ping=ok"]);
    // The default stays the host's network, which apt needs.
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    host.sort();
    let out = store
        .sidus(&["run", "bb", "--", "ls", "/sys/class/net"])
        .ok();
    let mut seen: Vec<&str> = out.split_whitespace().collect();
    seen.sort();
    assert_eq!(seen, host);
    // `shell` and `update` take the option too.
    store
        .sidus(&[
            "shell",
            "bb",
            "--network",
            "none",
            "--capability",
            "CAP_SYS_TIME",
        ])
        .ok();
    store
        .sidus(&["run", "bb", "--network", "bad", "--", "true"])
        .fails(2);
}

#[test]
fn root_btrfs_sandbox_command_cannot_load_modules_set_the_clock_or_reboot() {
    require_root_btrfs!();
    let store = TestStore::new();
    busybox_tree(&store, "bb", |_| {});
    let out = store
        .sidus(&["run", "bb", "--", "cat", "/proc/self/status"])
        .ok();
    let bnd = mask(&out, "CapBnd");
    for (name, cap) in [
        ("CAP_SYS_MODULE", CAP_SYS_MODULE),
        ("CAP_SYS_BOOT", CAP_SYS_BOOT),
        ("CAP_SYS_TIME", CAP_SYS_TIME),
        ("CAP_SYS_RAWIO", CAP_SYS_RAWIO),
        ("CAP_NET_ADMIN", CAP_NET_ADMIN),
    ] {
        assert_eq!(bnd & 1 << cap, 0, "{name} in CapBnd {bnd:#x}");
    }
    for cap in [CAP_SYS_ADMIN, CAP_MKNOD] {
        assert_ne!(bnd & 1 << cap, 0, "capability {cap} kept");
    }
    // Really gone: not only from the bounding set.
    assert_eq!(mask(&out, "CapEff"), bnd);
    assert_eq!(mask(&out, "CapPrm"), bnd);
    assert_eq!(mask(&out, "CapInh"), 0);
    assert_eq!(mask(&out, "CapAmb"), 0);
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");

    // Not a module: with CAP_SYS_MODULE the kernel would refuse its format,
    // so loading it can never change the host whatever happens.
    let script = "printf '\\177ELF' > /tmp/sidus-test.ko; insmod /tmp/sidus-test.ko; \
                  date -s \"$(date '+%Y-%m-%d %H:%M:%S')\" >/dev/null; \
                  mknod /dev/sidus-null c 1 3 && echo mknod=ok; \
                  touch /tmp/f && chown 1:1 /tmp/f && echo chown=ok";
    let out = store.sidus(&["run", "bb", "--", "sh", "-c", script]);
    assert!(
        out.stderr
            .contains("date: can't set date: Operation not permitted"),
        "{}",
        out.stderr
    );
    if Path::new("/proc/modules").exists() {
        assert!(
            out.stderr
                .contains("can't insert '/tmp/sidus-test.ko': Operation not permitted"),
            "{}",
            out.stderr
        );
    } else {
        eprintln!("SKIP insmod part: this kernel has no module support (no /proc/modules)");
    }
    assert_eq!(out.stdout, "mknod=ok\nchown=ok\n", "{}", out.stderr);

    // --capability gives one back, and the run's snapshots and journal say so.
    let out = store
        .sidus(&[
            "run",
            "bb",
            "--capability",
            "sys_time",
            "-m",
            "clock",
            "--",
            "cat",
            "/proc/self/status",
        ])
        .ok();
    assert_ne!(mask(&out, "CapBnd") & 1 << CAP_SYS_TIME, 0);
    assert_eq!(mask(&out, "CapBnd") & 1 << CAP_SYS_MODULE, 0);
    let snaps = store.sidus(&["snapshots", "bb", "--json"]).json();
    let clock: Vec<_> = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["message"] == "clock")
        .collect();
    assert_eq!(clock.len(), 2);
    for s in clock {
        assert_eq!(
            s["command"],
            "cat /proc/self/status (run with --capability CAP_SYS_TIME)"
        );
    }
    let log = store.sidus(&["log", "bb", "-n", "1", "--json"]).json();
    let cmd = log[0]["command"].as_str().unwrap();
    assert!(cmd.contains("--capability sys_time"), "{log}");
    let e = store
        .sidus(&["run", "bb", "--capability", "CAP_WHATEVER", "--", "true"])
        .fails(2);
    assert!(e.contains("unknown capability 'CAP_WHATEVER'"), "{e}");
}

#[test]
fn root_btrfs_sandbox_exit_codes_tell_sidus_from_the_command() {
    require_root_btrfs!();
    let store = TestStore::new();
    busybox_tree(&store, "bb", |src| {
        fs::write(src.join("root/script"), "#!/bin/nonexistent\n").unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        fs::set_permissions(src.join("root/script"), mode).unwrap();
        fs::write(src.join("root/data"), "not a program\n").unwrap();
    });
    let before = store.ids("bb");
    // The command's own status, whatever it is, even podman's reserved ones.
    store
        .sidus(&["run", "bb", "--", "sh", "-c", "exit 3"])
        .fails(3);
    store
        .sidus(&["run", "bb", "--", "sh", "-c", "exit 125"])
        .fails(125);
    // Not found: 127; found but not runnable: 126, with the reason.
    let e = store
        .sidus(&["run", "bb", "--", "no-such-command"])
        .fails(127);
    assert!(
        e.contains("no-such-command: command not found in the tree"),
        "{e}"
    );
    let e = store
        .sidus(&["run", "bb", "--", "/root/nothing"])
        .fails(127);
    assert!(e.contains("/root/nothing: no such file in the tree"), "{e}");
    let e = store.sidus(&["run", "bb", "--", "/root/data"]).fails(126);
    assert!(
        e.contains("cannot run /root/data: Permission denied"),
        "{e}"
    );
    let e = store.sidus(&["run", "bb", "--", "/root/script"]).fails(126);
    assert!(
        e.contains("its interpreter (#! line) or dynamic loader is missing"),
        "{e}"
    );
    store.sidus(&["run", "bb", "--", "/root"]).fails(126);
    // sidus itself failed: 125, and the tree is untouched.
    let e = store.sidus(&["run", "ghost", "--", "true"]).fails(125);
    assert!(e.contains("no tree named 'ghost'"), "{e}");
    // An empty command is a usage error, refused before anything is done.
    let e = store.sidus(&["run", "bb", "--", ""]).fails(2);
    assert!(e.contains("no command to run"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    store.sidus(&["run", "bb", "--"]).fails(2);
    // The failed runs were rolled back (their pre snapshots stay), the
    // refused ones made none.
    let after = store.ids("bb");
    assert_eq!(
        after.len(),
        before.len() + 7,
        "a pre snapshot each: {after:?}"
    );
}

#[test]
fn root_btrfs_sandbox_a_symlink_loop_in_the_tree_is_named() {
    require_root_btrfs!();
    let store = TestStore::new();
    busybox_tree(&store, "loop", |src| {
        fs::remove_dir_all(src.join("etc")).unwrap();
        symlink("etc", src.join("etc")).unwrap();
    });
    let before = store.ids("loop");
    let e = store.sidus(&["run", "loop", "--", "true"]).fails(125);
    assert!(
        e.contains("cannot reach etc/resolv.conf in ")
            && e.contains("/trees/loop: too many levels of symbolic links"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert_eq!(store.ids("loop"), before, "refused before any snapshot");
}
