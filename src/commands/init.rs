//! `sidus init`: prepare the store the config describes, or the one the
//! options ask for, and write the config.
//!
//! An existing config is kept as written (comments, order, the other
//! sections): the options only add the settings it lacks, and one that
//! disagrees with them is refused, naming it. Settings init does not own
//! (`[publish]`, `[prune]`, `lock_timeout_secs`) never make it refuse.

use crate::cli::{Cli, InitArgs};
use crate::config::{self, BackendKind, BtrfsConfig, Config, LvmConfig, ZfsConfig, DEFAULT_HOME};
use crate::output::json as print_json;
use crate::UsageError;
use anyhow::{bail, Context, Result};
use sidus_backends::InitOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Table};

/// The top of a config that init writes from nothing.
const HEADER: &str = "\
# sidus configuration, written by `sidus init`; edit it freely, init keeps
# it as written. Every setting, with its default, is in the example config
# (Debian package: /usr/share/doc/sidus/examples/sidus.toml).

";

/// A value an option gives.
#[derive(Debug, Clone, PartialEq)]
enum Given {
    /// A name, compared as text.
    Text(String),
    /// A path, compared by components (`/srv/x/` is `/srv/x`).
    Path(PathBuf),
}

impl Given {
    fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Given::Text(t) => t.into(),
            Given::Path(p) => p.to_string_lossy(),
        }
    }

    fn matches(&self, item: &Item) -> bool {
        match (self, item.as_str()) {
            (Given::Text(t), Some(s)) => t == s,
            (Given::Path(p), Some(s)) => p == Path::new(s),
            (_, None) => false,
        }
    }
}

/// What the options ask for: a backend and the settings of its section that
/// they give.
#[derive(Debug)]
struct Request {
    backend: BackendKind,
    given: Vec<(&'static str, Given)>,
}

/// The name of a backend as the config spells it (also its section's name).
fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Btrfs => "btrfs",
        BackendKind::Zfs => "zfs",
        BackendKind::Lvm => "lvm",
    }
}

/// The request of the options; `None` when they name no backend.
fn request(a: &InitArgs) -> Option<Request> {
    let backend = match a.backend {
        Some(b) => b,
        None if a.dataset.is_some() || a.mountpoint.is_some() => BackendKind::Zfs,
        None if a.vg.is_some() || a.thinpool.is_some() => BackendKind::Lvm,
        None if a.path.is_some() || a.loop_file.is_some() => BackendKind::Btrfs,
        None => return None,
    };
    let path = |k, v: &Option<PathBuf>| v.clone().map(|p| (k, Given::Path(p)));
    let text = |k, v: &Option<String>| v.clone().map(|t| (k, Given::Text(t)));
    let given = match backend {
        BackendKind::Btrfs => [path("path", &a.path), path("loop_file", &a.loop_file)],
        BackendKind::Zfs => [
            text("dataset", &a.dataset),
            path("mountpoint", &a.mountpoint),
        ],
        BackendKind::Lvm => [text("vg", &a.vg), text("thinpool", &a.thinpool)],
    };
    Some(Request {
        backend,
        given: given.into_iter().flatten().collect(),
    })
}

/// The whole section for a config that has none: the options, defaults for
/// the rest. Without --path and --loop, btrfs is the embedded loop image store.
fn new_section(backend: BackendKind, a: &InitArgs) -> Result<Table> {
    let home = Path::new(DEFAULT_HOME);
    let text = match backend {
        BackendKind::Btrfs => {
            let loop_file = match (&a.path, &a.loop_file) {
                (None, None) => Some(home.join("store.img")),
                (_, l) => l.clone(),
            };
            let path = a.path.clone().unwrap_or_else(|| home.join("store"));
            toml::to_string(&BtrfsConfig { path, loop_file })
        }
        BackendKind::Zfs => {
            let Some(ds) = &a.dataset else {
                bail!(UsageError("--backend zfs needs --dataset POOL/NAME".into()))
            };
            let mut z = ZfsConfig::new(ds.clone());
            if let Some(m) = &a.mountpoint {
                z.mountpoint = m.clone();
            }
            toml::to_string(&z)
        }
        BackendKind::Lvm => {
            let (Some(vg), Some(pool)) = (&a.vg, &a.thinpool) else {
                bail!(UsageError(
                    "--backend lvm needs --vg VG and --thinpool POOL".into()
                ))
            };
            toml::to_string(&LvmConfig::new(vg.clone(), pool.clone()))
        }
    }
    .expect("a config section serializes");
    let doc: DocumentMut = text.parse().expect("toml's own output parses");
    Ok(doc.as_table().clone())
}

