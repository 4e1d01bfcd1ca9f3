//! The host side effects publish needs besides the backend: mount checks,
//! exportfs, the server address, copying a kernel out of a snapshot.

use super::boot::Kernel;
use super::config::PublishConfig;
use anyhow::{bail, Context, Result};
use sidus_backends::{argv, Runner};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Whether nfsd's exports were re-synced with the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// `exportfs -ra` ran.
    Applied,
    /// nfsd is not running here (`sidus restore` before nfs-server starts): the
    /// file is written and nfs-server reads it when it starts.
    NfsdNotRunning,
    /// `apply_exports = false` in the config: only the file was written.
    Disabled,
}

impl Applied {
    /// A note for the admin when the exports were not applied.
    pub fn note(&self, file: &Path) -> Option<String> {
        match self {
            Applied::Applied => None,
            Applied::NfsdNotRunning => Some(format!(
                "nfsd is not running: exports written to {}; nfs-server reads them when it starts",
                file.display()
            )),
            Applied::Disabled => Some(format!(
                "exports written to {}, not applied (apply_exports = false in [publish])",
                file.display()
            )),
        }
    }
}

/// Whether the kernel NFS server is up (its control file system is mounted).
pub fn nfsd_running() -> bool {
    Path::new("/proc/fs/nfsd/exports").exists()
}

/// Where `exportfs` is, looking in PATH and the sbin directories a non-login
/// root shell may lack.
pub fn find_exportfs() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("exportfs"))
        .find(|p| p.is_file())
}

/// Refuses, before anything changes, a publish whose exports could not be
/// applied: nfsd not running or exportfs missing, unless `apply_exports = false`.
pub fn check_can_apply(cfg: &PublishConfig) -> Result<()> {
    if !cfg.apply_exports {
        return Ok(());
    }
    let hint = format!(
        "or set apply_exports = false in the [publish] section of the config to only write {}",
        cfg.exports_file.display()
    );
    if !nfsd_running() {
        bail!(
            "the NFS server is not running (/proc/fs/nfsd is not mounted), so exports cannot be applied: start it (systemctl start nfs-server), {hint}"
        );
    }
    if find_exportfs().is_none() {
        bail!("exportfs is not installed (package nfs-kernel-server), so exports cannot be applied: install it, {hint}");
    }
    Ok(())
}

/// Re-syncs the kernel's export table with /etc/exports and /etc/exports.d
/// (`exportfs -ra` adds new exports, keeps unchanged ones, drops removed ones).
/// Without a running nfsd that is not an error here: the caller checked with
/// [`check_can_apply`] where it matters, and `restore` runs before nfs-server.
pub fn apply_exports(cfg: &PublishConfig) -> Result<Applied> {
    if !cfg.apply_exports {
        return Ok(Applied::Disabled);
    }
    if !nfsd_running() {
        return Ok(Applied::NfsdNotRunning);
    }
    let exportfs = find_exportfs()
        .context("exportfs is not installed (package nfs-kernel-server): cannot apply exports")?;
    Runner::new()
        .run(&argv![exportfs, "-ra"])
        .with_context(|| format!("apply exports from {}", cfg.exports_file.display()))?;
    Ok(Applied::Applied)
}

/// Flushes nfsd's export caches so a just-unexported mount can be unmounted.
pub fn flush_exports() {
    if let (true, Some(exportfs)) = (nfsd_running(), find_exportfs()) {
        let _ = Runner::new().run(&argv![exportfs, "-f"]);
    }
}

/// Paths exported now, per nfs-utils' etab (what `exportfs -ra` last applied).
pub fn etab_paths() -> Option<Vec<String>> {
    let text = fs::read_to_string("/var/lib/nfs/etab").ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect(),
    )
}

/// Undoes the octal escapes of /proc/self/mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&sidus_backends::unescape_mountinfo(s)).into_owned()
}

/// Mount points listed in mountinfo text.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

/// Whether something is mounted exactly at `path`.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let text = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(mount_points(&text).iter().any(|m| m == path))
}

/// Whether the file system at `path` is mounted read-only.
pub fn is_read_only(path: &Path) -> Result<bool> {
    let st =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// This host's first global IPv4 address, for `publish.server`'s default.
pub fn default_server() -> Result<String> {
    let out = Runner::new()
        .run_string(&argv!["ip", "-4", "-o", "addr", "show", "scope", "global"])
        .context("find this host's address for boot entries")?;
    first_ipv4(&out).context(
        "this host has no global IPv4 address: set `server` in the [publish] section of the config to the address nodes reach it at",
    )
}

/// The first address in `ip -4 -o addr` output.
pub fn first_ipv4(ip_output: &str) -> Option<String> {
    ip_output.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        w.find(|x| *x == "inet")?;
        Some(w.next()?.split('/').next()?.to_string())
    })
}

