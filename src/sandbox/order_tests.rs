//! The sandbox's order of operations, checked against a recording [`Sys`]
//! without root; the real thing is proven by the root tests.

use super::caps::{Cap, CapSet};
use super::*;

/// Records each operation as one line.
#[derive(Default)]
struct Recorder(Vec<String>);

impl Sys for Recorder {
    fn unshare_namespaces(&mut self, network: bool) -> Result<()> {
        let net = if network { ",net" } else { "" };
        self.0.push(format!("unshare mnt,pid,ipc,uts{net}"));
        Ok(())
    }
    fn loopback_up(&mut self) -> Result<()> {
        self.0.push("lo up".into());
        Ok(())
    }
    fn make_private(&mut self) -> Result<()> {
        self.0.push("private /".into());
        Ok(())
    }
    fn bind_root(&mut self) -> Result<()> {
        self.0.push("bind-root".into());
        Ok(())
    }
    fn ensure_dir(&mut self, rel: &str) -> Result<()> {
        self.0.push(format!("ensure {rel}"));
        Ok(())
    }
    fn mount(&mut self, fstype: &str, rel: &str, flags: MountFlags, _: &str) -> Result<()> {
        let ro = if flags.contains(MountFlags::RDONLY) {
            " ro"
        } else {
            ""
        };
        self.0.push(format!("mount {fstype} {rel}{ro}"));
        Ok(())
    }
    fn bind_file_ro(&mut self, host: &std::path::Path, rel: &str) -> Result<()> {
        self.0.push(format!("bind-ro {} {rel}", host.display()));
        Ok(())
    }
    fn bind_self_ro(&mut self, rel: &str) -> Result<()> {
        self.0.push(format!("ro {rel}"));
        Ok(())
    }
    fn mask(&mut self, rel: &str) -> Result<()> {
        self.0.push(format!("mask {rel}"));
        Ok(())
    }
    fn mknod_char(&mut self, rel: &str, _: u32, _: u32, _: u32) -> Result<()> {
        self.0.push(format!("mknod {rel}"));
        Ok(())
    }
    fn symlink(&mut self, target: &str, rel: &str) -> Result<()> {
        self.0.push(format!("symlink {rel} -> {target}"));
        Ok(())
    }
    fn mkdir(&mut self, rel: &str, _: u32) -> Result<()> {
        self.0.push(format!("mkdir {rel}"));
        Ok(())
    }
    fn write_new(&mut self, rel: &str, _: u32, _: &[u8]) -> Result<()> {
        self.0.push(format!("write {rel}"));
        Ok(())
    }
    fn enter_root(&mut self) -> Result<()> {
        self.0.push("pivot-root".into());
        Ok(())
    }
    fn restrict(&mut self, keep: CapSet) -> Result<()> {
        self.0.push(format!("restrict {:#x}", keep.0));
        Ok(())
    }
}

fn spec(resolv: Resolv) -> Spec {
    Spec {
        argv: vec!["true".into()],
        env: clean_env(None, &[]),
        resolv,
        host_resolv: (
            "/etc/resolv.conf".into(),
            b"nameserver 192.0.2.1\n".to_vec(),
        ),
        access: Access::default(),
    }
}

fn position(ops: &[String], op: &str) -> usize {
    ops.iter()
        .position(|o| o == op)
        .unwrap_or_else(|| panic!("no `{op}` in {ops:#?}"))
}

#[test]
fn propagation_is_private_before_any_mount_and_root_changes_last() {
    let mut r = Recorder::default();
    enter_namespaces(&mut r, Network::Host).unwrap();
    build_root(&mut r, &spec(Resolv::BindOver)).unwrap();
    let ops = r.0;
    assert_eq!(ops[..2], ["unshare mnt,pid,ipc,uts", "private /"]);
    let first_mount = ops
        .iter()
        .position(|o| o.starts_with("mount") || o.starts_with("bind"))
        .unwrap();
    assert!(first_mount > 1);
    // Mount points exist before they are mounted on; sys is read-only.
    for dir in MOUNT_POINTS {
        assert!(position(&ops, &format!("ensure {dir}")) < first_mount + 6);
    }
    assert!(ops.contains(&"mount sysfs sys ro".to_string()));
    // devpts goes on the new /dev, after its directory exists; ptmx points into it.
    assert!(position(&ops, "mount tmpfs dev") < position(&ops, "mkdir dev/pts"));
    assert!(position(&ops, "mkdir dev/pts") < position(&ops, "mount devpts dev/pts"));
    assert!(ops.contains(&"symlink dev/ptmx -> pts/ptmx".to_string()));
    assert!(position(&ops, "mount tmpfs run") < position(&ops, "mkdir run/lock"));
    assert!(
        position(&ops, "bind-ro /etc/resolv.conf etc/resolv.conf") < position(&ops, "pivot-root")
    );
    // The capabilities go last of all, after the mounts that needed them.
    assert_eq!(ops[ops.len() - 2], "pivot-root");
    assert_eq!(
        ops.last().unwrap(),
        &format!("restrict {:#x}", CapSet::default_kept().0)
    );
    // The host's network: no namespace of its own, lo left alone.
    assert!(!ops.contains(&"lo up".to_string()));
}

