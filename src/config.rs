//! `/etc/sidus/sidus.toml`: which backend holds the store and where.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sidus_backends::{btrfs::Btrfs, Backend, Runner};
use std::path::{Path, PathBuf};

/// Where the config lives unless `--config` or `SIDUS_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/sidus/sidus.toml";
/// Where the embedded default store keeps its loop image and mount.
pub const DEFAULT_HOME: &str = "/var/lib/sidus";

/// The storage backend of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// btrfs subvolumes on a mounted btrfs path (or a loop image).
    Btrfs,
    /// ZFS datasets under a parent dataset.
    Zfs,
    /// LVM thin volumes in a thin pool.
    Lvm,
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which backend holds the trees.
    pub backend: BackendKind,
    /// How long a writer waits for a tree's lock before "tree is busy".
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_secs: f64,
    /// btrfs settings, when `backend = "btrfs"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btrfs: Option<BtrfsConfig>,
    /// ZFS settings, when `backend = "zfs"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zfs: Option<ZfsConfig>,
    /// LVM settings, when `backend = "lvm"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lvm: Option<LvmConfig>,
    /// `sidus prune`'s policy when no --keep option is given (`keep_last`,
    /// `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<crate::history::retention::Policy>,
    /// How snapshots are served to nodes (`sidus publish`); defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<crate::publish::config::PublishConfig>,
}

/// The longest lock wait a config may ask for (a day): anything longer is a
/// typo, and a Duration cannot hold every f64.
const MAX_LOCK_TIMEOUT: f64 = 86_400.0;

fn default_lock_timeout() -> f64 {
    5.0
}

/// `[btrfs]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BtrfsConfig {
    /// A directory on a mounted btrfs, or where the loop image is mounted.
    pub path: PathBuf,
    /// A loop image sidus mounts at `path` when it is not mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_file: Option<PathBuf>,
}

/// `[zfs]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZfsConfig {
    /// The parent dataset, e.g. `tank/sidus`.
    pub dataset: String,
    /// Where that dataset is mounted.
    #[serde(default = "default_zfs_mountpoint")]
    pub mountpoint: PathBuf,
}

fn default_zfs_mountpoint() -> PathBuf {
    Path::new(DEFAULT_HOME).join("zfs")
}

/// `[lvm]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmConfig {
    /// The volume group.
    pub vg: String,
    /// The thin pool in it.
    pub thinpool: String,
    /// Where trees and snapshot views are mounted.
    #[serde(default = "default_lvm_mount_root")]
    pub mount_root: PathBuf,
    /// Virtual size of a new tree's thin volume.
    #[serde(default = "default_tree_size")]
    pub tree_size: String,
    /// Snapshot and clone are refused above this data or metadata use of the pool.
    #[serde(default = "default_max_pool_use")]
    pub max_pool_use_percent: f64,
}

fn default_lvm_mount_root() -> PathBuf {
    Path::new(DEFAULT_HOME).join("lvm")
}

fn default_tree_size() -> String {
    "20G".into()
}

fn default_max_pool_use() -> f64 {
    90.0
}

impl LvmConfig {
    /// An LVM config with default mount root, tree size and threshold.
    pub fn new(vg: String, thinpool: String) -> LvmConfig {
        LvmConfig {
            vg,
            thinpool,
            mount_root: default_lvm_mount_root(),
            tree_size: default_tree_size(),
            max_pool_use_percent: default_max_pool_use(),
        }
    }
}

impl ZfsConfig {
    /// A ZFS config with the default mountpoint.
    pub fn new(dataset: String) -> ZfsConfig {
        ZfsConfig {
            dataset,
            mountpoint: default_zfs_mountpoint(),
        }
    }
}

impl Config {
    /// A config for `backend` with only that backend's section.
    pub fn for_backend(backend: BackendKind) -> Config {
        Config {
            backend,
            lock_timeout_secs: default_lock_timeout(),
            btrfs: None,
            zfs: None,
            lvm: None,
            prune: None,
            publish: None,
        }
    }

