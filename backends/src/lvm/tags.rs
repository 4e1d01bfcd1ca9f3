//! Snapshot metadata as LV tags: `sidus_<key>=<value>`, with values escaped into
//! the characters lvm2 allows in a tag.
//!
//! lvm2 accepts `[A-Za-z0-9_+.-/=!:&#]` in tags (lib/misc/lvm-string.c,
//! `validate_tag`). Values keep those characters as they are, except the two we
//! use ourselves: `+` stands for a space (the most common character in a message)
//! and `#XX` for any other byte (upper-case hex), `+` and `#` included. IDs, dates,
//! kinds and tree names contain neither, so they read unchanged in `lvs -o lv_tags`.

use crate::{Snapshot, SnapshotId, TreeName};

/// Prefix of every tag sidus sets; other tags on the LV are left alone.
pub(crate) const PREFIX: &str = "sidus_";

/// Longest escaped value we store. lvm2 keeps all tags in the VG metadata,
/// which is small (1 MiB per PV by default, half of it usable), so free text is
/// cut here rather than letting a long command line eat room for snapshots.
pub(crate) const MAX_VALUE: usize = 480;

/// Appended to a value cut at [`MAX_VALUE`].
pub(crate) const TRUNCATED: &str = "…";

/// The tree an LV belongs to.
pub(crate) const TREE: &str = "tree";
/// A snapshot's ID.
pub(crate) const ID: &str = "id";
/// A cloned tree's origin, `TREE:ID` (`@` is not allowed in a tag).
pub(crate) const ORIGIN: &str = "origin";

fn literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.-/=!:&".contains(&b)
}

fn escaped_len(c: char) -> usize {
    match c {
        ' ' => 1,
        c if c.is_ascii() && literal(c as u8) => 1,
        c => 3 * c.len_utf8(),
    }
}

/// Escapes `text` into tag characters, cut to [`MAX_VALUE`] escaped bytes with a
/// [`TRUNCATED`] marker when longer.
pub(crate) fn encode(text: &str) -> String {
    let total: usize = text.chars().map(escaped_len).sum();
    let cut;
    let text = if total <= MAX_VALUE {
        text
    } else {
        let room = MAX_VALUE - TRUNCATED.chars().map(escaped_len).sum::<usize>();
        let mut used = 0;
        let end = text
            .char_indices()
            .find(|&(_, c)| {
                used += escaped_len(c);
                used > room
            })
            .map(|(i, _)| i)
            .unwrap_or(text.len());
        cut = format!("{}{TRUNCATED}", &text[..end]);
        &cut
    };
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b if literal(b) => out.push(b as char),
            b => out.push_str(&format!("#{b:02X}")),
        }
    }
    out
}