/// Adds to `doc` what `req` asks for and `doc` lacks, refusing a setting that
/// disagrees (`file` names the config in that error). Returns what was added,
/// as `backend`, `[zfs]` or `btrfs.loop_file`.
fn merge(
    doc: &mut DocumentMut,
    req: &Request,
    new_section: impl FnOnce() -> Result<Table>,
    file: &Path,
) -> Result<Vec<String>> {
    let refuse = |key: &str, there: &Item, wanted: &str| -> anyhow::Error {
        // The value without its comment or spacing.
        let there = match there.as_value() {
            Some(v) => {
                let mut v = v.clone();
                v.decor_mut().clear();
                v.to_string()
            }
            None => "a table".into(),
        };
        anyhow::anyhow!(
            "{} already describes another store: {key} is {} there, the options say \"{wanted}\"; \
             edit that file, or use --config for a second store",
            file.display(),
            there.trim()
        )
    };
    let name = backend_name(req.backend);
    let mut added = Vec::new();
    match doc.get("backend") {
        None => {
            doc.insert("backend", toml_edit::value(name));
            added.push("backend".to_string());
        }
        Some(b) if b.as_str() == Some(name) => {}
        Some(b) => return Err(refuse("backend", b, name)),
    }
    match doc.get_mut(name) {
        None => {
            doc.insert(name, Item::Table(new_section()?));
            added.push(format!("[{name}]"));
        }
        Some(item) => {
            let Some(section) = item.as_table_like_mut() else {
                bail!("config {}: {name} is not a table", file.display());
            };
            for (key, value) in &req.given {
                match section.get(key) {
                    None => {
                        section.insert(key, toml_edit::value(value.as_str().into_owned()));
                        added.push(format!("{name}.{key}"));
                    }
                    Some(there) if value.matches(there) => {}
                    Some(there) => {
                        return Err(refuse(&format!("{name}.{key}"), there, &value.as_str()))
                    }
                }
            }
        }
    }
    Ok(added)
}

/// The config file's text as it is, or `None` when there is none.
fn read_existing(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read config {}", path.display())),
    }
}

/// Writes the config text, keeping an existing file's mode and writing
/// through a symlink to its target.
fn write_config(path: &Path, text: &str, existed: bool) -> Result<()> {
    let (target, mode) = if existed {
        let target =
            std::fs::canonicalize(path).with_context(|| format!("resolve {}", path.display()))?;
        let mode = std::fs::metadata(&target)
            .with_context(|| format!("stat {}", target.display()))?
            .permissions()
            .mode()
            & 0o7777;
        (target, mode)
    } else {
        (path.to_path_buf(), 0o644)
    };
    crate::state::atomic::write_atomic(&target, text.as_bytes(), mode)
}

/// `--clients` into `[publish] clients`, each entry checked first. Like the
/// backend's settings, a list already there that differs is refused, not
/// replaced. Returns what was added.
fn set_clients(doc: &mut DocumentMut, clients: &[String], file: &Path) -> Result<Option<String>> {
    if clients.is_empty() {
        return Ok(None);
    }
    for c in clients {
        crate::publish::clients_policy::check_entry(c)
            .map_err(|e| UsageError(format!("--clients: {e}")))?;
    }
    let publish = doc
        .entry("publish")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(publish) = publish.as_table_like_mut() else {
        bail!("config {}: publish is not a table", file.display());
    };
    if let Some(there) = publish.get("clients") {
        let listed: Option<Vec<&str>> = there
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default()).collect());
        if listed.as_deref() == Some(&clients.iter().map(String::as_str).collect::<Vec<_>>()[..]) {
            return Ok(None);
        }
        bail!(
            "{} already says who may mount the exports: publish.clients is {} there, the options say {:?}; \
             edit that file, or use --config for a second store",
            file.display(),
            there.to_string().trim(),
            clients
        );
    }
    let list: toml_edit::Array = clients.iter().map(String::as_str).collect();
    publish.insert("clients", toml_edit::value(list));
    Ok(Some("publish.clients".into()))
}

