//! Manifests, verify, export and import on real loop-backed btrfs stores:
//! deterministic archives, round trips between stores, tampering found and
//! named, bad archives refused with nothing left behind.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn sh(script: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(script).output().unwrap()
}

fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

fn setfattr(p: &Path, name: &str, value: &str) {
    let ok = Command::new("setfattr")
        .args(["-h", "-n", name, "-v", value])
        .arg(p)
        .status()
        .unwrap();
    assert!(ok.success(), "setfattr {name} {}", p.display());
}

/// A source tree with what system trees hold and archives get wrong: setuid,
/// file capabilities, user xattrs, hard links, devices, a FIFO, symlinks,
/// other owners, long and non-UTF-8 names, an empty file and a 1 MiB one.
fn awkward_tree(src: &Path) {
    for d in ["etc", "usr/bin", "dev", "var/lib/dpkg", "home/alice"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("etc/motd"), "hello\n").unwrap();
    fs::write(src.join("etc/empty"), "").unwrap();
    fs::write(src.join("usr/bin/ping"), vec![0x7f; 70_000]).unwrap();
    fs::set_permissions(src.join("usr/bin/ping"), fs::Permissions::from_mode(0o4755)).unwrap();
    setfattr(
        &src.join("usr/bin/ping"),
        "security.capability",
        "0x0100000200200000000000000000000000000000",
    );
    fs::hard_link(src.join("usr/bin/ping"), src.join("usr/bin/ping6")).unwrap();
    setfattr(&src.join("etc/motd"), "user.b", "2");
    setfattr(&src.join("etc/motd"), "user.a", "1");
    symlink("../etc/motd", src.join("usr/motd")).unwrap();
    symlink("usr/bin", src.join("bin")).unwrap();
    assert!(sh(&format!(
        "mknod {0}/dev/null c 1 3 && mkfifo {0}/dev/fifo && chown -R 1000:1000 {0}/home/alice",
        src.display()
    ))
    .status
    .success());
    let long = src.join(format!("{}/{}", "d".repeat(90), "f".repeat(120)));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::write(&long, "deep").unwrap();
    fs::write(src.join("a name with spaces"), "s").unwrap();
    fs::write(
        src.join(std::ffi::OsStr::new(&*String::from_utf8_lossy(
            b"caf\xc3\xa9",
        ))),
        "utf8",
    )
    .unwrap();
    let latin1 =
        src.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9"));
    fs::write(latin1, "latin1").unwrap();
    let big: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(src.join("var/lib/big"), big).unwrap();
    fs::write(
        src.join("var/lib/dpkg/status"),
        "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n",
    )
    .unwrap();
}

/// A store with tree `lab` made from [`awkward_tree`] and one snapshot; its ID.
fn lab(store: &TestStore) -> String {
    let src = store.dir.path().join("src");
    awkward_tree(&src);
    store
        .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    store.snapshot("lab", "one")
}

