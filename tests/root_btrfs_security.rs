//! Security defaults of publishing, on a real loop-backed btrfs store without
//! nfsd (`apply_exports = false`): no export while `[publish] clients` is
//! unset, every client entry checked, `*` warned about, snapshots holding
//! secrets refused unless allowed (file modes: root_btrfs_security_modes.rs).
//! That a client outside `clients` cannot mount over real NFS is proven in
//! tests/vm/scenarios/security.sh.

mod common;
use common::TestStore;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL: &str = "6.1.0-26-amd64";

/// A store whose `[publish]` section points into its temp dir; `clients` is
/// the TOML line for it, or "" to leave it unset.
struct Env {
    store: TestStore,
    srv: PathBuf,
    tftp: PathBuf,
    exports: PathBuf,
    base: String,
}

impl Env {
    fn new(clients: &str) -> Env {
        Env::on(TestStore::new(), clients)
    }

    fn on(store: TestStore, clients: &str) -> Env {
        let d = store.dir.path().to_path_buf();
        let env = Env {
            srv: d.join("srv"),
            tftp: d.join("tftp"),
            exports: d.join("exports.d/sidus.exports"),
            base: fs::read_to_string(&store.config).unwrap(),
            store,
        };
        env.set_publish(clients, "");
        env
    }

    /// Rewrites the config's `[publish]` section with `clients` and `extra`.
    fn set_publish(&self, clients: &str, extra: &str) {
        let text = format!(
            "{}\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\napply_exports = false\n{clients}\n{extra}",
            self.base,
            self.srv.display(),
            self.tftp.display(),
            self.exports.display()
        );
        fs::write(&self.store.config, text).unwrap();
    }

