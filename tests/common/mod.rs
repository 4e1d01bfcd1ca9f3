//! Shared harness for tests that drive the real `sidus` binary on a real store.
//!
//! # One contract, three backends
//!
//! `tests/contract_*.rs` is the contract suite: the same tests run on every
//! backend, chosen by `SIDUS_TEST_BACKEND` (`btrfs`, the default: a loop image
//! in a temp dir; `zfs`: a dataset under the pool `SIDUS_TEST_ZPOOL`, default
//! `sidustest`; `lvm`: the thin pool `contract` in the volume group
//! `SIDUS_TEST_VG`, default `sidusvg`, emptied for each test: see lvm.rs). Natively they run on btrfs
//! (`cargo nextest run`); `tests/vm/run` archives the same compiled binaries
//! (`cargo nextest archive -E 'binary(/^contract_/)'`) and runs them in the VM
//! on ZFS and on LVM thin (`tests/vm/scenarios/contract.sh`).
//!
//! To add tests to the contract, put them in a file named `tests/contract_*.rs`:
//! ```ignore
//! mod common;
//! use common::{Kind, TestStore};
//!
//! #[test]
//! fn rollback_keeps_newer_snapshots() {
//!     let backend = require_backend!(); // prints the backend, or SKIP and returns
//!     skip_on!(backend, Kind::Lvm, "why this means nothing on LVM thin");
//!     let store = TestStore::new();    // a fresh store on that backend
//!     store.sidus(&["create", "lab"]).ok();
//!     // Paths come from sidus (`store.path`) or the harness
//!     // (`store.state_dir()`), never from one backend's layout.
//! }
//! ```
//! Run sidus through [`TestStore::sidus`], [`TestStore::command`] or
//! [`sidus_bin`], never `env!("CARGO_BIN_EXE_sidus")`: in the VM the binary is
//! not where it was built. A test of one backend's own mechanics (btrfs quotas,
//! the btrfs on-disk layout) belongs in `tests/root_btrfs_*.rs` and starts with
//! `require_root_btrfs!()`. Tests run in any order, side by side: btrfs and ZFS
//! stores have names of their own, and LVM tests take turns on their pool.
//!
//! A test that exposes a bug of one backend is kept and marked with
//! `known_bug!(backend, Kind::Zfs, "what is wrong")`: skipped there, visibly,
//! and run on the others.
//!
//! A skipped test passes, so a skip says so on stderr and, when
//! `SIDUS_TEST_SKIP_LOG` names a file, adds a line to it, which `scripts/test` and
//! the VM print after the run.
#![allow(dead_code)]

mod lvm;
mod stores;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A storage backend the contract runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A btrfs loop image.
    Btrfs,
    /// A dataset under a ZFS pool.
    Zfs,
    /// A thin pool in an LVM volume group.
    Lvm,
}

