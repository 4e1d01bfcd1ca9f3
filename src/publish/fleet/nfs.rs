//! Which snapshot each NFS client runs, as the server sees it (NOTES-next §4):
//!
//! - NFSv3 clients from mountd's rmtab (`host:path:0xcount`). Nodes never
//!   unmount their root, so a node that rebooted onto another ID keeps its
//!   old line too. mountd appends a host's first mount of a path and counts
//!   later ones in place, so the host's last line is its newest mount
//!   whenever every other line of it counts 1; otherwise it is unknown.
//! - NFSv4 clients from `/proc/fs/nfsd/clients/N/{info,states}`: the address,
//!   the client owner (`Linux NFSv4.2 <nfs4_unique_id>/<nodename>`), and the
//!   superblock (`maj:min`, hex) of each open file, matched to the mounts of
//!   the export paths (`/proc/self/mountinfo`, decimal). btrfs snapshots share
//!   one superblock, so there an open file names every export of that file
//!   system and the ID stays unknown.
//! - The neighbour table (`/proc/net/arp`) gives the MAC behind an IPv4
//!   address, so nodes without a fixed address are found too.
//!
//! Parsing is pure; [`scan`] reads the files of this host.

use super::groups::Target;
use super::mac::Mac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Where nfsd lists NFSv4 clients.
pub const NFSD_CLIENTS: &str = "/proc/fs/nfsd/clients";
/// The kernel's IPv4 neighbour table.
pub const ARP: &str = "/proc/net/arp";

/// The NFS protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// NFSv2/v3, seen through mountd.
    Nfs3,
    /// NFSv4.x, seen through nfsd's client list.
    Nfs4,
}

/// One client of the server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Client {
    /// How it is seen.
    pub protocol: Proto,
    /// Its address, as the server records it (no port).
    pub address: String,
    /// NFSv4: the client owner it names itself by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// NFSv4: nfsd's word on it (`confirmed`, `courtesy` once its lease ran out...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The snapshot it booted from, when the server's records tell.
    pub runs: Option<Target>,
    /// Every snapshot it may still use (what unpublishing would cut off).
    pub uses: Vec<Target>,
}

impl Client {
    /// The MACs this client shows: the neighbour table's for its address,
    /// and any its NFSv4 owner names ("Linux NFSv4.2 52-54-00-12-34-56/host":
    /// the nfs4_unique_id iPXE passes). nfsd escapes what else the id holds
    /// ("...-56\x0a/" when it was set with `echo` into sysfs), so a
    /// backslash ends it too.
    pub fn macs(&self, arp: &HashMap<IpAddr, Mac>) -> Vec<Mac> {
        let addr: Option<IpAddr> = self.address.parse().ok();
        let mut macs: Vec<Mac> = addr
            .and_then(|a| arp.get(&a))
            .copied()
            .into_iter()
            .collect();
        for w in self.owner.iter().flat_map(|o| o.split([' ', '/', '\\'])) {
            if let Ok(m) = w.parse::<Mac>() {
                macs.push(m);
            }
        }
        macs.dedup();
        macs
    }
}

/// The `TREE@ID` an export path `<root>/TREE/ID` serves.
pub fn target_of(root: &Path, path: &str) -> Option<Target> {
    let rest = Path::new(path).strip_prefix(root).ok()?;
    let mut parts = rest.components();
    let tree = parts.next()?.as_os_str().to_str()?.parse().ok()?;
    let id = parts.next()?.as_os_str().to_str()?.parse().ok()?;
    parts.next().is_none().then_some(Target { tree, id })
}

/// NFSv3 clients from rmtab text: per host, its live lines under `root`.
pub fn v3_clients(rmtab: &str, root: &Path) -> Vec<Client> {
    let mut hosts: Vec<(String, Vec<(Target, u64)>)> = Vec::new();
    for line in rmtab.lines() {
        let Some((rest, count)) = line.rsplit_once(':') else {
            continue;
        };
        let Some((host, path)) = rest.split_once(':') else {
            continue;
        };
        let n = u64::from_str_radix(count.trim().trim_start_matches("0x"), 16).unwrap_or(1);
        let Some(t) = target_of(root, path).filter(|_| n > 0) else {
            continue;
        };
        match hosts.iter_mut().find(|(h, _)| h == host) {
            Some((_, lines)) => lines.push((t, n)),
            None => hosts.push((host.to_string(), vec![(t, n)])),
        }
    }
    hosts
        .into_iter()
        .map(|(address, lines)| {
            let (last, others) = lines.split_last().expect("a host has a line");
            let runs = others.iter().all(|(_, n)| *n == 1).then(|| last.0.clone());
            Client {
                protocol: Proto::Nfs3,
                address,
                owner: None,
                status: None,
                runs,
                uses: lines.into_iter().map(|(t, _)| t).collect(),
            }
        })
        .collect()
}

