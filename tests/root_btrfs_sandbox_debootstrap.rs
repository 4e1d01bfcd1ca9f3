//! The reduced sandbox of `sidus run` still does a Debian admin's work: on a
//! real minbase tree (bootstrapped once from the host's apt source and cached
//! outside the repository, as root_btrfs_run_debootstrap does), apt installs
//! packages and a kernel whose postinst runs update-initramfs, while the
//! command cannot set the clock or load modules and runs with no_new_privs.

mod common;
use common::TestStore;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CACHE: &str = "/var/cache/sidus-test";

/// The host's own release: its apt source certainly serves it.
fn host_suite() -> Option<String> {
    fs::read_to_string("/etc/os-release")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
}

fn tar(args: &[&str]) {
    let ok = Command::new("tar").args(args).status().unwrap();
    assert!(ok.success(), "tar {args:?}");
}

/// A minbase tree named `name`, unpacked from the shared cache, or
/// bootstrapped by sidus and cached.
fn minbase(store: &TestStore, name: &str, suite: &str) -> PathBuf {
    let cached = Path::new(CACHE).join(format!("debootstrap-{suite}-minbase.tar"));
    if !cached.exists() {
        store.sidus(&["create", name, "--debootstrap", suite]).ok();
        let tree = store.path(name);
        fs::create_dir_all(CACHE).unwrap();
        let tmp = cached.with_extension(format!("tar.{}", std::process::id()));
        let (tmp_s, tree_s) = (tmp.to_str().unwrap(), tree.to_str().unwrap());
        tar(&[
            "-c",
            "-p",
            "--numeric-owner",
            "--xattrs",
            "-f",
            tmp_s,
            "-C",
            tree_s,
            ".",
        ]);
        fs::rename(&tmp, &cached).unwrap();
        return tree;
    }
    store.sidus(&["create", name]).ok();
    let tree = store.path(name);
    let (cached_s, tree_s) = (cached.to_str().unwrap(), tree.to_str().unwrap());
    tar(&[
        "-x",
        "-p",
        "--numeric-owner",
        "--xattrs",
        "-f",
        cached_s,
        "-C",
        tree_s,
    ]);
    tree
}

fn cap_bounding(status: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap_or_else(|| panic!("no CapBnd in {status}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

#[test]
fn root_btrfs_sandbox_debootstrap_apt_and_update_initramfs_work_without_host_capabilities() {
    require_root_btrfs!();
    let Some(suite) = host_suite() else {
        eprintln!("SKIP: no VERSION_CODENAME in /etc/os-release");
        return;
    };
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: needs debootstrap (scripts/deps installs it)");
        return;
    }
    let store = TestStore::new_sized("4G");
    let tree = minbase(&store, "deb", &suite);

    let status = store
        .sidus(&["run", "deb", "--", "cat", "/proc/self/status"])
        .ok();
    let bnd = cap_bounding(&status);
    assert_eq!(bnd & (1 << 16 | 1 << 22 | 1 << 25), 0, "CapBnd {bnd:#x}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");

    // coreutils' date and kmod's insmod meet the dropped capabilities.
    let e = store
        // Now, to the second: harmless should it ever succeed.
        .sidus(&["run", "deb", "--", "sh", "-c", "date -s @$(date +%s)"])
        .fails(1);
    assert!(
        e.contains("cannot set date: Operation not permitted"),
        "{e}"
    );
    if Path::new("/proc/modules").exists() {
        let script = "printf '\\177ELF' > /tmp/x.ko; insmod /tmp/x.ko";
        let e = store
            .sidus(&["run", "deb", "--", "sh", "-c", script])
            .fails(1);
        assert!(e.contains("Operation not permitted"), "{e}");
    } else {
        eprintln!("SKIP insmod part: this kernel has no module support (no /proc/modules)");
    }

    // apt drops to _apt, dpkg runs maintainer scripts: all still works.
    store
        .sidus(&[
            "run",
            "deb",
            "--",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "hello",
        ])
        .ok();
    assert_eq!(
        store.sidus(&["run", "deb", "--", "hello"]).ok(),
        "Hello, world!\n"
    );

    // A kernel: its postinst runs update-initramfs (mkinitramfs, hooks, cpio).
    let out = store.sidus(&[
        "run",
        "deb",
        "-m",
        "kernel",
        "--",
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "initramfs-tools",
        "linux-image-cloud-amd64",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("update-initramfs: Generating /boot/initrd.img-"),
        "{}",
        out.stdout
    );
    let initrd = fs::read_dir(tree.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("initrd.img-")
        })
        .expect("an initramfs in /boot");
    let made = fs::metadata(&initrd).unwrap().modified().unwrap();
    // And update-initramfs on its own, as `create --debootstrap` runs it.
    let out = store.sidus(&["run", "deb", "--", "update-initramfs", "-u", "-k", "all"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(fs::metadata(&initrd).unwrap().modified().unwrap() > made);
    assert!(fs::metadata(&initrd).unwrap().len() > 1 << 20);
}