impl Kind {
    /// The name sidus uses for it (`sidus list --json` "backend").
    pub fn name(self) -> &'static str {
        match self {
            Kind::Btrfs => "btrfs",
            Kind::Zfs => "zfs",
            Kind::Lvm => "lvm",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The backend `SIDUS_TEST_BACKEND` names (btrfs when unset). A value that names
/// none fails the test: a misspelt backend must not pass as skipped.
pub fn backend() -> Kind {
    match std::env::var("SIDUS_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("btrfs") => Kind::Btrfs,
        Ok("zfs") => Kind::Zfs,
        Ok("lvm") => Kind::Lvm,
        Ok(other) => panic!("SIDUS_TEST_BACKEND={other}: not btrfs, zfs or lvm"),
    }
}

/// Why tests on the selected backend cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    stores::unavailable(backend())
}

/// Says visibly that the running test is skipped, and why.
pub fn skip(why: &str) {
    // libtest names the test's thread after the test; the binary after its file.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    let binary = stem.rsplit_once('-').map_or(&*stem, |(b, _)| b);
    let line = format!("SKIP {binary}::{test} on {}: {why}", backend());
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("SIDUS_TEST_SKIP_LOG") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A test that cannot run here (no root, no backend): skipped, visibly; with
/// `SIDUS_REQUIRE_ROOT_TESTS` set (scripts/test, CI) a failure instead, so a
/// tier that did not run never shows as a pass. (A test meaningless on a
/// backend, [`skip_on!`] and [`only_on!`], is skipped whatever the setting.)
#[track_caller]
pub fn cannot_run(why: &str) {
    if std::env::var_os("SIDUS_REQUIRE_ROOT_TESTS").is_some_and(|v| !v.is_empty()) {
        panic!(
            "would skip: {why} (SIDUS_REQUIRE_ROOT_TESTS is set: run as root with the backend's tools, or unset it)"
        );
    }
    skip(why);
}

/// Starts a contract test: evaluates to the backend's [`Kind`], or
/// skips the test (says why, returns) when that backend is not available here
/// (see [`cannot_run`]).
#[macro_export]
macro_rules! require_backend {
    () => {
        match common::skip_reason() {
            Some(why) => {
                common::cannot_run(&why);
                return;
            }
            // TestStore::new says "backend: NAME (where)".
            None => common::backend(),
        }
    };
}

/// Skips the test on the backends `pattern` matches, saying why the test means
/// nothing there: `skip_on!(backend, Kind::Lvm, "LVM has no holds")`.
#[macro_export]
macro_rules! skip_on {
    ($kind:expr, $pattern:pat, $why:expr) => {
        if matches!($kind, $pattern) {
            common::skip(&format!("meaningless on {}: {}", $kind, $why));
            return;
        }
    };
}

/// Runs the test only on the backends `pattern` matches, saying why it means
/// nothing elsewhere: `only_on!(backend, Kind::Zfs, "only ZFS has holds")`.
#[macro_export]
macro_rules! only_on {
    ($kind:expr, $pattern:pat, $why:expr) => {
        if !matches!($kind, $pattern) {
            common::skip(&format!("meaningless on {}: {}", $kind, $why));
            return;
        }
    };
}

/// Skips the test on the backends `pattern` matches because of a known bug
/// there, saying so ("KNOWN BUG") with `why`, which names it; the other
/// backends still run it. `SIDUS_TEST_KNOWN_BUGS=1` runs it everywhere, to see
/// whether a fix works: `known_bug!(backend, Kind::Zfs, "ZFS drops ACLs")`.
#[macro_export]
macro_rules! known_bug {
    ($kind:expr, $pattern:pat, $why:expr) => {
        if matches!($kind, $pattern)
            && std::env::var_os("SIDUS_TEST_KNOWN_BUGS").is_none_or(|v| v.is_empty())
        {
            common::skip(&format!("KNOWN BUG on {}: {}", $kind, $why));
            return;
        }
    };
}

/// Starts a test of btrfs itself (not part of the contract): skips with a
/// visible message unless the backend is btrfs, and when root btrfs tests
/// cannot run (see [`cannot_run`]).
#[macro_export]
macro_rules! require_root_btrfs {
    () => {
        if common::backend() != common::Kind::Btrfs {
            common::skip("a btrfs-only test (SIDUS_TEST_BACKEND names another backend)");
            return;
        }
        if let Some(why) = common::skip_reason() {
            common::cannot_run(&why);
            return;
        }
    };
}

/// The sidus binary under test: `SIDUS_TEST_BIN` if set (the VM ships a
/// release build), else the one nextest or cargo built with the tests.
pub fn sidus_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SIDUS_TEST_BIN").filter(|p| !p.is_empty()) {
        return p.into();
    }
    if let Some(p) = std::env::var_os("NEXTEST_BIN_EXE_sidus") {
        return p.into();
    }
    PathBuf::from(env!("CARGO_BIN_EXE_sidus"))
}

/// A throw-away store on the selected backend, with its own config in a temp
/// dir; everything sidus mounted under that dir is unmounted and the storage
/// removed on drop.
pub struct TestStore {
    /// The temp dir holding the config (and for btrfs, the image and mount).
    pub dir: tempfile::TempDir,
    /// This store's config (`SIDUS_CONFIG`).
    pub config: PathBuf,
    /// Where the store is mounted: the btrfs root, the ZFS mountpoint or the
    /// LVM mount root. Its layout below is the backend's own; see
    /// [`TestStore::state_dir`] for sidus's state.
    pub mnt: PathBuf,
    /// The backend holding it.
    pub kind: Kind,
    storage: stores::Storage,
}

/// What a sidus invocation returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self.stdout
    }

    /// Asserts failure with `code` and returns stderr.
    #[track_caller]
    pub fn fails(self, code: i32) -> String {
        assert_eq!(
            self.code, code,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        self.stderr
    }

    /// Parses stdout as JSON after asserting success.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad json {e}: {out}"))
    }
}

impl TestStore {
    /// Initializes a fresh store of about 1 GiB on the selected backend.
    pub fn new() -> TestStore {
        TestStore::new_sized("1G")
    }