/// Undoes [`encode`]; `None` for text it cannot have produced.
pub(crate) fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'#' => {
                let hex = value.get(i + 1..i + 3)?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// One tag: `sidus_<key>=<escaped value>`.
pub(crate) fn tag(key: &str, value: &str) -> String {
    format!("{PREFIX}{key}={}", encode(value))
}

/// The sidus tags of an LV from the `lv_tags` column (comma-separated; a comma
/// cannot occur in a tag), as `(key, escaped value)`.
pub(crate) fn parse(lv_tags: &str) -> Vec<(String, String)> {
    lv_tags
        .split(',')
        .filter_map(|t| t.strip_prefix(PREFIX)?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The escaped value of `key` among parsed tags.
pub(crate) fn get<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Every tag a snapshot LV carries: its tree, its ID and its metadata.
pub(crate) fn snapshot_tags(snap: &Snapshot) -> Vec<String> {
    let mut out = vec![tag(TREE, snap.tree.as_str()), tag(ID, snap.id.as_str())];
    out.extend(snap.properties().iter().map(|(k, v)| tag(k, v)));
    out
}

/// Rebuilds a snapshot from its LV's parsed tags.
pub(crate) fn snapshot_from_tags(
    tree: TreeName,
    id: SnapshotId,
    tags: &[(String, String)],
) -> Result<Snapshot, String> {
    let decoded: Vec<(&str, String)> = tags
        .iter()
        .map(|(k, v)| {
            decode(v)
                .map(|d| (k.as_str(), d))
                .ok_or_else(|| format!("badly escaped tag {PREFIX}{k}={v}"))
        })
        .collect::<Result<_, _>>()?;
    Snapshot::from_properties(tree, id, |key| {
        decoded
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    })
}

/// The value of an origin tag for `tree@id`.
pub(crate) fn origin_value(tree: &TreeName, id: &SnapshotId) -> String {
    format!("{tree}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SnapshotKind;

    /// What lvm2 accepts in a tag (lib/misc/lvm-string.c, validate_tag).
    fn lvm_accepts(tag: &str) -> bool {
        !tag.is_empty()
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+/=!:&#".contains(&b))
    }

    #[test]
    fn awkward_text_round_trips_through_allowed_characters() {
        for text in [
            "",
            "plain",
            "two words",
            "it's \"quoted\"",
            "100% done, 50%+ of it",
            "a+b#c&d=e:f!g/h",
            "ça marche, 日本語, emoji 🦀",
            "tab\tnew\nline\\back",
            "  leading and trailing  ",
            "#41 is not A",
        ] {
            let enc = encode(text);
            assert!(enc.is_empty() || lvm_accepts(&enc), "{text:?} -> {enc}");
            assert!(lvm_accepts(&tag("message", text)));
            assert_eq!(decode(&enc).as_deref(), Some(text), "{enc}");
        }
    }

    #[test]
    fn ids_dates_and_names_stay_readable() {
        assert_eq!(encode("20261125T101500Z.3"), "20261125T101500Z.3");
        assert_eq!(encode("2026-11-25T10:15:00Z"), "2026-11-25T10:15:00Z");
        assert_eq!(encode("x-y_z.0"), "x-y_z.0");
        assert_eq!(encode("apt install hello"), "apt+install+hello");
    }

    #[test]
    fn long_text_is_cut_on_a_character_with_a_marker() {
        for unit in ["a", "é", "🦀", "a b", "%"] {
            let text = unit.repeat(2000);
            let enc = encode(&text);
            assert!(enc.len() <= MAX_VALUE, "{unit}: {}", enc.len());
            let back = decode(&enc).unwrap();
            assert!(back.ends_with(TRUNCATED), "{unit}");
            let kept = back.strip_suffix(TRUNCATED).unwrap();
            assert!(text.starts_with(kept) && kept.len() > 50, "{unit}");
        }
        let exact = "a".repeat(MAX_VALUE);
        assert_eq!(encode(&exact), exact, "a value at the limit is kept whole");
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        for bad in ["#", "#4", "#G0", "#FF", "a#+1"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn snapshot_round_trips_through_tags() {
        let snap = Snapshot {
            tree: "x-y_z".parse().unwrap(),
            id: "20261125T101500Z.3".parse().unwrap(),
            created: "2026-11-25T10:15:00Z".parse().unwrap(),
            kind: SnapshotKind::Post,
            message: "install \"hello\" at 100%, ça va? #1".into(),
            parent: Some("20261125T101500Z.2".parse().unwrap()),
            user: "jdoe".into(),
            command: "sidus run x-y_z -- sh -c 'apt-get install -y hello'".into(),
            pre: Some("20261125T101500Z.2".parse().unwrap()),
            status: Some(-1),
        };
        let tags = snapshot_tags(&snap);
        assert!(tags.iter().all(|t| lvm_accepts(t)), "{tags:?}");
        assert!(tags.contains(&"sidus_tree=x-y_z".to_string()));
        assert!(tags.contains(&"sidus_id=20261125T101500Z.3".to_string()));
        let parsed = parse(&format!("other,{}", tags.join(",")));
        assert_eq!(get(&parsed, ID), Some("20261125T101500Z.3"));
        let back = snapshot_from_tags(snap.tree.clone(), snap.id.clone(), &parsed).unwrap();
        assert_eq!(back, snap);
    }

    #[test]
    fn untagged_snapshot_still_lists() {
        let s = snapshot_from_tags(
            "t".parse().unwrap(),
            "20261125T101500Z".parse().unwrap(),
            &parse(""),
        )
        .unwrap();
        assert_eq!(s.kind, SnapshotKind::Manual);
    }
}
