//! The node-side hook `prepare-node` installs: every executable in
//! `/etc/sidus/node.d/` runs early at boot on each node, as root, before any
//! service starts. It is where a node gets what must not be in the published
//! tree, which every node and every allowed NFS client reads (see
//! [`super::secrets`]): its own SSH host keys, `munge.key`, a keytab, fetched
//! from the server or generated, written into the node's RAM overlay.
//!
//! When they run: after `sidus-node.service` wrote `/run/sidus-node`, with
//! the NFS root, its tmpfs overlay and the network the initramfs brought up,
//! and before `sysinit.target`, so before sshd, munge or any other daemon.
//! Environment: `SIDUS_NODE=TREE@ID`. A failing hook is reported on the
//! console and the journal and the others still run.

/// Where the hooks are, in the tree.
pub const HOOK_DIR: &str = "/etc/sidus/node.d";

/// The script `sidus-node-hooks.service` runs.
pub fn script() -> String {
    format!(
        r#"#!/bin/sh
# Written by `sidus prepare-node`: runs every executable file in {HOOK_DIR}
# (SIDUS_NODE_HOOKS overrides), in name order, early at boot on a sidus node,
# with SIDUS_NODE=TREE@ID set: the place to give this node what must not be
# in the published tree (its SSH host keys, munge.key, keytabs). Names with a
# dot first or ending in ~ or a .dpkg-* suffix are skipped.
dir=${{SIDUS_NODE_HOOKS:-{HOOK_DIR}}}
SIDUS_NODE=$(cat "${{SIDUS_NODE_FILE:-/run/sidus-node}}" 2>/dev/null) || exit 0
export SIDUS_NODE
rc=0
for hook in "$dir"/*; do
	[ -f "$hook" ] && [ -x "$hook" ] || continue
	case "${{hook##*/}}" in
	.* | *~ | *.dpkg-*) continue ;;
	esac
	if ! "$hook"; then
		echo "sidus: node hook $hook failed" >&2
		rc=1
	fi
done
exit $rc
"#
    )
}

/// The systemd unit that runs [`script`].
pub fn unit() -> String {
    format!(
        "# Written by `sidus prepare-node`.\n[Unit]\nDescription=Run the sidus node hooks ({HOOK_DIR}): what each node gets at boot instead of the shared tree\nDefaultDependencies=no\nAfter=sidus-node.service local-fs.target\nBefore=sysinit.target ssh.service munge.service\nConditionKernelCommandLine=sidus.snapshot\nConditionDirectoryNotEmpty={HOOK_DIR}\n\n[Service]\nType=oneshot\nExecStart=/usr/lib/sidus/node-hooks\nRemainAfterExit=yes\n\n[Install]\nWantedBy=sysinit.target\n"
    )
}

/// The symlink that enables the unit.
pub const UNIT_LINK: (&str, &str) = (
    "etc/systemd/system/sysinit.target.wants/sidus-node-hooks.service",
    "/etc/systemd/system/sidus-node-hooks.service",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    #[test]
    fn hooks_run_in_order_with_the_node_and_a_failure_does_not_stop_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let hooks = d.path().join("node.d");
        fs::create_dir(&hooks).unwrap();
        let log = d.path().join("log");
        let hook = |name: &str, body: &str, mode: u32| {
            let p = hooks.join(name);
            fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        };
        let l = log.display();
        hook("20-keys", &format!("echo \"20 $SIDUS_NODE\" >>{l}"), 0o755);
        hook("10-fails", &format!("echo 10 >>{l}; exit 3"), 0o755);
        hook("30-not-executable", &format!("echo 30 >>{l}"), 0o644);
        hook("40-keys.dpkg-old", &format!("echo 40 >>{l}"), 0o755);
        fs::write(d.path().join("node"), "lab@20261125T101500Z\n").unwrap();
        let run = |node_file: &str| {
            Command::new("sh")
                .args(["-c", &script()])
                .env("SIDUS_NODE_HOOKS", &hooks)
                .env("SIDUS_NODE_FILE", d.path().join(node_file))
                .output()
                .unwrap()
        };
        let out = run("node");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("node hook"));
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "10\n20 lab@20261125T101500Z\n"
        );
        // Not a sidus boot (no /run/sidus-node): nothing runs.
        fs::remove_file(&log).unwrap();
        assert!(run("missing").status.success());
        assert!(!log.exists());
        assert!(unit().contains("Before=sysinit.target ssh.service munge.service"));
    }
}
