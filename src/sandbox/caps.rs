//! The capabilities a run's command keeps. A package script runs as root but
//! must not reach the host kernel: it keeps what systemd-nspawn keeps by
//! default (nspawn.c `arg_caps_retain`) minus `CAP_SYS_BOOT`,
//! `CAP_AUDIT_CONTROL` and `CAP_DAC_READ_SEARCH`, and everything else
//! (`CAP_SYS_MODULE`, `CAP_SYS_TIME`, `CAP_SYS_RAWIO`, `CAP_NET_ADMIN` on the
//! host's network, capabilities newer kernels add...) is dropped from the
//! bounding, ambient, inheritable, permitted and effective sets before it runs.
//! `--capability` adds one back for a run.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::str::FromStr;

/// The kernel's capability names, by number (linux/capability.h, 6.x).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// What a run's command keeps, by name. Why each one: files of any owner and
/// mode (dpkg unpacking, chown/chmod in postinst: CHOWN, DAC_OVERRIDE, FOWNER,
/// FSETID, SETFCAP, LINUX_IMMUTABLE); dropping to system users (SETUID,
/// SETGID, SETPCAP, AUDIT_WRITE for PAM); device nodes in the run's /dev
/// (MKNOD); their own mounts and chroots inside the namespaces (SYS_ADMIN,
/// SYS_CHROOT); and what only reaches the run's own processes, IPC and
/// sockets (KILL, SYS_PTRACE, SYS_NICE, SYS_RESOURCE, IPC_OWNER, LEASE,
/// SYS_TTY_CONFIG, NET_BIND_SERVICE, NET_BROADCAST, NET_RAW).
///
/// Left out although nspawn keeps them: SYS_BOOT (no script needs reboot(2)),
/// AUDIT_CONTROL (the host's audit rules), DAC_READ_SEARCH (DAC_OVERRIDE
/// already reads everything; it only adds open_by_handle_at(2), which opens
/// any file of the store's file system past the mount namespace: Docker drops
/// it for that reason).
const KEPT: [&str; 23] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_IPC_OWNER",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_ADMIN",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// One capability, by its kernel number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cap(u8);

impl Cap {
    /// `CAP_NET_ADMIN`: kept when the run has its own, empty, network.
    pub const NET_ADMIN: Cap = Cap(12);

    /// Its number.
    pub fn number(self) -> u32 {
        self.0.into()
    }
}

impl FromStr for Cap {
    type Err = String;

    /// `CAP_SYS_TIME`, `cap_sys_time` or `SYS_TIME`.
    fn from_str(s: &str) -> Result<Cap, String> {
        let up = s.trim().to_ascii_uppercase();
        let full = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        match NAMES.iter().position(|n| *n == full) {
            Some(i) => Ok(Cap(i as u8)),
            None => Err(format!(
                "unknown capability '{s}' (one of the names in capabilities(7), e.g. CAP_SYS_TIME)"
            )),
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(NAMES[usize::from(self.0)])
    }
}

/// A set of capabilities: bit N is capability N, as the kernel's masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// What every run keeps (see [`KEPT`]).
    pub fn default_kept() -> CapSet {
        CapSet(
            KEPT.iter()
                .map(|n| 1u64 << n.parse::<Cap>().expect("a known name").0)
                .fold(0, |a, b| a | b),
        )
    }

    /// This set with `cap` in it.
    pub fn with(self, cap: Cap) -> CapSet {
        CapSet(self.0 | 1 << cap.0)
    }

    /// Whether the capability numbered `n` is in the set.
    pub fn has(self, n: u32) -> bool {
        n < 64 && self.0 & (1 << n) != 0
    }

    /// The names of the known capabilities in the set, in kernel order.
    pub fn names(self) -> Vec<String> {
        (0..NAMES.len())
            .filter(|&i| self.has(i as u32))
            .map(|i| NAMES[i].to_string())
            .collect()
    }
}

/// Reduces this process to `keep`, for good: out of the bounding set (so no
/// exec of anything, setuid-root or not, gets the rest back) and the ambient
/// set first, then out of the inheritable, permitted and effective sets. Then
/// sets `no_new_privs`. Run in the sandbox's PID 1 before it starts the
/// command, so that no process the command can reach holds more.
pub fn restrict(keep: CapSet) -> Result<()> {
    use rustix::io::Errno;
    use rustix::thread::{self as th, CapabilitySet, CapabilitySets};
    for n in 0..64u32 {
        if keep.has(n) {
            continue;
        }
        match th::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << n)) {
            Ok(()) => {}
            // Above the kernel's last capability.
            Err(Errno::INVAL) => break,
            Err(e) => {
                return Err(e).with_context(|| format!("drop capability {n} from the bounding set"))
            }
        }
    }
    th::clear_ambient_capability_set().context("clear the ambient capabilities")?;
    let now = th::capabilities(None).context("read the capabilities")?;
    let k = CapabilitySet::from_bits_retain(keep.0);
    th::set_capabilities(
        None,
        CapabilitySets {
            effective: now.effective & k,
            permitted: now.permitted & k,
            inheritable: now.inheritable & k,
        },
    )
    .context("drop capabilities")?;
    th::set_no_new_privs(true).context("set no_new_privs")?;
    let left = th::capabilities(None)?;
    if left.effective.bits() & !keep.0 != 0 {
        bail!(
            "capabilities left after dropping them: {:#x}",
            left.effective.bits()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_kernels_numbers() {
        // rustix's constants come from the kernel headers.
        for (i, name) in NAMES.iter().enumerate() {
            let bits = rustix::thread::CapabilitySet::from_name(&name[4..])
                .unwrap_or_else(|| panic!("{name}"))
                .bits();
            assert_eq!(bits, 1 << i, "{name}");
        }
    }

    #[test]
    fn capabilities_parse_in_any_usual_spelling() {
        for s in ["CAP_SYS_TIME", "cap_sys_time", "SYS_TIME", " sys_time "] {
            assert_eq!(s.parse::<Cap>().unwrap().to_string(), "CAP_SYS_TIME");
        }
        let e = "CAP_SYS_TIMES".parse::<Cap>().unwrap_err();
        assert!(e.contains("unknown capability 'CAP_SYS_TIMES'"), "{e}");
        assert!("".parse::<Cap>().is_err());
    }

    #[test]
    fn the_default_keeps_what_package_scripts_need_and_not_the_host_kernel() {
        let kept = CapSet::default_kept();
        for need in [
            "CAP_CHOWN",
            "CAP_MKNOD",
            "CAP_SETUID",
            "CAP_SETGID",
            "CAP_SYS_ADMIN",
        ] {
            assert!(kept.names().contains(&need.to_string()), "{need}");
        }
        for host in [
            "CAP_SYS_MODULE",
            "CAP_SYS_BOOT",
            "CAP_SYS_TIME",
            "CAP_SYS_RAWIO",
            "CAP_MAC_ADMIN",
            "CAP_MAC_OVERRIDE",
            "CAP_SYSLOG",
            "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_CONTROL",
            "CAP_AUDIT_READ",
            "CAP_SYS_PACCT",
            "CAP_NET_ADMIN",
            "CAP_DAC_READ_SEARCH",
            "CAP_BPF",
            "CAP_PERFMON",
        ] {
            let cap: Cap = host.parse().unwrap();
            assert!(!kept.has(cap.number()), "{host}");
            assert!(kept.with(cap).has(cap.number()));
        }
        // Capabilities the kernel may add later are dropped too.
        assert!(!kept.has(41) && !kept.has(63) && !kept.has(64));
        assert_eq!(kept.names().len(), KEPT.len());
    }
}
