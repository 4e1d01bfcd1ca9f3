//! Shared harness for tests that drive the real `sidus` binary on a real
//! loop-backed btrfs store. They need root and btrfs-progs; without them they
//! print why they skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Returns why root btrfs tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if Command::new("mkfs.btrfs")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("needs btrfs-progs (mkfs.btrfs)".into());
    }
    None
}

/// Skips the calling test with a visible message when root btrfs tests cannot
/// run; with `SIDUS_REQUIRE_ROOT_TESTS` set (scripts/test, CI) it fails
/// instead, so a skipped tier never shows as a pass.
#[macro_export]
macro_rules! require_root_btrfs {
    () => {
        if let Some(why) = common::skip_reason() {
            if std::env::var_os("SIDUS_REQUIRE_ROOT_TESTS").is_some_and(|v| !v.is_empty()) {
                panic!(
                    "would skip: {why} (SIDUS_REQUIRE_ROOT_TESTS is set: run as root with btrfs-progs, or unset it)"
                );
            }
            eprintln!("SKIP {}: {}", module_path!(), why);
            return;
        }
    };
}

/// A throw-away store: a loop image in a temp dir, its own config; unmounted and
/// removed on drop.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub mnt: PathBuf,
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
    /// Initializes a fresh 1 GiB loop-backed store.
    pub fn new() -> TestStore {
        TestStore::new_sized("1G")
    }

    /// Initializes a fresh loop-backed store of `size` (a sparse file).
    pub fn new_sized(size: &str) -> TestStore {
        let dir = tempfile::Builder::new()
            .prefix("sidus-test-")
            .tempdir()
            .unwrap();
        let store = TestStore {
            config: dir.path().join("sidus.toml"),
            mnt: dir.path().join("store"),
            dir,
        };
        let img = store.dir.path().join("store.img");
        store
            .sidus(&[
                "init",
                "--loop",
                img.to_str().unwrap(),
                "--path",
                store.mnt.to_str().unwrap(),
                "--size",
                size,
            ])
            .ok();
        store
    }

    /// Runs sidus with this store's config.
    pub fn sidus(&self, args: &[&str]) -> Run {
        self.sidus_env(args, &[])
    }

    /// Runs sidus with extra environment variables.
    pub fn sidus_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out: Output = Command::new(env!("CARGO_BIN_EXE_sidus"))
            .args(args)
            .env("SIDUS_CONFIG", &self.config)
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

    /// A snapshot of every file's path and content under `root`, for comparisons.
    pub fn listing(root: &Path) -> Vec<String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . -printf '%p %y %m %U:%G %l\\n' | sort && find . -type f -exec md5sum {} + | sort")
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
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}