    /// The embedded default: a btrfs loop image under `/var/lib/sidus`.
    pub fn embedded_default() -> Config {
        let home = Path::new(DEFAULT_HOME);
        Config {
            btrfs: Some(BtrfsConfig {
                path: home.join("store"),
                loop_file: Some(home.join("store.img")),
            }),
            ..Config::for_backend(BackendKind::Btrfs)
        }
    }

    /// Parses and checks a config document; `origin` names it in errors, with
    /// the line and column of a syntax error or a bad setting.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let config: Config =
            toml::from_str(text).map_err(|e| located(text, origin, e.message(), e.span()))?;
        config
            .check()
            .with_context(|| format!("config {}", origin.display()))?;
        Ok(config)
    }

    /// Reads the config at `path`; a missing file says how to make one.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "no store configured: {} does not exist (run `sidus init`)",
                    path.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("read config {}", path.display())),
        };
        Config::parse(&text, path)
    }

    /// How long a writer waits for a tree's lock (checked to fit a Duration).
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.lock_timeout_secs.clamp(0.0, MAX_LOCK_TIMEOUT))
    }

    fn check(&self) -> Result<()> {
        let section = match self.backend {
            BackendKind::Btrfs => self.btrfs.is_some(),
            BackendKind::Zfs => self.zfs.is_some(),
            BackendKind::Lvm => self.lvm.is_some(),
        };
        if !section {
            let name = serde_json::to_value(self.backend).expect("enum serializes");
            bail!(
                "backend is {} but its [{}] section is missing",
                name,
                name.as_str().unwrap_or("")
            );
        }
        if !(0.0..=MAX_LOCK_TIMEOUT).contains(&self.lock_timeout_secs) {
            bail!(
                "lock_timeout_secs must be between 0 and {MAX_LOCK_TIMEOUT} seconds, not {}",
                self.lock_timeout_secs
            );
        }
        if let Some(l) = &self.lvm {
            if !(0.0..=100.0).contains(&l.max_pool_use_percent) {
                bail!("lvm.max_pool_use_percent must be between 0 and 100");
            }
        }
        if let Some(p) = &self.publish {
            p.check()?;
        }
        Ok(())
    }

    /// The backend this config names.
    pub fn backend(&self) -> Result<Box<dyn Backend>> {
        let runner = Runner::new();
        Ok(match self.backend {
            BackendKind::Btrfs => {
                let c = self.btrfs.clone().expect("checked");
                Box::new(Btrfs::new(c.path, c.loop_file, runner))
            }
            BackendKind::Zfs => {
                let c = self.zfs.clone().expect("checked");
                Box::new(sidus_backends::zfs::Zfs::new(
                    c.dataset,
                    c.mountpoint,
                    runner,
                ))
            }
            BackendKind::Lvm => {
                let c = self.lvm.clone().expect("checked");
                Box::new(sidus_backends::lvm::Lvm::new(
                    c.vg,
                    c.thinpool,
                    c.mount_root,
                    c.tree_size,
                    runner,
                ))
            }
        })
    }

    /// The `[publish]` settings, defaults filled in when the section is absent.
    pub fn publish(&self) -> crate::publish::config::PublishConfig {
        self.publish.clone().unwrap_or_default()
    }

    /// The pool-use threshold above which snapshot and clone are refused.
    pub fn max_pool_use_percent(&self) -> f64 {
        self.lvm
            .as_ref()
            .map(|l| l.max_pool_use_percent)
            .unwrap_or_else(default_max_pool_use)
    }
}

