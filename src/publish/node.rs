//! What a diskless node needs inside its tree (`sidus prepare-node`): an
//! initramfs-tools setup that mounts the NFS root read-only with a tmpfs overlay
//! on top (the root is writable, in RAM), and `/run/sidus-node` holding the
//! `TREE@ID` the node booted and its content root hash (`TREE@ID HASH`), read
//! from the kernel command line that `sidus publish` wrote (`sidus.tree=`,
//! `sidus.snapshot=` and `sidus.manifest=`); and the node hooks,
//! `/etc/sidus/node.d/*` run early at boot, where each node gets what must not
//! be shared in the tree ([`super::node_hooks`]).
//!
//! The files only take effect once the tree's initramfs is regenerated
//! (`update-initramfs -u -k all` inside the tree); installing or upgrading a
//! kernel in the tree does that too.

use super::intree::TreeRoot;
use super::node_hooks;
use anyhow::Result;
use std::path::Path;

/// Where the node records what it booted.
pub const NODE_FILE: &str = "/run/sidus-node";

/// Shell function shared by the initramfs script and the boot-time script:
/// prints `TREE@ID` from the command line, fails when it is not a sidus boot.
const NODE_ID_FN: &str = r#"# Prints TREE@ID from sidus.tree= and sidus.snapshot= on the kernel command
# line (SIDUS_CMDLINE overrides /proc/cmdline, for tests), followed by the
# content root hash of sidus.manifest= when there is one; fails without them.
sidus_node_id() {
	_tree= _id= _hash=
	for _x in $(cat "${SIDUS_CMDLINE:-/proc/cmdline}"); do
		case "$_x" in
		sidus.tree=*) _tree=${_x#sidus.tree=} ;;
		sidus.snapshot=*) _id=${_x#sidus.snapshot=} ;;
		sidus.manifest=*) _hash=${_x#sidus.manifest=} ;;
		esac
	done
	[ -n "$_tree" ] && [ -n "$_id" ] || return 1
	case "$_tree$_id" in
	*[!a-z0-9._TZ-]*) return 1 ;;
	esac
	case "$_hash" in
	*[!0-9a-f]*) _hash= ;;
	esac
	echo "$_tree@$_id${_hash:+ $_hash}"
}

# Writes TREE@ID to /run/sidus-node (SIDUS_NODE_FILE overrides), whole.
sidus_write_node_file() {
	_f=${SIDUS_NODE_FILE:-/run/sidus-node}
	mkdir -p "${_f%/*}"
	echo "$1" >"$_f.tmp" && mv -f "$_f.tmp" "$_f"
}
"#;

/// initramfs-tools config: boot from NFS (`root=/dev/nfs` says so too; this
/// makes it hold whatever the command line lacks), with the `netboot` module
/// set: network drivers and NFS, no disk controllers, so the initrd nodes
/// fetch over TFTP stays small (12 MB with bookworm's cloud kernel). Drivers
/// for a node's local disks load after boot from the tree's /lib/modules.
pub fn conf() -> String {
    "# Written by `sidus prepare-node`: this tree boots diskless over NFS.\nBOOT=nfs\nMODULES=netboot\n".into()
}

/// initramfs-tools hook: the modules the overlay root needs.
pub fn hook() -> String {
    r#"#!/bin/sh
# Written by `sidus prepare-node`: puts what a sidus NFS root with a tmpfs
# overlay needs into the initramfs.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in
prereqs) prereqs; exit 0 ;;
esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules overlay nfs nfsv3
"#
    .into()
}

