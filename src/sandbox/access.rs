//! What of the host a run's command may reach besides the tree: the network
//! (the host's by default, since apt needs it) and capabilities beyond the
//! default set. Chosen per run on the command line, recorded in the run's
//! snapshots.

use super::caps::{Cap, CapSet};

/// The network a run's command sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Network {
    /// The host's interfaces, routes and name resolution.
    #[default]
    Host,
    /// A new, empty network namespace: only `lo`, up.
    None,
}

/// A run's departures from the default sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The network.
    pub network: Network,
    /// Capabilities added back to the default set, as given.
    pub capabilities: Vec<Cap>,
}

impl Access {
    /// The capabilities the command keeps. In its own empty network it keeps
    /// `CAP_NET_ADMIN` too, as nspawn does with `--private-network`: there it
    /// reaches only that namespace.
    pub fn kept(&self) -> CapSet {
        let base = match self.network {
            Network::Host => CapSet::default_kept(),
            Network::None => CapSet::default_kept().with(Cap::NET_ADMIN),
        };
        self.capabilities.iter().fold(base, |s, &c| s.with(c))
    }

    /// The options that made this access, as sidus's command line spells
    /// them (empty for the default): what the snapshots record.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.network == Network::None {
            flags.extend(["--network".to_string(), "none".to_string()]);
        }
        let mut caps = self.capabilities.clone();
        caps.sort();
        caps.dedup();
        for c in caps {
            flags.extend(["--capability".to_string(), c.to_string()]);
        }
        flags
    }

    /// `command` as a snapshot records it: with the options, when there are any.
    pub fn describe(&self, command: &str) -> String {
        describe(command, &self.flags())
    }
}

/// `command` run with `flags` (see [`Access::flags`]), as snapshots record it.
pub fn describe(command: &str, flags: &[String]) -> String {
    if flags.is_empty() {
        command.to_string()
    } else {
        format!("{command} (run with {})", flags.join(" "))
    }
}

/// Sets `IFF_UP` on `lo` in this process's network namespace.
pub(crate) fn loopback_up() -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket and ioctl calls on a zeroed ifreq that names "lo";
    // the descriptor is owned (and closed) by `sock`.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("open a socket to bring up lo");
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
            *d = *s as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error()).context("read the flags of lo");
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error()).context("bring up lo");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_access_leaves_the_command_as_it_is() {
        let a = Access::default();
        assert!(a.flags().is_empty());
        assert_eq!(
            a.describe("apt-get install -y hello"),
            "apt-get install -y hello"
        );
        assert_eq!(a.kept(), CapSet::default_kept());
    }

    #[test]
    fn added_capabilities_and_no_network_are_recorded_once_each() {
        let time: Cap = "sys_time".parse().unwrap();
        let a = Access {
            network: Network::None,
            capabilities: vec![time, "CAP_SYS_MODULE".parse().unwrap(), time],
        };
        assert_eq!(
            a.describe("date -s 2000-01-01"),
            "date -s 2000-01-01 (run with --network none --capability CAP_SYS_MODULE \
             --capability CAP_SYS_TIME)"
        );
        let kept = a.kept();
        assert!(kept.has(time.number()) && kept.has(Cap::NET_ADMIN.number()));
        assert!(!Access::default().kept().has(Cap::NET_ADMIN.number()));
    }
}
