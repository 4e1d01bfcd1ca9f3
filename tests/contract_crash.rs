//! Crash safety, proven by killing sidus at every failpoint: each change is
//! cut where `SIDUS_FAILPOINT` says (the process aborts there, as a crash
//! would: no unwinding, no undo), then the next command runs, then `sidus
//! doctor` must find the store healthy, and what the store holds (trees and
//! their content, snapshots and theirs, the journal's successful changes,
//! what is published, mounted, exported and named by boot entries) must be
//! exactly as before the change or exactly as after it.
//!
//! "Before" and "after" are what the case's start holds and what the same
//! command makes of it on a reference store with no failpoint, once per case
//! (under TCG an observation takes seconds); IDs differ between stores, so
//! observations name snapshots by kind and message, which the cases keep
//! unique.
//!
//! A contract test: natively on btrfs, and in the VM (tests/vm/scenarios/
//! crash.sh) on ZFS and LVM thin with the real nfsd (`SIDUS_TEST_NFSD=1`:
//! exports are applied with `exportfs -ra`, so doctor checks the kernel's
//! export table too). Each backend's own failpoints (`zfs:`, `lvm:`,
//! `btrfs:`) are crashed on that backend only.

mod common;
use common::TestStore;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL: &str = "6.1.0-26-amd64";

/// A store with a `[publish]` section in its temp dir.
struct Env {
    store: TestStore,
    srv: PathBuf,
    tftp: PathBuf,
    exports: PathBuf,
    /// The IDs of the snapshots [`Env::snapshot`] took, by message: a case's
    /// start asks for them again, and each `sidus snapshots` costs about a
    /// second under TCG.
    ids: RefCell<BTreeMap<String, String>>,
    /// The working paths [`Env::write`] asked for, by tree.
    paths: RefCell<BTreeMap<String, PathBuf>>,
}

impl Env {
    fn new() -> Env {
        let store = TestStore::new();
        let d = store.dir.path().to_path_buf();
        // With nfsd (the VM), exports are applied for real: `exportfs -ra`
        // reads /etc/exports.d, so this store's file is there (one store at a
        // time: fsids derive from TREE@ID, which two stores may share).
        let apply = nfsd();
        let exports = if apply {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            PathBuf::from(format!("/etc/exports.d/{name}.exports"))
        } else {
            d.join("exports.d/sidus.exports")
        };
        let env = Env {
            srv: d.join("srv"),
            tftp: d.join("tftp"),
            exports,
            store,
            ids: RefCell::default(),
            paths: RefCell::default(),
        };
        let mut cfg = fs::read_to_string(&env.store.config).unwrap();
        cfg.push_str(&format!(
            "\n[publish]\nroot = \"{}\"\nboot_root = \"{}\"\nexports_file = \"{}\"\nserver = \"192.0.2.1\"\nclients = [\"127.0.0.1\"]\napply_exports = {apply}\n",
            env.srv.display(),
            env.tftp.display(),
            env.exports.display()
        ));
        fs::write(&env.store.config, cfg).unwrap();
        env
    }

    fn sidus(&self, args: &[&str]) -> common::Run {
        self.store.sidus(args)
    }

    /// A tree from a directory holding a fake kernel (so `publish` works)
    /// and, when `runnable`, busybox with its libraries (so `run` works; a
    /// few MB that every other case would copy and checksum for nothing).
    fn make_tree(&self, name: &str, runnable: bool) {
        let src = self.store.dir.path().join(format!("src-{name}"));
        for d in ["bin", "boot", "etc", "root", "tmp", "run", "usr/sbin"] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        if runnable {
            common::copy_busybox(&src);
            std::os::unix::fs::symlink("busybox", src.join("bin/sh")).unwrap();
        }
        fs::write(src.join("etc/motd"), "one\n").unwrap();
        fs::write(src.join(format!("boot/vmlinuz-{KERNEL}")), "KERNEL").unwrap();
        fs::write(src.join(format!("boot/initrd.img-{KERNEL}")), "INITRD").unwrap();
        self.sidus(&["create", name, "--from-dir", src.to_str().unwrap()])
            .ok();
    }

    fn write(&self, tree: &str, file: &str, text: &str) {
        let path = self
            .paths
            .borrow_mut()
            .entry(tree.to_string())
            .or_insert_with(|| self.store.path(tree))
            .clone();
        fs::write(path.join(file), text).unwrap();
    }

