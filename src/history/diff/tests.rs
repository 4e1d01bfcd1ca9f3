//! The walk on awkward trees, and the diff from storage's list of changed
//! paths giving the walk's answer.

use super::*;
use sidus_backends::{ChangedPath, PathChange};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;

fn summary(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let what: Vec<String> = e
                .what
                .iter()
                .map(|a| format!("{a:?}").to_lowercase())
                .collect();
            format!("{:?} {} {}", e.change, e.path, what.join(","))
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn walk_reports_each_kind_of_change_without_following_links() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for d in [&a, &b] {
        fs::create_dir_all(d.join("etc/sub")).unwrap();
        fs::write(d.join("etc/same"), "same").unwrap();
        fs::write(d.join("etc/sub/deep"), "x").unwrap();
    }
    fs::write(a.join("etc/motd"), "hello\n").unwrap();
    fs::write(b.join("etc/motd"), "HELLO\n").unwrap(); // same size, new bytes
    fs::write(a.join("etc/grow"), "1").unwrap();
    fs::write(b.join("etc/grow"), "12").unwrap();
    fs::write(a.join("etc/run"), "#!").unwrap();
    fs::write(b.join("etc/run"), "#!").unwrap();
    fs::set_permissions(b.join("etc/run"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(a.join("removed"), "bye").unwrap();
    fs::create_dir_all(b.join("added/dir")).unwrap();
    fs::write(b.join("added/dir/f"), "new").unwrap();
    symlink("/etc/same", a.join("link")).unwrap();
    symlink("/etc/motd", b.join("link")).unwrap();
    // A link to a directory outside the tree is never walked into.
    symlink("/", a.join("escape")).unwrap();
    symlink("/", b.join("escape")).unwrap();
    fs::write(a.join("etc/sub/became-link"), "f").unwrap();
    symlink("deep", b.join("etc/sub/became-link")).unwrap();

    let got = summary(&diff_trees(&a, &b).unwrap());
    assert_eq!(
        got,
        [
            "Added /added",
            "Added /added/dir",
            "Added /added/dir/f",
            "Modified /etc/grow size,content",
            "Modified /etc/motd content",
            "Modified /etc/run mode",
            "Modified /etc/sub/became-link type",
            "Modified /link target",
            "Removed /removed",
        ]
    );
    assert!(diff_trees(&a, &a).unwrap().is_empty());
    let reverse = summary(&diff_trees(&b, &a).unwrap());
    assert_eq!(reverse[0], "Removed /added");
    let e = diff_trees(&a, &b).unwrap();
    let run = e.iter().find(|e| e.path == "/etc/run").unwrap();
    assert_eq!(run.old.as_ref().unwrap().mode, "0644");
    assert_eq!(run.new.as_ref().unwrap().mode, "4755");
    let link = e.iter().find(|e| e.path == "/link").unwrap();
    assert_eq!(
        link.new.as_ref().unwrap().target.as_deref(),
        Some("/etc/motd")
    );
}

#[test]
fn a_directory_replaced_by_a_file_lists_its_old_content_as_removed() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fs::create_dir_all(a.join("x/y")).unwrap();
    fs::write(a.join("x/y/z"), "").unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("x"), "").unwrap();
    assert_eq!(
        summary(&diff_trees(&a, &b).unwrap()),
        ["Modified /x type", "Removed /x/y", "Removed /x/y/z"]
    );
}

#[test]
fn big_files_differing_late_are_found() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let mut data = vec![7u8; 300 * 1024 + 5];
    fs::write(a.join("big"), &data).unwrap();
    *data.last_mut().unwrap() = 8;
    fs::write(b.join("big"), &data).unwrap();
    assert_eq!(
        summary(&diff_trees(&a, &b).unwrap()),
        ["Modified /big content"]
    );
}

fn changed(change: PathChange, dir: bool, path: &str, to: Option<&str>) -> ChangedPath {
    ChangedPath {
        change,
        dir,
        path: PathBuf::from(path),
        to: to.map(PathBuf::from),
        links_changed: false,
    }
}