#[test]
fn root_btrfs_manifest_export_is_deterministic_and_import_gives_the_same_snapshot() {
    require_root_btrfs!();
    let a = TestStore::new();
    let id = lab(&a);
    let at = format!("lab@{id}");
    let root = a.sidus(&["manifest", &at]).ok().trim().to_string();
    assert_eq!(root.len(), 64, "{root}");
    let full = a.sidus(&["manifest", &at, "--full"]).ok();
    assert!(
        full.starts_with("sidus-manifest 1 blake3\n/ dir 0755 0 0 "),
        "{full}"
    );
    assert!(
        full.contains("/usr/bin/ping file 4755 0 0 70000 "),
        "{full}"
    );
    assert!(
        full.contains(" security.capability=0x0100000200200000000000000000000000000000\n"),
        "{full}"
    );
    assert!(full.contains("/etc/motd file 0644 0 0 6 "), "{full}");
    assert!(full.contains(" - - user.a=0x31,user.b=0x32\n"), "{full}");
    assert!(
        full.contains("/dev/null char 0644 0 0 - - - 1:3 -\n"),
        "{full}"
    );
    assert!(full.contains("/caf\\xe9 file"), "{full}");
    // Kept: the second run reads it back.
    let json = a.sidus(&["manifest", &at, "--json"]).json();
    assert_eq!(json["root_hash"], root.as_str());
    assert!(json["computed"].is_null(), "{json}");
    a.sidus(&["verify", &at]).ok();

    let d = a.dir.path();
    let (t1, t2) = (d.join("one.tar"), d.join("two.tar"));
    a.sidus(&["export", &at, "-o", t1.to_str().unwrap()]).ok();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    a.sidus(&["export", &at, "-o", t2.to_str().unwrap()]).ok();
    assert_eq!(sha256(&t1), sha256(&t2), "export twice: the same bytes");
    // GNU tar reads it, owners, modes, xattrs and all.
    let listing = sh(&format!("tar -tvf {} --numeric-owner", t1.display()));
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.contains("-rwsr-xr-x 0/0")
            && listing.contains("usr/bin/ping6 link to usr/bin/ping"),
        "{listing}"
    );
    assert!(
        listing.contains("drwxr-xr-x 1000/1000") && listing.contains(".sidus-archive/manifest"),
        "{listing}"
    );

    if Command::new("mksquashfs").arg("-version").output().is_ok() {
        let (s1, s2) = (d.join("one.sqfs"), d.join("two.sqfs"));
        a.sidus(&[
            "export",
            &at,
            "-o",
            s1.to_str().unwrap(),
            "--format",
            "squashfs",
        ])
        .ok();
        a.sidus(&[
            "export",
            &at,
            "-o",
            s2.to_str().unwrap(),
            "--format",
            "squashfs",
        ])
        .ok();
        assert_eq!(sha256(&s1), sha256(&s2), "squashfs twice: the same bytes");
        let b = TestStore::new();
        b.sidus(&["import", s1.to_str().unwrap(), "--as", "sq"])
            .ok();
        assert_eq!(
            b.sidus(&["manifest", &format!("sq@{id}")]).ok().trim(),
            root
        );
    } else {
        eprintln!("SKIP squashfs part: needs squashfs-tools (scripts/deps installs it)");
    }

    // Another store: same ID, metadata and root hash; re-exported, the same bytes.
    let b = TestStore::new();
    let out = b.sidus(&["import", t1.to_str().unwrap()]).ok();
    assert!(out.contains(&format!("imported lab@{id}")), "{out}");
    let show = |s: &TestStore| s.sidus(&["show", &at, "--json"]).json();
    assert_eq!(show(&a), show(&b));
    assert_eq!(b.sidus(&["manifest", &at]).ok().trim(), root);
    b.sidus(&["verify", &at]).ok();
    let t3 = d.join("three.tar");
    b.sidus(&["export", &at, "-o", t3.to_str().unwrap()]).ok();
    assert_eq!(
        sha256(&t1),
        sha256(&t3),
        "export of the import: the same bytes"
    );
    assert_eq!(
        TestStore::listing(&a.path(&at)),
        TestStore::listing(&b.path(&at))
    );

    // Through a pipe.
    let pipe = sh(&format!(
        "SIDUS_CONFIG={} {bin} export {at} -o - | SIDUS_CONFIG={} {bin} import - --as piped",
        a.config.display(),
        b.config.display(),
        bin = env!("CARGO_BIN_EXE_sidus")
    ));
    assert!(
        pipe.status.success(),
        "{}",
        String::from_utf8_lossy(&pipe.stderr)
    );
    assert_eq!(
        b.sidus(&["manifest", &format!("piped@{id}")]).ok().trim(),
        root
    );

    // A pin cites the root hash.
    a.sidus(&["pin", &at, "--name", "paper"]).ok();
    let pins = a.sidus(&["pins", "--json"]).json();
    assert_eq!(pins[0]["manifest"], root.as_str());
    assert!(a.sidus(&["pins"]).ok().contains(&root));
}

