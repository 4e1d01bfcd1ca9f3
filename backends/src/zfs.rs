//! zfs backend (in progress).
