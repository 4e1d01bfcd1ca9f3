//! LVM test stores: one thin pool, `VG/contract`, mounted under
//! `/run/sidus-test-lvm`, that the tests take turns on and that is emptied
//! between them.
//!
//! Why not a pool per test, as ZFS gets a dataset per test: sidus names LVs per
//! volume group (`sidus.state`, `sidus.t.TREE`), so two LVM stores cannot live
//! in one VG side by side anyway, and under TCG a new thin pool plus a new state
//! volume (128 MiB written in full, mkfs, mount) cost each test about ten
//! seconds. So a test gets the pool as the last test left it, with every tree
//! and snapshot LV removed and the state directory emptied: to sidus, a store
//! just made by `sidus init` (which the test still runs). What a killed test
//! left is removed the same way by the next one.

use super::stores::{mounts, must, unmount_all};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The thin pool the tests share.
pub const POOL: &str = "contract";
/// Where that store mounts its state, trees and snapshot views.
pub const MOUNT_ROOT: &str = "/run/sidus-test-lvm";
/// Serializes the LVM stores of every test process on this machine.
const LOCK: &str = "/run/sidus-test-lvm.lock";
const STATE_LV: &str = "sidus.state";

/// One LV of the volume group, as `lvs` reports it.
struct Lv {
    name: String,
    pool: String,
    segtype: String,
    mib: f64,
}

fn lvs(vg: &str) -> Vec<Lv> {
    must(&[
        "lvs",
        "--noheadings",
        "--units",
        "m",
        "--nosuffix",
        "-o",
        "lv_name,pool_lv,segtype,lv_size",
        vg,
    ])
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // pool_lv is empty for LVs outside a pool: three fields, not four.
        let (name, pool, segtype, size) = match f[..] {
            [n, p, s, z] => (n, p, s, z),
            [n, s, z] => (n, "", s, z),
            _ => return None,
        };
        Some(Lv {
            name: name.into(),
            pool: pool.into(),
            segtype: segtype.into(),
            mib: size.parse().ok()?,
        })
    })
    .collect()
}

/// `1G`, `800M`, `512m` in MiB, as lvcreate -L reads them.
fn mib(size: &str) -> f64 {
    let (n, unit) = size.split_at(size.len() - 1);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("size {size}"));
    match unit.to_ascii_lowercase().as_str() {
        "k" => n / 1024.0,
        "m" => n,
        "g" => n * 1024.0,
        "t" => n * 1024.0 * 1024.0,
        _ => panic!("size {size}: give K, M, G or T"),
    }
}

/// The LVM store of one test: holds the turn until dropped.
pub struct Store {
    pub vg: String,
    _turn: Flock<File>,
}

impl Store {
    /// Waits for the turn, then readies `VG/contract` of `size` for a new store.
    pub fn take(vg: &str, size: &str) -> Store {
        let f = File::create(LOCK).unwrap();
        let turn =
            Flock::lock(f, FlockArg::LockExclusive).unwrap_or_else(|(_, e)| panic!("{LOCK}: {e}"));
        let store = Store {
            vg: vg.into(),
            _turn: turn,
        };
        let pool = lvs(vg)
            .into_iter()
            .find(|l| l.name == POOL && l.segtype == "thin-pool");
        match pool {
            Some(p) if (p.mib - mib(size)).abs() < 8.0 => store.empty(),
            other => {
                if other.is_some() {
                    store.unmount(false);
                    must(&["lvremove", "-q", "-y", "-f", &store.full(POOL)]);
                }
                must(&[
                    "lvcreate",
                    "-q",
                    "-y",
                    "--type",
                    "thin-pool",
                    "-L",
                    size,
                    "-n",
                    POOL,
                    vg,
                ]);
            }
        }
        store
    }

    fn full(&self, lv: &str) -> String {
        format!("{}/{lv}", self.vg)
    }

    fn state_dir() -> PathBuf {
        Path::new(MOUNT_ROOT).join("state")
    }

    /// Unmounts every LV of the VG, except (with `keep_state`) the state LV
    /// where a store keeps it.
    fn unmount(&self, keep_state: bool) {
        let dm = format!("/dev/mapper/{}-", self.vg.replace('-', "--"));
        let dev = format!("/dev/{}/", self.vg);
        let state = Self::state_dir();
        let mut targets: Vec<PathBuf> = mounts()
            .into_iter()
            .filter(|(source, _)| source.starts_with(&dm) || source.starts_with(&dev))
            .filter(|(source, target)| {
                !(keep_state && source.ends_with(STATE_LV) && *target == state)
            })
            .map(|(_, target)| target)
            .collect();
        unmount_all(&mut targets);
    }

    /// Back to what `sidus init` makes: the pool with only its state LV, an
    /// empty state directory, no tree or snapshot mount point left.
    pub fn empty(&self) {
        self.unmount(true);
        let thin: Vec<Lv> = lvs(&self.vg)
            .into_iter()
            .filter(|l| l.pool == POOL)
            .collect();
        let state = Self::state_dir();
        let state_mounted = mounts()
            .iter()
            .any(|(source, target)| source.ends_with(STATE_LV) && *target == state);
        let mut gone: Vec<String> = thin
            .iter()
            .filter(|l| l.name != STATE_LV || !state_mounted)
            .map(|l| self.full(&l.name))
            .collect();
        if !gone.is_empty() {
            gone.splice(0..0, ["lvremove", "-q", "-y", "-f"].map(String::from));
            must(&gone.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if state_mounted {
            for e in fs::read_dir(&state).unwrap() {
                let e = e.unwrap();
                if e.file_name() == "lost+found" {
                    continue;
                }
                let p = e.path();
                let done = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                done.unwrap_or_else(|err| panic!("empty {}: {err}", p.display()));
            }
        }
        for top in ["trees", "snapshots"] {
            remove_empty_dirs(&Path::new(MOUNT_ROOT).join(top));
        }
    }

    /// What a reboot does to the LVs: none of them active.
    pub fn deactivate(&self) {
        self.unmount(false);
        for l in lvs(&self.vg).iter().filter(|l| l.pool == POOL) {
            must(&["lvchange", "-q", "-an", &self.full(&l.name)]);
        }
    }

    /// The tree and snapshot LVs in the pool.
    pub fn objects(&self) -> Vec<String> {
        lvs(&self.vg)
            .into_iter()
            .filter(|l| l.pool == POOL && l.name != STATE_LV)
            .map(|l| l.name)
            .collect()
    }
}

/// Removes the mount-point directories below `dir` (and `dir`), never a file:
/// one left means something still lives there, and is reported.
fn remove_empty_dirs(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&e.path());
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        eprintln!("harness: cannot remove {}: {e}", dir.display());
    }
}