/// initramfs-tools init-bottom script: after scripts/nfs mounted the snapshot
/// read-only at `$rootmnt`, put a tmpfs overlay on top and record TREE@ID.
/// The tmpfs is mounted outside /run so init can still move /run into the root
/// (lesson 11 of NOTES-chroot.md); the lower and upper stay reachable under
/// /media/sidus-ro and /media/sidus-rw.
pub fn init_bottom() -> String {
    format!(
        r#"#!/bin/sh
# Written by `sidus prepare-node`: on a sidus NFS root (sidus.tree= and
# sidus.snapshot= on the kernel command line), make the read-only root
# writable with a tmpfs overlay, and write TREE@ID to /run/sidus-node.
PREREQ=""
prereqs() {{ echo "$PREREQ"; }}
case "$1" in
prereqs) prereqs; exit 0 ;;
esac

{NODE_ID_FN}
node=$(sidus_node_id) || exit 0
sidus_write_node_file "$node"

root=${{rootmnt:-/root}}
ro=${{SIDUS_OVERLAY_DIR:-}}/sidus-ro
rw=${{SIDUS_OVERLAY_DIR:-}}/sidus-rw
mkdir -p "$ro" "$rw"
mount -t tmpfs -o mode=0755 sidus-rw "$rw" || {{ echo "sidus: cannot mount tmpfs; booting $node read-only"; exit 0; }}
mkdir -p "$rw/upper" "$rw/work"
mount -o move "$root" "$ro"
if ! mount -t overlay -o "lowerdir=$ro,upperdir=$rw/upper,workdir=$rw/work" sidus-root "$root"; then
	# A node that boots read-only beats one that does not boot.
	mount -o move "$ro" "$root"
	umount "$rw"
	echo "sidus: overlay mount failed; booting $node read-only"
	exit 0
fi
mkdir -p "$root/media/sidus-ro" "$root/media/sidus-rw"
mount -o move "$ro" "$root/media/sidus-ro"
mount -o move "$rw" "$root/media/sidus-rw"
echo "sidus: booted $node (NFS root read-only, tmpfs overlay on top)"
"#
    )
}

/// The boot-time script (run by sidus-node.service): writes /run/sidus-node
/// even when the initramfs did not (an old initramfs, another generator).
pub fn node_id_script() -> String {
    format!(
        "#!/bin/sh\n# Written by `sidus prepare-node`: writes TREE@ID of the booted snapshot to\n# /run/sidus-node, from the kernel command line.\n{NODE_ID_FN}\nnode=$(sidus_node_id) || exit 0\nsidus_write_node_file \"$node\"\n"
    )
}

/// The systemd unit that runs [`node_id_script`] early at boot.
pub fn unit() -> String {
    "# Written by `sidus prepare-node`.\n[Unit]\nDescription=Record the sidus snapshot this node booted in /run/sidus-node\nDefaultDependencies=no\nBefore=sysinit.target\nConditionKernelCommandLine=sidus.snapshot\n\n[Service]\nType=oneshot\nExecStart=/usr/lib/sidus/node-id\nRemainAfterExit=yes\n\n[Install]\nWantedBy=sysinit.target\n".into()
}

/// One file `prepare-node` writes: path in the tree, content, mode.
pub struct NodeFile {
    /// Path inside the tree.
    pub path: &'static str,
    /// Content.
    pub data: String,
    /// Permission bits.
    pub mode: u32,
}

/// Every file `prepare-node` writes.
pub fn files() -> Vec<NodeFile> {
    let f = |path, data, mode| NodeFile { path, data, mode };
    vec![
        f("etc/initramfs-tools/conf.d/sidus", conf(), 0o644),
        f("etc/initramfs-tools/hooks/sidus", hook(), 0o755),
        f(
            "etc/initramfs-tools/scripts/init-bottom/sidus",
            init_bottom(),
            0o755,
        ),
        f("usr/lib/sidus/node-id", node_id_script(), 0o755),
        f("etc/systemd/system/sidus-node.service", unit(), 0o644),
        f("usr/lib/sidus/node-hooks", node_hooks::script(), 0o755),
        f(
            "etc/systemd/system/sidus-node-hooks.service",
            node_hooks::unit(),
            0o644,
        ),
    ]
}

/// The symlink that enables sidus-node.service.
pub const UNIT_LINK: (&str, &str) = (
    "etc/systemd/system/sysinit.target.wants/sidus-node.service",
    "/etc/systemd/system/sidus-node.service",
);

/// What `prepare-node` did.
#[derive(Debug, serde::Serialize)]
pub struct Prepared {
    /// Paths written, inside the tree.
    pub files: Vec<String>,
    /// Whether the tree has initramfs-tools (without it the files do nothing).
    pub has_initramfs_tools: bool,
}

