//! Which snapshots a retention policy keeps, with the reasons: restic `forget`
//! semantics, as a pure function.
//!
//! `keep_last N` keeps the N newest snapshots. `keep_hourly`/`daily`/`weekly`/
//! `monthly N` keep, for each of the N most recent hours (days, ISO weeks, months)
//! that have snapshots, the newest snapshot in it. A snapshot kept by any rule is
//! kept, and carries every rule that kept it. Buckets are taken from the snapshot
//! ID, i.e. in UTC, so an admin reading IDs sees the same days sidus sees.
//! Protections (pins, clones, publishing) are not the policy's business: the
//! caller overlays them on the result.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sidus_backends::SnapshotId;
use std::fmt;

/// A retention policy; 0 turns a rule off. Also the `[prune]` config section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Keep the N newest snapshots.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent hours with snapshots.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the N most recent days with snapshots.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the N most recent ISO weeks with snapshots.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months with snapshots.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_monthly: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Policy {
    /// True when no rule keeps anything: applying it would delete every snapshot.
    pub fn is_empty(&self) -> bool {
        self.rules().iter().all(|(_, n)| *n == 0)
    }

    fn rules(&self) -> [(Rule, u32); 5] {
        [
            (Rule::Last, self.keep_last),
            (Rule::Hourly, self.keep_hourly),
            (Rule::Daily, self.keep_daily),
            (Rule::Weekly, self.keep_weekly),
            (Rule::Monthly, self.keep_monthly),
        ]
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .rules()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("--keep-{} {n}", r.name()))
            .collect();
        if parts.is_empty() {
            f.write_str("no keep rule")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// One keep rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// `keep_last`
    Last,
    /// `keep_hourly`
    Hourly,
    /// `keep_daily`
    Daily,
    /// `keep_weekly`
    Weekly,
    /// `keep_monthly`
    Monthly,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
        }
    }

    /// The bucket `t` falls in, as a number that changes exactly when the bucket
    /// does (`Last` has no time bucket: the caller uses the position).
    fn bucket(self, t: DateTime<Utc>) -> i64 {
        let day = i64::from(t.year()) * 10_000 + i64::from(t.month()) * 100 + i64::from(t.day());
        match self {
            Rule::Last => 0,
            Rule::Hourly => day * 100 + i64::from(t.hour()),
            Rule::Daily => day,
            Rule::Weekly => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Rule::Monthly => i64::from(t.year()) * 100 + i64::from(t.month()),
        }
    }

    /// The bucket as people write it.
    fn label(self, t: DateTime<Utc>, position: usize, count: u32) -> String {
        match self {
            Rule::Last => format!("{}/{count}", position + 1),
            Rule::Hourly => t.format("%Y-%m-%dT%H").to_string(),
            Rule::Daily => t.format("%Y-%m-%d").to_string(),
            Rule::Weekly => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Rule::Monthly => t.format("%Y-%m").to_string(),
        }
    }
}

/// Why the policy keeps a snapshot: the rule and its bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The rule that keeps it.
    pub rule: Rule,
    /// The bucket it is the newest of (`2026-11-25`, `2026-W48`; `3/5` for last).
    pub bucket: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.rule.name(), self.bucket)
    }
}

