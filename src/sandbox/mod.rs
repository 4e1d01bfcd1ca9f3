//! The sandbox a `sidus run` command runs in: new mount, PID, IPC and UTS
//! namespaces (and network, with `--network none`) with private propagation,
//! fresh API file systems whose host-kernel knobs are read-only or masked, the
//! tree as the root, fewer capabilities, a clean environment. When the command
//! exits, its PID namespace (and so every process it left) and its mount
//! namespace (and so every mount) go away.
//!
//! The order of operations is written once, in [`enter_namespaces`] and
//! [`build_root`], against the small [`Sys`] trait; the real implementation is in
//! `mounts.rs` and a recording fake in the tests below.

pub mod access;
pub mod caps;
pub mod exec;
pub mod mounts;
pub mod namespace;
pub mod paths;
pub mod purge;
pub mod wrappers;

use anyhow::{Context, Result};
use paths::TreeRoot;
use rustix::mount::MountFlags;
use std::path::PathBuf;

pub use access::{Access, Network};
pub use namespace::{run, Outcome};

/// Directories every run mounts a file system on.
pub const MOUNT_POINTS: [&str; 5] = ["proc", "sys", "dev", "run", "tmp"];

/// What stays read-only under the fresh /proc: the knobs that change the host
/// kernel (sysctl, SysRq, IRQ affinity, buses, file system tunables), as
/// systemd-nspawn and podman leave them. Paths a kernel lacks are skipped.
pub const READ_ONLY: [&str; 6] = [
    "proc/sys",
    "proc/sysrq-trigger",
    "proc/irq",
    "proc/bus",
    "proc/fs",
    "proc/apm",
];

/// What is hidden (files by /dev/null, directories by an empty read-only
/// tmpfs, as runc does): the union of what nspawn and podman mask.
pub const MASKED: [&str; 12] = [
    "proc/kcore",
    "proc/keys",
    "proc/kallsyms",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/latency_stats",
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// The PATH commands get.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the command gets the host's name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolv {
    /// The tree's `etc/resolv.conf` is a regular file: bind the host's over it,
    /// read-only, inside the namespace only.
    BindOver,
    /// It links into `/run` (systemd-resolved, resolvconf): write the host's
    /// content at this in-tree path, which lies in the run's own tmpfs `/run`.
    InRun(String),
    /// Leave it alone, for this reason.
    Off(String),
}

/// Everything the sandbox needs to know, decided before anything is forked.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Name resolution.
    pub resolv: Resolv,
    /// The host's resolv.conf, and its content for [`Resolv::InRun`].
    pub host_resolv: (PathBuf, Vec<u8>),
    /// The network and capabilities of the command.
    pub access: Access,
}

