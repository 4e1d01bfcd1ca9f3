//! The files that keep package scripts from starting daemons during a run: a
//! `policy-rc.d` answering 101 (invoke-rc.d: "action forbidden") and a fake
//! `start-stop-daemon`, the real one moved aside to `.REAL`. The namespace kills
//! daemons at the end anyway, but these stop them from starting at all and
//! writing pidfiles and sockets into the tree meanwhile.
//!
//! Every name is reached from the tree's root without leaving it, and renamed or
//! unlinked with `*at` calls that never follow the last component: a planted
//! symlink is moved aside or left alone, never written through.

use super::paths::{create_new, read_regular, TreeRoot};
use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, OFlags, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;

/// Our policy-rc.d.
pub const POLICY_RC_D: &[u8] =
    b"#!/bin/sh\n# Written by sidus for the duration of a run: start no daemons.\nexit 101\n";
/// Our start-stop-daemon.
pub const FAKE_SSD: &[u8] = b"#!/bin/sh\n# Written by sidus for the duration of a run.\n\
echo 'sidus: fake start-stop-daemon called, doing nothing' >&2\nexit 0\n";

const POLICY: &str = "policy-rc.d";
const POLICY_SAVED: &str = "policy-rc.d.sidus-saved";
const SSD: &str = "start-stop-daemon";
const SSD_REAL: &str = "start-stop-daemon.REAL";
/// Where start-stop-daemon lives (dpkg moved it to /usr/sbin in trixie).
const SSD_DIRS: [&str; 2] = ["usr/sbin", "sbin"];

/// What a run puts in place, decided (and recorded) before anything is changed,
/// so that a crash at any point can be undone from the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The directory that gets our policy-rc.d (absent from trees without one).
    pub policy_dir: Option<String>,
    /// The tree had its own policy-rc.d: it is kept aside as `policy-rc.d.sidus-saved`.
    pub policy_saved: bool,
    /// Directories whose start-stop-daemon is diverted.
    pub ssd_dirs: Vec<String>,
}

fn open_dir(root: &TreeRoot, rel: &str) -> Result<Option<OwnedFd>> {
    match root.open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if matches!(e.errno(), Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn exists(dir: &OwnedFd, name: &str) -> Result<bool> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("stat {name}")),
    }
}

/// Looks at the tree and decides; refuses what an earlier crashed session left.
pub fn plan(root: &TreeRoot) -> Result<Plan> {
    let mut plan = Plan::default();
    if let Some(dir) = open_dir(root, "usr/sbin")? {
        if exists(&dir, POLICY_SAVED)? {
            bail!(
                "refusing to run in {}: usr/sbin/{POLICY_SAVED} exists (left by an interrupted run?); \
                 put it back as usr/sbin/{POLICY} or remove it",
                root.path().display()
            );
        }
        plan.policy_saved = exists(&dir, POLICY)?;
        plan.policy_dir = Some("usr/sbin".into());
    }
    let mut seen = Vec::new();
    for rel in SSD_DIRS {
        let Some(dir) = open_dir(root, rel)? else {
            continue;
        };
        let st = rfs::fstat(&dir)?;
        // With merged /usr, sbin is a link to usr/sbin: one directory, not two.
        if seen.contains(&(st.st_dev, st.st_ino)) {
            continue;
        }
        seen.push((st.st_dev, st.st_ino));
        if exists(&dir, SSD_REAL)? {
            bail!(
                "refusing to run in {}: {rel}/{SSD_REAL} exists, left by a crashed chroot session \
                 (sidus, debootstrap, mmdebstrap...); move it back to {rel}/{SSD} if that one is a fake",
                root.path().display()
            );
        }
        if exists(&dir, SSD)? {
            plan.ssd_dirs.push(rel.to_string());
        }
    }
    Ok(plan)
}

fn rename(dir: &OwnedFd, from: &str, to: &str, flags: RenameFlags) -> Result<(), Errno> {
    match rfs::renameat_with(dir, from, dir, to, flags) {
        // ZFS before 2.2 has no renameat2 flags: a hard link fails the same
        // way on an existing target, then the old name goes. Only files and
        // links are renamed here, and the tree is locked meanwhile.
        Err(Errno::INVAL) if flags == RenameFlags::NOREPLACE => {
            rfs::linkat(dir, from, dir, to, rfs::AtFlags::empty())?;
            rfs::unlinkat(dir, from, rfs::AtFlags::empty())
        }
        other => other,
    }
}

/// Puts the wrappers of `plan` in place; on failure, undoes what it did.
pub fn install(root: &TreeRoot, plan: &Plan) -> Result<()> {
    let done = install_steps(root, plan);
    if let Err(e) = done {
        return match restore(root, plan) {
            Ok(_) => Err(e),
            Err(u) => Err(e.context(format!("and undoing the wrappers failed too: {u:#}"))),
        };
    }
    Ok(())
}

