//! fake backend (in progress).