/// The clean environment of a run (`env -i` plus these): nothing of the admin's
/// shell leaks into maintainer scripts; TMPDIR in particular stays unset.
pub fn clean_env(term: Option<String>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", PATH),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("container", "sidus"),
        ("HISTFILE", "/dev/null"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(term) = term.filter(|t| !t.is_empty()) {
        env.push(("TERM".into(), term));
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Decides how name resolution reaches the command, from the tree's
/// `etc/resolv.conf` (never followed out of the tree, never written).
pub fn plan_resolv(root: &TreeRoot, host_has_one: bool) -> Result<Resolv> {
    if !host_has_one {
        return Ok(Resolv::Off("the host has no /etc/resolv.conf".into()));
    }
    let Some(st) = root.lstat("etc/resolv.conf")? else {
        return Ok(Resolv::Off(
            "the tree has no etc/resolv.conf (create an empty one to get the host's during runs)"
                .into(),
        ));
    };
    use rustix::fs::FileType;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(Resolv::BindOver),
        FileType::Symlink => {
            let (dir, _) = root.parent("etc/resolv.conf")?;
            let target =
                rustix::fs::readlinkat(&dir, "resolv.conf", Vec::new()).with_context(|| {
                    format!("read the link etc/resolv.conf in {}", root.path().display())
                })?;
            let target = target.to_string_lossy().into_owned();
            let inside = paths::lexical_in_root("etc", &target);
            if inside.starts_with("run/") {
                Ok(Resolv::InRun(inside))
            } else {
                Ok(Resolv::Off(format!(
                    "etc/resolv.conf links to {target}, outside /run: left as it is"
                )))
            }
        }
        _ => Ok(Resolv::Off("etc/resolv.conf is not a file".into())),
    }
}

/// The operations the sandbox is built from; paths are relative to the tree.
pub trait Sys {
    /// New mount, IPC and UTS namespaces (and network, when `network`) for
    /// this process; a new PID namespace for its next child.
    fn unshare_namespaces(&mut self, network: bool) -> Result<()>;
    /// Brings up `lo` in this process's (new) network namespace.
    fn loopback_up(&mut self) -> Result<()>;
    /// Mount propagation private from `/` down: the host sees none of our mounts.
    fn make_private(&mut self) -> Result<()>;
    /// Binds the tree onto itself, so it can become the namespace's root.
    fn bind_root(&mut self) -> Result<()>;
    /// Creates the directory `rel` when it is missing.
    fn ensure_dir(&mut self, rel: &str) -> Result<()>;
    /// Mounts a new `fstype` on the directory `rel`.
    fn mount(&mut self, fstype: &str, rel: &str, flags: MountFlags, data: &str) -> Result<()>;
    /// Binds a host file read-only over the regular file `rel`.
    fn bind_file_ro(&mut self, host: &std::path::Path, rel: &str) -> Result<()>;
    /// Binds `rel` (a file or a directory) onto itself, read-only; nothing
    /// when it does not exist.
    fn bind_self_ro(&mut self, rel: &str) -> Result<()>;
    /// Hides `rel`: a file under the run's `dev/null`, a directory under an
    /// empty read-only tmpfs; nothing when it does not exist.
    fn mask(&mut self, rel: &str) -> Result<()>;
    /// Makes a character device node.
    fn mknod_char(&mut self, rel: &str, mode: u32, major: u32, minor: u32) -> Result<()>;
    /// Makes a symlink.
    fn symlink(&mut self, target: &str, rel: &str) -> Result<()>;
    /// Makes a directory with `mode` (in a file system the sandbox mounted).
    fn mkdir(&mut self, rel: &str, mode: u32) -> Result<()>;
    /// Writes a new file (in a file system the sandbox mounted).
    fn write_new(&mut self, rel: &str, mode: u32, contents: &[u8]) -> Result<()>;
    /// Makes the tree the root (`pivot_root`) and detaches the host's tree.
    fn enter_root(&mut self) -> Result<()>;
    /// Keeps only `keep` of this process's capabilities, in every set, and
    /// sets `no_new_privs`: what the command and its children inherit.
    fn restrict(&mut self, keep: caps::CapSet) -> Result<()>;
}

/// Step one, in the sandbox's first process: the namespaces.
pub fn enter_namespaces(sys: &mut dyn Sys, network: Network) -> Result<()> {
    let own_network = network == Network::None;
    sys.unshare_namespaces(own_network)?;
    // Before any mount: with shared propagation (systemd's default) our
    // mounts would appear on the host.
    sys.make_private()?;
    if own_network {
        // A new network namespace has `lo`, down.
        sys.loopback_up()?;
    }
    Ok(())
}

/// Step two, in PID 1 of the new namespace: the tree's root file system.
pub fn build_root(sys: &mut dyn Sys, spec: &Spec) -> Result<()> {
    let nosuid_nodev = MountFlags::NOSUID | MountFlags::NODEV;
    let noexec = nosuid_nodev | MountFlags::NOEXEC;
    sys.bind_root()?;
    for dir in MOUNT_POINTS {
        sys.ensure_dir(dir)?;
    }
    sys.mount("proc", "proc", noexec, "")?;
    sys.mount("sysfs", "sys", noexec | MountFlags::RDONLY, "")?;
    sys.mount(
        "tmpfs",
        "dev",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "mode=755,size=1m",
    )?;
    for (name, minor) in [
        ("null", 3),
        ("zero", 5),
        ("full", 7),
        ("random", 8),
        ("urandom", 9),
    ] {
        sys.mknod_char(&format!("dev/{name}"), 0o666, 1, minor)?;
    }
    sys.mknod_char("dev/tty", 0o666, 5, 0)?;
    sys.mkdir("dev/pts", 0o755)?;
    // A new devpts instance, never the host's (Debian #856877).
    sys.mount(
        "devpts",
        "dev/pts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "newinstance,ptmxmode=0666,mode=620,gid=5",
    )?;
    sys.symlink("pts/ptmx", "dev/ptmx")?;
    sys.mkdir("dev/shm", 0o1777)?;
    sys.mount("tmpfs", "dev/shm", nosuid_nodev, "mode=1777")?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        sys.symlink(target, &format!("dev/{name}"))?;
    }
    // /dev/null exists now, to mask files with.
    for rel in READ_ONLY {
        sys.bind_self_ro(rel)?;
    }
    for rel in MASKED {
        sys.mask(rel)?;
    }
    sys.mount("tmpfs", "run", nosuid_nodev, "mode=755")?;
    sys.mkdir("run/lock", 0o1777)?;
    sys.mount("tmpfs", "tmp", nosuid_nodev, "mode=1777")?;
    match &spec.resolv {
        Resolv::BindOver => sys.bind_file_ro(&spec.host_resolv.0, "etc/resolv.conf")?,
        Resolv::InRun(rel) => {
            let (dir, _) = paths::split(rel);
            let mut done = String::from("run");
            for comp in dir.split('/').skip(1).filter(|c| !c.is_empty()) {
                done = format!("{done}/{comp}");
                sys.mkdir(&done, 0o755)?;
            }
            sys.write_new(rel, 0o644, &spec.host_resolv.1)?;
        }
        Resolv::Off(_) => {}
    }
    sys.enter_root()?;
    // Last: building the root needed CAP_SYS_ADMIN, and nothing the command
    // can reach may keep more than it has.
    sys.restrict(spec.access.kept())
}

#[cfg(test)]
mod order_tests;