/// Whether the tree has initramfs-tools, without which the node files do nothing.
pub fn has_initramfs_tools(tree: &TreeRoot) -> bool {
    tree.exists(Path::new("usr/share/initramfs-tools"))
}

/// Installs the node files into the tree mounted at `root`, resolving every
/// path inside it.
pub fn install(root: &Path) -> Result<Prepared> {
    let tree = TreeRoot::open(root)?;
    let mut written = Vec::new();
    for f in files() {
        tree.write(Path::new(f.path), f.data.as_bytes(), f.mode)?;
        written.push(format!("/{}", f.path));
    }
    for (link, target) in [UNIT_LINK, node_hooks::UNIT_LINK] {
        tree.symlink(Path::new(link), target)?;
        written.push(format!("/{link}"));
    }
    Ok(Prepared {
        files: written,
        has_initramfs_tools: has_initramfs_tools(&tree),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str, cmdline: &str) -> (bool, Option<String>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cmdline"), cmdline).unwrap();
        std::fs::write(d.path().join("s"), script).unwrap();
        let out = d.path().join("run/sidus-node");
        let st = Command::new("sh")
            .arg(d.path().join("s"))
            .env("SIDUS_CMDLINE", d.path().join("cmdline"))
            .env("SIDUS_NODE_FILE", &out)
            .status()
            .unwrap();
        (st.success(), std::fs::read_to_string(out).ok())
    }

    #[test]
    fn node_id_script_reads_the_command_line() {
        let s = node_id_script();
        let table = [
            (
                "BOOT_IMAGE=x root=/dev/nfs nfsroot=10.0.0.1:/srv/sidus/lab/20261125T101500Z,ro sidus.tree=lab sidus.snapshot=20261125T101500Z ip=dhcp\n",
                Some("lab@20261125T101500Z\n"),
            ),
            ("sidus.snapshot=20261125T101500Z.1 sidus.tree=a-b.c", Some("a-b.c@20261125T101500Z.1\n")),
            (
                "sidus.tree=lab sidus.snapshot=20261125T101500Z sidus.manifest=da33d7eaa5dfefac ip=dhcp",
                Some("lab@20261125T101500Z da33d7eaa5dfefac\n"),
            ),
            (
                "sidus.tree=lab sidus.snapshot=20261125T101500Z sidus.manifest=../../x",
                Some("lab@20261125T101500Z\n"),
            ),
            ("root=/dev/sda1 quiet", None),
            ("sidus.tree=lab", None),
            ("sidus.tree=../etc sidus.snapshot=x", None),
        ];
        for (cmdline, want) in table {
            let (ok, got) = sh(&s, cmdline);
            assert!(ok, "{cmdline}");
            assert_eq!(got.as_deref(), want, "{cmdline}");
        }
    }

    #[test]
    fn init_bottom_is_valid_sh_and_a_no_op_without_sidus_on_the_command_line() {
        let s = init_bottom();
        let st = Command::new("sh").args(["-n", "-c", &s]).status().unwrap();
        assert!(st.success());
        // Not a sidus boot: exits 0 before touching any mount.
        assert_eq!(sh(&s, "root=/dev/sda1"), (true, None));
        assert!(s.contains("lowerdir=$ro,upperdir=$rw/upper,workdir=$rw/work"));
        for f in [hook(), node_id_script()] {
            assert!(Command::new("sh")
                .args(["-n", "-c", &f])
                .status()
                .unwrap()
                .success());
        }
    }

    #[test]
    fn install_writes_every_file_inside_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let p = install(d.path()).unwrap();
        assert!(!p.has_initramfs_tools);
        assert_eq!(p.files.len(), 9);
        for f in files() {
            assert_eq!(
                std::fs::read_to_string(d.path().join(f.path)).unwrap(),
                f.data
            );
        }
        assert_eq!(
            std::fs::read_link(d.path().join(UNIT_LINK.0)).unwrap(),
            Path::new(UNIT_LINK.1)
        );
        // Idempotent.
        install(d.path()).unwrap();
    }
}