#[test]
fn root_btrfs_manifest_verify_names_each_tampering_and_exits_1() {
    require_root_btrfs!();
    let a = TestStore::new();
    let id = lab(&a);
    let at = format!("lab@{id}");
    let tar = a.dir.path().join("lab.tar");
    a.sidus(&["export", &at, "-o", tar.to_str().unwrap()]).ok();
    let b = TestStore::new();
    b.sidus(&["import", tar.to_str().unwrap()]).ok();
    // The imported tree's working copy, tampered with one way per file.
    let w = b.path("lab");
    b.sidus(&["verify", &at, "--path", w.to_str().unwrap()])
        .ok();
    assert!(sh(&format!(
        "printf X | dd of={}/var/lib/big bs=1 seek=4096 conv=notrunc status=none",
        w.display()
    ))
    .status
    .success());
    fs::set_permissions(w.join("etc/empty"), fs::Permissions::from_mode(0o600)).unwrap();
    assert!(sh(&format!("chown 5:5 {}/usr/motd -h", w.display()))
        .status
        .success());
    setfattr(&w.join("etc/motd"), "user.a", "9");
    fs::write(w.join("etc/added"), "new").unwrap();
    fs::remove_file(w.join("a name with spaces")).unwrap();
    symlink("etc/motd", w.join("a name with spaces")).unwrap();
    let r = b.sidus(&["verify", &at, "--path", w.to_str().unwrap()]);
    let out = r.stdout.clone();
    let err = r.fails(1);
    for (what, path) in [
        ("content", "/var/lib/big"),
        ("mode", "/etc/empty"),
        ("owner", "/usr/motd"),
        ("xattr", "/etc/motd"),
        ("added", "/etc/added"),
        ("type", "/a name with spaces"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(what) && l.contains(path)),
            "{what} {path} not in:\n{out}"
        );
    }
    assert_eq!(
        out.lines().count(),
        7,
        "a header and six differences:\n{out}"
    );
    assert!(
        err.contains("differs from the manifest of lab@") && err.contains("in 6 places"),
        "{err}"
    );
    let j = b.sidus(&["verify", &at, "--path", w.to_str().unwrap(), "--json"]);
    // One document on stdout: the error, the report's fields beside it.
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("differs"), "{v}");
    assert_eq!(v["matches"], false);
    assert_eq!(v["differences"].as_array().unwrap().len(), 6);
    let x = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["what"] == "xattr")
        .unwrap();
    assert_eq!(
        (x["expected"].as_str(), x["found"].as_str()),
        (Some("user.a=\"1\""), Some("user.a=\"9\""))
    );
    // The snapshot itself is untouched and still verifies.
    b.sidus(&["verify", &at]).ok();
}

#[test]
fn root_btrfs_manifest_bad_archives_are_refused_and_leave_nothing_behind() {
    require_root_btrfs!();
    let a = TestStore::new();
    let id = lab(&a);
    let at = format!("lab@{id}");
    let d = a.dir.path();
    let tar = d.join("lab.tar");
    a.sidus(&["export", &at, "-o", tar.to_str().unwrap()]).ok();
    let bytes = fs::read(&tar).unwrap();
    let b = TestStore::new();
    let nothing_left = |why: &str| {
        assert_eq!(
            b.sidus(&["list", "--json"]).json(),
            serde_json::json!([]),
            "{why}"
        );
        let kept = b.mnt.join(".sidus/manifests");
        assert!(
            !kept.exists() || fs::read_dir(&kept).unwrap().next().is_none(),
            "{why}: kept manifests left"
        );
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains("sidus-import"), "{why}: a mount left");
    };
    let try_import = |name: &str, data: &[u8]| {
        let p = d.join(name);
        fs::write(&p, data).unwrap();
        let err = b.sidus(&["import", p.to_str().unwrap()]).fails(1);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    };
    // Cut inside the 1 MiB file.
    let big_at = bytes
        .windows(12)
        .position(|w| w == b"var/lib/big\0")
        .unwrap();
    let err = try_import("cut.tar", &bytes[..big_at + 600_000]);
    assert!(
        err.contains("the archive is truncated") && err.contains("/var/lib/big"),
        "{err}"
    );
    nothing_left("truncated in a file");
    let err = try_import("short.tar", &bytes[..2048]);
    assert!(err.contains("truncated"), "{err}");
    nothing_left("truncated in the metadata");
    // Cut between two members: fewer entries than the manifest lists.
    let mut a_member = bytes.windows(9).position(|w| w == b"usr/motd\0").unwrap();
    a_member -= a_member % 512;
    let err = try_import("between.tar", &bytes[..a_member]);
    assert!(
        err.contains("the archive is truncated: it ends before /usr/motd"),
        "{err}"
    );
    nothing_left("truncated between members");
    // Content that does not match the manifest.
    let mut bad = bytes.clone();
    let hello = bad.windows(6).position(|w| w == b"hello\n").unwrap();
    bad[hello] = b'J';
    let err = try_import("content.tar", &bad);
    assert!(
        err.contains("the content of /etc/motd in the archive does not match its manifest"),
        "{err}"
    );
    nothing_left("content");
    // A manifest that does not match its own root hash.
    let mut bad = bytes.clone();
    let line = bad
        .windows(16)
        .position(|w| w == b"/etc/empty file ")
        .unwrap();
    bad[line + 16..line + 20].copy_from_slice(b"0600");
    let err = try_import("manifest.tar", &bad);
    assert!(
        err.contains("does not match the root hash it names"),
        "{err}"
    );
    nothing_left("manifest");
    let err = try_import("junk.tar", b"not an archive");
    assert!(err.contains("is not an archive of `sidus export`"), "{err}");
    nothing_left("junk");
    // Onto an existing tree: refused before anything is read or made.
    b.sidus(&["create", "lab"]).ok();
    let err = b.sidus(&["import", tar.to_str().unwrap()]).fails(1);
    assert!(
        err.contains("tree 'lab' already exists: import under another name with --as NAME"),
        "{err}"
    );
    assert_eq!(
        b.ids("lab"),
        Vec::<String>::new(),
        "the existing tree is untouched"
    );
    let err = b
        .sidus(&["import", tar.to_str().unwrap(), "--as", "lab"])
        .fails(1);
    assert!(err.contains("tree 'lab' already exists"), "{err}");
}