    fn snapshot(&self, tree: &str, msg: &str) -> String {
        let id = self.store.snapshot(tree, msg);
        self.ids
            .borrow_mut()
            .insert(format!("{tree}\n{msg}"), id.clone());
        id
    }

    /// The ID of the snapshot of `tree` with message `msg`.
    fn id(&self, tree: &str, msg: &str) -> String {
        if let Some(id) = self.ids.borrow().get(&format!("{tree}\n{msg}")) {
            return id.clone();
        }
        let v = self.sidus(&["snapshots", tree, "--json"]).json();
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["message"] == msg)
            .unwrap_or_else(|| panic!("no snapshot '{msg}' in {tree}: {v}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if nfsd() {
            // nfsd's export cache pins exported mounts: drop and flush first.
            let _ = fs::remove_file(&self.exports);
            let _ = Command::new("exportfs").arg("-ra").status();
            let _ = Command::new("exportfs").arg("-f").status();
        }
        for m in mounts_under(&self.srv).iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

/// Whether exports are applied to a running nfsd (the VM sets it).
fn nfsd() -> bool {
    std::env::var("SIDUS_TEST_NFSD").is_ok_and(|v| v == "1")
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// What a store holds, with snapshot IDs replaced by `kind:message`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Obs(BTreeSet<String>);

/// Replaces every snapshot ID in `text` by its label, `kind:message` (the
/// message's own IDs named the same way, one level deep; `?` for an ID no
/// snapshot has now).
fn normalize(text: &str, labels: &BTreeMap<String, (String, String)>, depth: u32) -> String {
    let b = text.as_bytes();
    let mut s = String::new();
    let mut i = 0;
    while i < b.len() {
        let is_id = b.len() - i >= 16
            && b[i..i + 8].iter().all(u8::is_ascii_digit)
            && b[i + 8] == b'T'
            && b[i + 9..i + 15].iter().all(u8::is_ascii_digit)
            && b[i + 15] == b'Z';
        if !is_id {
            let c = text[i..].chars().next().unwrap();
            s.push(c);
            i += c.len_utf8();
            continue;
        }
        let start = i;
        i += 16;
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        match labels.get(&text[start..i]) {
            Some((kind, msg)) if depth < 2 => {
                s.push_str(&format!("{kind}:{}", normalize(msg, labels, depth + 1)))
            }
            _ => s.push('?'),
        }
    }
    s
}

/// The message of the next command's snapshot, left out of observations.
const NEXT: &str = "next-command";

/// What the store holds; `next`: the next command, whose own journal entry
/// is left out (recovery's entries carry the dead command's line instead).
fn observe(env: &Env, next: Option<&[String]>) -> Obs {
    let next_line = next.map(|a| format!("sidus {}", a.join(" ")));
    let mut facts = BTreeSet::new();
    let trees = env.sidus(&["list", "--json"]).json();
    let mut labels: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut per_tree = BTreeMap::new();
    for t in trees.as_array().unwrap() {
        let name = t["name"].as_str().unwrap().to_string();
        let snaps = env.sidus(&["snapshots", &name, "--json"]).json();
        for s in snaps.as_array().unwrap() {
            labels.insert(
                s["id"].as_str().unwrap().to_string(),
                (
                    s["kind"].as_str().unwrap().to_string(),
                    s["message"].as_str().unwrap().to_string(),
                ),
            );
        }
        per_tree.insert(name, (t.clone(), snaps));
    }
    // Temp paths and fsids (derived from IDs) differ between stores.
    let dir = env.store.dir.path().display().to_string();
    let n = |text: &str| {
        let t = normalize(&text.replace(&dir, "$D"), &labels, 0);
        match t.find("fsid=") {
            Some(i) => t[..i].to_string(),
            None => t,
        }
    };
    // Each tree's and snapshot's content, listed all at once.
    let mut contents = Vec::new();
    for (name, (t, snaps)) in &per_tree {
        facts.insert(format!(
            "tree {name} origin {}",
            n(&t["origin"].to_string())
        ));
        contents.push((format!("tree {name}"), env.store.path(name)));
        for s in snaps.as_array().unwrap() {
            if s["message"] == NEXT {
                continue;
            }
            let id = s["id"].as_str().unwrap();
            let label = n(id);
            facts.insert(format!(
                "snapshot {name}@{label} parent {} pre {} status {}",
                n(&s["parent"].to_string()),
                n(&s["pre"].to_string()),
                s["status"]
            ));
            let path = env.store.path(&format!("{name}@{id}"));
            contents.push((format!("snapshot {name}@{label}"), path));
        }
    }
    let roots: Vec<&Path> = contents.iter().map(|(_, p)| p.as_path()).collect();
    for ((what, _), lines) in contents.iter().zip(listings(&roots)) {
        for line in lines {
            facts.insert(format!("{what} has {line}"));
        }
    }
    let log = env.sidus(&["log", "--json"]).json();
    let mut journal = Vec::new();
    for e in log.as_array().unwrap().iter().rev() {
        let outcome = e["outcome"].as_str().unwrap();
        let own =
            next_line.as_deref() == e["command"].as_str() && !outcome.contains("died during it");
        if outcome.starts_with("ok") && !own {
            journal.push(format!("{} {}", e["action"], e["tree"]));
        }
    }
    facts.insert(format!("journal {}", journal.join(", ")));
    let status = env.sidus(&["status", "--json"]).json();
    for t in status["trees"].as_array().unwrap() {
        let mut t = t.clone();
        for e in t["exported"].as_array_mut().unwrap() {
            for k in ["clients", "in_kernel", "fsid", "options"] {
                e.as_object_mut().unwrap().remove(k);
            }
        }
        facts.insert(format!("published {}", n(&t.to_string())));
    }
    for m in mounts_under(&env.srv) {
        facts.insert(format!("mounted {}", n(&m.display().to_string())));
    }
    let exports = fs::read_to_string(&env.exports).unwrap_or_default();
    for line in exports
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        facts.insert(format!("exports {}", n(line)));
    }
    let boot = env.tftp.join("sidus");
    for tree in fs::read_dir(&boot).into_iter().flatten().flatten() {
        let p = tree.path();
        let fleet = ["groups", "nodes"].map(|d| boot.join(d)).contains(&p);
        if p.is_dir() && !fleet {
            for id in fs::read_dir(&p).unwrap().flatten() {
                facts.insert(format!(
                    "kernel copy {}",
                    n(&id.path().display().to_string())
                ));
            }
        } else {
            entries(&p, &n, &mut facts);
        }
    }
    entries(&env.tftp.join("pxelinux.cfg"), &n, &mut facts);
    // The fleet: the inventory and what each group boots (what nodes run is
    // the NFS server's, not the store's).
    let nodes = env.sidus(&["nodes", "--json"]).json();
    for node in nodes["nodes"].as_array().unwrap() {
        facts.insert(format!(
            "node {} {} {} {} assigned {}",
            node["name"],
            node["mac"],
            node["ip"],
            node["group"],
            n(&node["assigned"].to_string())
        ));
    }
    let groups = env.sidus(&["groups", "--json"]).json();
    for g in groups["groups"].as_array().unwrap() {
        facts.insert(format!("group {}", n(&g.to_string())));
    }
    Obs(facts)
}

/// [`TestStore::listing`] of each of `roots` (the same lines, unsorted), from
/// two `find`s over all of them: under TCG a process costs tens of
/// milliseconds, and an observation lists a dozen trees and snapshots.
fn listings(roots: &[&Path]) -> Vec<Vec<String>> {
    // ROOT/. : the walk starts inside the root (a snapshot's automount
    // included), and its own entry is "." as in the one-root listing.
    let starts: Vec<String> = roots.iter().map(|r| format!("{}/.", r.display())).collect();
    let mut out = vec![Vec::new(); roots.len()];
    if roots.is_empty() {
        return out;
    }
    let find = |action: &[&str]| {
        let mut c = Command::new("find");
        c.args(&starts).arg("(");
        for (i, s) in starts.iter().enumerate() {
            if i > 0 {
                c.arg("-o");
            }
            c.args(["-path", &format!("{s}/lost+found")]);
        }
        c.args([")", "-prune", "-o"]).args(action);
        let o = c.output().expect("run find");
        if !o.status.success() {
            // What it could list still counts; what it could not will differ.
            eprintln!("find: {}", String::from_utf8_lossy(&o.stderr).trim());
        }
        String::from_utf8(o.stdout).unwrap()
    };
    for line in find(&["-printf", "%H\t%P %y %m %U:%G %l\n"]).lines() {
        let (start, rest) = line.split_once('\t').unwrap();
        let i = starts.iter().position(|s| s == start).unwrap();
        let rest = if rest.starts_with(' ') {
            format!(".{rest}")
        } else {
            format!("./{rest}")
        };
        out[i].push(rest);
    }
    for line in find(&["-type", "f", "-exec", "md5sum", "{}", "+"]).lines() {
        let (sum, path) = line.split_once("  ").unwrap();
        // The longest start the path is under (a snapshot may lie below its tree).
        let (i, start) = starts
            .iter()
            .enumerate()
            .filter(|(_, s)| path.starts_with(&format!("{s}/")))
            .max_by_key(|(_, s)| s.len())
            .unwrap();
        out[i].push(format!("{sum}  .{}", &path[start.len()..]));
    }
    out
}

/// Every boot entry file at or under `p`, by name and content.
fn entries(p: &Path, n: &dyn Fn(&str) -> String, facts: &mut BTreeSet<String>) {
    if p.is_dir() {
        for e in fs::read_dir(p).into_iter().flatten().flatten() {
            entries(&e.path(), n, facts);
        }
    } else if let Ok(text) = fs::read_to_string(p) {
        let name = p.file_name().unwrap().to_string_lossy();
        facts.insert(format!("boot entry {name}: {}", n(&text)));
    }
}

/// One change to interrupt: how to make its start, the command, and the next
/// command that must settle what the crash left.
struct Case {
    what: &'static str,
    /// Which test crashes it (each is one nextest test, so the VM can shard).
    area: Area,
    failpoints: &'static [&'static str],
    setup: fn(&Env),
    cmd: fn(&Env) -> Vec<String>,
    /// Another outcome the crash may end in, besides before and after (an
    /// interrupted run ends as a failed one).
    alt: Option<fn(&Env) -> Vec<String>>,
    next: fn(&Env) -> Vec<String>,
}

/// The groups of cases, one test each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Area {
    /// create, snapshot, clone, delete, prune, destroy, rollback.
    Storage,
    /// run (the sandbox between two snapshots).
    Run,
    /// publish, unpublish, restore of the tree's default entry.
    Publish,
    /// node inventory and group entries.
    Fleet,
}

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn lab(env: &Env) {
    env.make_tree("lab", false);
}

