//! A power cut right after a storage step, read from the disk itself. sidus
//! writes the intent of a snapshot, clone, rollback or delete without an
//! fsync, as metadata the step commits (src/store.rs, backends/src/ordered.rs);
//! these tests kill sidus just after the step, copy the store's loop image as
//! it is on the "disk" then (what btrfs wrote to the loop device: the last
//! transaction commit and any fsynced log), mount the copy and check that the
//! step never reached the disk without its intent.

mod common;
use common::TestStore;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The store's image as a power cut now would leave it, mounted at `dir/cut`
/// until the returned guard drops.
struct CutImage {
    mnt: std::path::PathBuf,
}

impl CutImage {
    fn take(store: &TestStore) -> CutImage {
        let image = store.dir.path().join("store.img");
        let copy = store.dir.path().join("cut.img");
        // Reads the loop device's backing file: what btrfs has written, not
        // what it holds in memory.
        fs::copy(&image, &copy).unwrap();
        let mnt = store.dir.path().join("cut");
        fs::create_dir_all(&mnt).unwrap();
        // A copy of a mounted btrfs has the same fsid: the kernel mounts it
        // with a temporary one (Linux 6.7 and later).
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&copy)
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount the image copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        CutImage { mnt }
    }

    /// The tree's state record on the cut disk.
    fn tree_state(&self, tree: &str) -> serde_json::Value {
        let file = self.mnt.join(format!(".sidus/trees/{tree}.json"));
        let bytes = sidus_backends::ordered::read_record(&file)
            .unwrap()
            .unwrap_or_else(|| panic!("no state record for '{tree}' on the cut disk"));
        serde_json::from_slice(&bytes).unwrap()
    }

    fn has(&self, rel: &str) -> bool {
        Path::new(&self.mnt).join(rel).exists()
    }
}

impl Drop for CutImage {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn tree(store: &TestStore, name: &str) {
    let src = store.dir.path().join(format!("src-{name}"));
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/motd"), "one\n").unwrap();
    store
        .sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
        .ok();
}

#[test]
fn root_btrfs_power_cut_after_a_snapshot_finds_its_intent_and_last_id_on_disk() {
    require_root_btrfs!();
    let store = TestStore::new();
    tree(&store, "lab");
    store.snapshot("lab", "a");
    let killed = store.sidus_env(
        &["snapshot", "lab", "-m", "cut"],
        &[("SIDUS_FAILPOINT", "snapshot:after-snapshot")],
    );
    assert_eq!(killed.code, -1, "aborted: {}", killed.stderr);
    let cut = CutImage::take(&store);
    let st = cut.tree_state("lab");
    let id = st["intent"]["change"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the snapshot's intent is on disk with it: {st}"));
    assert_eq!(st["last_id"], id, "{st}");
    assert!(cut.has(&format!("snapshots/lab/{id}")), "the snapshot {id}");
    drop(cut);
    // The live store finishes it as after any kill.
    let log = store.sidus(&["log", "--json"]).json();
    assert!(!log.to_string().contains("recovery finished"), "{log}");
    store.snapshot("lab", "next");
    let log = store.sidus(&["log", "--json"]).json();
    assert!(log.to_string().contains("recovery finished it"), "{log}");
}

#[test]
fn root_btrfs_power_cut_after_a_clone_finds_its_intent_and_origin_on_disk() {
    require_root_btrfs!();
    let store = TestStore::new();
    tree(&store, "lab");
    let a = store.snapshot("lab", "a");
    let killed = store.sidus_env(
        &["clone", &format!("lab@{a}"), "copy"],
        &[("SIDUS_FAILPOINT", "clone:after-clone")],
    );
    assert_eq!(killed.code, -1, "aborted: {}", killed.stderr);
    let cut = CutImage::take(&store);
    assert!(cut.has("trees/copy"), "the clone reached the disk");
    let file = cut.mnt.join(".sidus/intents/clone-copy.json");
    let intent: serde_json::Value = serde_json::from_slice(
        &sidus_backends::ordered::read_record(&file)
            .unwrap()
            .expect("the clone's intent is on disk with it"),
    )
    .unwrap();
    assert_eq!(intent["change"]["new"], "copy", "{intent}");
    let origin: serde_json::Value = serde_json::from_slice(
        &sidus_backends::ordered::read_record(&cut.mnt.join("snapshots/copy/tree.json"))
            .unwrap()
            .expect("the clone's origin record is on disk with it"),
    )
    .unwrap();
    assert_eq!(origin["origin"]["id"], a.as_str(), "{origin}");
}
