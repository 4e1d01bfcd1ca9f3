//! The policy of `trees` exercised on the in-memory fake backend: no root needed.

use crate::config::Config;
use crate::store::{Invocation, Store};
use crate::trees::refs::TreeRef;
use crate::trees::{self, RunFacts};
use sidus_backends::fake::Fake;
use sidus_backends::{PoolUsage, SnapshotKind, TreeName};

fn store() -> (tempfile::TempDir, Store, &'static Fake) {
    let dir = tempfile::tempdir().unwrap();
    // Leaked so the test can inspect the fake while the store owns a Box of it.
    let fake: &'static Fake = Box::leak(Box::new(Fake::new(dir.path().to_path_buf())));
    let backend: Box<dyn sidus_backends::Backend> = Box::new(ForwardingBackend(fake));
    let inv = Invocation {
        user: "alice".into(),
        command: "sidus test".into(),
    };
    let store = Store::with_backend(Config::embedded_default(), backend, inv);
    (dir, store, fake)
}

/// Lets the store own a backend while the test keeps a reference to the fake.
struct ForwardingBackend(&'static Fake);

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.0.$name($($arg),*) })*
    };
}

impl sidus_backends::Backend for ForwardingBackend {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn capabilities(&self) -> sidus_backends::Capabilities {
        self.0.capabilities()
    }
    forward! {
        init_store(opts: &sidus_backends::InitOptions) -> sidus_backends::Result<()>;
        open() -> sidus_backends::Result<()>;
        state_dir() -> std::path::PathBuf;
        list_trees() -> sidus_backends::Result<Vec<sidus_backends::TreeRecord>>;
        list_snapshots(tree: Option<&TreeName>) -> sidus_backends::Result<Vec<sidus_backends::Snapshot>>;
        create_tree(tree: &TreeName) -> sidus_backends::Result<std::path::PathBuf>;
        destroy_tree(tree: &TreeName) -> sidus_backends::Result<()>;
        tree_path(tree: &TreeName) -> sidus_backends::Result<std::path::PathBuf>;
        snapshot(snap: &sidus_backends::Snapshot) -> sidus_backends::Result<()>;
        delete_snapshot(tree: &TreeName, id: &sidus_backends::SnapshotId) -> sidus_backends::Result<()>;
        snapshot_path(tree: &TreeName, id: &sidus_backends::SnapshotId) -> sidus_backends::Result<std::path::PathBuf>;
        clone_tree(tree: &TreeName, id: &sidus_backends::SnapshotId, new: &TreeName) -> sidus_backends::Result<std::path::PathBuf>;
        replace_working(tree: &TreeName, id: &sidus_backends::SnapshotId) -> sidus_backends::Result<()>;
        pool_usage() -> sidus_backends::Result<Option<PoolUsage>>;
    }
}

fn name(s: &str) -> TreeName {
    s.parse().unwrap()
}

fn r(s: &str) -> TreeRef {
    s.parse().unwrap()
}

#[test]
fn rollback_saves_the_current_state_first_and_keeps_every_snapshot() {
    let (_dir, store, fake) = store();
    let lab = name("lab");
    store.backend.create_tree(&lab).unwrap();
    fake.write(&lab, "v1");
    let a =
        trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "a", RunFacts::default()).unwrap();
    fake.write(&lab, "v2");
    let b =
        trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "b", RunFacts::default()).unwrap();
    fake.write(&lab, "unsaved");
    let (safety, to) = trees::rollback(&store, &r(&format!("lab@{}", a.id))).unwrap();
    assert_eq!(fake.content(&lab), "v1");
    assert_eq!(to, a.id);
    assert_eq!(safety.kind, SnapshotKind::Safety);
    assert_eq!(safety.parent, Some(b.id.clone()));
    assert_eq!(safety.user, "alice");
    let ids: Vec<_> = store
        .backend
        .list_snapshots(Some(&lab))
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, [a.id, b.id, safety.id.clone()]);
    trees::rollback(&store, &r(&format!("lab@{}", safety.id))).unwrap();
    assert_eq!(fake.content(&lab), "unsaved");
}

#[test]
fn a_full_pool_refuses_snapshot_and_clone_and_changes_nothing() {
    let (_dir, store, fake) = store();
    let lab = name("lab");
    store.backend.create_tree(&lab).unwrap();
    trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "", RunFacts::default()).unwrap();
    *fake.usage.borrow_mut() = Some(PoolUsage {
        name: "vg0/pool".into(),
        data_percent: 91.5,
        metadata_percent: Some(10.0),
    });
    let err = trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "", RunFacts::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("refusing to snapshot tree 'lab': thin pool vg0/pool is 91.5% full"),
        "{err}"
    );
    let err = trees::clone(&store, &r("lab@latest"), &name("copy")).unwrap_err();
    assert!(
        err.to_string().contains("refusing to clone to 'copy'"),
        "{err}"
    );
    assert_eq!(store.backend.list_snapshots(Some(&lab)).unwrap().len(), 1);
    assert_eq!(store.backend.list_trees().unwrap().len(), 1);
    // Metadata counts too.
    *fake.usage.borrow_mut() = Some(PoolUsage {
        name: "vg0/pool".into(),
        data_percent: 5.0,
        metadata_percent: Some(95.0),
    });
    assert!(
        trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "", RunFacts::default()).is_err()
    );
    *fake.usage.borrow_mut() = Some(PoolUsage {
        name: "vg0/pool".into(),
        data_percent: 89.0,
        metadata_percent: Some(20.0),
    });
    trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "", RunFacts::default()).unwrap();
}