/// Two trees differing in every way `zfs diff` reports, and the list it
/// gives for them (as captured in backends/tests/fixtures/zfs-diff-snapshots.out).
fn zfs_like_pair(t: &Path) -> (PathBuf, PathBuf, Vec<ChangedPath>) {
    use PathChange::*;
    let (a, b) = (t.join("a"), t.join("b"));
    for d in [&a, &b] {
        fs::create_dir_all(d.join("etc")).unwrap();
        fs::create_dir_all(d.join("same/deep")).unwrap();
        fs::write(d.join("same/deep/f"), "unchanged").unwrap();
        fs::write(d.join("etc/perm"), "x").unwrap();
    }
    fs::write(a.join("etc/motd"), "hello\n").unwrap();
    fs::write(b.join("etc/motd"), "HELLO\n").unwrap();
    fs::set_permissions(b.join("etc/perm"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::create_dir_all(a.join("etc/sub")).unwrap();
    fs::write(a.join("etc/sub/keep"), "k").unwrap();
    fs::write(a.join("etc/sub/also"), "a").unwrap();
    fs::create_dir_all(b.join("moved")).unwrap();
    fs::write(b.join("moved/keep"), "K").unwrap();
    fs::write(b.join("moved/also"), "a").unwrap();
    fs::create_dir_all(a.join("gone/deep")).unwrap();
    fs::write(a.join("gone/deep/f"), "x").unwrap();
    symlink("/usr/bin/python3.11", a.join("py")).unwrap();
    symlink("/usr/bin/python3.12", b.join("py")).unwrap();
    fs::write(b.join("with space"), "n").unwrap();
    fs::create_dir_all(b.join("added/dir")).unwrap();
    fs::write(b.join("added/dir/f"), "n").unwrap();
    // A directory on one side, a symlink to one on the other: nothing under
    // it is walked on the symlink's side.
    fs::create_dir_all(a.join("was-dir")).unwrap();
    fs::write(a.join("was-dir/f"), "x").unwrap();
    symlink("/etc", b.join("was-dir")).unwrap();
    let changes = vec![
        changed(Modified, true, "/etc", None),
        changed(Renamed, true, "/etc/sub", Some("/moved")),
        changed(Removed, true, "/gone", None),
        changed(Removed, true, "/gone/deep", None),
        changed(Modified, false, "/etc/motd", None),
        changed(Modified, false, "/etc/perm", None),
        changed(Removed, false, "/gone/deep/f", None),
        changed(Renamed, false, "/etc/sub/keep", Some("/moved/keep")),
        changed(Removed, false, "/py", None),
        changed(Added, false, "/py", None),
        changed(Added, false, "/with space", None),
        changed(Added, true, "/added", None),
        changed(Added, true, "/added/dir", None),
        changed(Added, false, "/added/dir/f", None),
        changed(Removed, true, "/was-dir", None),
        changed(Removed, false, "/was-dir/f", None),
        changed(Added, false, "/was-dir", None),
        changed(Modified, true, "/", None),
    ];
    (a, b, changes)
}

#[test]
fn storage_named_paths_give_the_walks_answer() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, changes) = zfs_like_pair(t.path());
    let walked = diff_trees(&a, &b).unwrap();
    let named = diff_changed(&a, &b, &changes).unwrap().unwrap();
    assert_eq!(summary(&named), summary(&walked));
    assert_eq!(named, walked);
    assert!(
        summary(&named).contains(&"Added /moved/also".to_string()),
        "{:#?}",
        summary(&named)
    );
}

#[test]
fn hard_links_make_storage_named_paths_give_up() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(a.join("f"), "1").unwrap();
    fs::write(b.join("f"), "2").unwrap();
    fs::hard_link(b.join("f"), b.join("other-name")).unwrap();
    let mut c = changed(PathChange::Modified, false, "/f", None);
    assert!(diff_changed(&a, &b, std::slice::from_ref(&c))
        .unwrap()
        .is_none());
    fs::remove_file(b.join("other-name")).unwrap();
    assert_eq!(
        summary(
            &diff_changed(&a, &b, std::slice::from_ref(&c))
                .unwrap()
                .unwrap()
        ),
        ["Modified /f content"]
    );
    c.links_changed = true;
    assert!(diff_changed(&a, &b, &[c]).unwrap().is_none());
}
