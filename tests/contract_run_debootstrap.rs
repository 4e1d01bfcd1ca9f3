//! `sidus create --debootstrap` and `sidus run`/`update` on a real Debian minbase
//! tree. The first run bootstraps from the host's apt source (a few minutes,
//! needs the network) and caches the tree as a tarball outside the repository,
//! keyed by suite; later runs unpack the cache.

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

/// Whether this machine has a default route (the VM has none: no network).
fn has_default_route() -> bool {
    fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
}

fn tar(args: &[&str]) {
    let ok = Command::new("tar").args(args).status().unwrap();
    assert!(ok.success(), "tar {args:?}");
}

/// A minbase tree named `name`, bootstrapped by sidus or unpacked from the cache.
fn minbase(store: &TestStore, name: &str, suite: &str) -> PathBuf {
    let cached = Path::new(CACHE).join(format!("debootstrap-{suite}-minbase.tar"));
    if cached.exists() {
        store.sidus(&["create", name]).ok();
        let tree = store.path(name);
        tar(&[
            "-x",
            "-p",
            "--numeric-owner",
            "--xattrs",
            "-f",
            cached.to_str().unwrap(),
            "-C",
            tree.to_str().unwrap(),
        ]);
        return tree;
    }
    let out = store.sidus(&["create", name, "--debootstrap", suite]).ok();
    assert!(out.contains(&format!("({suite} minbase)")), "{out}");
    let tree = store.path(name);
    // Prepared for diskless nodes: no identity of the build host.
    assert_eq!(fs::read(tree.join("etc/machine-id")).unwrap(), b"");
    assert_eq!(fs::read(tree.join("etc/resolv.conf")).unwrap(), b"");
    assert!(!tree.join("etc/hostname").exists());
    // And it can boot a diskless node (`sidus prepare-node` was applied).
    let conf = fs::read_to_string(tree.join("etc/initramfs-tools/conf.d/sidus")).unwrap();
    assert!(conf.contains("BOOT=nfs"), "{conf}");
    assert!(tree
        .join("etc/initramfs-tools/scripts/init-bottom/sidus")
        .is_file());
    let snaps = store.sidus(&["snapshots", name, "--json"]).json();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert!(snaps[0]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("debootstrap {suite}")));
    fs::create_dir_all(CACHE).unwrap();
    let tmp = cached.with_extension("tar.tmp");
    tar(&[
        "-c",
        "-p",
        "--numeric-owner",
        "--xattrs",
        "-f",
        tmp.to_str().unwrap(),
        "-C",
        tree.to_str().unwrap(),
        ".",
    ]);
    fs::rename(&tmp, &cached).unwrap();
    tree
}

fn dpkg_status(tree: &Path, package: &str) -> Option<String> {
    let status = fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap();
    status
        .split("\n\n")
        .find(|s| s.lines().next() == Some(&format!("Package: {package}")))
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Status: "))
                .map(str::to_string)
        })
}

/// A package whose postinst fails, built inside the tree by dpkg-deb.
const FAILING_DPKG: &str = "set -e; d=/tmp/bad; mkdir -p $d/DEBIAN; \
printf 'Package: sidus-bad\\nVersion: 1\\nArchitecture: all\\nMaintainer: t <t@example.org>\\nDescription: fails\\n' > $d/DEBIAN/control; \
printf '#!/bin/sh\\nexit 1\\n' > $d/DEBIAN/postinst; chmod 755 $d/DEBIAN/postinst; \
dpkg-deb -b $d /tmp/bad.deb >/dev/null; dpkg --purge hello; dpkg -i /tmp/bad.deb";

#[test]
fn run_debootstrap_apt_install_then_failing_dpkg_rolls_back() {
    require_backend!();
    let Some(suite) = host_suite() else {
        common::skip("no VERSION_CODENAME in /etc/os-release");
        return;
    };
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip("needs debootstrap (scripts/deps installs it)");
        return;
    }
    let cached = Path::new(CACHE).join(format!("debootstrap-{suite}-minbase.tar"));
    if !cached.exists() && !has_default_route() {
        common::skip(
            "needs the network (debootstrap from the host's apt sources) or a cached tree",
        );
        return;
    }
    let store = TestStore::new_sized("4G");
    let tree = minbase(&store, "deb", &suite);
    let ssd = tree.join("usr/sbin/start-stop-daemon");
    let ssd = if fs::symlink_metadata(&ssd).is_ok() {
        ssd
    } else {
        tree.join("sbin/start-stop-daemon")
    };
    let ssd_before = fs::read(&ssd).unwrap();

    store
        .sidus(&[
            "run",
            "deb",
            "-m",
            "hello",
            "--",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "hello",
        ])
        .ok();
    assert_eq!(
        dpkg_status(&tree, "hello").as_deref(),
        Some("install ok installed")
    );
    let out = store.sidus(&["run", "deb", "--", "hello"]).ok();
    assert_eq!(out, "Hello, world!\n");
    assert_eq!(
        fs::read(&ssd).unwrap(),
        ssd_before,
        "real start-stop-daemon back"
    );
    assert!(fs::symlink_metadata(tree.join("usr/sbin/policy-rc.d")).is_err());
    let snaps = store.sidus(&["snapshots", "deb", "--json"]).json();
    let post = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "post" && s["message"] == "hello")
        .unwrap()
        .clone();
    assert_eq!(
        post["command"],
        "apt-get install -y --no-install-recommends hello"
    );
    assert_eq!(post["status"], 0);

    // dpkg fails half-way (hello purged, a postinst fails): all of it is undone.
    let err = store
        .sidus(&["run", "deb", "--", "sh", "-c", FAILING_DPKG])
        .fails(1);
    assert!(err.contains("rolled back to"), "{err}");
    assert_eq!(
        dpkg_status(&tree, "hello").as_deref(),
        Some("install ok installed")
    );
    assert_eq!(dpkg_status(&tree, "sidus-bad"), None);
    assert!(tree.join("usr/bin/hello").exists());

    // `sidus update`: apt-get update and a full-upgrade, as one run.
    store.sidus(&["update", "deb"]).ok();
    let snaps = store.sidus(&["snapshots", "deb", "--json"]).json();
    let last = snaps.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["message"].as_str()),
        (Some("post"), Some("update"))
    );
    assert!(last["command"].as_str().unwrap().contains("full-upgrade"));
}
