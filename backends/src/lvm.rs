//! lvm backend (in progress).