/// The export mounts of mountinfo text: device `maj:min` (decimal) to the
/// snapshots served from a mount with that device.
pub fn export_devices(mountinfo: &str, root: &Path) -> HashMap<String, Vec<Target>> {
    let mut out: HashMap<String, Vec<Target>> = HashMap::new();
    for l in mountinfo.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 5 {
            continue;
        }
        if let Some(t) = target_of(root, f[4]) {
            let list = out.entry(f[2].to_string()).or_default();
            if !list.contains(&t) {
                list.push(t);
            }
        }
    }
    out
}

/// A quoted or bare value of `key:` in nfsd's info text.
fn info_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().trim_matches('"').to_string())
}

/// The superblocks (`maj:min`, decimal) of the open files in a states text.
pub fn states_devices(states: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in states.split("superblock: \"").skip(1) {
        let Some(sb) = part.split('"').next() else {
            continue;
        };
        let mut f = sb.split(':');
        let (Some(maj), Some(min)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (u32::from_str_radix(maj, 16), u32::from_str_radix(min, 16))
        else {
            continue;
        };
        let d = format!("{maj}:{min}");
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// One NFSv4 client from its info and states texts.
pub fn v4_client(
    info: &str,
    states: &str,
    devices: &HashMap<String, Vec<Target>>,
) -> Option<Client> {
    let addr = info_value(info, "address")?;
    // "10.0.0.5:848", "[fd00::1]:848"
    let address = match addr.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6).to_string(),
        None => addr
            .rsplit_once(':')
            .map_or(addr.as_str(), |(a, _)| a)
            .to_string(),
    };
    let mut uses: Vec<Target> = Vec::new();
    let mut certain = Vec::new();
    for d in states_devices(states) {
        let Some(ts) = devices.get(&d) else { continue };
        if ts.len() == 1 {
            certain.push(ts[0].clone());
        }
        for t in ts {
            if !uses.contains(t) {
                uses.push(t.clone());
            }
        }
    }
    certain.dedup();
    let runs = (certain.len() == 1 && uses.len() == 1).then(|| certain[0].clone());
    Some(Client {
        protocol: Proto::Nfs4,
        address,
        owner: info_value(info, "name"),
        status: info_value(info, "status"),
        runs,
        uses,
    })
}

/// The complete IPv4 neighbours: address to MAC.
pub fn arp_table(text: &str) -> HashMap<IpAddr, Mac> {
    let mut out = HashMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let complete =
            u32::from_str_radix(f[2].trim_start_matches("0x"), 16).is_ok_and(|x| x & 2 != 0);
        if let (true, Ok(ip), Ok(mac)) = (complete, f[0].parse(), f[3].parse::<Mac>()) {
            out.insert(ip, mac);
        }
    }
    out
}

/// What the server sees now.
#[derive(Debug, Default)]
pub struct Seen {
    /// Its NFS clients, v3 then v4.
    pub clients: Vec<Client>,
    /// Its neighbours.
    pub arp: HashMap<IpAddr, Mac>,
}

