//! What interrupted steps leave in an LVM-thin store: a rollback's incoming
//! copy (`sidus.n.T`) or outgoing working LV (`sidus.o.T`), and snapshot LVs
//! of a tree whose working LV is gone, from one `lvs` report. The tree's
//! recovery ([`crate::Backend::recover`]) settles the first two.

use super::naming::Role;
use super::report::Lv;
use super::Lvm;
use crate::{Leftover, Result};

impl Lvm {
    /// The store's leftovers (see [`crate::Backend::leftovers`]).
    pub(super) fn find_leftovers(&self) -> Result<Vec<Leftover>> {
        Ok(leftovers_in(&self.list_lvs()?, &self.vg))
    }
}

/// The leftovers among the store's LVs `lvs` in `vg`.
fn leftovers_in(lvs: &[Lv], vg: &str) -> Vec<Leftover> {
    let mut out = Vec::new();
    for l in lvs {
        let Some(tree) = &l.tree else { continue };
        let working = Lvm::find(lvs, Role::Working, tree).is_some();
        let outgoing = Lvm::find(lvs, Role::Outgoing, tree).is_some();
        let full = format!("{vg}/{}", l.name);
        let (what, holds_data, recover) = match l.role {
            Role::Incoming | Role::Outgoing if working => (
                if l.role == Role::Incoming {
                    "the copy an interrupted rollback had not swapped in yet"
                } else {
                    "the working volume an interrupted rollback swapped out"
                }
                .to_string(),
                false,
                true,
            ),
            // Cut between the renames: one of them is the tree itself.
            Role::Outgoing | Role::Incoming if outgoing => (
                "a volume of a rollback cut between its renames (the tree has no working volume)"
                    .to_string(),
                true,
                true,
            ),
            Role::Incoming => (
                format!("a rollback copy of tree '{tree}', which has no working volume"),
                true,
                false,
            ),
            Role::Snapshot if !working => (
                format!("a snapshot of tree '{tree}', which has no working volume"),
                true,
                false,
            ),
            _ => continue,
        };
        out.push(Leftover {
            what,
            by_hand: format!("lvremove {full}"),
            object: full,
            tree: Some(tree.clone()),
            holds_data,
            recover,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(name: &str, role: Role, tree: &str) -> Lv {
        Lv {
            name: name.into(),
            role,
            tree: Some(tree.parse().unwrap()),
            id: None,
            tags: vec![],
            dev: None,
        }
    }

    #[test]
    fn copies_beside_a_working_lv_hold_no_data_orphans_do() {
        let lvs = [
            lv("sidus.t.lab", Role::Working, "lab"),
            lv("sidus.n.lab", Role::Incoming, "lab"),
            lv("sidus.s.lab.1", Role::Snapshot, "lab"),
            lv("sidus.o.cut", Role::Outgoing, "cut"),
            lv("sidus.s.gone.1", Role::Snapshot, "gone"),
        ];
        let found: Vec<(String, bool, bool)> = leftovers_in(&lvs, "vg")
            .into_iter()
            .map(|l| (l.object, l.holds_data, l.recover))
            .collect();
        assert_eq!(
            found,
            [
                ("vg/sidus.n.lab".to_string(), false, true),
                ("vg/sidus.o.cut".into(), true, true),
                ("vg/sidus.s.gone.1".into(), true, false),
            ]
        );
    }
}