#[test]
fn clone_without_ref_snapshots_the_source_first() {
    let (_dir, store, fake) = store();
    let lab = name("lab");
    store.backend.create_tree(&lab).unwrap();
    fake.write(&lab, "now");
    let (_, origin) = trees::clone(&store, &r("lab"), &name("exp")).unwrap();
    let origin = trees::resolve_ref(&store, &r(&format!("lab@{origin}"))).unwrap();
    assert_eq!(origin.kind, SnapshotKind::Clone);
    assert_eq!(origin.message, "cloned to exp");
    assert_eq!(fake.content(&name("exp")), "now");
}

#[test]
fn delete_destroy_and_prune_refuse_every_protection_naming_it() {
    let (dir, store, _fake) = store();
    let lab = name("lab");
    store.backend.create_tree(&lab).unwrap();
    let snap = || {
        trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "", RunFacts::default())
            .unwrap()
            .id
    };
    let (pinned, published, pre, free) = (snap(), snap(), snap(), snap());
    let state = store.state_dir().clone();
    crate::history::pins::Pins::new(&state)
        .update(&store, |list| {
            crate::history::pins::add(
                list,
                crate::history::pins::Pin {
                    tree: lab.clone(),
                    id: pinned.clone(),
                    label: Some("paper".parse().unwrap()),
                    note: String::new(),
                    user: "alice".into(),
                    pinned_at: chrono::Utc::now(),
                    manifest: None,
                },
            )
        })
        .unwrap();
    std::fs::create_dir_all(state.join("publish")).unwrap();
    std::fs::write(
        state.join("publish/state.json"),
        format!(
            r#"{{"trees": {{"lab": {{"current": "{published}", "exported": ["{published}"]}}}}}}"#
        ),
    )
    .unwrap();
    // (An unfinished run's `pre` is not staged here: any writer takes the tree
    // lock, which first finishes such a run; tests/root_btrfs_run.rs covers it.)

    let refused = |id: &sidus_backends::SnapshotId| {
        trees::delete(&store, &r(&format!("lab@{id}")))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused(&pinned),
        format!("refusing to delete lab@{pinned}: it is pinned as 'paper'")
    );
    assert!(refused(&published).ends_with("it is published (current)"));
    let err = trees::destroy(&store, &lab).unwrap_err().to_string();
    assert!(
        err.contains(&format!("lab@{pinned} is pinned as 'paper'")),
        "{err}"
    );

    let policy = crate::history::retention::Policy {
        keep_last: 1,
        ..Default::default()
    };
    let out = crate::history::prune::prune(&store, &lab, &policy, false).unwrap();
    let gone: Vec<_> = out.removed().map(|v| v.snapshot.id.clone()).collect();
    assert_eq!(gone, [pre]);
    trees::delete(&store, &r(&format!("lab@{free}"))).unwrap();
    drop(dir);
}

#[test]
fn doctor_adopts_an_unjournaled_snapshot_and_settles_an_interrupted_one() {
    let (_dir, store, _fake) = store();
    let lab = name("lab");
    store.backend.create_tree(&lab).unwrap();
    // Modes, owners and the host's publish files depend on who runs the
    // test and where, not on the fake: only the store's own checks count.
    let found = |repair| -> Vec<&'static str> {
        crate::doctor::doctor(&store, None, repair)
            .unwrap()
            .problems
            .iter()
            .filter(|p| ["intent", "journal", "leftover", "record"].contains(&p.check))
            .map(|p| p.check)
            .collect()
    };
    assert!(found(false).is_empty());
    // Made behind the journal's back.
    let a =
        trees::take_snapshot(&store, &lab, SnapshotKind::Manual, "", RunFacts::default()).unwrap();
    assert_eq!(found(false), ["journal"]);
    assert!(found(true).is_empty());
    let log = store.journal.read(Some("lab")).unwrap().entries;
    assert_eq!(
        (log[0].action.as_str(), log[0].snapshots.clone()),
        ("adopt", vec![a.id.to_string()])
    );
    // Its intent written, the snapshot made, never journaled: a sidus that died.
    let b = trees::snapshot(&store, &lab, "").unwrap();
    assert_eq!(found(false), ["intent"]);
    assert!(found(true).is_empty());
    let log = store.journal.read(Some("lab")).unwrap().entries;
    assert_eq!(log.last().unwrap().snapshots, [b.id.to_string()]);
}