    /// Initializes a fresh store of about `size` (as `--size` takes it): the
    /// btrfs image or the LVM thin pool; a ZFS dataset takes what its pool has.
    pub fn new_sized(size: &str) -> TestStore {
        let kind = backend();
        let dir = tempfile::Builder::new()
            .prefix("sidus-test-")
            .tempdir()
            .unwrap();
        let (storage, mnt, init) = stores::Storage::make(kind, dir.path(), size);
        eprintln!("backend: {kind} ({})", storage.describe());
        let store = TestStore {
            config: dir.path().join("sidus.toml"),
            mnt,
            dir,
            kind,
            storage,
        };
        let args: Vec<&str> = init.iter().map(String::as_str).collect();
        store.sidus(&args).ok();
        store
    }

    /// A btrfs store the test initializes itself, to try `sidus init`: its
    /// config is `dir/sidus.toml`, its image `dir/store.img`, its mount
    /// `dir/store`; torn down like any other.
    pub fn btrfs_uninitialized() -> TestStore {
        let dir = tempfile::Builder::new()
            .prefix("sidus-test-")
            .tempdir()
            .unwrap();
        TestStore {
            config: dir.path().join("sidus.toml"),
            mnt: dir.path().join("store"),
            kind: Kind::Btrfs,
            storage: stores::Storage::Btrfs {
                image: dir.path().join("store.img"),
            },
            dir,
        }
    }

    /// A `sidus` command with this store's config, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sidus_bin());
        c.args(args).env("SIDUS_CONFIG", &self.config);
        c
    }

    /// Runs sidus with this store's config.
    pub fn sidus(&self, args: &[&str]) -> Run {
        self.sidus_env(args, &[])
    }

    /// Runs sidus with extra environment variables.
    pub fn sidus_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out: Output = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("run sidus");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Takes a snapshot and returns its ID.
    pub fn snapshot(&self, tree: &str, msg: &str) -> String {
        self.sidus(&["snapshot", tree, "-m", msg])
            .ok()
            .trim()
            .to_string()
    }

    /// The path `sidus path` prints.
    pub fn path(&self, target: &str) -> PathBuf {
        PathBuf::from(self.sidus(&["path", target]).ok().trim())
    }

    /// The IDs of a tree's snapshots, oldest first.
    pub fn ids(&self, tree: &str) -> Vec<String> {
        let v = self.sidus(&["snapshots", tree, "--json"]).json();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Where sidus keeps this store's state (journal, locks, pins, publish state).
    pub fn state_dir(&self) -> PathBuf {
        match self.kind {
            Kind::Lvm => self.mnt.join("state"),
            Kind::Btrfs | Kind::Zfs => self.mnt.join(".sidus"),
        }
    }

    /// The backend's own objects of trees and snapshots (subvolumes, datasets
    /// and snapshots, LVs) that are still there: empty once every tree is
    /// destroyed, whatever the backend.
    pub fn storage_objects(&self) -> Vec<String> {
        self.storage.objects(&self.mnt)
    }

    /// Mounts of trees and snapshot views sidus still has (two or more levels
    /// below [`TestStore::mnt`]; the store's own and its state's are above):
    /// empty once every tree is destroyed.
    pub fn tree_mounts(&self) -> Vec<PathBuf> {
        stores::mounts_under(&self.mnt)
            .into_iter()
            .filter(|m| {
                m.strip_prefix(&self.mnt)
                    .is_ok_and(|r| r.components().count() >= 2)
            })
            .collect()
    }

    /// The parent dataset of a ZFS store (for tests of ZFS's own features).
    #[track_caller]
    pub fn zfs_dataset(&self) -> &str {
        self.storage.zfs_dataset().expect("a ZFS store")
    }

    /// What a reboot does to the store: nothing of it mounted (and on LVM no
    /// LV active); the next sidus command must bring it back.
    pub fn simulate_reboot(&self) {
        stores::unmount_under(self.dir.path());
        self.storage.deactivate();
    }

    /// A snapshot of every file's path, type, mode, owner, link target and
    /// content under `root`, for comparisons. ext4's `lost+found` (LVM trees)
    /// is the file system's, not content, and is left out.
    pub fn listing(root: &Path) -> Vec<String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . -path ./lost+found -prune -o -printf '%p %y %m %U:%G %l\\n' | sort && find . -path ./lost+found -prune -o -type f -exec md5sum {} + | sort")
            .arg("sh")
            .arg(root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        stores::unmount_under(self.dir.path());
        self.storage.remove();
    }
}

/// The shared libraries `binary` loads (none for a static one), as ldd lists them.
pub fn libraries(binary: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    if !out.status.success() {
        return Vec::new(); // "not a dynamic executable"
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// Copies the host's busybox into `root`/bin, with the shared libraries it
/// loads when it is not the static one (the VM's is dynamic).
pub fn copy_busybox(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox installed");
    for lib in libraries("/bin/busybox") {
        let to = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &to).unwrap();
    }
}
