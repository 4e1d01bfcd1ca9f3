//! Publishing on a real store of the backend `SIDUS_TEST_BACKEND` names (see
//! tests/common/mod.rs), without nfsd (the host has none): mount views, the
//! exports file, boot entries, the state, refusals and undo. The config sets `apply_exports = false`; exports over real NFS are
//! proven in tests/vm/scenarios/publish.sh.

mod common;
use common::TestStore;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL: &str = "6.1.0-26-amd64";

/// A store with a `[publish]` section pointing into its temp dir, and a tree
/// `lab` holding a fake kernel. Unmounts what publish mounted before the store goes.
struct Env {
    store: TestStore,
    srv: PathBuf,
    tftp: PathBuf,
    exports: PathBuf,
}

impl Env {
    fn new(apply_exports: bool) -> Env {
        let store = TestStore::new();
        let d = store.dir.path().to_path_buf();
        let env = Env {
            srv: d.join("srv"),
            tftp: d.join("tftp"),
            exports: d.join("exports.d/sidus.exports"),
            store,
        };
        let mut cfg = fs::read_to_string(&env.store.config).unwrap();
        cfg.push_str(&format!(
            "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = {apply_exports}\n",
            env.srv.display(),
            env.tftp.display(),
            env.exports.display()
        ));
        fs::write(&env.store.config, cfg).unwrap();
        env
    }

    fn make_tree(&self, name: &str, kernel: bool) {
        let src = self.store.dir.path().join(format!("src-{name}"));
        fs::create_dir_all(src.join("boot")).unwrap();
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("etc/motd"), "one\n").unwrap();
        if kernel {
            fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "KERNEL").unwrap();
            fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "INITRD").unwrap();
        }
        self.sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
            .ok();
    }

    fn sidus(&self, args: &[&str]) -> common::Run {
        self.store.sidus(args)
    }

    fn served(&self, tree: &str, id: &str) -> PathBuf {
        self.srv.join(tree).join(id)
    }

    fn state(&self) -> serde_json::Value {
        let p = self.store.state_dir().join("publish/state.json");
        serde_json::from_str(&fs::read_to_string(p).unwrap_or_else(|_| "{}".into())).unwrap()
    }

    fn ipxe(&self, tree: &str) -> String {
        fs::read_to_string(self.tftp.join(format!("sidus/{tree}.ipxe"))).unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for m in mounts_under(&self.srv).iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn is_mounted(p: &Path) -> bool {
    mounts_under(p).iter().any(|m| m == p)
}

#[test]
fn publish_serves_read_only_views_and_switches_boot_entries() {
    require_backend!();
    let env = Env::new(false);
    env.make_tree("lab", true);
    let a = env.store.snapshot("lab", "a");
    fs::write(env.store.path("lab").join("etc/motd"), "two\n").unwrap();
    let b = env.store.snapshot("lab", "b");

    let p = env
        .sidus(&["publish", &format!("lab@{a}"), "--json"])
        .json();
    assert_eq!(p["id"], a.as_str());
    assert_eq!(p["exports"], "disabled");
    assert_eq!(p["kernel"], KERNEL);
    let va = env.served("lab", &a);
    assert!(is_mounted(&va));
    assert_eq!(
        TestStore::listing(&va),
        TestStore::listing(&env.store.path(&format!("lab@{a}")))
    );
    assert!(
        fs::write(va.join("etc/new"), "x").is_err(),
        "served view is writable"
    );
    let exports = fs::read_to_string(&env.exports).unwrap();
    assert!(
        exports.contains(&format!(
            "{} 127.0.0.1(ro,no_root_squash,no_subtree_check,fsid={})",
            va.display(),
            p["fsid"].as_str().unwrap()
        )),
        "{exports}"
    );
    assert!(env.ipxe("lab").contains(&format!(
        "nfsroot=192.0.2.1:{},ro sidus.tree=lab sidus.snapshot={a}",
        va.display()
    )));
    assert_eq!(
        fs::read_to_string(env.tftp.join(format!("sidus/lab/{a}/vmlinuz"))).unwrap(),
        "KERNEL"
    );

    // A newer ID: the old one stays mounted and exported; the entries switch.
    let p = env.sidus(&["publish", "lab", "--json"]).json();
    assert_eq!(
        (p["id"].as_str(), p["previous"].as_str()),
        (Some(b.as_str()), Some(a.as_str()))
    );
    assert!(is_mounted(&va) && is_mounted(&env.served("lab", &b)));
    assert_eq!(
        fs::read_to_string(env.served("lab", &b).join("etc/motd")).unwrap(),
        "two\n"
    );
    assert_eq!(fs::read_to_string(va.join("etc/motd")).unwrap(), "one\n");
    let exports = fs::read_to_string(&env.exports).unwrap();
    assert_eq!(exports.lines().filter(|l| !l.starts_with('#')).count(), 2);
    assert!(env.ipxe("lab").contains(&format!("sidus.snapshot={b}")));
    let pxe = fs::read_to_string(env.tftp.join("pxelinux.cfg/sidus-lab")).unwrap();
    assert!(
        pxe.contains(&format!("KERNEL sidus/lab/{b}/vmlinuz")),
        "{pxe}"
    );
    // The contract protect.rs reads.
    let st = env.state();
    assert_eq!(st["trees"]["lab"]["current"], b.as_str());
    assert_eq!(st["trees"]["lab"]["exported"], serde_json::json!([a, b]));

    let s = env.sidus(&["status", "lab", "--json"]).json();
    let t = &s["trees"][0];
    assert_eq!(t["current"], b.as_str());
    assert_eq!(t["boot"]["ipxe_names"], b.as_str());
    assert_eq!(t["boot"]["kernel"], KERNEL);
    assert_eq!(t["exported"].as_array().unwrap().len(), 2);
    assert!(t["exported"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["mounted"] == true));
    let text = env.sidus(&["status"]).ok();
    assert!(text.contains(&format!("lab: current {b}")), "{text}");

    // Publishing the current ID again changes nothing.
    let p = env
        .sidus(&["publish", &format!("lab@{b}"), "--json"])
        .json();
    assert_eq!(p["unchanged"], true);

    // Rollback goes back to A in one step; both stay exported.
    let p = env
        .sidus(&["publish", "--rollback", "lab", "--json"])
        .json();
    assert_eq!(p["id"], a.as_str());
    assert!(env.ipxe("lab").contains(&format!("sidus.snapshot={a}")));
    assert_eq!(
        env.state()["trees"]["lab"]["exported"],
        serde_json::json!([a, b])
    );
    let e = env.sidus(&["publish", "--rollback", "lab"]).fails(1);
    assert!(e.contains("no previously published snapshot"), "{e}");
    let e = env
        .sidus(&["publish", "--rollback", &format!("lab@{b}")])
        .fails(2);
    assert!(e.contains("give the tree only"), "{e}");

    // Published snapshots are protected from prune (protect.rs reads our state).
    let c = env.store.snapshot("lab", "c");
    env.sidus(&["prune", "lab", "--keep-last", "1"]).ok();
    assert_eq!(env.store.ids("lab"), [a.clone(), b.clone(), c]);

    // Unpublish: the current one is refused, an old one goes whole.
    let e = env.sidus(&["unpublish", &format!("lab@{a}")]).fails(1);
    assert!(
        e.contains(&format!(
            "refusing to unpublish lab@{a}: it is the published snapshot nodes boot"
        )),
        "{e}"
    );
    env.sidus(&["unpublish", &format!("lab@{b}")]).ok();
    let vb = env.served("lab", &b);
    assert!(!is_mounted(&vb) && !vb.exists());
    assert!(!fs::read_to_string(&env.exports).unwrap().contains(&b));
    assert!(!env.tftp.join(format!("sidus/lab/{b}")).exists());
    assert_eq!(
        env.state()["trees"]["lab"]["exported"],
        serde_json::json!([a])
    );
    let e = env.sidus(&["unpublish", &format!("lab@{b}")]).fails(1);
    assert!(e.contains("is not published"), "{e}");

    // --force on the current one removes the boot entries too.
    env.sidus(&["unpublish", &format!("lab@{a}"), "--force"])
        .ok();
    assert!(!is_mounted(&va));
    assert!(!env.tftp.join("sidus/lab.ipxe").exists());
    assert_eq!(env.state()["trees"], serde_json::json!({}));
    let log = env.sidus(&["log", "lab", "--json"]).json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"publish")
            && actions.contains(&"unpublish")
            && actions.contains(&"publish-rollback"),
        "{actions:?}"
    );
}

