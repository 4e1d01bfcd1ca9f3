//! With `umask 000`, no file or directory sidus writes in a whole cycle
//! (init, create, snapshot, run, publish, pin, clone, unpublish, restore,
//! prepare-node) is writable by group or others: the store's state, the
//! btrfs store's directories and records, the exports file, boot entries and
//! kernel copies, mount points, the config; the boot files stay readable by
//! tftpd (0644/0755) and the loop image is 0600. On a real loop-backed btrfs.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL: &str = "6.1.0-26-amd64";

/// Files and directories under `root` (not following links, not into other
/// file systems: a served snapshot's content is the tree's) whose mode lets
/// group or others write.
fn writable_by_others(root: &Path, out: &mut Vec<String>) {
    let Ok(meta) = fs::symlink_metadata(root) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    if meta.permissions().mode() & 0o022 != 0 {
        out.push(format!(
            "{} {:o}",
            root.display(),
            meta.permissions().mode() & 0o7777
        ));
    }
    if meta.is_dir() {
        let dev = meta.dev();
        for e in fs::read_dir(root).unwrap() {
            let p = e.unwrap().path();
            let same_fs = fs::symlink_metadata(&p).is_ok_and(|m| m.dev() == dev);
            if same_fs {
                writable_by_others(&p, out);
            } else {
                // A mount point: its own mode only.
                let m = fs::symlink_metadata(&p).unwrap();
                if m.permissions().mode() & 0o022 != 0 {
                    out.push(format!(
                        "{} {:o}",
                        p.display(),
                        m.permissions().mode() & 0o7777
                    ));
                }
            }
        }
    }
}

/// Unmounts what publish mounted under the directory before the store goes.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.0))
            .collect();
        under.sort();
        for m in under.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

#[test]
fn root_btrfs_files_sidus_writes_under_umask_000_are_not_group_or_world_writable() {
    require_root_btrfs!();
    let store = TestStore::btrfs_uninitialized();
    let config = store.config.clone();
    let umask0 = |args: &[&str]| {
        let out = Command::new("sh")
            .arg("-c")
            .arg("umask 000; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_sidus"))
            .args(args)
            .env("SIDUS_CONFIG", &config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sidus {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let img = store.dir.path().join("store.img");
    umask0(&[
        "init",
        "--loop",
        img.to_str().unwrap(),
        "--path",
        store.mnt.to_str().unwrap(),
        "--size",
        "1G",
    ]);
    let d = store.dir.path().to_path_buf();
    let (srv, tftp, exports) = (
        d.join("srv"),
        d.join("tftp"),
        d.join("exports.d/sidus.exports"),
    );
    let _unmount = Unmount(srv.clone());
    let mut cfg = fs::read_to_string(&store.config).unwrap();
    cfg.push_str(&format!(
        "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = false\n",
        srv.display(),
        tftp.display(),
        exports.display()
    ));
    fs::write(&store.config, cfg).unwrap();
    // A tree made with the test's own umask, holding busybox so a run works.
    let src = d.join("src");
    for d in ["bin", "boot", "etc", "tmp", "run"] {
        fs::create_dir_all(src.join(d)).unwrap();
        fs::set_permissions(src.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::copy("/bin/busybox", src.join("bin/busybox")).expect("busybox-static installed");
    symlink("busybox", src.join("bin/sh")).unwrap();
    fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "K").unwrap();
    fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "I").unwrap();
    fs::write(src.join("etc/resolv.conf"), "").unwrap();
    let mut modes = Vec::new();
    writable_by_others(&src, &mut modes);
    assert!(modes.is_empty(), "the source itself: {modes:?}");

    umask0(&["create", "lab", "--from-dir", src.to_str().unwrap()]);
    let a = umask0(&["snapshot", "lab", "-m", "a"]);
    umask0(&[
        "run",
        "lab",
        "--",
        "sh",
        "-c",
        "echo new >/etc/made-by-run; mkdir /etc/dir-by-run",
    ]);
    umask0(&["publish", &format!("lab@{a}")]);
    umask0(&["publish", "lab"]);
    umask0(&["pin", "lab@latest", "--name", "kept"]);
    umask0(&["clone", "lab@latest", "copy"]);
    umask0(&["unpublish", &format!("lab@{a}")]);
    umask0(&["restore"]);
    umask0(&["prepare-node", "lab"]);

    let mut bad = Vec::new();
    for root in [
        store.mnt.clone(),
        tftp.clone(),
        srv.clone(),
        exports.parent().unwrap().to_path_buf(),
        store.config.clone(),
        img.clone(),
    ] {
        assert!(root.exists(), "{} was not written", root.display());
        writable_by_others(&root, &mut bad);
    }
    assert!(bad.is_empty(), "writable by group or others: {bad:#?}");
    // The loop image holds every tree: only root reads it.
    assert_eq!(
        fs::metadata(&img).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // What the command of a run creates in the tree, too.
    let tree = store.path("lab");
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(tree.join("etc/made-by-run")), 0o644);
    assert_eq!(mode(tree.join("etc/dir-by-run")), 0o755);
    // tftpd and nfsd read these as other users.
    for f in [
        exports.clone(),
        tftp.join("sidus/lab.ipxe"),
        tftp.join("pxelinux.cfg/sidus-lab"),
    ] {
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", f.display());
    }
    let ids = store.ids("lab");
    let boot = tftp.join("sidus/lab").join(ids.last().unwrap());
    for f in ["vmlinuz", "initrd.img", "kernel-version"] {
        let mode = fs::metadata(boot.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{f}");
    }
    assert_eq!(
        fs::metadata(&boot).unwrap().permissions().mode() & 0o777,
        0o755
    );
}