/// Copies the kernel and initrd into `dir` (as `vmlinuz`, `initrd.img` and a
/// `kernel-version` file). Returns false when `dir` already holds them (a
/// snapshot never changes, so neither does its kernel). Copies go to a hidden
/// sibling first and are renamed into place whole.
pub fn copy_kernel(kernel: &Kernel, dir: &Path) -> Result<bool> {
    if dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file() {
        return Ok(false);
    }
    let parent = dir.parent().context("boot dir has a parent")?;
    // tftpd reads these as another user: 0755 and 0644, whatever the umask.
    crate::state::atomic::create_dir_all(parent)?;
    let name = dir
        .file_name()
        .context("boot dir has a name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.partial"));
    match fs::remove_dir_all(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", tmp.display()))
        }
        _ => {}
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let run = || -> Result<()> {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", tmp.display()))?;
        copy_no_follow(&kernel.vmlinuz, &tmp.join("vmlinuz"))?;
        copy_no_follow(&kernel.initrd, &tmp.join("initrd.img"))?;
        let mut v = new_file(&tmp.join("kernel-version"))?;
        v.write_all(format!("{}\n", kernel.version).as_bytes())
            .with_context(|| format!("write {}", tmp.display()))?;
        File::open(&tmp).and_then(|d| d.sync_all()).ok();
        fs::rename(&tmp, dir)
            .with_context(|| format!("rename {} to {}", tmp.display(), dir.display()))?;
        crate::state::atomic::sync_dir(parent)
    };
    run().inspect_err(|_| {
        let _ = fs::remove_dir_all(&tmp);
    })?;
    Ok(true)
}

fn copy_no_follow(from: &Path, to: &Path) -> Result<()> {
    let mut src = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .with_context(|| format!("open {}", from.display()))?;
    if !src.metadata()?.is_file() {
        bail!("{} is not a regular file", from.display());
    }
    let mut dst = new_file(to)?;
    std::io::copy(&mut src, &mut dst)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    dst.sync_all()
        .with_context(|| format!("sync {}", to.display()))
}

/// Creates `path`, mode 0644 whatever the umask.
fn new_file(path: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(f)
}

/// The kernel version recorded by [`copy_kernel`].
pub fn copied_kernel_version(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join("kernel-version"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    90 22 0:45 /snapshots/lab/X /srv/sidus/lab/X ro,relatime shared:50 - btrfs /dev/loop0 ro\n\
                    91 22 0:46 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        let m = mount_points(text);
        assert_eq!(
            m,
            [
                PathBuf::from("/"),
                "/srv/sidus/lab/X".into(),
                "/mnt/with space".into()
            ]
        );
    }

    #[test]
    fn first_ipv4_table() {
        let out = "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec\n3: eth1    inet 192.168.1.2/24 scope global eth1\n";
        assert_eq!(first_ipv4(out).as_deref(), Some("10.0.2.15"));
        assert_eq!(first_ipv4(""), None);
    }

    #[test]
    fn kernel_copy_is_whole_and_idempotent() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("vmlinuz-1"), "kernel").unwrap();
        fs::write(d.path().join("initrd.img-1"), "initrd").unwrap();
        let k = Kernel {
            version: "1".into(),
            vmlinuz: d.path().join("vmlinuz-1"),
            initrd: d.path().join("initrd.img-1"),
        };
        let dir = d.path().join("tftp/sidus/lab/ID");
        assert!(copy_kernel(&k, &dir).unwrap());
        assert!(!copy_kernel(&k, &dir).unwrap());
        assert_eq!(fs::read_to_string(dir.join("vmlinuz")).unwrap(), "kernel");
        assert_eq!(copied_kernel_version(&dir).as_deref(), Some("1"));
        assert!(!d.path().join("tftp/sidus/lab/.ID.partial").exists());
        let link = Kernel {
            vmlinuz: d.path().join("link"),
            ..k.clone()
        };
        std::os::unix::fs::symlink("/etc/passwd", &link.vmlinuz).unwrap();
        assert!(copy_kernel(&link, &d.path().join("tftp/sidus/lab/ID2")).is_err());
        assert!(!d.path().join("tftp/sidus/lab/ID2").exists());
    }
}
