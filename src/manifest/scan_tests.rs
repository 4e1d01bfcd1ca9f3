//! Scans of real directories: what is recorded, and what a reference spares.

use super::scan::{scan, Reference};
use super::Manifest;
use crate::history::diff::Kind;
use crate::progress::Progress;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

fn tree(d: &Path) {
    fs::create_dir_all(d.join("etc/sub")).unwrap();
    fs::write(d.join("etc/motd"), "hello\n").unwrap();
    fs::write(d.join("etc/sub/big"), vec![7u8; 300_000]).unwrap();
    fs::write(d.join("etc/run"), "#!").unwrap();
    fs::set_permissions(d.join("etc/run"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("/etc/motd", d.join("link")).unwrap();
    symlink("/", d.join("escape")).unwrap();
    nix::unistd::mkfifo(
        &d.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    fs::create_dir(d.join("lost+found")).unwrap();
}

fn full(d: &Path) -> Manifest {
    scan(d, None, &Progress::quiet()).unwrap().0
}

#[test]
fn scan_records_every_entry_without_following_links() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let m = full(t.path());
    let paths: Vec<String> = m.entries.iter().map(|e| super::shown(&e.path)).collect();
    // An empty lost+found at the root is the file system's, not content.
    assert_eq!(
        paths,
        [
            "/",
            "/escape",
            "/etc",
            "/etc/motd",
            "/etc/run",
            "/etc/sub",
            "/etc/sub/big",
            "/fifo",
            "/link"
        ]
    );
    let e = |p: &str| m.entries.iter().find(|e| e.path == p.as_bytes()).unwrap();
    assert_eq!(
        e("/etc/motd").hash,
        Some(*blake3::hash(b"hello\n").as_bytes())
    );
    assert_eq!(e("/etc/sub/big").size, Some(300_000));
    assert_eq!(e("/etc/run").mode, 0o4755);
    assert_eq!(e("/link").target.as_deref(), Some(&b"/etc/motd"[..]));
    assert_eq!(e("/link").kind, Kind::Symlink);
    assert_eq!(e("/fifo").kind, Kind::Fifo);
    assert!(e("/etc/motd").stamp.is_some());
    // A non-empty lost+found is content.
    fs::write(t.path().join("lost+found/#123"), "x").unwrap();
    assert!(full(t.path())
        .entries
        .iter()
        .any(|e| e.path == b"/lost+found"));
}

#[test]
fn xattrs_are_recorded_sorted_where_the_file_system_has_them() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    fs::write(&f, "x").unwrap();
    let set = |n: &str, v: &[u8]| rustix::fs::setxattr(&f, n, v, rustix::fs::XattrFlags::empty());
    if set("user.b", b"2").is_err() {
        eprintln!("SKIP: no user xattrs on {}", t.path().display());
        return;
    }
    set("user.a", b"1").unwrap();
    let m = full(t.path());
    assert_eq!(
        m.entries[1].xattrs,
        [
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), b"2".to_vec())
        ]
    );
}

#[test]
fn a_reference_spares_unchanged_files_only_when_their_stamps_are_old_enough() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let (old, _) = scan(t.path(), None, &Progress::quiet()).unwrap();
    fs::write(t.path().join("etc/motd"), "HELLO\n").unwrap();
    let trusting = Reference {
        root: Some(t.path().to_path_buf()),
        manifest: &old,
        trusted_before: (i64::MAX, 0),
        extents_of_retouched: true,
    };
    let (new, stats) = scan(t.path(), Some(&trusting), &Progress::quiet()).unwrap();
    assert_eq!(new, full(t.path()), "same manifest as a full read");
    assert_eq!(
        (stats.files, stats.hashed_files, stats.reused_by_stamp),
        (3, 1, 2)
    );
    // Stamps from within the margin of the snapshot are not trusted.
    let wary = Reference {
        trusted_before: (0, 0),
        ..trusting
    };
    let (_, stats) = scan(t.path(), Some(&wary), &Progress::quiet()).unwrap();
    assert_eq!((stats.hashed_files, stats.reused_by_stamp), (3, 0));
}
