//! The store's on-disk state, owned here: every state file is written by
//! [`atomic::write_atomic`] and read by one typed reader; the journal and the
//! tree locks live beside them.

pub mod atomic;
pub mod failpoint;
pub mod intent;
pub mod journal;
pub mod lock;
pub mod record;
