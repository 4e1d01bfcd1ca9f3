//! Validated names: a tree name and a snapshot ID can only exist in a form every
//! backend accepts as a dataset, LV or path component.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid tree name, label or snapshot ID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The tree name or label does not match `[a-z0-9][a-z0-9._-]{0,47}`.
    #[error("invalid name '{0}': use 1-48 characters from a-z 0-9 . _ -, starting with a letter or digit")]
    BadName(String),
    /// The snapshot ID does not look like `YYYYMMDDTHHMMSSZ[.N]`.
    #[error("invalid snapshot ID '{0}': expected YYYYMMDDTHHMMSSZ or YYYYMMDDTHHMMSSZ.N")]
    BadId(String),
}

/// Checks the charset shared by tree names and pin labels.
fn check_name(s: &str) -> Result<(), NameError> {
    let bytes = s.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 48
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b));
    if ok {
        Ok(())
    } else {
        Err(NameError::BadName(s.to_string()))
    }
}

/// A tree name: `[a-z0-9][a-z0-9._-]{0,47}`. Never contains `@`, `/`, upper case or
/// white space, so it is safe as a ZFS component, an LV name part and a file name.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct TreeName(String);

impl TreeName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TreeName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        check_name(s)?;
        Ok(TreeName(s.to_string()))
    }
}

impl TryFrom<String> for TreeName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<TreeName> for String {
    fn from(t: TreeName) -> String {
        t.0
    }
}

impl fmt::Display for TreeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pin label: same charset as a tree name.
pub type Label = TreeName;

/// A snapshot ID: the UTC creation second `YYYYMMDDTHHMMSSZ`, with `.N` appended
/// when several snapshots of a tree fall in the same second. IDs sort in creation
/// order as plain strings only within one second's width; use [`Ord`] which
/// compares the suffix numerically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotId {
    text: String,
    seq: u32,
}

const ID_FORMAT: &str = "%Y%m%dT%H%M%SZ";

impl SnapshotId {
    /// The ID for `time` with sequence `seq` (0 means no suffix).
    pub fn new(time: DateTime<Utc>, seq: u32) -> SnapshotId {
        let base = time.format(ID_FORMAT).to_string();
        let text = if seq == 0 {
            base
        } else {
            format!("{base}.{seq}")
        };
        SnapshotId { text, seq }
    }

    /// The first free ID for `time` among `existing` IDs of the same tree. If the
    /// clock went backwards, the new ID still sorts after every existing one, so
    /// "latest" stays the newest snapshot.
    pub fn next_after<'a>(
        time: DateTime<Utc>,
        existing: impl IntoIterator<Item = &'a SnapshotId>,
    ) -> SnapshotId {
        let candidate = SnapshotId::new(time, 0);
        match existing.into_iter().max() {
            Some(last) if *last >= candidate => SnapshotId::new(last.time(), last.seq + 1),
            _ => candidate,
        }
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The second encoded in the ID.
    pub fn time(&self) -> DateTime<Utc> {
        let base = &self.text[..16];
        NaiveDateTime::parse_from_str(base, ID_FORMAT)
            .map(|t| t.and_utc())
            .expect("validated at construction")
    }
}

impl FromStr for SnapshotId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::BadId(s.to_string());
        if s.len() < 16 || !s.is_char_boundary(16) {
            return Err(bad());
        }
        let (base, rest) = s.split_at(16);
        NaiveDateTime::parse_from_str(base, ID_FORMAT).map_err(|_| bad())?;
        let seq = match rest.strip_prefix('.') {
            None if rest.is_empty() => 0,
            Some(n)
                if !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && !n.starts_with('0') =>
            {
                n.parse().map_err(|_| bad())?
            }
            _ => return Err(bad()),
        };
        Ok(SnapshotId {
            text: s.to_string(),
            seq,
        })
    }
}

impl TryFrom<String> for SnapshotId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<SnapshotId> for String {
    fn from(t: SnapshotId) -> String {
        t.text
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for SnapshotId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text[..16]
            .cmp(&other.text[..16])
            .then(self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for SnapshotId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 10, 15, s).unwrap()
    }

    #[test]
    fn tree_names_at_the_edge() {
        for ok in ["a", "0", "lab.v2", "x_y-z", &"a".repeat(48)] {
            assert!(ok.parse::<TreeName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "-a",
            ".a",
            "a b",
            "a/b",
            "a@b",
            "é",
            &"a".repeat(49),
            "foo bar",
        ] {
            assert_eq!(
                bad.parse::<TreeName>(),
                Err(NameError::BadName(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_round_trip_and_order_numerically() {
        let a: SnapshotId = "20261125T101500Z".parse().unwrap();
        let b: SnapshotId = "20261125T101500Z.2".parse().unwrap();
        let c: SnapshotId = "20261125T101500Z.10".parse().unwrap();
        let d: SnapshotId = "20261125T101501Z".parse().unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(a.time(), at(0));
        for bad in [
            "",
            "20261125T101500",
            "20261125T101500Z.",
            "20261125T101500Z.01",
            "20261325T101500Z",
            "20261125T101500Zx",
            "latest",
        ] {
            assert!(bad.parse::<SnapshotId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn next_id_adds_a_suffix_within_one_second() {
        let first = SnapshotId::next_after(at(0), []);
        assert_eq!(first.as_str(), "20261125T101500Z");
        let second = SnapshotId::next_after(at(0), [&first]);
        assert_eq!(second.as_str(), "20261125T101500Z.1");
        let third = SnapshotId::next_after(at(0), [&first, &second]);
        assert_eq!(third.as_str(), "20261125T101500Z.2");
        let later = SnapshotId::next_after(at(1), [&first, &second, &third]);
        assert_eq!(later.as_str(), "20261125T101501Z");
    }

    #[test]
    fn next_id_stays_newest_when_the_clock_goes_back() {
        let newest: SnapshotId = "20261125T101530Z".parse().unwrap();
        let next = SnapshotId::next_after(at(0), [&newest]);
        assert!(next > newest);
        assert_eq!(next.as_str(), "20261125T101530Z.1");
    }
}