#[test]
fn root_btrfs_manifest_of_a_child_snapshot_reuses_its_parent() {
    require_root_btrfs!();
    let a = TestStore::new();
    let src = a.dir.path().join("src");
    awkward_tree(&src);
    for i in 0..200 {
        // Over btrfs's 2 KiB inline limit: these have extents of their own.
        fs::write(
            src.join(format!("etc/f{i}")),
            format!("file {i}\n").repeat(600),
        )
        .unwrap();
    }
    a.sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
        .ok();
    let w = a.path("lab");
    let p = a.snapshot("lab", "parent");
    let m = |id: &str| {
        a.sidus(&["manifest", &format!("lab@{id}"), "--json"])
            .json()
    };
    let first = m(&p);
    assert!(first["computed"]["reference"].is_null());
    let files = first["computed"]["files"].as_u64().unwrap();
    assert_eq!(first["computed"]["hashed_files"].as_u64().unwrap(), files);

    // btrfs send says what changed since the parent: only that is read.
    fs::write(w.join("etc/f7"), "changed\n").unwrap();
    let c = a.snapshot("lab", "child");
    let child = m(&c)["computed"].clone();
    assert_eq!(child["reference"], p.as_str(), "{child}");
    assert_eq!(child["hashed_files"], 1, "{child}");
    assert_eq!(child["reused_unchanged"], files - 1, "{child}");
    a.sidus(&["verify", &format!("lab@{c}")]).ok();

    // The reference is the newest older snapshot with a kept manifest.
    let d = a.snapshot("lab", "unchanged");
    fs::write(w.join("etc/f9"), "changed too\n").unwrap();
    let e = a.snapshot("lab", "grandchild");
    m(&d);
    let grandchild = m(&e)["computed"].clone();
    assert_eq!(grandchild["reference"], d.as_str(), "{grandchild}");
    assert_eq!(grandchild["hashed_files"], 1, "{grandchild}");
    assert_ne!(
        a.sidus(&["manifest", &format!("lab@{d}")]).ok(),
        a.sidus(&["manifest", &format!("lab@{e}")]).ok()
    );
    // The same manifest as a full read, with no reuse.
    a.sidus(&["verify", &format!("lab@{e}")]).ok();
    let tree = a.path(&format!("lab@{e}"));
    a.sidus(&[
        "verify",
        &format!("lab@{e}"),
        "--path",
        tree.to_str().unwrap(),
    ])
    .ok();
    // A deleted snapshot's kept manifest goes with it.
    let kept = a.mnt.join(format!(".sidus/manifests/lab/{c}"));
    assert!(kept.exists());
    a.sidus(&["delete", &format!("lab@{c}")]).ok();
    assert!(!kept.exists());
}
