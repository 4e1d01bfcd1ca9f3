//! `sidus sbom` of a real Debian minbase tree: valid SPDX 2.3 and CycloneDX
//! 1.5, the same bytes on every run, and a round trip through export and
//! import keeps the package list. The tree is the one
//! tests/root_btrfs_run_debootstrap.rs bootstraps and caches (same cache file);
//! without the cache this bootstraps it (a few minutes, needs the network).

mod common;
#[path = "fixtures/sbom/validate.rs"]
mod validate;

use common::TestStore;
use std::fs;
use std::path::Path;
use std::process::Command;

const CACHE: &str = "/var/cache/sidus-test";

fn host_suite() -> Option<String> {
    fs::read_to_string("/etc/os-release")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
}

/// Tree `name`: the cached minbase unpacked, or bootstrapped by sidus (and cached).
fn minbase(store: &TestStore, name: &str, suite: &str) {
    let cached = Path::new(CACHE).join(format!("debootstrap-{suite}-minbase.tar"));
    let tar = |args: &[&str]| {
        assert!(
            Command::new("tar").args(args).status().unwrap().success(),
            "tar {args:?}"
        )
    };
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
        return;
    }
    store.sidus(&["create", name, "--debootstrap", suite]).ok();
    let tree = store.path(name);
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
}

#[test]
fn root_btrfs_sbom_of_minbase_validates_and_repeats_byte_for_byte() {
    require_root_btrfs!();
    let Some(suite) = host_suite() else {
        eprintln!("SKIP: no VERSION_CODENAME in /etc/os-release");
        return;
    };
    let cached = Path::new(CACHE).join(format!("debootstrap-{suite}-minbase.tar"));
    if !cached.exists()
        && Command::new("debootstrap")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!(
            "SKIP: needs debootstrap (scripts/deps installs it) or {}",
            cached.display()
        );
        return;
    }
    let store = TestStore::new_sized("4G");
    minbase(&store, "deb", &suite);
    let id = store.snapshot("deb", "minbase");
    let at = format!("deb@{id}");
    let status = fs::read_to_string(store.path(&at).join("var/lib/dpkg/status")).unwrap();
    let installed = status
        .split("\n\n")
        .filter(|s| s.contains("Status: install ok installed"))
        .count();
    assert!(installed > 50, "a minbase has some packages: {installed}");
    let root = store.sidus(&["manifest", &at]).ok().trim().to_string();
    for (format, cdx) in [("spdx-json", false), ("cyclonedx-json", true)] {
        let one = store.sidus(&["sbom", &at, "--format", format]).ok();
        let two = store.sidus(&["sbom", &at, "--format", format]).ok();
        assert_eq!(one, two, "{format}: the same bytes twice");
        let errors = validate::schema_errors(&one, cdx);
        assert!(errors.is_empty(), "{format}: {errors:#?}");
        let doc: serde_json::Value = serde_json::from_str(&one).unwrap();
        let purls: Vec<&str> = if cdx {
            doc["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["purl"].as_str().unwrap())
                .collect()
        } else {
            doc["packages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["primaryPackagePurpose"] == "INSTALL")
                .map(|p| p["externalRefs"][0]["referenceLocator"].as_str().unwrap())
                .collect()
        };
        assert_eq!(
            purls.len(),
            installed,
            "{format}: one per installed package"
        );
        let libc = purls
            .iter()
            .find(|p| p.starts_with("pkg:deb/debian/libc6@"))
            .unwrap();
        assert!(
            libc.ends_with(&format!("?arch=amd64&distro={suite}")),
            "{libc}"
        );
        assert!(one.contains(&root), "{format}: names the content root hash");
        if cdx {
            assert!(one.contains("\"name\": \"sidus:deb:source\""));
        } else {
            assert!(
                one.contains("\"name\": \"glibc\"") && one.contains("arch=source"),
                "source packages"
            );
        }
    }
    // The package list travels in the archive.
    let tar = store.dir.path().join("deb.tar");
    store
        .sidus(&["export", &at, "-o", tar.to_str().unwrap()])
        .ok();
    let list = Command::new("tar")
        .args(["-xOf", tar.to_str().unwrap(), ".sidus-archive/packages"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(list.lines().count(), installed);
    assert!(
        list.lines()
            .any(|l| l.starts_with("libc6 amd64 ") && l.contains(" glibc ")),
        "{list}"
    );
}