#[test]
fn publish_refusals_change_nothing() {
    require_backend!();
    let env = Env::new(false);
    env.make_tree("bare", false);
    let id = env.store.snapshot("bare", "no kernel");
    let e = env.sidus(&["publish", "bare"]).fails(1);
    assert!(
        e.contains(&format!(
            "bare@{id} cannot be booted: its /boot has no kernel"
        )),
        "{e}"
    );
    assert!(!env.srv.join("bare").exists() && !env.exports.exists());
    assert_eq!(env.state(), serde_json::json!({}));
    let e = env.sidus(&["publish", "nope"]).fails(1);
    assert!(e.contains("no tree named 'nope'"), "{e}");

    // A failure at the last step (the PXELINUX entry) undoes every earlier one.
    env.make_tree("lab", true);
    let a = env.store.snapshot("lab", "a");
    fs::create_dir_all(&env.tftp).unwrap();
    fs::write(env.tftp.join("pxelinux.cfg"), "not a directory").unwrap();
    let e = env.sidus(&["publish", "lab"]).fails(1);
    assert!(e.contains("nothing was changed"), "{e}");
    assert!(!is_mounted(&env.served("lab", &a)) && !env.served("lab", &a).exists());
    assert!(!env.tftp.join("sidus/lab.ipxe").exists());
    assert!(!env.tftp.join(format!("sidus/lab/{a}")).exists());
    assert!(!env.exports.exists());
    let state = env.state();
    assert!(
        state["trees"] == serde_json::json!({}) || state == serde_json::json!({}),
        "{state}"
    );
    let log = env.sidus(&["log", "lab", "--json"]).json();
    assert!(
        log[0]["outcome"].as_str().unwrap().starts_with("failed: "),
        "{log}"
    );
}

