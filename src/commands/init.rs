//! `sidus init`: turn options into a config, prepare the store, then save the config.

use crate::cli::{Cli, InitArgs};
use crate::config::{BackendKind, BtrfsConfig, Config, LvmConfig, ZfsConfig, DEFAULT_HOME};
use crate::output::json as print_json;
use crate::UsageError;
use anyhow::{bail, Context, Result};
use sidus_backends::InitOptions;
use std::path::Path;

/// The config the options ask for; `None` when no backend option was given.
fn requested(a: &InitArgs) -> Result<Option<Config>> {
    let backend = match a.backend {
        Some(b) => b,
        None if a.dataset.is_some() => BackendKind::Zfs,
        None if a.vg.is_some() || a.thinpool.is_some() => BackendKind::Lvm,
        None if a.path.is_some() || a.loop_file.is_some() => BackendKind::Btrfs,
        None => return Ok(None),
    };
    let mut c = Config::for_backend(backend);
    let home = Path::new(DEFAULT_HOME);
    match backend {
        BackendKind::Btrfs => {
            let loop_file = match (&a.path, &a.loop_file) {
                (None, None) => Some(home.join("store.img")),
                (_, l) => l.clone(),
            };
            let path = a.path.clone().unwrap_or_else(|| home.join("store"));
            c.btrfs = Some(BtrfsConfig { path, loop_file });
        }
        BackendKind::Zfs => {
            let Some(ds) = &a.dataset else {
                bail!(UsageError("--backend zfs needs --dataset POOL/NAME".into()))
            };
            let mut z = ZfsConfig::new(ds.clone());
            if let Some(m) = &a.mountpoint {
                z.mountpoint = m.clone();
            }
            c.zfs = Some(z);
        }
        BackendKind::Lvm => {
            let (Some(vg), Some(pool)) = (&a.vg, &a.thinpool) else {
                bail!(UsageError(
                    "--backend lvm needs --vg VG and --thinpool POOL".into()
                ))
            };
            c.lvm = Some(LvmConfig::new(vg.clone(), pool.clone()));
        }
    }
    Ok(Some(c))
}

pub fn init(cli: &Cli, a: &InitArgs) -> Result<()> {
    let wanted = requested(a)?;
    let existing = if cli.config.exists() {
        Some(Config::load(&cli.config)?)
    } else {
        None
    };
    let config = match (existing, wanted) {
        (Some(e), None) => e,
        (Some(e), Some(w)) if e == w => e,
        (Some(_), Some(_)) => bail!(
            "{} already describes another store; remove it first, or use --config for a second store",
            cli.config.display()
        ),
        (None, w) => w.unwrap_or_else(Config::embedded_default),
    };
    let backend = config.backend()?;
    let opts = InitOptions {
        image_size: Some(a.size.clone()),
    };
    backend.init_store(&opts).context("prepare the store")?;
    config.save(&cli.config)?;
    if cli.json {
        print_json(
            &serde_json::json!({ "config": cli.config, "backend": backend.kind(), "settings": config }),
        );
    } else {
        println!(
            "initialized {} store; config written to {}",
            backend.kind(),
            cli.config.display()
        );
    }
    Ok(())
}
