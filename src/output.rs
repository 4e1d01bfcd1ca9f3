//! Printing results: aligned tables for people, one JSON document for scripts.

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Style;

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

/// Prints rows under a header as a borderless aligned table, like `zfs list`.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let mut b = Builder::default();
    b.push_record(header.iter().map(|h| h.to_string()));
    for row in rows {
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::blank());
    for line in t.to_string().lines() {
        println!("{}", line.trim_end());
    }
}

/// An optional value as table text.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
