//! Who holds an export: NFSv3 mounts from mountd's rmtab, NFSv4 clients from
//! /proc/fs/nfsd/clients (which does not say which export they use).

use std::path::Path;

/// Where rpc.mountd records NFSv3 mounts.
pub const RMTAB: &str = "/var/lib/nfs/rmtab";
/// Where nfsd lists NFSv4 clients, one directory each.
pub const NFSD_CLIENTS: &str = "/proc/fs/nfsd/clients";

/// Clients in rmtab text (`host:path:0xcount` lines) that mount `path`.
/// A count of 0 is a mount that was unmounted.
pub fn rmtab_clients(text: &str, path: &Path) -> Vec<String> {
    let want = path.to_string_lossy();
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (rest, count) = l.rsplit_once(':')?;
            let (host, p) = rest.split_once(':')?;
            let live =
                u64::from_str_radix(count.trim_start_matches("0x"), 16).map_or(true, |n| n > 0);
            (p == want && live).then(|| host.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// NFSv3 clients of `path` per rmtab; empty when there is no rmtab.
pub fn v3_clients(path: &Path) -> Vec<String> {
    std::fs::read_to_string(RMTAB)
        .map(|t| rmtab_clients(&t, path))
        .unwrap_or_default()
}

/// The `address:` of one `/proc/fs/nfsd/clients/N/info` file.
pub fn info_address(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("address:"))
        .map(|a| a.trim().trim_matches('"').to_string())
}

/// Addresses of connected NFSv4 clients (any export), when nfsd tells.
pub fn v4_clients() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NFSD_CLIENTS) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("info")).ok())
        .filter_map(|t| info_address(&t))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmtab_table() {
        let text = "127.0.0.1:/srv/sidus/lab/20261125T101500Z:0x00000001\n\
                    10.0.0.5:/srv/sidus/lab/20261125T101500Z:0x00000002\n\
                    10.0.0.6:/srv/sidus/lab/20261125T101500Z:0x00000000\n\
                    10.0.0.7:/srv/sidus/lab/20261125T111500Z:0x00000001\n\
                    garbage\n";
        let p = Path::new("/srv/sidus/lab/20261125T101500Z");
        assert_eq!(rmtab_clients(text, p), ["10.0.0.5", "127.0.0.1"]);
        assert_eq!(
            rmtab_clients(text, Path::new("/srv/sidus/lab/20261125T111500Z")),
            ["10.0.0.7"]
        );
        assert!(rmtab_clients(text, Path::new("/nope")).is_empty());
        assert!(rmtab_clients("", p).is_empty());
    }

    #[test]
    fn nfsd_client_info_address() {
        let info = "clientid: 0x8a1f7f6e65637e2e\naddress: \"192.168.122.5:848\"\nstatus: confirmed\nname: \"Linux NFSv4.2 node1\"\nminor version: 2\n";
        assert_eq!(info_address(info).as_deref(), Some("192.168.122.5:848"));
        assert_eq!(info_address("name: x\n"), None);
    }
}
