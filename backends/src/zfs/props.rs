//! sidus metadata as ZFS user properties (`sidus:<key>`), and the parsing of
//! `zfs list -H -p` rows that carry them.
//!
//! `-H` output is tab-separated, one row per line, with `-` for an unset
//! property, so values are escaped: `%` as `%25`, tab, newline and carriage
//! return as `%09`, `%0A`, `%0D`, and a value that is exactly `-` as `%2D`.
//! ZFS caps a user property value at 8 KiB; free text is cut well below that.

use crate::BackendError;
use std::ffi::OsString;

/// Prefix of every user property sidus sets (ZFS requires a `:` in the name).
pub(crate) const PREFIX: &str = "sidus:";

/// Snapshot properties read back by one `zfs list`, in column order after `name`.
pub(crate) const SNAPSHOT_PROPS: [&str; 9] = [
    "tree", "created", "kind", "message", "parent", "user", "command", "pre", "status",
];

/// `sidus:<key>=<escaped value>`, for a `-o` argument.
pub(crate) fn prop(key: &str, value: &str) -> OsString {
    format!("{PREFIX}{key}={}", encode(value)).into()
}

/// `(sidus:<key>, escaped value)`, for libzfs_core's property lists.
pub(crate) fn prop_pair(key: &str, value: &str) -> (String, String) {
    (format!("{PREFIX}{key}"), encode(value))
}

/// A `zfs list` row that does not have the columns asked for.
pub(crate) fn unexpected(line: &str) -> BackendError {
    BackendError::UnexpectedOutput {
        tool: "zfs list".into(),
        detail: format!("row {line:?}"),
    }
}

/// Longest escaped value stored; longer text is cut and marked.
pub(crate) const MAX_VALUE: usize = 4000;

/// What a cut value ends with.
const CUT_MARK: &str = "...";

/// Escapes a value for a `-o sidus:key=value` argument.
pub(crate) fn encode(value: &str) -> String {
    if value == "-" {
        return "%2D".into();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\t' => out.push_str("%09"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
        if out.len() > MAX_VALUE {
            // Cut on a char boundary and never inside an escape.
            while out.len() > MAX_VALUE - CUT_MARK.len() {
                let cut = out.char_indices().last().map(|(i, _)| i).unwrap_or(0);
                out.truncate(cut);
                if let Some(pos) = out.rfind('%') {
                    if pos + 3 > out.len() {
                        out.truncate(pos);
                    }
                }
            }
            out.push_str(CUT_MARK);
            break;
        }
    }
    out
}

/// Undoes [`encode`]; `None` for `-` (the property is unset).
pub(crate) fn decode(field: &str) -> Option<String> {
    if field == "-" {
        return None;
    }
    if !field.contains('%') {
        return Some(field.to_string());
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Splits one `zfs list -H` row into exactly `n` fields.
pub(crate) fn fields(line: &str, n: usize) -> Option<Vec<&str>> {
    let f: Vec<&str> = line.split('\t').collect();
    (f.len() == n).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_text() {
        for v in [
            "plain",
            "tab\there",
            "two\nlines\r\n",
            "100% sure %25",
            "-",
            "--",
            "",
            "ünïcødé",
            "%",
            "ends with %",
        ] {
            let e = encode(v);
            assert!(!e.contains(['\t', '\n', '\r']), "{e:?}");
            assert_ne!(e, "-");
            assert_eq!(decode(&e).as_deref(), Some(v), "{v:?} -> {e:?}");
        }
        assert_eq!(decode("-"), None);
    }

    #[test]
    fn long_values_are_cut_cleanly() {
        let long = "é%".repeat(5000);
        let e = encode(&long);
        assert!(e.len() <= MAX_VALUE, "{}", e.len());
        assert!(e.ends_with(CUT_MARK));
        let d = decode(&e).unwrap();
        assert!(long.starts_with(d.trim_end_matches(CUT_MARK)));
    }

    #[test]
    fn rows_split_on_tabs() {
        assert_eq!(fields("a\tb\t-", 3), Some(vec!["a", "b", "-"]));
        assert_eq!(fields("a\tb", 3), None);
    }
}