/// For each ID of `ids` (any order), the reasons `policy` keeps it; an empty list
/// means the policy lets it go. O(n log n): one sort, then one pass.
pub fn select(ids: &[SnapshotId], policy: &Policy) -> Vec<Vec<Reason>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_unstable_by(|&a, &b| ids[b].cmp(&ids[a]));
    let mut out = vec![Vec::new(); ids.len()];
    for (rule, count) in policy.rules() {
        let mut left = count;
        let mut last_bucket = None;
        for (position, &i) in order.iter().enumerate() {
            if left == 0 {
                break;
            }
            let t = ids[i].time();
            let bucket = match rule {
                Rule::Last => position as i64,
                _ => rule.bucket(t),
            };
            if last_bucket == Some(bucket) {
                continue;
            }
            last_bucket = Some(bucket);
            out[i].push(Reason {
                rule,
                bucket: rule.label(t, (count - left) as usize, count),
            });
            left -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SnapshotId {
        s.parse().unwrap()
    }

    /// A synthetic history: IDs at fixed times, shuffled so order does not matter.
    fn history() -> Vec<SnapshotId> {
        [
            "20261125T101500Z",
            "20261125T101500Z.1", // same second
            "20261125T093000Z",
            "20261125T090000Z",
            "20261124T230000Z",
            "20261124T080000Z",
            "20261123T120000Z", // Monday of ISO week 48
            "20261122T120000Z", // Sunday: ISO week 47
            "20261116T000000Z", // Monday of week 47
            "20261031T235959Z",
            "20261001T000000Z",
            "20260915T120000Z",
        ]
        .iter()
        .rev()
        .map(|s| id(s))
        .collect()
    }

    /// The kept IDs, newest first, each with its reasons as text.
    fn kept(policy: Policy) -> Vec<(String, String)> {
        let ids = history();
        let verdicts = select(&ids, &policy);
        let mut out: Vec<(SnapshotId, String)> = ids
            .into_iter()
            .zip(verdicts)
            .filter(|(_, r)| !r.is_empty())
            .map(|(id, r)| {
                let why: Vec<String> = r.iter().map(|r| r.to_string()).collect();
                (id, why.join(", "))
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0));
        out.into_iter().map(|(i, w)| (i.to_string(), w)).collect()
    }

    fn p(last: u32, hourly: u32, daily: u32, weekly: u32, monthly: u32) -> Policy {
        Policy {
            keep_last: last,
            keep_hourly: hourly,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
        }
    }

    #[test]
    fn each_rule_keeps_the_newest_of_its_most_recent_buckets() {
        let cases: &[(Policy, &[(&str, &str)])] = &[
            (
                p(3, 0, 0, 0, 0),
                &[
                    ("20261125T101500Z.1", "last 1/3"),
                    ("20261125T101500Z", "last 2/3"),
                    ("20261125T093000Z", "last 3/3"),
                ],
            ),
            (
                p(0, 2, 0, 0, 0),
                &[
                    ("20261125T101500Z.1", "hourly 2026-11-25T10"),
                    ("20261125T093000Z", "hourly 2026-11-25T09"),
                ],
            ),
            (
                p(0, 0, 3, 0, 0),
                &[
                    ("20261125T101500Z.1", "daily 2026-11-25"),
                    ("20261124T230000Z", "daily 2026-11-24"),
                    ("20261123T120000Z", "daily 2026-11-23"),
                ],
            ),
            (
                p(0, 0, 0, 3, 0),
                &[
                    ("20261125T101500Z.1", "weekly 2026-W48"),
                    ("20261122T120000Z", "weekly 2026-W47"),
                    ("20261031T235959Z", "weekly 2026-W44"),
                ],
            ),
            (
                p(0, 0, 0, 0, 4),
                &[
                    ("20261125T101500Z.1", "monthly 2026-11"),
                    ("20261031T235959Z", "monthly 2026-10"),
                    ("20260915T120000Z", "monthly 2026-09"),
                ],
            ),
        ];
        for (policy, want) in cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(kept(*policy), want, "{policy}");
        }
    }

    #[test]
    fn rules_combine_and_a_snapshot_carries_every_reason() {
        let got = kept(p(1, 0, 2, 0, 2));
        assert_eq!(
            got,
            [
                (
                    "20261125T101500Z.1".to_string(),
                    "last 1/1, daily 2026-11-25, monthly 2026-11".to_string()
                ),
                ("20261124T230000Z".into(), "daily 2026-11-24".into()),
                ("20261031T235959Z".into(), "monthly 2026-10".into()),
            ]
        );
    }

    #[test]
    fn more_buckets_than_history_keeps_one_per_bucket() {
        let got = kept(p(0, 0, 100, 0, 0));
        let days: Vec<&str> = got.iter().map(|(i, _)| &i[..8]).collect();
        assert_eq!(
            days,
            [
                "20261125", "20261124", "20261123", "20261122", "20261116", "20261031", "20261001",
                "20260915"
            ]
        );
    }

    #[test]
    fn buckets_follow_iso_weeks_and_years_across_new_year() {
        // 2025-12-29 is the Monday of ISO week 2026-W01; 2025-12-28 is 2025-W52.
        let ids: Vec<SnapshotId> = [
            "20251228T230000Z",
            "20251229T010000Z",
            "20260102T120000Z",
            "20261231T120000Z", // 2026-W53
            "20271231T120000Z", // 2027-W52: same month number, another year
        ]
        .iter()
        .map(|s| id(s))
        .collect();
        let reasons = |policy: Policy| -> Vec<String> {
            select(&ids, &policy)
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect()
        };
        assert_eq!(
            reasons(p(0, 0, 0, 10, 0)),
            [
                "weekly 2025-W52",
                "",
                "weekly 2026-W01",
                "weekly 2026-W53",
                "weekly 2027-W52"
            ]
        );
        assert_eq!(
            reasons(p(0, 0, 0, 0, 10)),
            [
                "",
                "monthly 2025-12",
                "monthly 2026-01",
                "monthly 2026-12",
                "monthly 2027-12"
            ]
        );
        // Hours of different days are different buckets.
        assert_eq!(
            reasons(p(0, 3, 0, 0, 0)),
            [
                "",
                "",
                "hourly 2026-01-02T12",
                "hourly 2026-12-31T12",
                "hourly 2027-12-31T12"
            ]
        );
    }

    #[test]
    fn keep_last_counts_snapshots_not_buckets() {
        // Three snapshots in one hour: last 2 keeps two of them, hourly 1 one.
        let ids = [
            id("20261125T100000Z"),
            id("20261125T101000Z"),
            id("20261125T102000Z"),
        ];
        let v = select(&ids, &p(2, 1, 0, 0, 0));
        let text: Vec<String> = v
            .iter()
            .map(|r| {
                r.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        assert_eq!(text, ["", "last 2/2", "last 1/2, hourly 2026-11-25T10"]);
    }

    #[test]
    fn empty_policy_and_empty_history() {
        assert!(Policy::default().is_empty());
        assert!(!p(0, 0, 0, 0, 1).is_empty());
        assert!(kept(Policy::default()).is_empty());
        assert!(select(&[], &p(5, 5, 5, 5, 5)).is_empty());
        assert_eq!(p(2, 0, 7, 0, 0).to_string(), "--keep-last 2 --keep-daily 7");
    }

    #[test]
    fn ten_thousand_snapshots_keep_the_right_count() {
        let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // One snapshot every 37 minutes for ~257 days.
        let ids: Vec<SnapshotId> = (0..10_000)
            .map(|i| SnapshotId::new(start + chrono::Duration::minutes(37 * i), 0))
            .collect();
        // Speed is bench/history.sh's to check, not a timed test's.
        let v = select(&ids, &p(10, 24, 30, 8, 12));
        let kept = v.iter().filter(|r| !r.is_empty()).count();
        // last 10 and hourly 24 overlap in the newest hours; daily, weekly and
        // monthly share their newest snapshots.
        assert!((50..=84).contains(&kept), "{kept}");
        assert_eq!(
            v.iter()
                .filter(|r| r.iter().any(|r| r.rule == Rule::Daily))
                .count(),
            30
        );
    }
}