fn install_steps(root: &TreeRoot, plan: &Plan) -> Result<()> {
    let tree = root.path().display();
    if let Some(rel) = &plan.policy_dir {
        let dir = open_dir(root, rel)?.with_context(|| format!("{rel} vanished from {tree}"))?;
        if plan.policy_saved {
            rename(&dir, POLICY, POLICY_SAVED, RenameFlags::NOREPLACE)
                .with_context(|| format!("move {rel}/{POLICY} aside in {tree}"))?;
        }
        create_new(&dir, POLICY, 0o755, POLICY_RC_D)
            .with_context(|| format!("write {rel}/{POLICY} in {tree}"))?;
    }
    for rel in &plan.ssd_dirs {
        let dir = open_dir(root, rel)?.with_context(|| format!("{rel} vanished from {tree}"))?;
        rename(&dir, SSD, SSD_REAL, RenameFlags::NOREPLACE)
            .with_context(|| format!("divert {rel}/{SSD} in {tree}"))?;
        create_new(&dir, SSD, 0o755, FAKE_SSD)
            .with_context(|| format!("write a fake {rel}/{SSD} in {tree}"))?;
    }
    Ok(())
}

/// Removes the wrappers of `plan` and puts back what they replaced. Safe to call
/// at any point after the plan was made, and again: each step looks at what is
/// there. Returns warnings for the admin.
pub fn restore(root: &TreeRoot, plan: &Plan) -> Result<Vec<String>> {
    let tree = root.path().display();
    let mut warnings = Vec::new();
    if let Some(rel) = &plan.policy_dir {
        if let Some(dir) = open_dir(root, rel)? {
            let ours = read_regular(&dir, POLICY, 4096)?.as_deref() == Some(POLICY_RC_D);
            if ours {
                rfs::unlinkat(&dir, POLICY, AtFlags::empty())
                    .with_context(|| format!("remove {rel}/{POLICY} from {tree}"))?;
            }
            if plan.policy_saved && exists(&dir, POLICY_SAVED)? {
                match rename(&dir, POLICY_SAVED, POLICY, RenameFlags::NOREPLACE) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => warnings.push(format!(
                        "{rel}/{POLICY} was replaced during the run; the tree's previous one is kept as {rel}/{POLICY_SAVED}"
                    )),
                    Err(e) => {
                        return Err(e).with_context(|| format!("restore {rel}/{POLICY} in {tree}"))
                    }
                }
            }
        }
    }
    for rel in &plan.ssd_dirs {
        let Some(dir) = open_dir(root, rel)? else {
            continue;
        };
        if !exists(&dir, SSD_REAL)? {
            continue;
        }
        let current = match read_regular(&dir, SSD, 4096)? {
            Some(c) => Some(c),
            None if exists(&dir, SSD)? => Some(Vec::new()),
            None => None,
        };
        if current.is_none() || current.as_deref() == Some(FAKE_SSD) {
            rename(&dir, SSD_REAL, SSD, RenameFlags::empty())
                .with_context(|| format!("restore {rel}/{SSD} in {tree}"))?;
        } else {
            // dpkg was upgraded during the run and unpacked a new
            // start-stop-daemon over our fake: the one we moved aside is the old.
            rfs::unlinkat(&dir, SSD_REAL, AtFlags::empty())
                .with_context(|| format!("remove the old {rel}/{SSD_REAL} from {tree}"))?;
        }
    }
    Ok(warnings)
}

/// What a run that did not finish left of the wrappers in a tree (for
/// `sidus doctor`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LeftBehind {
    /// The paths found, relative to the tree's root.
    pub found: Vec<String>,
    /// What [`restore`] may undo: only what is surely sidus's.
    pub plan: Plan,
    /// Found but not surely sidus's: a `.REAL` beside a start-stop-daemon
    /// that is not our fake (another tool's crashed session), for the admin.
    pub foreign: Vec<String>,
}

