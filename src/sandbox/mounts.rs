//! The real [`Sys`]: mounts made on file descriptors from [`TreeRoot`], never on
//! path strings built from the tree; and, on the host side, the second line of
//! defence: mounts and processes left in a tree, found from the kernel's own lists.

use super::paths::{self, fd_path, TreeRoot};
use super::Sys;
use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The sandbox's operations on the real kernel.
pub struct RealSys<'a> {
    tree: &'a TreeRoot,
    /// The tree reopened after it was bound onto itself: paths resolved from it
    /// see the mounts the sandbox makes.
    bound: Option<TreeRoot>,
}

impl<'a> RealSys<'a> {
    /// Operations on `tree`.
    pub fn new(tree: &'a TreeRoot) -> RealSys<'a> {
        RealSys { tree, bound: None }
    }

    fn root(&self) -> &TreeRoot {
        self.bound.as_ref().unwrap_or(self.tree)
    }

    fn in_tree(&self, rel: &str) -> String {
        format!("{}/{rel}", self.tree.path().display())
    }
}

impl Sys for RealSys<'_> {
    fn unshare_namespaces(&mut self, network: bool) -> Result<()> {
        let mut flags = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS;
        if network {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        nix::sched::unshare(flags).with_context(|| {
            let net = if network { ", network" } else { "" };
            format!("unshare mount, PID, IPC, UTS{net} namespaces")
        })
    }

    fn loopback_up(&mut self) -> Result<()> {
        super::access::loopback_up()
    }

    fn make_private(&mut self) -> Result<()> {
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .context("make mount propagation private")
    }

    fn bind_root(&mut self) -> Result<()> {
        // The handle sidus opened belongs to the host's mount namespace, where
        // the kernel refuses to bind; reopen the tree in ours and check that it
        // is still the same directory.
        let here = TreeRoot::open(self.tree.path())?;
        same_dir(self.tree, &here)?;
        let fd = here.fd();
        rustix::mount::mount_bind(fd_path(&fd), fd_path(&fd))
            .with_context(|| format!("bind {} onto itself", self.tree.path().display()))?;
        let bound = TreeRoot::open(self.tree.path())?;
        same_dir(self.tree, &bound)?;
        self.bound = Some(bound);
        Ok(())
    }

    fn ensure_dir(&mut self, rel: &str) -> Result<()> {
        match self.root().lstat(rel)? {
            None => self.root().mkdir_all(rel, 0o755).map(drop),
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(()),
            Some(st) => {
                let what = match FileType::from_raw_mode(st.st_mode) {
                    FileType::Symlink => "it is a symlink",
                    _ => "it is not a directory",
                };
                bail!(
                    "refusing to mount on {rel} in {}: {what}; a mount point must be a real directory inside the tree",
                    self.tree.path().display()
                )
            }
        }
    }

    fn mount(&mut self, fstype: &str, rel: &str, flags: MountFlags, data: &str) -> Result<()> {
        let target = self.root().mount_point(rel)?;
        let data = CString::new(data).expect("no NUL in mount options");
        rustix::mount::mount(
            fstype,
            fd_path(&target),
            fstype,
            flags,
            Some(data.as_c_str()),
        )
        .with_context(|| format!("mount {fstype} on {}", self.in_tree(rel)))
    }

    fn bind_file_ro(&mut self, host: &Path, rel: &str) -> Result<()> {
        let target = self.root().file_mount_point(rel)?;
        let at = fd_path(&target);
        rustix::mount::mount_bind(host, &at)
            .with_context(|| format!("bind {} over {}", host.display(), self.in_tree(rel)))?;
        // The bind mount now covers the descriptor's file: remount it through the
        // path the kernel resolves to the new top mount.
        let top = self.root().file_mount_point(rel)?;
        rustix::mount::mount_remount(
            fd_path(&top),
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
            c"",
        )
        .with_context(|| format!("make {} read-only", self.in_tree(rel)))
    }

    fn bind_self_ro(&mut self, rel: &str) -> Result<()> {
        if self.root().lstat(rel)?.is_none() {
            return Ok(());
        }
        let here = self.root().no_link_handle(rel)?;
        rustix::mount::mount_bind(fd_path(&here), fd_path(&here))
            .with_context(|| format!("bind {} onto itself", self.in_tree(rel)))?;
        // The old handle still names the file below the new mount: remount
        // through a new one, which the kernel resolves to the top mount.
        let top = self.root().no_link_handle(rel)?;
        rustix::mount::mount_remount(
            fd_path(&top),
            MountFlags::BIND
                | MountFlags::RDONLY
                | MountFlags::NOSUID
                | MountFlags::NODEV
                | MountFlags::NOEXEC,
            c"",
        )
        .with_context(|| format!("make {} read-only", self.in_tree(rel)))
    }

    fn mask(&mut self, rel: &str) -> Result<()> {
        let Some(st) = self.root().lstat(rel)? else {
            return Ok(());
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => self.mount(
                "tmpfs",
                rel,
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                "mode=555",
            ),
            _ => {
                let null = self.root().no_link_handle("dev/null")?;
                let target = self.root().no_link_handle(rel)?;
                rustix::mount::mount_bind(fd_path(&null), fd_path(&target))
                    .with_context(|| format!("mask {} with /dev/null", self.in_tree(rel)))
            }
        }
    }

    fn mknod_char(&mut self, rel: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
        let (dir, name) = self.root().parent(rel)?;
        rfs::mknodat(
            &dir,
            name.as_str(),
            FileType::CharacterDevice,
            Mode::from_raw_mode(mode),
            rfs::makedev(major, minor),
        )
        .with_context(|| format!("mknod {}", self.in_tree(rel)))?;
        // mknod honours the umask; device nodes need their exact mode.
        rfs::chmodat(
            &dir,
            name.as_str(),
            Mode::from_raw_mode(mode),
            rfs::AtFlags::empty(),
        )
        .with_context(|| format!("chmod {}", self.in_tree(rel)))
    }

    fn symlink(&mut self, target: &str, rel: &str) -> Result<()> {
        let (dir, name) = self.root().parent(rel)?;
        rfs::symlinkat(target, &dir, name.as_str())
            .with_context(|| format!("symlink {}", self.in_tree(rel)))
    }

    fn mkdir(&mut self, rel: &str, mode: u32) -> Result<()> {
        let (dir, name) = self.root().parent(rel)?;
        match rfs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(mode)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", self.in_tree(rel))),
        }
        let fd = self
            .root()
            .open_no_links(rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)?;
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))
            .with_context(|| format!("chmod {}", self.in_tree(rel)))
    }

    fn write_new(&mut self, rel: &str, mode: u32, contents: &[u8]) -> Result<()> {
        let (dir, name) = self.root().parent(rel)?;
        paths::create_new(&dir, &name, mode, contents)
            .with_context(|| format!("write {}", self.in_tree(rel)))
    }

    fn enter_root(&mut self) -> Result<()> {
        let root = self.root();
        rustix::process::fchdir(root.fd()).context("enter the tree")?;
        // pivot_root(".", "."): the host's root ends up under the new one and is
        // detached at once, so nothing in the sandbox can reach the host's files.
        match rustix::process::pivot_root(".", ".") {
            Ok(()) => {
                rustix::mount::unmount(".", UnmountFlags::DETACH)
                    .context("detach the host's root")?;
            }
            // The host runs from an initramfs (rootfs cannot be pivoted away):
            // move the tree over / and chroot, as switch_root does.
            Err(rustix::io::Errno::INVAL) => {
                rustix::mount::mount_move(".", "/").context("move the tree onto /")?;
                rustix::process::chroot(".").context("chroot into the tree")?;
            }
            Err(e) => return Err(e).context("pivot_root into the tree"),
        }
        rustix::process::chdir("/").context("chdir /")
    }

    fn restrict(&mut self, keep: super::caps::CapSet) -> Result<()> {
        super::caps::restrict(keep)
    }
}

