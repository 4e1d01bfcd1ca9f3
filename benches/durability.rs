//! What durability costs a command: the time of each durable write sidus
//! makes around a change, on the file system of a real store. Run by
//! bench/core.sh as `cargo bench --bench durability -- STATE_DIR` (a
//! directory on the store's btrfs); prints mean microseconds per write.

use sidus::state::intent::{Change, Intent, Slot};
use sidus::state::journal::{Entry, Journal};
use sidus::state::record::Durability;
use std::path::PathBuf;
use std::time::Instant;

const RUNS: u32 = 200;

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .expect("usage: durability STATE_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let tree: sidus_backends::TreeName = "bench".parse().unwrap();
    let slot = Slot::Tree(tree.clone());
    let journal = Journal::new(&dir);
    let mut id = sidus_backends::SnapshotId::next_after(chrono::Utc::now(), []);
    let intent = |id: &sidus_backends::SnapshotId| Intent {
        id: "bench".into(),
        action: "snapshot".into(),
        pid: std::process::id(),
        started: chrono::Utc::now(),
        user: "root".into(),
        command: "sidus snapshot bench".into(),
        change: Change::Snapshot {
            tree: tree.clone(),
            id: id.clone(),
        },
    };
    let (mut synced, mut begin, mut append, mut clear) = (0u128, 0u128, 0u128, 0u128);
    for _ in 0..RUNS {
        id = sidus_backends::SnapshotId::next_after(chrono::Utc::now(), [&id]);
        // What a change whose next step is not a storage step pays (and
        // every change on a backend that does not order state).
        let s0 = Instant::now();
        slot.save(&dir, &intent(&id), Some(&id), Durability::Synced)
            .unwrap();
        synced += s0.elapsed().as_micros();
        slot.clear(&dir).unwrap();
        // What `sidus snapshot` pays where the snapshot commits the intent.
        let t0 = Instant::now();
        slot.save(&dir, &intent(&id), Some(&id), Durability::Ordered)
            .unwrap();
        let t1 = Instant::now();
        journal
            .append(&Entry {
                time: chrono::Utc::now(),
                user: "root".into(),
                command: "sidus snapshot bench".into(),
                action: "snapshot".into(),
                tree: Some("bench".into()),
                snapshots: vec![id.to_string()],
                outcome: "ok".into(),
                intent: Some("bench".into()),
            })
            .unwrap();
        let t2 = Instant::now();
        slot.clear(&dir).unwrap();
        let t3 = Instant::now();
        begin += (t1 - t0).as_micros();
        append += (t2 - t1).as_micros();
        clear += (t3 - t2).as_micros();
    }
    let n = u128::from(RUNS);
    println!(
        "durability per snapshot: intent written {} us (as metadata the snapshot commits; {} us when fsynced), \
         journal entry appended and fsynced {} us, intent cleared {} us; {} us in all",
        begin / n,
        synced / n,
        append / n,
        clear / n,
        (begin + append + clear) / n
    );
}