#[test]
fn publish_without_nfsd_names_it_and_changes_nothing() {
    require_backend!();
    if Path::new("/proc/fs/nfsd/exports").exists() {
        common::skip("nfsd runs here; this test is about hosts without it");
        return;
    }
    let env = Env::new(true);
    env.make_tree("lab", true);
    let a = env.store.snapshot("lab", "a");
    let e = env.sidus(&["publish", "lab"]).fails(1);
    assert!(e.contains("the NFS server is not running"), "{e}");
    assert!(e.contains("apply_exports = false"), "{e}");
    assert!(!env.served("lab", &a).exists() && !env.exports.exists());
}

#[test]
fn restore_remounts_and_rewrites_after_a_reboot() {
    require_backend!();
    let env = Env::new(false);
    env.make_tree("lab", true);
    let a = env.store.snapshot("lab", "a");
    env.sidus(&["publish", "lab"]).ok();
    let b = env.store.snapshot("lab", "b");
    env.sidus(&["publish", "lab"]).ok();
    let exports = fs::read_to_string(&env.exports).unwrap();
    // A reboot: mounts gone, exports file lost, a crash before the switch.
    for id in [&a, &b] {
        assert!(Command::new("umount")
            .arg(env.served("lab", id))
            .status()
            .unwrap()
            .success());
    }
    fs::remove_file(&env.exports).unwrap();
    fs::remove_file(env.tftp.join("sidus/lab.ipxe")).unwrap();
    let r = env.sidus(&["restore", "--json"]).json();
    assert_eq!(
        r["served"],
        serde_json::json!([format!("lab@{a}"), format!("lab@{b}")])
    );
    assert_eq!(r["boot_entries_fixed"], serde_json::json!(["lab"]));
    assert!(is_mounted(&env.served("lab", &a)) && is_mounted(&env.served("lab", &b)));
    assert_eq!(
        fs::read_to_string(&env.exports).unwrap(),
        exports,
        "same lines, same fsids"
    );
    assert!(env.ipxe("lab").contains(&format!("sidus.snapshot={b}")));
    // Idempotent: a second restore finds everything in place.
    let r = env.sidus(&["restore", "--json"]).json();
    assert_eq!(r["boot_entries_fixed"], serde_json::json!([]));
    assert_eq!(mounts_under(&env.srv).len(), 2);
}

#[test]
fn prepare_node_writes_inside_the_tree_only() {
    require_backend!();
    let env = Env::new(false);
    env.make_tree("lab", true);
    let tree = env.store.path("lab");
    // A hostile tree: its initramfs-tools dir is an absolute symlink to the host.
    let host = env.store.dir.path().join("host-etc");
    fs::create_dir_all(&host).unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    std::os::unix::fs::symlink(&host, tree.join("etc/initramfs-tools")).unwrap();
    let e = env.sidus(&["prepare-node", "lab"]).fails(1);
    assert!(e.contains("initramfs-tools"), "{e}");
    assert_eq!(
        fs::read_dir(&host).unwrap().count(),
        0,
        "wrote onto the host"
    );
    fs::remove_file(tree.join("etc/initramfs-tools")).unwrap();

    let out = env.sidus(&["prepare-node", "lab"]);
    assert!(
        out.stderr.contains("has no initramfs-tools"),
        "{}",
        out.stderr
    );
    let out = out.ok();
    assert!(
        out.contains("wrote /etc/initramfs-tools/scripts/init-bottom/sidus"),
        "{out}"
    );
    assert!(out.contains("update-initramfs -u -k all"), "{out}");
    let script = tree.join("etc/initramfs-tools/scripts/init-bottom/sidus");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let conf = fs::read_to_string(tree.join("etc/initramfs-tools/conf.d/sidus")).unwrap();
    let settings: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(settings, ["BOOT=nfs", "MODULES=netboot"]);
    // The node script, run from the tree, reads what publish puts on the command line.
    let a = env.store.snapshot("lab", "prepared");
    env.sidus(&["publish", "lab"]).ok();
    let ipxe = env.ipxe("lab");
    let cmdline = ipxe.lines().find(|l| l.starts_with("kernel ")).unwrap();
    let d = env.store.dir.path();
    fs::write(d.join("cmdline"), cmdline).unwrap();
    let st = Command::new("sh")
        .arg(env.served("lab", &a).join("usr/lib/sidus/node-id"))
        .env("SIDUS_CMDLINE", d.join("cmdline"))
        .env("SIDUS_NODE_FILE", d.join("sidus-node"))
        .status()
        .unwrap();
    assert!(st.success());
    // The node also learns the content root hash, to show and check what it booted.
    let hash = env.sidus(&["manifest", &format!("lab@{a}")]).ok();
    assert!(
        cmdline.contains(&format!(" sidus.manifest={} ", hash.trim())),
        "{cmdline}"
    );
    assert_eq!(
        fs::read_to_string(d.join("sidus-node")).unwrap(),
        format!("lab@{a} {}\n", hash.trim())
    );
}