/// An error in the config document `text` read from `origin`, at the byte
/// range `span` when known: `config PATH, line L, column C: MESSAGE`.
pub fn located(
    text: &str,
    origin: &Path,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> anyhow::Error {
    // toml puts what it expected on a second line: keep one line.
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    match span.and_then(|s| text.get(..s.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            anyhow::anyhow!(
                "config {}, line {line}, column {column}: {message}",
                origin.display()
            )
        }
        None => anyhow::anyhow!("config {}: {message}", origin.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        Config::parse(s, Path::new("test.toml"))
    }

    #[test]
    fn embedded_default_round_trips() {
        let c = Config::embedded_default();
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(parse(&text).unwrap(), c);
    }

    #[test]
    fn prune_section_is_optional_and_strict() {
        let base = "backend = \"btrfs\"\n[btrfs]\npath = \"/x\"\n";
        assert_eq!(parse(base).unwrap().prune, None);
        let c = parse(&format!("{base}[prune]\nkeep_last = 3\nkeep_daily = 7\n")).unwrap();
        let p = c.prune.unwrap();
        assert_eq!((p.keep_last, p.keep_daily, p.keep_weekly), (3, 7, 0));
        // It round-trips through save's serialization.
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(parse(&text).unwrap(), c);
        let e = parse(&format!("{base}[prune]\nkeep_yearly = 1\n")).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `keep_yearly`"),
            "{e:#}"
        );
        let e = parse(&format!("{base}[prune]\nkeep_last = -1\n")).unwrap_err();
        assert!(format!("{e:#}").contains("expected u32"), "{e:#}");
    }

    #[test]
    fn lvm_defaults_fill_in() {
        let c = parse("backend = \"lvm\"\n[lvm]\nvg = \"vg0\"\nthinpool = \"pool\"\n").unwrap();
        assert_eq!(c.lvm.unwrap(), LvmConfig::new("vg0".into(), "pool".into()));
        assert_eq!(c.lock_timeout_secs, 5.0);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse("backend = \"zfs\"\n").unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "config test.toml: backend is \"zfs\" but its [zfs] section is missing"
        );
        let e = parse("backend = \"ext4\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("unknown variant `ext4`"), "{e:#}");
        let e =
            parse("backend = \"btrfs\"\n[btrfs]\npath = \"/x\"\nloopfile = \"/y\"\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `loopfile`"),
            "{e:#}"
        );
        let e = parse(
            "backend = \"lvm\"\n[lvm]\nvg = \"v\"\nthinpool = \"p\"\nmax_pool_use_percent = 120\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("between 0 and 100"), "{e:#}");
        // A huge timeout is an error, never a panic (Duration overflow).
        for bad in ["1e300", "-1.0", "nan"] {
            let e = parse(&format!(
                "backend = \"btrfs\"\nlock_timeout_secs = {bad}\n[btrfs]\npath = \"/x\"\n"
            ))
            .unwrap_err();
            assert!(
                format!("{e:#}").contains("lock_timeout_secs must be between 0 and 86400"),
                "{bad}: {e:#}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_line_and_column() {
        let e = parse("backend = \"btrfs\"\n[btrfs]\npath = /x\n").unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with("config test.toml, line 3, column 8: "),
            "{text}"
        );
        let e = parse("backend = \"btrfs\"\n[btrfs\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 2, column 7"), "{e:#}");
        // A bad setting is placed too.
        let e =
            parse("backend = \"btrfs\"\n[btrfs]\npath = \"/x\"\nloopfile = \"/y\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("line 4, column 1"), "{e:#}");
    }

    /// The example config the Debian package ships, as written and with every
    /// setting uncommented, so that it never names a setting sidus refuses.
    #[test]
    fn example_config_parses_as_written_and_uncommented() {
        let text = include_str!("../contrib/sidus.toml");
        assert_eq!(parse(text).unwrap(), Config::embedded_default());
        let all: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if !rest.starts_with([' ', '#']) && !rest.is_empty() => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&all).unwrap_or_else(|e| panic!("{e:#}\n{all}"));
        assert!(c.zfs.is_some() && c.lvm.is_some() && c.prune.is_some());
        assert_eq!(c.publish.unwrap().server.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn missing_file_says_run_init() {
        let e = Config::load(Path::new("/nonexistent/sidus.toml")).unwrap_err();
        assert!(e.to_string().contains("run `sidus init`"));
    }
}