    /// A tree `name` with a fake kernel, `tweak` adding files, and a snapshot.
    fn tree(&self, name: &str, tweak: impl FnOnce(&Path)) -> String {
        let src = self.store.dir.path().join(format!("src-{name}"));
        fs::create_dir_all(src.join("boot")).unwrap();
        fs::create_dir_all(src.join("etc/ssh")).unwrap();
        fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "KERNEL").unwrap();
        fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "INITRD").unwrap();
        fs::write(src.join("etc/ssh/sshd_config"), "PermitRootLogin no\n").unwrap();
        fs::write(src.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        tweak(&src);
        self.sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
            .ok();
        self.store.snapshot(name, "base")
    }

    fn sidus(&self, args: &[&str]) -> common::Run {
        self.store.sidus(args)
    }

    /// Asserts that no publish left anything: no exports file, boot files,
    /// mount, publish state or intent.
    #[track_caller]
    fn nothing_published(&self) {
        assert!(!self.exports.exists(), "exports file written");
        assert!(!self.tftp.exists(), "boot files written");
        assert!(mounts_under(&self.srv).is_empty(), "a snapshot was mounted");
        let state = self.store.mnt.join(".sidus/publish");
        for f in ["state.json", "intent.json"] {
            assert!(!state.join(f).exists(), "{f} written");
        }
    }

    /// The outcome of the newest journal entry with `action`.
    fn last_outcome(&self, action: &str) -> String {
        let log = self.sidus(&["log", "--json"]).json();
        log.as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .map(|e| e["outcome"].as_str().unwrap().to_string())
            .unwrap_or_default()
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

#[test]
fn root_btrfs_publish_refuses_while_clients_is_unset_and_writes_nothing() {
    require_root_btrfs!();
    let env = Env::new("");
    let id = env.tree("lab", |_| {});
    let err = env.sidus(&["publish", "lab"]).fails(1);
    assert!(err.contains("publish.clients is not set"), "{err}");
    assert!(err.contains(r#"clients = ["10.0.0.0/24"]"#), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    env.nothing_published();
    for args in [
        vec!["unpublish", "lab@latest"],
        vec!["restore"],
        vec!["publish", "--rollback", "lab"],
    ] {
        let err = env.sidus(&args).fails(1);
        assert!(
            err.contains("publish.clients is not set"),
            "{args:?}: {err}"
        );
    }
    env.nothing_published();
    let st = env.sidus(&["status", "--json"]);
    assert!(st.stderr.contains("warning: publish.clients is not set"));
    assert!(st.json()["warnings"][0]
        .as_str()
        .unwrap()
        .contains("not set"));

    // `init --clients` writes it (a bad entry first: refused, config kept).
    let before = fs::read_to_string(&env.store.config).unwrap();
    let err = env
        .sidus(&[
            "init",
            "--clients",
            "10.0.0.0/24",
            "--clients",
            "10.0.0.0/33",
        ])
        .fails(2);
    assert!(err.contains("'10.0.0.0/33' is not a client"), "{err}");
    assert_eq!(fs::read_to_string(&env.store.config).unwrap(), before);
    env.sidus(&[
        "init",
        "--clients",
        "10.0.0.0/24,fd00::/64",
        "--clients",
        "@compute",
    ])
    .ok();
    let cfg: toml::Value = toml::from_str(&fs::read_to_string(&env.store.config).unwrap()).unwrap();
    assert_eq!(
        cfg["publish"]["clients"],
        toml::Value::try_from(["10.0.0.0/24", "fd00::/64", "@compute"]).unwrap()
    );
    let p = env.sidus(&["publish", "lab", "--json"]).json();
    assert_eq!(p["id"], id.as_str());
    assert_eq!(p["warnings"], serde_json::json!([]));
    let exports = fs::read_to_string(&env.exports).unwrap();
    let line = exports.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(line.contains(" 10.0.0.0/24(ro,"), "{line}");
    assert!(
        line.contains(" fd00::/64(ro,") && line.contains(" @compute(ro,"),
        "{line}"
    );
    assert!(!line.contains('*'), "{line}");
}

#[test]
fn root_btrfs_publish_refuses_a_bad_client_entry_naming_it() {
    require_root_btrfs!();
    let env = Env::new(r#"clients = ["10.0.0.0/24"]"#);
    env.tree("lab", |_| {});
    for (bad, why) in [
        ("10.0.0.300", "not a valid IPv4 address"),
        ("10.0.0.0/33", "prefix length must be 0 to 32"),
        ("node 7", "' ' cannot appear"),
        ("host(rw)", "'(' cannot appear"),
        ("@", "netgroup name"),
    ] {
        env.set_publish(&format!(r#"clients = ["10.0.0.1", "{bad}"]"#), "");
        let err = env.sidus(&["publish", "lab"]).fails(1);
        assert!(
            err.contains(&format!("publish.clients: '{bad}' is not a client")) && err.contains(why),
            "{bad}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        env.nothing_published();
    }
    // Every form exports(5) knows is accepted.
    env.set_publish(
        r#"clients = ["10.0.0.7", "10.0.0.0/255.255.255.0", "fd00::1", "fd00::/64", "node1.cluster", "*.cluster", "node[0-9]", "@compute"]"#,
        "",
    );
    env.sidus(&["publish", "lab"]).ok();
    let exports = fs::read_to_string(&env.exports).unwrap();
    assert!(
        exports.contains(" *.cluster(ro,") && exports.contains(" node[0-9](ro,"),
        "{exports}"
    );
}

#[test]
fn root_btrfs_world_clients_are_warned_about_by_publish_and_status_every_time() {
    require_root_btrfs!();
    let env = Env::new(r#"clients = ["*"]"#);
    env.tree("lab", |_| {});
    for _ in 0..2 {
        let r = env.sidus(&["publish", "lab"]);
        assert!(
            r.stderr.contains("warning: publish.clients has '*': every host that reaches this server can mount every published ID as root (no_root_squash)"),
            "{}",
            r.stderr
        );
        r.ok();
        let st = env.sidus(&["status"]);
        assert!(
            st.stderr.contains("warning: publish.clients has '*'"),
            "{}",
            st.stderr
        );
        st.ok();
    }
    let p = env.sidus(&["publish", "lab", "--json"]).json();
    assert!(p["warnings"][0].as_str().unwrap().contains("'*'"));
    let st = env.sidus(&["status", "--json"]).json();
    assert_eq!(st["warnings"].as_array().unwrap().len(), 1);
    assert!(fs::read_to_string(&env.exports).unwrap().contains(" *(ro,"));
    // A network of every address is the same thing.
    env.set_publish(r#"clients = ["10.0.0.0/8", "0.0.0.0/0"]"#, "");
    let st = env.sidus(&["status"]);
    assert!(
        st.stderr.contains("publish.clients has '0.0.0.0/0'"),
        "{}",
        st.stderr
    );
    // A scoped list is not warned about.
    env.set_publish(r#"clients = ["10.0.0.0/8"]"#, "");
    let st = env.sidus(&["status"]);
    assert!(!st.stderr.contains("warning"), "{}", st.stderr);
}

#[test]
fn root_btrfs_publish_refuses_a_tree_holding_an_ssh_host_key_and_names_it() {
    require_root_btrfs!();
    let env = Env::new(r#"clients = ["10.0.0.0/24"]"#);
    let host = env.store.dir.path().join("host-shadow");
    fs::write(&host, "root:$6$host$hash:19000::::::\n").unwrap();
    let id = env.tree("lab", |src| {
        fs::write(src.join("etc/ssh/ssh_host_ed25519_key"), "PRIVATE KEY").unwrap();
        fs::write(
            src.join("etc/ssh/ssh_host_ed25519_key.pub"),
            "ssh-ed25519 AAAA",
        )
        .unwrap();
        // A planted link to a file with a hash outside the tree is never read.
        fs::remove_file(src.join("etc/shadow")).unwrap();
        symlink(&host, src.join("etc/shadow")).unwrap();
    });
    let err = env.sidus(&["publish", "lab"]).fails(1);
    assert!(
        err.contains(&format!(
            "refusing to publish lab@{id}: it holds secrets that every node and every host in publish.clients would read: /etc/ssh/ssh_host_ed25519_key (SSH host private key);"
        )),
        "{err}"
    );
    assert!(err.contains("--allow-secrets"), "{err}");
    assert!(
        err.contains(r#"[publish.allow_secrets] lab = ["/etc/ssh/ssh_host_ed25519_key"]"#),
        "{err}"
    );
    assert!(!err.contains(".pub") && !err.contains("shadow"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    env.nothing_published();
    let r = env.sidus(&["publish", "lab", "--json"]);
    assert_eq!(r.code, 1);
    let top: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let doc = &top["refused"];
    assert_eq!(doc["secrets"][0]["path"], "/etc/ssh/ssh_host_ed25519_key");
    assert_eq!(doc["secrets"][0]["kind"], "ssh_host_key");
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 1);
    assert!(top["error"]
        .as_str()
        .unwrap()
        .starts_with("refusing to publish"));
    env.nothing_published();
    assert!(env
        .last_outcome("publish")
        .starts_with("failed: refusing to publish"));

    // --allow-secrets: published, warned about, and in the journal.
    let r = env.sidus(&["publish", "lab", "--allow-secrets", "--json"]);
    assert!(r.stderr.contains("warning: lab@"), "{}", r.stderr);
    let p = r.json();
    assert_eq!(p["id"], id.as_str());
    assert_eq!(p["secrets"][0]["allowed_by"], "--allow-secrets");
    assert_eq!(
        env.last_outcome("publish"),
        "ok: shared secrets /etc/ssh/ssh_host_ed25519_key (allowed by --allow-secrets)"
    );
    let log = env.sidus(&["log", "--json"]).json();
    assert!(log[0]["command"]
        .as_str()
        .unwrap()
        .contains("--allow-secrets"));

    // The tree's allow list in the config: published without the flag.
    fs::write(env.store.path("lab").join("etc/motd"), "two\n").unwrap();
    let b = env.store.snapshot("lab", "two");
    env.sidus(&["publish", "lab"]).fails(1);
    env.set_publish(
        r#"clients = ["10.0.0.0/24"]"#,
        "[publish.allow_secrets]\nlab = [\"etc/ssh/ssh_host_ed25519_key\"]\nother = [\"/etc/shadow\"]\n",
    );
    let r = env.sidus(&["publish", "lab"]);
    assert!(r.stderr.contains("note: lab@"), "{}", r.stderr);
    assert!(r.ok().contains(&format!("published lab@{b}")));
    assert_eq!(
        env.last_outcome("publish"),
        "ok: shared secrets /etc/ssh/ssh_host_ed25519_key (allowed by publish.allow_secrets.lab)"
    );
    // Another tree's entry allows nothing here; a hash in the tree's own
    // /etc/shadow is found too.
    env.tree("two", |src| {
        fs::write(src.join("etc/ssh/ssh_host_ed25519_key"), "K").unwrap();
        fs::write(
            src.join("etc/shadow"),
            "root:$y$j9T$salt$hash:1::::::\nbin:!:1::::::\n",
        )
        .unwrap();
    });
    let err = env.sidus(&["publish", "two"]).fails(1);
    assert!(err.contains("/etc/ssh/ssh_host_ed25519_key (SSH host private key), /etc/shadow (password hashes of root)"), "{err}");
}
