//! Boot entries: which kernel of a snapshot nodes boot, and the iPXE script and
//! PXELINUX entry that name it. Rendering is pure; the caller writes the files
//! atomically, and that rename is the switch between two IDs.

use anyhow::{bail, Context, Result};
use sidus_backends::{SnapshotId, TreeName};
use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

/// A kernel and its initrd in a snapshot's `/boot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The version suffix shared by `vmlinuz-V` and `initrd.img-V`.
    pub version: String,
    /// Path of the kernel image.
    pub vmlinuz: PathBuf,
    /// Path of its initrd.
    pub initrd: PathBuf,
}

/// Compares kernel versions piecewise: digit runs as numbers, the rest as text
/// (so 6.1.0-10 sorts after 6.1.0-9).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Picks the newest `vmlinuz-V` that has an `initrd.img-V`, among regular files
/// only: a symlink in an untrusted tree could point at the host's files.
pub fn pick_kernel(names: &[String]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .filter(|v| !v.is_empty() && names.iter().any(|n| n == &format!("initrd.img-{v}")))
        .max_by(|a, b| version_cmp(a, b))
        .map(str::to_string)
}

/// Finds the kernel nodes will boot in the snapshot mounted at `root`.
pub fn find_kernel(root: &Path, what: &str) -> Result<Kernel> {
    let boot = root.join("boot");
    let hint = "install a kernel and initramfs-tools in the tree (see `sidus prepare-node`), then snapshot and publish again";
    match fs::symlink_metadata(&boot) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{what} cannot be booted: /boot is not a directory; {hint}"),
        Err(_) => bail!("{what} cannot be booted: it has no /boot; {hint}"),
    }
    let mut names = Vec::new();
    for e in fs::read_dir(&boot).with_context(|| format!("read {}", boot.display()))? {
        let e = e.with_context(|| format!("read {}", boot.display()))?;
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    let Some(version) = pick_kernel(&names) else {
        let mut seen: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("vmlinuz") || n.starts_with("initrd"))
            .collect();
        seen.sort();
        let seen = if seen.is_empty() {
            "none".to_string()
        } else {
            seen.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        bail!(
            "{what} cannot be booted: its /boot has no kernel (a regular file vmlinuz-VERSION with a matching initrd.img-VERSION; found: {seen}); {hint}"
        );
    };
    Ok(Kernel {
        vmlinuz: boot.join(format!("vmlinuz-{version}")),
        initrd: boot.join(format!("initrd.img-{version}")),
        version,
    })
}

/// Where the kernel and initrd of `tree@id` are copied: `<boot_root>/sidus/TREE/ID/`.
pub fn boot_dir(boot_root: &Path, tree: &TreeName, id: &SnapshotId) -> PathBuf {
    boot_root
        .join("sidus")
        .join(tree.as_str())
        .join(id.as_str())
}

/// The tree's iPXE script: `<boot_root>/sidus/TREE.ipxe`.
pub fn ipxe_path(boot_root: &Path, tree: &TreeName) -> PathBuf {
    boot_root.join("sidus").join(format!("{tree}.ipxe"))
}

/// The tree's PXELINUX config: `<boot_root>/pxelinux.cfg/sidus-TREE`.
pub fn pxelinux_path(boot_root: &Path, tree: &TreeName) -> PathBuf {
    boot_root.join("pxelinux.cfg").join(format!("sidus-{tree}"))
}

/// Every boot entry file of a tree, the iPXE script first.
pub fn entry_paths(boot_root: &Path, tree: &TreeName) -> [PathBuf; 2] {
    [ipxe_path(boot_root, tree), pxelinux_path(boot_root, tree)]
}