/// Reads this host's rmtab, nfsd client list, mounts and neighbours.
pub fn scan(root: &Path) -> Seen {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut clients = v3_clients(&read(Path::new(crate::publish::clients::RMTAB)), root);
    if let Ok(dir) = std::fs::read_dir(NFSD_CLIENTS) {
        let devices = export_devices(&read(Path::new("/proc/self/mountinfo")), root);
        let mut v4: Vec<Client> = dir
            .flatten()
            .filter_map(|e| {
                v4_client(
                    &read(&e.path().join("info")),
                    &read(&e.path().join("states")),
                    &devices,
                )
            })
            .collect();
        v4.sort_by(|a, b| a.address.cmp(&b.address));
        clients.extend(v4);
    }
    Seen {
        clients,
        arp: arp_table(&read(Path::new(ARP))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "20261125T101500Z";
    const B: &str = "20261125T111500Z";

    fn t(id: &str) -> Target {
        Target {
            tree: "lab".parse().unwrap(),
            id: id.parse().unwrap(),
        }
    }

    #[test]
    fn rmtab_newest_mount_per_host() {
        let root = Path::new("/srv/sidus");
        let text = format!(
            "10.0.0.5:/srv/sidus/lab/{A}:0x00000001\n10.0.0.6:/srv/sidus/lab/{A}:0x00000002\n\
             10.0.0.5:/srv/sidus/lab/{B}:0x00000001\n10.0.0.6:/srv/sidus/lab/{B}:0x00000001\n\
             10.0.0.7:/srv/sidus/lab/{A}:0x00000000\n10.0.0.8:/elsewhere:0x00000001\n\
             10.0.0.9:/srv/sidus/lab/{B}:0x00000003\ngarbage\n"
        );
        let c = v3_clients(&text, root);
        let by = |h: &str| c.iter().find(|x| x.address == h).cloned();
        let five = by("10.0.0.5").unwrap();
        assert_eq!(
            (five.runs, five.uses),
            (Some(t(B)), vec![t(A), t(B)]),
            "rebooted from A onto B"
        );
        let six = by("10.0.0.6").unwrap();
        assert_eq!(
            six.runs, None,
            "A mounted twice: it may have come back to A after B"
        );
        assert_eq!(six.uses.len(), 2);
        assert!(by("10.0.0.7").is_none(), "unmounted");
        assert!(by("10.0.0.8").is_none(), "not sidus's");
        assert_eq!(
            by("10.0.0.9").unwrap().runs,
            Some(t(B)),
            "rebooted onto the same ID"
        );
    }

    #[test]
    fn nfsv4_superblocks_name_the_export() {
        let root = Path::new("/srv/sidus");
        let mountinfo = format!(
            "80 30 0:52 / /srv/sidus/lab/{A} ro,relatime shared:40 - zfs sidustest/sidus/trees/lab@{A} ro\n\
             81 30 0:53 / /srv/sidus/lab/{B} ro,relatime shared:41 - zfs sidustest/sidus/trees/lab@{B} ro\n\
             90 30 0:40 /snapshots/x/{A} /srv/sidus/x/{A} ro - btrfs /dev/loop0 ro\n\
             91 30 0:40 /snapshots/x/{B} /srv/sidus/x/{B} ro - btrfs /dev/loop0 ro\n\
             92 30 0:40 / /srv/sidus/x ro - btrfs /dev/loop0 ro\n"
        );
        let dev = export_devices(&mountinfo, root);
        assert_eq!(dev["0:52"], [t(A)]);
        assert_eq!(dev["0:40"].len(), 2, "btrfs: one superblock");
        let info = "clientid: 0xc8f07b5d6a1c2f01\naddress: \"10.77.0.52:737\"\nstatus: confirmed\nname: \"Linux NFSv4.2 52-54-00-77-00-03/(none)\"\nminor version: 2\n";
        let states = "- 0x00000001c8f07b5d: { type: open, access: r, deny: -, superblock: \"00:35:1234\", filename: \"bin/bash\", owner: \"open id:\\x00\" }\n\
                      - 0x00000002c8f07b5d: { type: deleg, access: r, superblock: \"00:35:99\", filename: \"lib/x.so\" }\n";
        let c = v4_client(info, states, &dev).unwrap();
        assert_eq!(c.address, "10.77.0.52");
        assert_eq!(c.runs, Some(t(B)), "0x35 = 53");
        assert_eq!(c.status.as_deref(), Some("confirmed"));
        let mac: Mac = "52:54:00:77:00:03".parse().unwrap();
        assert_eq!(c.macs(&HashMap::new()), [mac], "by nfs4_unique_id");
        let btrfs = v4_client(
            "address: \"[fd00::5]:700\"\n",
            "superblock: \"00:28:256\"",
            &dev,
        )
        .unwrap();
        assert_eq!(
            (btrfs.address.as_str(), btrfs.runs, btrfs.uses.len()),
            ("fd00::5", None, 2)
        );
        let idle = v4_client(info, "", &dev).unwrap();
        assert_eq!(
            (idle.runs, idle.uses.len()),
            (None, 0),
            "mounted, nothing open: unknown"
        );
    }

    #[test]
    fn neighbours_give_the_mac_behind_an_address() {
        let text =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
                    10.77.0.51       0x1         0x2         52:54:00:77:00:02     *        br0\n\
                    10.77.0.60       0x1         0x0         00:00:00:00:00:00     *        br0\n";
        let arp = arp_table(text);
        assert_eq!(arp.len(), 1);
        let c = Client {
            protocol: Proto::Nfs3,
            address: "10.77.0.51".into(),
            owner: None,
            status: None,
            runs: None,
            uses: vec![],
        };
        // Its address alone names a node with that `--ip`: the view's index
        // (view.rs, "found by its address").
        assert_eq!(
            c.macs(&arp),
            ["52:54:00:77:00:02".parse::<Mac>().unwrap()],
            "the neighbour table's MAC for its address, and no other"
        );
    }
}
