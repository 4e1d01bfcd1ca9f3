//! A child snapshot's manifest built from its parent's and what btrfs send
//! says changed is the manifest a full read gives, for every kind of change
//! a tree goes through (and so is the kept file, stamps included).

mod common;
use common::TestStore;
use std::fs;
use std::path::Path;
use std::process::Command;

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tree the changes are made to: files over btrfs's inline limit and
/// small ones, a hard-linked pair, xattrs, symlinks, nested directories.
const TREE: &str = r#"
mkdir -p etc/sub usr/bin usr/lib/deep/er var/old/tree opt swap
for i in 0 1 2 3 4 5 6 7 8 9; do head -c 9000 /dev/urandom > etc/f$i; echo small $i > etc/s$i; done
head -c 70000 /dev/urandom > usr/bin/ping; ln usr/bin/ping usr/bin/ping6
head -c 5000 /dev/urandom > usr/lib/deep/er/lib.so; echo x > usr/lib/deep/a
echo old > var/old/tree/a; mkdir var/old/tree/b; echo b > var/old/tree/b/c
setfattr -n user.keep -v 1 etc/f1; setfattr -n user.gone -v 2 etc/f2
ln -s ../etc/f0 usr/link; ln -s target1 opt/relink; echo doomed > opt/becomes-dir
echo one > swap/a; echo two > swap/b; head -c 9000 /dev/urandom > etc/trunc
"#;

/// Every kind of change, made to the working tree between two snapshots.
const CHANGES: &str = r#"
head -c 4096 /dev/urandom | dd of=etc/f0 bs=4096 count=1 conv=notrunc status=none
chmod 600 etc/f3; chown 1000:1000 etc/f4; chown 7:7 etc/sub
setfattr -n user.new -v 3 etc/f5; setfattr -x user.gone etc/f2; setfattr -n user.dir -v d etc/sub
echo new > etc/new; rm etc/f6; mv etc/f7 etc/sub/f7-moved; mv etc/s1 etc/s1-renamed
mv usr/lib usr/lib64; mkdir -p srv/a/b; echo t > srv/a/b/c; head -c 9000 /dev/urandom > srv/a/big
rm -r var/old/tree; ln etc/f8 etc/f8-link; rm opt/relink; ln -s target2 opt/relink
rm opt/becomes-dir; mkdir opt/becomes-dir; echo in > opt/becomes-dir/x
head -c 100 /dev/urandom | dd of=usr/bin/ping6 bs=100 count=1 conv=notrunc status=none
mv swap/a swap/tmp; mv swap/b swap/a; mv swap/tmp swap/b
truncate -s 100 etc/trunc; touch etc/f9; mkfifo etc/fifo
"#;

#[test]
fn root_btrfs_manifest_changes_give_the_full_read() {
    require_root_btrfs!();
    let a = TestStore::new();
    let src = a.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    sh(&src, TREE);
    a.sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    let w = a.path("lab");
    let p = a.snapshot("lab", "parent");
    let manifest = |id: &str| {
        a.sidus(&["manifest", &format!("lab@{id}"), "--json", "--full"])
            .json()
    };
    let kept =
        |id: &str| fs::read_to_string(a.state_dir().join(format!("manifests/lab/{id}"))).unwrap();
    manifest(&p);
    sh(&w, CHANGES);
    let c = a.snapshot("lab", "child");
    let built = manifest(&c);
    let computed = &built["computed"];
    assert_eq!(computed["reference"], p.as_str(), "{computed}");
    assert!(
        computed["reused_unchanged"].as_u64().unwrap() > 10,
        "not built from the changes: {computed}"
    );
    let built_kept = kept(&c);

    // The same snapshot read in full, with no earlier manifest to reuse.
    for id in [&p, &c] {
        fs::remove_file(a.state_dir().join(format!("manifests/lab/{id}"))).unwrap();
    }
    let full = manifest(&c);
    assert!(full["computed"]["reference"].is_null());
    assert_eq!(built["manifest"], full["manifest"]);
    assert_eq!(built["root_hash"], full["root_hash"]);
    assert_eq!(built_kept, kept(&c), "kept files differ (stamps?)");
    let text = full["manifest"].as_str().unwrap();
    for gone in ["/etc/f6 ", "/usr/lib/", "/var/old/tree", "/etc/f7 "] {
        assert!(!text.contains(gone), "{gone} in\n{text}");
    }
    for now in [
        "/etc/new ",
        "/usr/lib64/deep/er/lib.so ",
        "/srv/a/b/c ",
        "/etc/fifo ",
    ] {
        assert!(text.contains(now), "{now} not in\n{text}");
    }

    // And once more from the child to a grandchild, with nothing changed.
    let g = a.snapshot("lab", "grandchild");
    let same = manifest(&g);
    assert_eq!(same["computed"]["reference"], c.as_str());
    assert_eq!(same["computed"]["hashed_files"], 0, "{}", same["computed"]);
    assert_eq!(same["manifest"], full["manifest"]);
}