/// What a boot entry names.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// The tree.
    pub tree: &'a TreeName,
    /// The snapshot nodes boot.
    pub id: &'a SnapshotId,
    /// The NFS server address nodes use.
    pub server: &'a str,
    /// The exported path of the snapshot.
    pub nfs_path: &'a Path,
    /// The kernel version copied.
    pub kernel_version: &'a str,
    /// The content root hash of the snapshot's manifest (`sidus manifest`).
    pub manifest: &'a str,
    /// Appended to the command line.
    pub extra: &'a str,
    /// Other servers of the same TREE@ID, tried in order after this one
    /// (see [`super::fallback`]).
    pub fallbacks: &'a [super::fallback::Fallback],
}

impl Entry<'_> {
    /// The kernel command line (without the iPXE `initrd=`).
    pub fn cmdline(&self) -> String {
        self.cmdline_on(self.server, &self.nfs_path.to_string_lossy())
    }

    /// The kernel command line that mounts the root from `server:path`.
    pub fn cmdline_on(&self, server: &str, path: &str) -> String {
        let mut s = format!(
            "root=/dev/nfs nfsroot={server}:{path},ro sidus.tree={} sidus.snapshot={} sidus.manifest={}",
            self.tree,
            self.id,
            self.manifest
        );
        if !self.extra.trim().is_empty() {
            s.push(' ');
            s.push_str(self.extra.trim());
        }
        s
    }

    fn header(&self) -> String {
        format!(
            "# sidus: tree {} snapshot {} (kernel {}).\n# Written by sidus publish and replaced whole on every publish; do not edit.\n",
            self.tree, self.id, self.kernel_version
        )
    }

    /// The iPXE script; paths are relative to the script (`sidus/`), so it works
    /// over TFTP and HTTP alike. A node of the inventory goes on to its own
    /// entry first (`nodes/<mac>.ipxe`, see [`super::fleet::entries`]); any
    /// other node finds none and boots this one. The kernel gets the MAC as
    /// its NFSv4 client name, so the server can tell nodes apart. With
    /// fallbacks, each server is tried in turn ([`super::fallback::ipxe_boot`]).
    pub fn ipxe(&self) -> String {
        format!(
            "#!ipxe\n{}chain --autofree nodes/${{netX/mac:hexhyp}}.ipxe || echo sidus: no node entry for ${{netX/mac}}: booting {t}@{i}\n{b}",
            self.header(),
            t = self.tree,
            i = self.id,
            b = super::fallback::ipxe_boot(self, "", super::fleet::entries::IPXE_UNIQUE_ID),
        )
    }

    /// The PXELINUX config; paths are relative to the TFTP root.
    pub fn pxelinux(&self) -> String {
        format!(
            "{}{}DEFAULT sidus-{t}\nLABEL sidus-{t}\n  MENU LABEL sidus {t}@{i}\n  KERNEL sidus/{t}/{i}/vmlinuz\n  INITRD sidus/{t}/{i}/initrd.img\n  APPEND {c}\n",
            self.header(),
            super::fallback::pxelinux_note(self),
            t = self.tree,
            i = self.id,
            c = self.cmdline()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order_table() {
        let table = [
            ("6.1.0-9-amd64", "6.1.0-10-amd64", Ordering::Less),
            ("6.1.0-26-amd64", "6.1.0-26-amd64", Ordering::Equal),
            ("6.10.1", "6.9.12", Ordering::Greater),
            ("5.10.0-30-cloud-amd64", "6.1.0-1-amd64", Ordering::Less),
            ("6.1.0", "6.1.0-1", Ordering::Less),
        ];
        for (a, b, want) in table {
            assert_eq!(version_cmp(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn pick_kernel_table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let table: [(&[&str], Option<&str>); 5] = [
            (
                &[
                    "vmlinuz-6.1.0-9-amd64",
                    "initrd.img-6.1.0-9-amd64",
                    "vmlinuz-6.1.0-10-amd64",
                    "initrd.img-6.1.0-10-amd64",
                ],
                Some("6.1.0-10-amd64"),
            ),
            (
                &[
                    "vmlinuz-6.1.0-10-amd64",
                    "vmlinuz-6.1.0-9-amd64",
                    "initrd.img-6.1.0-9-amd64",
                ],
                Some("6.1.0-9-amd64"),
            ),
            (&["vmlinuz-6.1.0-9-amd64"], None),
            (&["config-6.1", "System.map-6.1"], None),
            (&["vmlinuz-", "initrd.img-"], None),
        ];
        for (names, want) in table {
            assert_eq!(pick_kernel(&s(names)).as_deref(), want, "{names:?}");
        }
    }

    #[test]
    fn find_kernel_ignores_symlinks_and_says_what_it_found() {
        let d = tempfile::tempdir().unwrap();
        let e = find_kernel(d.path(), "lab@X").unwrap_err().to_string();
        assert!(e.contains("lab@X cannot be booted: it has no /boot"), "{e}");
        fs::create_dir(d.path().join("boot")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("boot/vmlinuz-1")).unwrap();
        fs::write(d.path().join("boot/initrd.img-1"), "i").unwrap();
        let e = find_kernel(d.path(), "lab@X").unwrap_err().to_string();
        assert!(
            e.contains("has no kernel") && e.contains("found: initrd.img-1"),
            "{e}"
        );
        fs::write(d.path().join("boot/vmlinuz-2"), "k").unwrap();
        fs::write(d.path().join("boot/initrd.img-2"), "i").unwrap();
        let k = find_kernel(d.path(), "lab@X").unwrap();
        assert_eq!(k.version, "2");
        assert_eq!(k.vmlinuz, d.path().join("boot/vmlinuz-2"));
    }

    #[test]
    fn entries_name_the_id_and_the_export() {
        let tree: TreeName = "lab".parse().unwrap();
        let id: SnapshotId = "20261125T101500Z".parse().unwrap();
        let e = Entry {
            tree: &tree,
            id: &id,
            server: "10.0.0.1",
            nfs_path: Path::new("/srv/sidus/lab/20261125T101500Z"),
            kernel_version: "6.1.0-26-amd64",
            manifest: "da33",
            extra: "ip=dhcp",
            fallbacks: &[],
        };
        let cmd = "root=/dev/nfs nfsroot=10.0.0.1:/srv/sidus/lab/20261125T101500Z,ro sidus.tree=lab sidus.snapshot=20261125T101500Z sidus.manifest=da33 ip=dhcp";
        assert_eq!(e.cmdline(), cmd);
        assert_eq!(
            e.ipxe(),
            format!("#!ipxe\n# sidus: tree lab snapshot 20261125T101500Z (kernel 6.1.0-26-amd64).\n# Written by sidus publish and replaced whole on every publish; do not edit.\nchain --autofree nodes/${{netX/mac:hexhyp}}.ipxe || echo sidus: no node entry for ${{netX/mac}}: booting lab@20261125T101500Z\nkernel lab/20261125T101500Z/vmlinuz initrd=initrd.img {cmd} nfs.nfs4_unique_id=${{netX/mac:hexhyp}}\ninitrd lab/20261125T101500Z/initrd.img\nboot\n")
        );
        let p = e.pxelinux();
        assert!(p.contains("DEFAULT sidus-lab\nLABEL sidus-lab\n"), "{p}");
        assert!(p.contains("  KERNEL sidus/lab/20261125T101500Z/vmlinuz\n  INITRD sidus/lab/20261125T101500Z/initrd.img\n"), "{p}");
        assert!(p.contains(&format!("  APPEND {cmd}\n")), "{p}");
        assert_eq!(
            Entry {
                extra: " ",
                ..e.clone()
            }
            .cmdline(),
            cmd.trim_end_matches(" ip=dhcp")
        );
        assert_eq!(
            ipxe_path(Path::new("/t"), &tree),
            Path::new("/t/sidus/lab.ipxe")
        );
        assert_eq!(
            pxelinux_path(Path::new("/t"), &tree),
            Path::new("/t/pxelinux.cfg/sidus-lab")
        );
        assert_eq!(
            boot_dir(Path::new("/t"), &tree, &id),
            Path::new("/t/sidus/lab/20261125T101500Z")
        );
    }
}