/// [`lab`] with busybox in it, for `run`.
fn lab_runnable(env: &Env) {
    env.make_tree("lab", true);
}

fn lab_with_history(env: &Env) {
    env.make_tree("lab", false);
    env.snapshot("lab", "a");
    env.write("lab", "etc/motd", "two\n");
    env.snapshot("lab", "b");
    env.write("lab", "etc/motd", "three\n");
    env.snapshot("lab", "c");
    env.write("lab", "etc/motd", "working\n");
}

fn lab_published(env: &Env) {
    lab_with_history(env);
    env.sidus(&["publish", &format!("lab@{}", env.id("lab", "a"))])
        .ok();
}

fn lab_published_twice(env: &Env) {
    lab_published(env);
    env.sidus(&["publish", &format!("lab@{}", env.id("lab", "b"))])
        .ok();
}

fn next_on_lab(_: &Env) -> Vec<String> {
    v(&["snapshot", "lab", "-m", NEXT])
}

/// Nodes in two groups, with lab@a the default entry.
fn fleet(env: &Env) {
    lab_published(env);
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
}

/// [`fleet`] with lab@a then lab@b published to the canary group.
fn fleet_canary_on_b(env: &Env) {
    fleet(env);
    for m in ["a", "b"] {
        env.sidus(&[
            "publish",
            &format!("lab@{}", env.id("lab", m)),
            "--group",
            "canary",
        ])
        .ok();
    }
}