/// Looks for the wrappers of a run that did not finish, changing nothing.
pub fn left_behind(root: &TreeRoot) -> Result<LeftBehind> {
    let mut out = LeftBehind::default();
    if let Some(dir) = open_dir(root, "usr/sbin")? {
        let ours = read_regular(&dir, POLICY, 4096)?.as_deref() == Some(POLICY_RC_D);
        let saved = exists(&dir, POLICY_SAVED)?;
        if ours {
            out.found.push(format!("usr/sbin/{POLICY}"));
        }
        if saved {
            out.found.push(format!("usr/sbin/{POLICY_SAVED}"));
        }
        if ours || saved {
            out.plan.policy_dir = Some("usr/sbin".into());
            out.plan.policy_saved = saved;
        }
    }
    let mut seen = Vec::new();
    for rel in SSD_DIRS {
        let Some(dir) = open_dir(root, rel)? else {
            continue;
        };
        let st = rfs::fstat(&dir)?;
        if seen.contains(&(st.st_dev, st.st_ino)) {
            continue;
        }
        seen.push((st.st_dev, st.st_ino));
        if !exists(&dir, SSD_REAL)? {
            continue;
        }
        let real = format!("{rel}/{SSD_REAL}");
        let fake = read_regular(&dir, SSD, 4096)?.as_deref() == Some(FAKE_SSD);
        if fake || !exists(&dir, SSD)? {
            out.found.push(real);
            out.plan.ssd_dirs.push(rel.to_string());
        } else {
            out.foreign.push(real);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("usr/sbin")).unwrap();
        symlink("usr/sbin", t.path().join("sbin")).unwrap();
        fs::write(t.path().join("usr/sbin/start-stop-daemon"), "real").unwrap();
        t
    }

    #[test]
    fn wrappers_go_in_and_come_out_leaving_the_tree_as_it_was() {
        let t = tree();
        fs::write(t.path().join("usr/sbin/policy-rc.d"), "mine").unwrap();
        let root = TreeRoot::open(t.path()).unwrap();
        let plan = plan(&root).unwrap();
        assert_eq!(plan.ssd_dirs, ["usr/sbin"], "merged sbin counted once");
        assert!(plan.policy_saved);
        install(&root, &plan).unwrap();
        let sbin = t.path().join("usr/sbin");
        assert_eq!(fs::read(sbin.join("policy-rc.d")).unwrap(), POLICY_RC_D);
        assert_eq!(fs::read(sbin.join("start-stop-daemon")).unwrap(), FAKE_SSD);
        assert_eq!(
            fs::read(sbin.join("start-stop-daemon.REAL")).unwrap(),
            b"real"
        );
        assert!(restore(&root, &plan).unwrap().is_empty());
        assert!(restore(&root, &plan).unwrap().is_empty(), "idempotent");
        let mut names: Vec<_> = fs::read_dir(&sbin)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["policy-rc.d", "start-stop-daemon"]);
        assert_eq!(fs::read(sbin.join("policy-rc.d")).unwrap(), b"mine");
        assert_eq!(fs::read(sbin.join("start-stop-daemon")).unwrap(), b"real");
    }

    #[test]
    fn wrappers_left_by_a_killed_run_are_found_and_restored() {
        let t = tree();
        fs::write(t.path().join("usr/sbin/policy-rc.d"), "mine").unwrap();
        let root = TreeRoot::open(t.path()).unwrap();
        assert_eq!(left_behind(&root).unwrap(), LeftBehind::default());
        let plan = plan(&root).unwrap();
        install(&root, &plan).unwrap();
        let left = left_behind(&root).unwrap();
        assert_eq!(
            left.found,
            [
                "usr/sbin/policy-rc.d",
                "usr/sbin/policy-rc.d.sidus-saved",
                "usr/sbin/start-stop-daemon.REAL"
            ]
        );
        assert_eq!(left.plan, plan);
        restore(&root, &left.plan).unwrap();
        assert_eq!(left_behind(&root).unwrap(), LeftBehind::default());
        assert_eq!(
            fs::read(t.path().join("usr/sbin/policy-rc.d")).unwrap(),
            b"mine"
        );
        // Another tool's diversion: named, never undone.
        fs::write(t.path().join("usr/sbin/start-stop-daemon.REAL"), "real").unwrap();
        let left = left_behind(&root).unwrap();
        assert_eq!(left.foreign, ["usr/sbin/start-stop-daemon.REAL"]);
        assert!(left.plan.ssd_dirs.is_empty());
    }

    #[test]
    fn an_upgraded_start_stop_daemon_is_kept() {
        let t = tree();
        let root = TreeRoot::open(t.path()).unwrap();
        let plan = plan(&root).unwrap();
        install(&root, &plan).unwrap();
        fs::write(t.path().join("usr/sbin/start-stop-daemon"), "new").unwrap();
        restore(&root, &plan).unwrap();
        assert_eq!(
            fs::read(t.path().join("usr/sbin/start-stop-daemon")).unwrap(),
            b"new"
        );
        assert!(!t.path().join("usr/sbin/start-stop-daemon.REAL").exists());
        assert!(!t.path().join("usr/sbin/policy-rc.d").exists());
    }

    #[test]
    fn leftovers_of_a_crashed_session_are_refused() {
        let t = tree();
        fs::write(t.path().join("usr/sbin/start-stop-daemon.REAL"), "x").unwrap();
        let root = TreeRoot::open(t.path()).unwrap();
        let e = plan(&root).unwrap_err().to_string();
        assert!(e.contains("usr/sbin/start-stop-daemon.REAL exists"), "{e}");
    }

    #[test]
    fn a_planted_policy_link_is_moved_aside_never_written_through() {
        let host = tempfile::tempdir().unwrap();
        let target = host.path().join("victim");
        fs::write(&target, "host").unwrap();
        let t = tree();
        symlink(&target, t.path().join("usr/sbin/policy-rc.d")).unwrap();
        let root = TreeRoot::open(t.path()).unwrap();
        let plan = plan(&root).unwrap();
        install(&root, &plan).unwrap();
        restore(&root, &plan).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"host");
        assert_eq!(
            fs::read_link(t.path().join("usr/sbin/policy-rc.d")).unwrap(),
            target
        );
    }
}