/// `sidus init`.
pub fn init(cli: &Cli, a: &InitArgs) -> Result<()> {
    let file = &cli.config;
    let existing = read_existing(file)?;
    let mut doc = match &existing {
        Some(text) => text
            .parse::<DocumentMut>()
            .map_err(|e| config::located(text, file, e.message(), e.span()))?,
        None => DocumentMut::new(),
    };
    // No file and no option: the embedded default store.
    let req = request(a).or_else(|| {
        existing.is_none().then_some(Request {
            backend: BackendKind::Btrfs,
            given: vec![],
        })
    });
    let mut added = match &req {
        Some(req) => merge(&mut doc, req, || new_section(req.backend, a), file)?,
        None => vec![],
    };
    added.extend(set_clients(&mut doc, &a.clients, file)?);
    let text = match &existing {
        Some(old) if added.is_empty() => old.clone(),
        Some(_) => doc.to_string(),
        None => format!("{HEADER}{doc}"),
    };
    let config = match (Config::parse(&text, file), &existing) {
        (Ok(c), _) => c,
        // The file's own mistake, placed in the file as it is.
        (Err(e), Some(old)) if !added.is_empty() => match Config::parse(old, file) {
            Err(own) => return Err(own),
            Ok(_) => return Err(e.context("the config with the settings init adds")),
        },
        (Err(e), _) => return Err(e),
    };
    let backend = config.backend()?;
    let opts = InitOptions {
        image_size: Some(a.size.clone()),
    };
    // A loop image it makes is removed again by a failed init_store.
    backend.init_store(&opts).context("prepare the store")?;
    if existing.is_none() || !added.is_empty() {
        write_config(file, &text, existing.is_some())?;
    }
    if cli.json {
        print_json(&serde_json::json!({
            "config": file,
            "backend": backend.kind(),
            "settings": config,
            "created": existing.is_none(),
            "added": added,
        }));
    } else {
        let what = match (&existing, added.is_empty()) {
            (None, _) => format!("config written to {}", file.display()),
            (Some(_), true) => format!("config {} unchanged", file.display()),
            (Some(_), false) => format!(
                "config {}: added {}, the rest kept as written",
                file.display(),
                added.join(", ")
            ),
        };
        println!("initialized {} store; {what}", backend.kind());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &[&str]) -> InitArgs {
        let mut argv = vec!["sidus", "init"];
        argv.extend_from_slice(line);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Init(a) => a,
            _ => unreachable!(),
        }
    }

    /// Merges the options `line` into `text`: the new text and what was added.
    fn merged(text: &str, line: &[&str]) -> Result<(String, Vec<String>)> {
        let a = args(line);
        let mut doc: DocumentMut = text.parse().unwrap();
        let req = request(&a).expect("options name a backend");
        let added = merge(
            &mut doc,
            &req,
            || new_section(req.backend, &a),
            Path::new("c.toml"),
        )?;
        Ok((doc.to_string(), added))
    }

    const WRITTEN: &str = "\
# the cluster's store
backend = \"btrfs\"   # on the big disk

[btrfs]
path = \"/srv/sidus\"

# NFS for the lab
[publish]
root = \"/exports\"
";

    #[test]
    fn same_store_with_other_sections_is_unchanged_and_kept_byte_for_byte() {
        let (text, added) = merged(WRITTEN, &["--path", "/srv/sidus/"]).unwrap();
        assert!(added.is_empty(), "{added:?}");
        assert_eq!(text, WRITTEN);
    }

    #[test]
    fn a_missing_setting_is_added_and_comments_stay() {
        let (text, added) = merged(
            WRITTEN,
            &["--path", "/srv/sidus", "--loop", "/srv/store.img"],
        )
        .unwrap();
        assert_eq!(added, ["btrfs.loop_file"]);
        assert!(text.contains("# the cluster's store\n"), "{text}");
        assert!(text.contains("# on the big disk"), "{text}");
        assert!(text.contains("# NFS for the lab\n[publish]"), "{text}");
        assert!(text.contains("loop_file = \"/srv/store.img\""), "{text}");
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.btrfs.unwrap().loop_file.unwrap(),
            Path::new("/srv/store.img")
        );
        assert_eq!(c.publish.unwrap().root, Path::new("/exports"));
    }

    #[test]
    fn a_disagreeing_setting_is_refused_by_name() {
        let e = merged(WRITTEN, &["--path", "/other"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml already describes another store: btrfs.path is \"/srv/sidus\" there, \
             the options say \"/other\"; edit that file, or use --config for a second store"
        );
        let e = merged(WRITTEN, &["--dataset", "tank/sidus"]).unwrap_err();
        assert!(e.to_string().contains("backend is \"btrfs\" there"), "{e}");
    }

    #[test]
    fn a_missing_section_is_added_whole() {
        let text = "backend = \"zfs\"  # the section comes from init\n";
        let (text, added) = merged(text, &["--dataset", "tank/sidus"]).unwrap();
        assert_eq!(added, ["[zfs]"]);
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.zfs.unwrap(), ZfsConfig::new("tank/sidus".into()));
        assert!(text.contains("# the section comes from init"), "{text}");
    }

    #[test]
    fn an_empty_file_becomes_the_store_the_options_name() {
        let (text, added) =
            merged("", &["--backend", "lvm", "--vg", "vg0", "--thinpool", "p"]).unwrap();
        assert_eq!(added, ["backend", "[lvm]"]);
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.lvm.unwrap(), LvmConfig::new("vg0".into(), "p".into()));
        let e = merged("", &["--backend", "zfs"]).unwrap_err();
        assert!(e.downcast_ref::<UsageError>().is_some(), "{e}");
    }

    #[test]
    fn backend_alone_accepts_the_section_as_written() {
        let (text, added) = merged(WRITTEN, &["--backend", "btrfs"]).unwrap();
        assert!(added.is_empty());
        assert_eq!(text, WRITTEN);
    }
}