/// A CSV of three nodes (one already in the inventory moves to a new group).
fn import_file(env: &Env) -> String {
    let f = env.store.dir.path().join("nodes.csv");
    fs::write(
        &f,
        "name,mac,group
c1,52:54:00:77:00:02,canary
r2,52:54:00:77:00:04,rest
x1,52:54:00:77:00:05,new
",
    )
    .unwrap();
    f.display().to_string()
}

/// The next publisher after a fleet change (one that changes nothing else).
fn next_publish(_: &Env) -> Vec<String> {
    v(&["restore"])
}

/// A rollback's steps: sidus's own, and each backend's (only the running
/// backend's fire).
const ROLLBACK: &[&str] = &[
    "rollback:after-safety",
    "btrfs:rollback-after-copy",
    "zfs:rollback-after-clone",
    "zfs:rollback-after-rename-out",
    "lvm:rollback-after-copy",
    "lvm:rollback-after-rename-out",
    "rollback:after-replace",
];

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "create",
            area: Area::Storage,
            failpoints: &["create:after-tree", "create:after-copy"],
            setup: |_| {},
            cmd: |env| {
                let src = env.store.dir.path().join("src-new");
                fs::create_dir_all(src.join("etc")).unwrap();
                fs::write(src.join("etc/motd"), "new\n").unwrap();
                v(&["create", "lab", "--from-dir", src.to_str().unwrap()])
            },
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "snapshot",
            area: Area::Storage,
            failpoints: &[
                "intent:after-write",
                "snapshot:after-snapshot",
                "journal:before-append",
                "done:before-clear",
            ],
            setup: lab,
            cmd: |_| v(&["snapshot", "lab", "-m", "s"]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "clone of the working tree",
            area: Area::Storage,
            failpoints: &["clone:after-snapshot", "clone:after-clone"],
            setup: lab_with_history,
            cmd: |_| v(&["clone", "lab", "copy"]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "clone of a snapshot (settled through the new tree)",
            area: Area::Storage,
            failpoints: &["clone:after-clone"],
            setup: lab_with_history,
            cmd: |env| v(&["clone", &format!("lab@{}", env.id("lab", "a")), "copy"]),
            alt: None,
            next: |_| v(&["create", "copy"]),
        },
        Case {
            what: "delete",
            area: Area::Storage,
            failpoints: &["delete:after-delete"],
            setup: lab_with_history,
            cmd: |env| v(&["delete", &format!("lab@{}", env.id("lab", "b"))]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "prune",
            area: Area::Storage,
            failpoints: &["prune:after-some", "prune:after-all"],
            setup: lab_with_history,
            cmd: |_| v(&["prune", "lab", "--keep-last", "1"]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "destroy",
            area: Area::Storage,
            failpoints: &["destroy:after-storage"],
            setup: lab_with_history,
            cmd: |_| v(&["destroy", "lab"]),
            alt: None,
            next: |_| v(&["destroy", "lab"]),
        },
        Case {
            what: "rollback",
            area: Area::Storage,
            failpoints: ROLLBACK,
            setup: lab_with_history,
            cmd: |env| v(&["rollback", &format!("lab@{}", env.id("lab", "a"))]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "rollback of a published tree",
            area: Area::Storage,
            failpoints: ROLLBACK,
            setup: lab_published_twice,
            cmd: |env| v(&["rollback", &format!("lab@{}", env.id("lab", "a"))]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "run",
            area: Area::Run,
            failpoints: &["run:after-pre", "run:after-command", "run:after-post"],
            setup: lab_runnable,
            cmd: |_| {
                v(&[
                    "run",
                    "lab",
                    "-m",
                    "r",
                    "--",
                    "sh",
                    "-c",
                    "echo ran > /etc/ran",
                ])
            },
            alt: Some(|_| v(&["run", "lab", "-m", "r", "--", "sh", "-c", "exit 1"])),
            next: next_on_lab,
        },
        Case {
            what: "failing run",
            area: Area::Run,
            failpoints: &["run:after-command"],
            setup: lab_runnable,
            cmd: |_| {
                v(&[
                    "run",
                    "lab",
                    "-m",
                    "r",
                    "--",
                    "sh",
                    "-c",
                    "echo ran > /etc/ran; exit 3",
                ])
            },
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "first publish",
            area: Area::Publish,
            failpoints: &[
                "publish:after-serve",
                "publish:after-kernel",
                "publish:after-exports",
                "publish:after-ipxe",
                "publish:after-entries",
                "publish:after-state",
            ],
            setup: lab_with_history,
            cmd: |env| v(&["publish", &format!("lab@{}", env.id("lab", "a"))]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "publish over a published ID",
            area: Area::Publish,
            failpoints: &[
                "publish:after-exports",
                "publish:after-ipxe",
                "publish:after-state",
            ],
            setup: lab_published,
            cmd: |env| v(&["publish", &format!("lab@{}", env.id("lab", "b"))]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "unpublish",
            area: Area::Publish,
            failpoints: &[
                "unpublish:after-exports",
                "unpublish:after-unmount",
                "unpublish:after-state",
            ],
            setup: lab_published_twice,
            cmd: |env| v(&["unpublish", &format!("lab@{}", env.id("lab", "a"))]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "forced unpublish of the current ID",
            area: Area::Publish,
            failpoints: &["unpublish:after-entries", "unpublish:after-state"],
            setup: lab_published_twice,
            cmd: |env| {
                v(&[
                    "unpublish",
                    &format!("lab@{}", env.id("lab", "b")),
                    "--force",
                ])
            },
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "group publish",
            area: Area::Fleet,
            failpoints: &[
                "publish:group-after-serve",
                "publish:group-after-kernel",
                "publish:group-after-exports",
                "publish:group-after-ipxe",
                "publish:group-after-entries",
                "publish:group-after-state",
            ],
            setup: fleet,
            cmd: |env| {
                v(&[
                    "publish",
                    &format!("lab@{}", env.id("lab", "b")),
                    "--group",
                    "canary",
                ])
            },
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "group rollback",
            area: Area::Fleet,
            failpoints: &["publish:group-after-ipxe", "publish:group-after-state"],
            setup: fleet_canary_on_b,
            cmd: |_| v(&["publish", "--rollback", "--group", "canary"]),
            alt: None,
            next: next_on_lab,
        },
        Case {
            what: "group back to the default entry",
            area: Area::Fleet,
            failpoints: &[
                "unpublish:group-after-entries",
                "unpublish:group-after-state",
            ],
            setup: fleet_canary_on_b,
            cmd: |_| v(&["unpublish", "--group", "canary"]),
            alt: None,
            next: next_publish,
        },
        Case {
            what: "node import",
            area: Area::Fleet,
            failpoints: &[
                "intent:after-write",
                "node:after-inventory",
                "node:after-entries",
            ],
            setup: fleet,
            cmd: |env| v(&["node", "import", &import_file(env), "--replace"]),
            alt: None,
            next: next_publish,
        },
        Case {
            what: "restore after a reboot",
            area: Area::Publish,
            failpoints: &["restore:after-serve"],
            setup: |env| {
                lab_published_twice(env);
                for m in mounts_under(&env.srv).iter().rev() {
                    assert!(Command::new("umount").arg(m).status().unwrap().success());
                }
            },
            cmd: |_| v(&["restore"]),
            alt: None,
            next: |_| v(&["restore"]),
        },
    ]
}

/// Runs `args` on `env`, returning its exit code (`None`: killed by a signal).
fn run(env: &Env, args: &[String], failpoint: Option<&str>) -> (Option<i32>, String) {
    let out = Command::new(common::sidus_bin())
        .args(args)
        .env("SIDUS_CONFIG", &env.store.config)
        .env("SIDUS_FAILPOINT", failpoint.unwrap_or(""))
        .output()
        .expect("run sidus");
    // stdout too: doctor prints its problems there.
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What `case`'s start holds and what `cmd` makes of it, on a fresh store.
/// The start is the same on every store (observations name snapshots by
/// label, not ID), so one store gives the "before" of every crash of the case.
fn outcome_of(case: &Case, cmd: fn(&Env) -> Vec<String>) -> (Obs, Obs) {
    let env = Env::new();
    (case.setup)(&env);
    let before = observe(&env, None);
    run(&env, &cmd(&env), None);
    (before, observe(&env, None))
}

/// Kills `case` at `fp`, settles, and checks that the store is as `before`
/// or as one of `allowed`; returns a failure, if any.
fn crash_at(case: &Case, fp: &str, before: &Obs, allowed: &[Obs]) -> Result<(), String> {
    let env = Env::new();
    (case.setup)(&env);
    let (code, err) = run(&env, &(case.cmd)(&env), Some(fp));
    if code.is_some() {
        return Err(format!(
            "{fp}: the command did not reach it (exit {code:?}): {err}"
        ));
    }
    let next = (case.next)(&env);
    let (code, err) = run(&env, &next, None);
    if !matches!(code, Some(0) | Some(1)) {
        return Err(format!(
            "{fp}: the next command failed badly ({code:?}): {err}"
        ));
    }
    let (code, err) = run(&env, &v(&["doctor"]), None);
    if code != Some(0) {
        return Err(format!(
            "{fp}: doctor is not satisfied (exit {code:?}): {err}"
        ));
    }
    let now = observe(&env, Some(&next));
    if now == *before || allowed.contains(&now) {
        return Ok(());
    }
    let after = &allowed[0];
    Err(format!(
        "{fp}: the store is neither as before nor as after.\n  not before: {:?}\n  missing from before: {:?}\n  not after: {:?}\n  missing from after: {:?}",
        now.0.difference(&before.0).collect::<Vec<_>>(),
        before.0.difference(&now.0).collect::<Vec<_>>(),
        now.0.difference(&after.0).collect::<Vec<_>>(),
        after.0.difference(&now.0).collect::<Vec<_>>(),
    ))
}

/// The failpoints this backend reaches: sidus's own and the backend's.
/// A replica's receive needs a second store and a primary feeding it: it is
/// crashed in root_btrfs_replica and the replicate VM scenarios.
fn failpoints() -> BTreeSet<String> {
    let listed = Command::new(common::sidus_bin())
        .arg("failpoints")
        .output()
        .expect("run sidus failpoints");
    let own = format!("{}:", common::backend().name());
    String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter(|f| !f.starts_with("receive:"))
        .filter(|f| {
            !["btrfs:", "zfs:", "lvm:"].iter().any(|b| f.starts_with(b)) || f.starts_with(&own)
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_failpoint_has_a_crash_case() {
    let all = failpoints();
    let covered: BTreeSet<String> = cases()
        .iter()
        .flat_map(|c| c.failpoints.iter().map(|f| f.to_string()))
        .filter(|f| all.contains(f))
        .collect();
    assert_eq!(covered, all, "every failpoint has a crash case");
}

/// Kills every case of `area` at each of its failpoints this backend
/// reaches, then checks the next command and doctor settle it.
fn kill_at_every_failpoint(area: Area) {
    let all = failpoints();
    let cases: Vec<Case> = cases().into_iter().filter(|c| c.area == area).collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let points = std::sync::Mutex::new(BTreeSet::new());
    // Cases side by side, each with stores of its own; one at a time with
    // nfsd, whose export table all stores share.
    let threads = if nfsd() { 1 } else { 3 };
    std::thread::scope(|s| {
        for chunk in cases.chunks(cases.len().div_ceil(threads)) {
            let (failures, runs, points, all) = (&failures, &runs, &points, &all);
            s.spawn(move || {
                for case in chunk {
                    let (before, after) = outcome_of(case, case.cmd);
                    let mut allowed = vec![after];
                    if let Some(alt) = case.alt {
                        allowed.push(outcome_of(case, alt).1);
                    }
                    for fp in case.failpoints.iter().filter(|f| all.contains(**f)) {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        points.lock().unwrap().insert(fp.to_string());
                        if let Err(e) = crash_at(case, fp, &before, &allowed) {
                            failures.lock().unwrap().push(format!("{}: {e}", case.what));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "{area:?}: {} failpoints x 1 backend ({}{}), {} crash runs: all recovered",
        points.into_inner().unwrap().len(),
        common::backend(),
        if nfsd() { ", with nfsd" } else { "" },
        runs.into_inner()
    );
}

#[test]
fn kill_in_storage_changes_then_next_command_and_doctor_recover() {
    require_backend!();
    kill_at_every_failpoint(Area::Storage);
}

#[test]
fn kill_in_run_then_next_command_and_doctor_recover() {
    require_backend!();
    kill_at_every_failpoint(Area::Run);
}

#[test]
fn kill_in_publish_then_next_command_and_doctor_recover() {
    require_backend!();
    kill_at_every_failpoint(Area::Publish);
}

#[test]
fn kill_in_fleet_changes_then_next_command_and_doctor_recover() {
    require_backend!();
    kill_at_every_failpoint(Area::Fleet);
}
