//! The fleet on a real loop-backed btrfs store, without nfsd (the config
//! sets `apply_exports = false`): the node inventory and its refusals,
//! imports that land whole or not at all, the boot entries of nodes and
//! groups, per-group publish and rollback, and a group switch that readers
//! of the entries only ever see whole. What nodes run is proven with real
//! nodes in tests/vm/scenarios/netboot.sh.

mod common;
use common::TestStore;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL: &str = "6.1.0-26-amd64";

/// A store with a `[publish]` section and a tree `lab` with a fake kernel
/// and snapshots A and B.
struct Env {
    store: TestStore,
    srv: PathBuf,
    tftp: PathBuf,
    a: String,
    b: String,
}

impl Env {
    fn new() -> Env {
        let store = TestStore::new();
        let d = store.dir.path().to_path_buf();
        let mut cfg = fs::read_to_string(&store.config).unwrap();
        cfg.push_str(&format!(
            "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = false\n",
            d.join("srv").display(),
            d.join("tftp").display(),
            d.join("exports").display()
        ));
        fs::write(&store.config, cfg).unwrap();
        let src = d.join("src");
        fs::create_dir_all(src.join("boot")).unwrap();
        fs::create_dir_all(src.join("etc")).unwrap();
        fs::write(src.join("etc/motd"), "A\n").unwrap();
        fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "KERNEL").unwrap();
        fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "INITRD").unwrap();
        store
            .sidus(&["create", "lab", "--from-dir", src.to_str().unwrap()])
            .ok();
        let a = store.snapshot("lab", "A");
        fs::write(store.path("lab").join("etc/motd"), "B\n").unwrap();
        let b = store.snapshot("lab", "B");
        Env {
            srv: d.join("srv"),
            tftp: d.join("tftp"),
            store,
            a,
            b,
        }
    }

    fn sidus(&self, args: &[&str]) -> common::Run {
        self.store.sidus(args)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.tftp.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn nodes(&self) -> Vec<serde_json::Value> {
        self.sidus(&["nodes", "--json"]).json()["nodes"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.store.dir.path().join(name);
        fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut mounts: Vec<PathBuf> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|m| m.starts_with(&self.srv))
            .collect();
        mounts.sort();
        for m in mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(format!(
                    "{} {}",
                    p.strip_prefix(dir).unwrap().display(),
                    fs::read_to_string(&p).unwrap_or_default()
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn root_btrfs_inventory_keeps_canonical_macs_and_refuses_duplicates_naming_the_other_node() {
    require_root_btrfs!();
    let env = Env::new();
    env.sidus(&[
        "node",
        "add",
        "n1",
        "--mac",
        "52-54-00-AB-00-01",
        "--ip",
        "10.0.0.1",
        "--group",
        "canary",
    ])
    .ok();
    env.sidus(&["node", "add", "n2", "--mac", "5254.00ab.0002"])
        .ok();
    let n = env.nodes();
    assert_eq!(
        (
            n[0]["name"].as_str(),
            n[0]["mac"].as_str(),
            n[0]["ip"].as_str()
        ),
        (Some("n1"), Some("52:54:00:ab:00:01"), Some("10.0.0.1"))
    );
    assert_eq!(n[1]["mac"], "52:54:00:ab:00:02");
    assert_eq!(
        (n[0]["state"].as_str(), n[0]["booted"].as_str()),
        (Some("unknown"), None),
        "no NFS client: unknown, never current"
    );
    let before = fs::read(env.store.mnt.join(".sidus/fleet/nodes.json")).unwrap();
    let refused = [
        (vec!["node", "add", "n3", "--mac", "52:54:00:ab:00:01"], "MAC 52:54:00:ab:00:01 of node 'n3' is already node 'n1''s"),
        (vec!["node", "add", "n1", "--mac", "52:54:00:ab:00:09"], "node 'n1' is already in the inventory"),
        (vec!["node", "add", "n3", "--mac", "52:54:00:ab:00:03", "--ip", "10.0.0.1"], "address 10.0.0.1 of node 'n3' is already node 'n1''s"),
        (vec!["node", "set", "n2", "--mac", "52:54:00:AB:00:01"], "refusing to change node 'n2': MAC 52:54:00:ab:00:01 of node 'n2' is already node 'n1''s"),
        (vec!["node", "set", "n9", "--group", "x"], "no node 'n9' in the inventory"),
        (vec!["node", "remove", "n1", "n9"], "no node 'n9' in the inventory"),
    ];
    for (args, want) in refused {
        let err = env.sidus(&args).fails(1);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    for (args, want) in [
        (
            vec!["node", "add", "n3", "--mac", "52:54:00:ab:00"],
            "bad MAC '52:54:00:ab:00': not six bytes",
        ),
        (
            vec!["node", "add", "n3", "--mac", "01:00:5e:00:00:01"],
            "multicast",
        ),
        (
            vec!["node", "add", "N3", "--mac", "52:54:00:ab:00:03"],
            "invalid name 'N3'",
        ),
        (
            vec![
                "node",
                "add",
                "n3",
                "--mac",
                "52:54:00:ab:00:03",
                "--group",
                "Bad",
            ],
            "invalid name 'Bad'",
        ),
        (vec!["node", "set", "n1"], "nothing to change"),
    ] {
        let err = env.sidus(&args).fails(2);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(
        fs::read(env.store.mnt.join(".sidus/fleet/nodes.json")).unwrap(),
        before,
        "nothing changed"
    );
    env.sidus(&["node", "set", "n2", "--group", "rest", "--ip", "10.0.0.2"])
        .ok();
    env.sidus(&["node", "set", "n1", "--no-ip", "--no-group"])
        .ok();
    let n = env.nodes();
    assert_eq!(
        (
            n[0]["ip"].is_null(),
            n[0]["group"].is_null(),
            n[1]["group"].as_str()
        ),
        (true, true, Some("rest"))
    );
    env.sidus(&["node", "remove", "n1", "n2"]).ok();
    assert!(env.nodes().is_empty());
}

#[test]
fn root_btrfs_import_lands_whole_or_not_at_all_naming_the_bad_line() {
    require_root_btrfs!();
    let env = Env::new();
    env.sidus(&["node", "add", "old", "--mac", "52:54:00:00:00:99"])
        .ok();
    let bad = [
        ("bad.csv", "name,mac,ip,group\nn1,52:54:00:00:00:01,,g1\nn2,52:54:00:00:00:0z,,g1\nn3,52:54:00:00:00:03,,g2\n", "bad.csv: line 3: bad MAC '52:54:00:00:00:0z'"),
        ("twice.csv", "n1,52:54:00:00:00:01\nn2,52:54:00:00:00:02\nn1,52:54:00:00:00:03\n", "twice.csv: line 3: node 'n1' is listed twice (also line 1)"),
        ("mac.csv", "n1,52:54:00:00:00:01\nn2,52-54-00-00-00-01\n", "mac.csv: line 2: MAC 52:54:00:00:00:01 of node 'n2' is already line 1 (node 'n1')'s"),
        ("clash.csv", "n1,52:54:00:00:00:01\nn2,52:54:00:00:00:99\n", "clash.csv: line 2: MAC 52:54:00:00:00:99 of node 'n2' is already node 'old''s"),
        ("bad.json", r#"[{"name": "n1", "mac": "52:54:00:00:00:01"}, {"name": "n2", "mac": "52:54:00:00:00:02", "grup": "x"}]"#, "bad.json: node 2 ('n2'): unknown field `grup`"),
    ];
    for (name, text, want) in bad {
        let f = env.file(name, text);
        let err = env.sidus(&["node", "import", &f]).fails(1);
        assert!(
            err.contains(want) && err.contains("nothing was imported"),
            "{name}: {err}"
        );
        assert_eq!(env.nodes().len(), 1, "{name}: nothing imported");
        assert!(
            !env.tftp.join("sidus/nodes").exists()
                || fs::read_dir(env.tftp.join("sidus/nodes")).unwrap().count() == 0
        );
    }
    let mut csv = String::from("# the rack\nname,mac,ip,group\n");
    for i in 0..1000 {
        csv.push_str(&format!(
            "n{i:04},52:54:01:00:{:02x}:{:02x},10.1.{}.{},g{}\n",
            i / 256,
            i % 256,
            i / 250,
            i % 250 + 1,
            i % 10
        ));
    }
    let f = env.file("rack.csv", &csv);
    let out = env.sidus(&["node", "import", &f, "--json"]).json();
    assert_eq!(
        (
            out["nodes"].as_u64(),
            out["added"].as_array().unwrap().len()
        ),
        (Some(1001), 1000)
    );
    assert_eq!(
        out["entries"]["written"], 2020,
        "two per node, two per group"
    );
    assert_eq!(
        fs::read_dir(env.tftp.join("sidus/nodes")).unwrap().count(),
        1000
    );
    let groups = env.sidus(&["groups", "--json"]).json();
    assert_eq!(groups["groups"].as_array().unwrap().len(), 10);
    let json = env.file(
        "few.json",
        r#"{"nodes": [{"name": "x1", "mac": "52:54:00:00:00:01", "group": "g0"}]}"#,
    );
    let out = env
        .sidus(&["node", "import", &json, "--replace", "--json"])
        .json();
    assert_eq!(
        (
            out["nodes"].as_u64(),
            out["removed"].as_array().unwrap().len()
        ),
        (Some(1), 1001)
    );
    assert_eq!(
        fs::read_dir(env.tftp.join("sidus/nodes")).unwrap().count(),
        1
    );
    assert!(
        !env.tftp.join("sidus/groups/g1.ipxe").exists(),
        "an unused group's entry goes"
    );
}

#[test]
fn root_btrfs_entries_per_node_and_per_group_and_a_publish_moves_one_group() {
    require_root_btrfs!();
    let env = Env::new();
    let (a, b) = (env.a.clone(), env.b.clone());
    env.sidus(&["publish", &format!("lab@{a}")]).ok();
    env.sidus(&[
        "node",
        "add",
        "c1",
        "--mac",
        "52:54:00:77:00:02",
        "--group",
        "canary",
    ])
    .ok();
    env.sidus(&[
        "node",
        "add",
        "r1",
        "--mac",
        "52:54:00:77:00:03",
        "--group",
        "rest",
    ])
    .ok();
    env.sidus(&["node", "add", "loose", "--mac", "52:54:00:77:00:04"])
        .ok();
    assert!(
        env.read("sidus/lab.ipxe")
            .contains("chain --autofree nodes/${netX/mac:hexhyp}.ipxe || echo"),
        "the tree's entry sends inventory nodes on"
    );
    assert_eq!(
        env.read("sidus/nodes/52-54-00-77-00-02.ipxe")
            .lines()
            .last(),
        Some("chain --autofree ../groups/canary.ipxe")
    );
    assert!(env
        .read("pxelinux.cfg/01-52-54-00-77-00-03")
        .ends_with("  CONFIG pxelinux.cfg/sidus-groups/rest\n"));
    assert!(
        !env.tftp.join("sidus/nodes/52-54-00-77-00-04.ipxe").exists(),
        "in no group: the default entry"
    );
    assert!(
        env.read("sidus/groups/canary.ipxe").ends_with("exit 0\n"),
        "no snapshot of its own yet"
    );
    assert!(env
        .read("pxelinux.cfg/sidus-groups/canary")
        .contains("CONFIG pxelinux.cfg/default"));
    let e = env
        .sidus(&["publish", &format!("lab@{b}"), "--group", "nosuch"])
        .fails(1);
    assert!(
        e.contains("unknown group 'nosuch'") && e.contains("groups: canary, rest"),
        "{e}"
    );
    assert!(env
        .sidus(&["publish", "--rollback", "--group", "nosuch"])
        .fails(1)
        .contains("unknown group 'nosuch'"));
    assert!(env
        .sidus(&["nodes", "--group", "nosuch"])
        .fails(1)
        .contains("unknown group 'nosuch'"));

    env.sidus(&["publish", &format!("lab@{a}"), "--group", "rest"])
        .ok();
    env.sidus(&["publish", &format!("lab@{a}"), "--group", "canary"])
        .ok();
    let nodes_before = listing(&env.tftp.join("sidus/nodes"));
    let rest_before = env.read("sidus/groups/rest.ipxe");
    let out = env
        .sidus(&[
            "publish",
            &format!("lab@{b}"),
            "--group",
            "canary",
            "--json",
        ])
        .json();
    assert_eq!(
        (
            out["previous"].as_str(),
            out["nodes"].as_u64(),
            out["unchanged"].as_bool()
        ),
        (Some(format!("lab@{a}").as_str()), Some(1), Some(false))
    );
    let canary = env.read("sidus/groups/canary.ipxe");
    let hash = env.sidus(&["manifest", &format!("lab@{b}")]).ok();
    let hash = hash.trim();
    assert!(canary.contains(&format!("kernel ../lab/{b}/vmlinuz initrd=initrd.img root=/dev/nfs nfsroot=192.0.2.1:{}/lab/{b},ro sidus.tree=lab sidus.snapshot={b} sidus.manifest={hash} ip=dhcp sidus.group=canary nfs.nfs4_unique_id=${{netX/mac:hexhyp}}\n", env.srv.display())), "{canary}");
    assert!(env
        .read("pxelinux.cfg/sidus-groups/canary")
        .contains(&format!("KERNEL sidus/lab/{b}/vmlinuz")));
    assert!(
        env.tftp.join(format!("sidus/lab/{b}/vmlinuz")).is_file(),
        "B's kernel copied"
    );
    assert_eq!(
        listing(&env.tftp.join("sidus/nodes")),
        nodes_before,
        "node entries untouched"
    );
    assert_eq!(
        env.read("sidus/groups/rest.ipxe"),
        rest_before,
        "another group untouched"
    );
    assert!(
        env.read("sidus/lab.ipxe")
            .contains(&format!("sidus.snapshot={a}")),
        "the default untouched"
    );
    let exports = fs::read_to_string(env.store.dir.path().join("exports")).unwrap();
    assert!(
        exports.contains(&format!("/lab/{a} ")) && exports.contains(&format!("/lab/{b} ")),
        "{exports}"
    );
    let n = env.nodes();
    let assigned: Vec<(&str, &str, &str)> = n
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap(),
                n["assigned"].as_str().unwrap_or("-"),
                n["assigned_by"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let (ga, gb) = (format!("lab@{a}"), format!("lab@{b}"));
    assert_eq!(
        assigned,
        [
            ("c1", gb.as_str(), "group canary"),
            ("loose", ga.as_str(), "default"),
            ("r1", ga.as_str(), "group rest")
        ]
    );
    assert!(
        env.sidus(&["nodes", "--stale"]).ok().is_empty(),
        "nothing booted: nothing known stale"
    );

    // What a group boots is protected; the group's history rolls back.
    let e = env
        .sidus(&["unpublish", &format!("lab@{b}"), "--force"])
        .fails(1);
    assert!(e.contains("it is what group(s) canary boot"), "{e}");
    let e = env.sidus(&["delete", &format!("lab@{b}")]).fails(1);
    assert!(
        e.contains("what group 'canary' boots") && e.contains("groups/canary.ipxe"),
        "{e}"
    );
    let out = env
        .sidus(&["publish", "--rollback", "--group", "canary", "--json"])
        .json();
    assert_eq!(out["id"].as_str(), Some(a.as_str()));
    assert!(env
        .read("sidus/groups/canary.ipxe")
        .contains(&format!("sidus.snapshot={a}")));
    let e = env
        .sidus(&["publish", "--rollback", "--group", "canary"])
        .fails(1);
    assert!(
        e.contains("booted the default entry before") && e.contains("unpublish --group canary"),
        "{e}"
    );
    env.sidus(&["unpublish", "--group", "canary"]).ok();
    assert!(env.read("sidus/groups/canary.ipxe").ends_with("exit 0\n"));
    env.sidus(&["unpublish", &format!("lab@{b}")]).ok();

    // Inventory moves: a node's entry follows its group; removed nodes lose theirs.
    env.sidus(&["node", "set", "c1", "--group", "rest"]).ok();
    assert_eq!(
        env.read("sidus/nodes/52-54-00-77-00-02.ipxe")
            .lines()
            .last(),
        Some("chain --autofree ../groups/rest.ipxe")
    );
    assert!(
        !env.tftp.join("sidus/groups/canary.ipxe").exists(),
        "no node and no snapshot: gone"
    );
    env.sidus(&["node", "set", "c1", "--mac", "52:54:00:77:00:12"])
        .ok();
    assert!(!env.tftp.join("sidus/nodes/52-54-00-77-00-02.ipxe").exists());
    assert!(!env.tftp.join("pxelinux.cfg/01-52-54-00-77-00-02").exists());
    assert!(env.tftp.join("sidus/nodes/52-54-00-77-00-12.ipxe").exists());
    env.sidus(&["node", "remove", "c1", "r1"]).ok();
    assert_eq!(
        fs::read_dir(env.tftp.join("sidus/nodes")).unwrap().count(),
        0
    );
    assert!(
        env.tftp.join("sidus/groups/rest.ipxe").exists(),
        "rest has a snapshot of its own: its entry stays"
    );
}

/// Reads node entry → group entry as iPXE would, over and over, and says
/// what it found: the TREE@ID, or what was wrong.
fn resolve(tftp: &Path, mac: &str) -> Result<String, String> {
    let node = fs::read_to_string(tftp.join(format!("sidus/nodes/{mac}.ipxe")))
        .map_err(|e| format!("node entry: {e}"))?;
    let group = node
        .lines()
        .find_map(|l| l.strip_prefix("chain --autofree ../groups/"))
        .ok_or_else(|| format!("partial node entry: {node:?}"))?;
    let g = fs::read_to_string(tftp.join("sidus/groups").join(group))
        .map_err(|e| format!("group entry {group}: {e}"))?;
    if !g.ends_with("boot\n") {
        return Err(format!("partial group entry: {g:?}"));
    }
    let pxe = fs::read_to_string(tftp.join(format!("pxelinux.cfg/01-{mac}")))
        .map_err(|e| format!("pxelinux node entry: {e}"))?;
    if !pxe.ends_with("CONFIG pxelinux.cfg/sidus-groups/big\n") {
        return Err(format!("partial pxelinux node entry: {pxe:?}"));
    }
    let p = fs::read_to_string(tftp.join("pxelinux.cfg/sidus-groups/big"))
        .map_err(|e| format!("pxelinux group entry: {e}"))?;
    if !p.contains("  APPEND ") || !p.ends_with("sidus.group=big\n") {
        return Err(format!("partial pxelinux group entry: {p:?}"));
    }
    g.split_whitespace()
        .find_map(|w| w.strip_prefix("sidus.snapshot="))
        .map(str::to_string)
        .ok_or_else(|| format!("group entry names nothing: {g:?}"))
}

#[test]
fn root_btrfs_a_group_switch_is_one_rename_readers_never_see_an_entry_missing_or_partial() {
    require_root_btrfs!();
    let env = Env::new();
    let (a, b) = (env.a.clone(), env.b.clone());
    let mut csv = String::new();
    for i in 0..200 {
        csv.push_str(&format!(
            "n{i:03},52:54:02:00:{:02x}:{:02x},,big\n",
            i / 256,
            i % 256
        ));
    }
    env.sidus(&["node", "import", &env.file("big.csv", &csv)])
        .ok();
    env.sidus(&["publish", &format!("lab@{a}"), "--group", "big"])
        .ok();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let macs: Vec<String> = (0..200)
        .step_by(37)
        .map(|i| format!("52-54-02-00-{:02x}-{:02x}", i / 256, i % 256))
        .collect();
    let (reads, seen) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for m in &macs {
                    match resolve(&env.tftp, m) {
                        Ok(id) => {
                            seen.insert(id);
                        }
                        Err(e) => panic!("after {reads} reads, node {m}: {e}"),
                    }
                    reads += 1;
                }
            }
            (reads, seen)
        });
        for i in 0..12 {
            let id = if i % 2 == 0 { &b } else { &a };
            env.sidus(&["publish", &format!("lab@{id}"), "--group", "big"])
                .ok();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap()
    });
    assert!(reads > 100, "the reader ran ({reads} reads)");
    assert_eq!(
        seen,
        [a.clone(), b.clone()].into_iter().collect(),
        "each read named A or B"
    );
    eprintln!("{reads} reads of node and group entries during 12 group publishes: none missing or partial");
}
