//! The storage under a [`super::TestStore`], per backend: what the VM (or the
//! host) must provide, how a fresh store is made and how it is removed.
//!
//! btrfs and ZFS stores have names of their own (`t<pid>x<n>`: tests of one
//! process, and processes, never share one), so tests run in any order and side
//! by side. LVM stores take turns on one thin pool (see [`super::lvm`]).

use super::lvm;
use super::Kind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prefix of the ZFS datasets the harness makes.
const PREFIX: &str = "t";

fn zpool() -> String {
    std::env::var("SIDUS_TEST_ZPOOL").unwrap_or_else(|_| "sidustest".into())
}

fn vg() -> String {
    std::env::var("SIDUS_TEST_VG").unwrap_or_else(|_| "sidusvg".into())
}

/// Runs a command, returning its stdout when it succeeds.
fn output(argv: &[&str]) -> Option<String> {
    let out = Command::new(argv[0]).args(&argv[1..]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command the harness needs, failing the test when it fails.
#[track_caller]
pub(super) fn must(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a cleanup command; a failure is reported, not fatal (drop must finish).
pub(super) fn tidy(argv: &[&str]) {
    match Command::new(argv[0]).args(&argv[1..]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "harness: cleanup {argv:?} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("harness: cleanup {argv:?}: {e}"),
    }
}

/// Why stores of `kind` cannot be made here, if they cannot.
pub fn unavailable(kind: Kind) -> Option<String> {
    match kind {
        Kind::Btrfs => output(&["mkfs.btrfs", "--version"])
            .is_none()
            .then(|| "needs btrfs-progs (mkfs.btrfs)".into()),
        // One command each (a test pays it under TCG): the pool or VG listing
        // fails alike when the tools or the pool are missing.
        Kind::Zfs => {
            let pool = zpool();
            output(&["zpool", "list", "-H", "-o", "name", &pool]).is_none().then(|| {
                format!("no ZFS pool '{pool}' (needs ZFS; SIDUS_TEST_ZPOOL names the pool; tests/vm/run makes one)")
            })
        }
        Kind::Lvm => {
            let vg = vg();
            output(&["vgs", "--noheadings", "-o", "vg_name", &vg]).is_none().then(|| {
                format!("no LVM volume group '{vg}' (needs lvm2; SIDUS_TEST_VG names the group; tests/vm/run makes one)")
            })
        }
    }
}

/// A name no other store of this machine has at the same time.
fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{PREFIX}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The storage of one test store.
pub enum Storage {
    /// A loop image inside the temp dir; removed with it.
    Btrfs { image: PathBuf },
    /// `POOL/NAME`, destroyed with everything below it.
    Zfs { dataset: String },
    /// The shared thin pool, this test's turn on it.
    Lvm(lvm::Store),
}

impl Storage {
    /// Makes the storage for a store in `dir`: returns it, where the store is
    /// mounted, and the `sidus init` arguments that turn it into a store.
    pub fn make(kind: Kind, dir: &Path, size: &str) -> (Storage, PathBuf, Vec<String>) {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        match kind {
            Kind::Btrfs => {
                let image = dir.join("store.img");
                let mnt = dir.join("store");
                let init = [
                    "init",
                    "--loop",
                    &s(&image),
                    "--path",
                    &s(&mnt),
                    "--size",
                    size,
                ];
                (Storage::Btrfs { image }, mnt, strings(&init))
            }
            Kind::Zfs => {
                let dataset = format!("{}/{}", zpool(), unique_name());
                let mnt = dir.join("zfs");
                let init = strings(&[
                    "init",
                    "--backend",
                    "zfs",
                    "--dataset",
                    &dataset,
                    "--mountpoint",
                    &s(&mnt),
                ]);
                (Storage::Zfs { dataset }, mnt, init)
            }
            Kind::Lvm => {
                let vg = vg();
                let store = lvm::Store::take(&vg, size);
                let mnt = PathBuf::from(lvm::MOUNT_ROOT);
                // `init` takes no mount root: a config saying where, then a
                // plain `sidus init` (which prepares the store it describes).
                // Trees as big as the pool, not 20G: mkfs.ext4 then writes a
                // tenth of the metadata, which under TCG is seconds per tree.
                let config = format!(
                    "backend = \"lvm\"\n[lvm]\nvg = \"{vg}\"\nthinpool = \"{}\"\nmount_root = \"{}\"\ntree_size = \"{size}\"\n",
                    lvm::POOL,
                    mnt.display()
                );
                std::fs::write(dir.join("sidus.toml"), config).unwrap();
                (Storage::Lvm(store), mnt, strings(&["init"]))
            }
        }
    }

    /// Where the store lives, for the log.
    pub fn describe(&self) -> String {
        match self {
            Storage::Btrfs { image } => format!("loop image {}", image.display()),
            Storage::Zfs { dataset } => format!("dataset {dataset}"),
            Storage::Lvm(l) => format!("thin pool {}/{} at {}", l.vg, lvm::POOL, lvm::MOUNT_ROOT),
        }
    }

    /// The dataset of a ZFS store.
    pub fn zfs_dataset(&self) -> Option<&str> {
        match self {
            Storage::Zfs { dataset } => Some(dataset),
            _ => None,
        }
    }

    /// The backend objects of trees and snapshots still there.
    pub fn objects(&self, mnt: &Path) -> Vec<String> {
        match self {
            Storage::Btrfs { .. } => {
                let mut found = Vec::new();
                for top in ["trees", "snapshots"] {
                    for e in std::fs::read_dir(mnt.join(top)).into_iter().flatten() {
                        let e = e.unwrap();
                        found.push(format!("{top}/{}", e.file_name().to_string_lossy()));
                    }
                }
                found.sort();
                found
            }
            Storage::Zfs { dataset } => {
                let containers =
                    ["", "/trees", "/history", "/swap"].map(|c| format!("{dataset}{c}"));
                must(&[
                    "zfs", "list", "-H", "-o", "name", "-t", "all", "-r", dataset,
                ])
                .lines()
                .filter(|n| !containers.iter().any(|c| c == n))
                .map(|n| {
                    n.trim_start_matches(dataset.as_str())
                        .trim_start_matches('/')
                        .to_string()
                })
                .collect()
            }
            Storage::Lvm(l) => l.objects(),
        }
    }

    /// After [`unmount_under`]: what else a reboot undoes.
    pub fn deactivate(&self) {
        if let Storage::Lvm(l) = self {
            l.deactivate();
        }
    }

    /// Removes the storage; run after everything under the store is unmounted.
    pub fn remove(&self) {
        match self {
            // The image goes with the temp dir; its loop device with the unmount.
            Storage::Btrfs { .. } => {}
            Storage::Zfs { dataset } => destroy_dataset(dataset),
            Storage::Lvm(l) => l.empty(),
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Destroys a ZFS dataset with its children, snapshots and clones; when holds
/// (pins) stop that, releases them and tries again (holds are rare: listing
/// them for every snapshot would cost each test a command per snapshot).
fn destroy_dataset(dataset: &str) {
    if output(&["zfs", "destroy", "-R", "-f", dataset]).is_some() {
        return;
    }
    let snaps = output(&[
        "zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset,
    ])
    .unwrap_or_default();
    for snap in snaps.lines() {
        let holds = output(&["zfs", "holds", "-H", snap]).unwrap_or_default();
        for tag in holds.lines().filter_map(|l| l.split('\t').nth(1)) {
            tidy(&["zfs", "release", tag, snap]);
        }
    }
    tidy(&["zfs", "destroy", "-R", "-f", dataset]);
}

/// Mounts as (source, target), in mount order.
pub(super) fn mounts() -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let target = unescape(f.get(4)?);
            let dash = f.iter().position(|x| *x == "-")?;
            Some((unescape(f.get(dash + 2)?), PathBuf::from(target)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(n as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// Mount points at or below `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mounts()
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t.starts_with(dir))
        .collect()
}

/// Unmounts everything mounted at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    unmount_all(&mut mounts_under(dir));
}

/// Unmounts `targets`, deepest first (lazily when busy).
pub(super) fn unmount_all(targets: &mut Vec<PathBuf>) {
    // Deepest (and, for stacked mounts, latest) first.
    targets.reverse();
    targets.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
    targets.dedup();
    for t in targets.iter() {
        let ok = Command::new("umount")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            tidy(&["umount", "-l", t.to_str().unwrap()]);
        }
    }
}
