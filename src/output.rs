//! Printing results: aligned tables for people, one JSON document for scripts.
//!
//! Text for people goes through [`escape`]: a snapshot message, a pin note, a
//! file name in a diff or an NFS client's name may hold a newline or a terminal
//! escape sequence, which would break a table or drive the terminal. JSON keeps
//! every string exact.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use tabled::builder::Builder;
use tabled::settings::Style;

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

/// `s` with control characters shown as escapes: `\n`, `\r`, `\t`, `\x1b`,
/// `\u{9b}` (C1 controls) and `\u{202e}` (the bidirectional overrides, which
/// reorder what a terminal shows). Everything else is left as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `c` is shown as an escape: C0, DEL, C1, and the Unicode
/// bidirectional embedding, override and isolate controls.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Prints rows under a header as a borderless aligned table, like `zfs list`.
/// Every cell is [`escape`]d.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    for line in render_table(header, rows).lines() {
        println!("{}", line.trim_end());
    }
}

fn render_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut b = Builder::default();
    b.push_record(header.iter().map(|h| h.to_string()));
    for row in rows {
        b.push_record(row.into_iter().map(|cell| match escape(&cell) {
            Cow::Borrowed(_) => cell,
            Cow::Owned(e) => e,
        }));
    }
    let mut t = b.build();
    t.with(Style::blank());
    t.to_string()
}

/// An optional value as table text.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_as_escapes() {
        assert_eq!(escape("plain text, ünïcode"), "plain text, ünïcode");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(escape("nul\0 del\x7f"), "nul\\x00 del\\x7f");
        assert_eq!(escape("c1\u{9b}2J"), "c1\\u{9b}2J");
        assert_eq!(escape("txt.\u{202e}exe"), "txt.\\u{202e}exe");
        // Backslashes stay as they are: JSON is the exact form.
        assert_eq!(escape(r"C:\dir"), r"C:\dir");
    }

    #[test]
    fn table_cells_stay_on_one_line() {
        let text = render_table(
            &["ID", "MESSAGE"],
            vec![
                vec!["1".into(), "two\nlines".into()],
                vec!["2".into(), "\x1b]0;title\x07".into()],
            ],
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("two\\nlines"), "{text}");
        assert!(text.contains("\\x1b]0;title\\x07"), "{text}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    }
}