fn same_dir(a: &TreeRoot, b: &TreeRoot) -> Result<()> {
    let (x, y) = (a.stat()?, b.stat()?);
    if (x.st_dev, x.st_ino) != (y.st_dev, y.st_ino) {
        bail!(
            "{} changed while the sandbox was being built",
            a.path().display()
        );
    }
    Ok(())
}

/// Mount points at or below `dir` in this process's mount table, deepest first.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    Ok(found)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&sidus_backends::unescape_mountinfo(s)).into_owned()
}

/// Unmounts every mount below `dir`, deepest first; never lazily: what cannot
/// be unmounted is reported. Returns what was unmounted.
pub fn unmount_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    for m in mounts_under(dir)?.into_iter().filter(|m| m != dir) {
        rustix::mount::unmount(&m, UnmountFlags::NOFOLLOW)
            .with_context(|| format!("unmount {} (left under the tree)", m.display()))?;
        done.push(m);
    }
    Ok(done)
}

/// PIDs of processes whose root directory is on the tree's file system (the
/// sandbox's processes, and anything chrooted into the tree by hand).
pub fn processes_rooted_in(tree: &TreeRoot) -> Result<Vec<i32>> {
    let dev = tree.stat()?.st_dev;
    let me = std::process::id() as i32;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process that exits meanwhile is simply not listed.
        if let Ok(st) = rfs::stat(format!("/proc/{pid}/root")) {
            if st.st_dev == dev {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// Ends the processes rooted in the tree: SIGTERM, up to `grace` to exit, then
/// SIGKILL. Returns the PIDs it had to signal.
pub fn kill_rooted(tree: &TreeRoot, grace: Duration) -> Result<Vec<i32>> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let first = processes_rooted_in(tree)?;
    if first.is_empty() {
        return Ok(first);
    }
    for &pid in &first {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let start = Instant::now();
    loop {
        let left = processes_rooted_in(tree)?;
        if left.is_empty() {
            return Ok(first);
        }
        if start.elapsed() >= grace {
            for &pid in &left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
            let stuck = processes_rooted_in(tree)?;
            if !stuck.is_empty() {
                bail!(
                    "processes {stuck:?} still have their root in {} after SIGKILL",
                    tree.path().display()
                );
            }
            return Ok(first);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/srv/with\040space"), "/srv/with space");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }

    #[test]
    fn mounts_under_lists_proc_itself() {
        let m = mounts_under(Path::new("/proc")).unwrap();
        assert!(m.contains(&PathBuf::from("/proc")), "{m:?}");
    }
}