#[test]
fn host_kernel_knobs_under_proc_and_sys_are_read_only_or_masked_before_the_root_changes() {
    let mut r = Recorder::default();
    build_root(&mut r, &spec(Resolv::Off("none".into()))).unwrap();
    let ops = r.0;
    let proc = position(&ops, "mount proc proc");
    let sys = position(&ops, "mount sysfs sys ro");
    let null = position(&ops, "mknod dev/null");
    let pivot = position(&ops, "pivot-root");
    for rel in [
        "proc/sys",
        "proc/sysrq-trigger",
        "proc/irq",
        "proc/bus",
        "proc/fs",
    ] {
        let at = position(&ops, &format!("ro {rel}"));
        assert!(proc < at && at < pivot, "{rel}: {ops:#?}");
    }
    for rel in [
        "proc/kcore",
        "proc/keys",
        "proc/kallsyms",
        "proc/timer_list",
        "proc/sched_debug",
        "proc/latency_stats",
        "proc/acpi",
        "proc/scsi",
    ] {
        // Files are masked with the run's own /dev/null: it must exist first.
        let at = position(&ops, &format!("mask {rel}"));
        assert!(proc < at && null < at && at < pivot, "{rel}: {ops:#?}");
    }
    let fw = position(&ops, "mask sys/firmware");
    assert!(sys < fw && fw < pivot);
}

#[test]
fn network_none_unshares_the_network_and_brings_up_lo_before_any_mount() {
    let mut r = Recorder::default();
    enter_namespaces(&mut r, Network::None).unwrap();
    let mut s = spec(Resolv::BindOver);
    s.access = Access {
        network: Network::None,
        capabilities: vec!["CAP_SYS_TIME".parse().unwrap()],
    };
    build_root(&mut r, &s).unwrap();
    let ops = r.0;
    assert_eq!(
        ops[..3],
        ["unshare mnt,pid,ipc,uts,net", "private /", "lo up"]
    );
    // In its own network it may configure it; an added capability is kept.
    let keep = CapSet::default_kept()
        .with(Cap::NET_ADMIN)
        .with("CAP_SYS_TIME".parse().unwrap());
    assert_eq!(ops.last().unwrap(), &format!("restrict {:#x}", keep.0));
}

#[test]
fn resolv_conf_linking_into_run_is_written_in_the_runs_own_tmpfs() {
    let mut r = Recorder::default();
    build_root(
        &mut r,
        &spec(Resolv::InRun("run/systemd/resolve/stub-resolv.conf".into())),
    )
    .unwrap();
    let ops = r.0;
    let run = position(&ops, "mount tmpfs run");
    let a = position(&ops, "mkdir run/systemd");
    let b = position(&ops, "mkdir run/systemd/resolve");
    let w = position(&ops, "write run/systemd/resolve/stub-resolv.conf");
    assert!(run < a && a < b && b < w, "{ops:#?}");
    assert!(!ops.iter().any(|o| o.starts_with("bind-ro ")));
}

#[test]
fn resolv_conf_off_touches_nothing_in_etc() {
    let mut r = Recorder::default();
    build_root(&mut r, &spec(Resolv::Off("none".into()))).unwrap();
    assert!(!r.0.iter().any(|o| o.contains("resolv")), "{:#?}", r.0);
}

#[test]
fn environment_is_clean_and_complete() {
    let env = clean_env(Some("xterm".into()), &[("debian_chroot", "sidus:lab")]);
    let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "DEBIAN_FRONTEND",
            "container",
            "HISTFILE",
            "TERM",
            "debian_chroot"
        ]
    );
    assert!(!keys.contains(&"TMPDIR"));
    assert_eq!(clean_env(None, &[]).len(), 7);
}
