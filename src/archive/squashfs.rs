//! squashfs archives: built by `mksquashfs` from the snapshot itself, with the
//! `.sidus-archive/` members added as pseudo files; read on import by
//! mounting the image read-only.
//!
//! mksquashfs 4.4 and later order the image the same way every time (its
//! default `-reproducible`); the image's own time is the snapshot's creation
//! (`-mkfs-time`), and the pseudo files carry that time too. xattrs are kept in
//! the order the file system lists them, so the bytes are the same for the
//! same snapshot (an imported copy on another file system may list them in
//! another order; its manifest is the same).

use super::META_DIR;
use crate::store::shell_quote;
use anyhow::{Context, Result};
use sidus_backends::{argv, Runner};
use std::path::{Path, PathBuf};

/// The squashfs magic, `hsqs`, at offset 0.
pub const MAGIC: &[u8; 4] = b"hsqs";

/// Builds the image of the tree at `root` with `meta` in `/.sidus-archive` at `out`.
pub fn build(root: &Path, meta: &[(&str, Vec<u8>)], time: i64, out: &Path) -> Result<u64> {
    // mksquashfs runs a command for each pseudo file's content: `cat` of a
    // private copy.
    let dir = PathBuf::from(format!("{}.meta", out.display()));
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    let _cleanup = RemoveDir(dir.clone());
    let time = time.max(0).to_string();
    let mut args: Vec<std::ffi::OsString> = argv![
        "mksquashfs",
        root,
        out,
        "-noappend",
        "-no-recovery",
        "-quiet",
        "-no-progress",
        "-comp",
        "zstd",
        "-Xcompression-level",
        "6",
        "-mkfs-time",
        &time,
        "-p",
        format!("/{META_DIR} D {time} 0755 0 0")
    ];
    for (name, data) in meta {
        let file = dir.join(name);
        std::fs::write(&file, data).with_context(|| format!("write {}", file.display()))?;
        args.push("-p".into());
        args.push(
            format!(
                "/{META_DIR}/{name} F {time} 0644 0 0 cat {}",
                shell_quote(&file.to_string_lossy())
            )
            .into(),
        );
    }
    Runner::new().run(&args).map_err(|e| {
        anyhow::Error::new(e).context(format!("build the squashfs image {}", out.display()))
    })?;
    let len = std::fs::metadata(out)
        .with_context(|| format!("stat {}", out.display()))?
        .len();
    Ok(len)
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A squashfs image mounted read-only in a private directory; unmounted and
/// removed on drop.
pub struct Mounted {
    /// Where the image is mounted.
    pub dir: PathBuf,
}

impl Mounted {
    /// Mounts `image` (read-only, by a loop device the kernel frees on unmount).
    pub fn mount(image: &Path) -> Result<Mounted> {
        let dir = std::env::temp_dir().join(format!("sidus-import.{}.mnt", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mounted = Runner::new().run(&argv![
            "mount",
            "-t",
            "squashfs",
            "-o",
            "ro,loop,nodev,nosuid",
            image,
            &dir
        ]);
        if let Err(e) = mounted {
            let _ = std::fs::remove_dir(&dir);
            return Err(anyhow::Error::new(e)
                .context(format!("mount the squashfs image {}", image.display())));
        }
        Ok(Mounted { dir })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = Runner::new().run(&argv!["umount", &self.dir]) {
            log::warn!("could not unmount {}: {e}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
