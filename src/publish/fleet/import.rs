//! `sidus node import FILE`: nodes from CSV or JSON, each checked on its own
//! here (name, MAC, address, group), then against each other and the
//! inventory by [`super::inventory::Inventory::with_added`]. Every bad line
//! is named; with one, nothing is imported.
//!
//! CSV: one node per line, `name,mac[,ip[,group]]`, or any order of those
//! columns under a header line naming them; blank lines and lines starting
//! with `#` are skipped; fields may be quoted. JSON: an array of
//! `{"name", "mac", "ip"?, "group"?}` objects, or `{"nodes": [...]}` (the
//! inventory's own shape).

use super::inventory::{summarize, Node};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::Path;

/// The nodes of an import file, each with where it was ("line 7").
#[derive(Debug)]
pub struct Parsed {
    /// The nodes, in file order.
    pub nodes: Vec<Node>,
    /// Where each node was, for messages.
    pub whence: Vec<String>,
}

/// Reads and parses `path` (JSON when it ends in `.json` or starts with `[`
/// or `{`, else CSV).
pub fn read(path: &Path) -> Result<Parsed> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with(['[', '{']);
    let parsed = if json {
        parse_json(&text)
    } else {
        parse_csv(&text)
    };
    parsed.map_err(|e| anyhow::anyhow!("{}: {e}; nothing was imported", path.display()))
}

/// One node's fields as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    mac: String,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

impl Spec {
    fn node(&self) -> Result<Node, String> {
        let opt = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(Node {
            name: self
                .name
                .trim()
                .parse()
                .map_err(|e| format!("node name: {e}"))?,
            mac: self.mac.parse()?,
            ip: opt(&self.ip)
                .map(|ip| {
                    ip.parse()
                        .map_err(|_| format!("bad address '{ip}': not an IPv4 or IPv6 address"))
                })
                .transpose()?,
            group: opt(&self.group)
                .map(|g| g.parse().map_err(|e| format!("group name: {e}")))
                .transpose()?,
        })
    }
}

fn finish(specs: Vec<(String, Result<Spec, String>)>) -> Result<Parsed> {
    let mut nodes = Vec::new();
    let mut whence = Vec::new();
    let mut errors = Vec::new();
    for (at, spec) in specs {
        match spec.and_then(|s| s.node()) {
            Ok(n) => {
                nodes.push(n);
                whence.push(at);
            }
            Err(e) => errors.push(format!("{at}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", summarize(&errors));
    }
    if nodes.is_empty() {
        bail!("no nodes in the file");
    }
    Ok(Parsed { nodes, whence })
}

/// Parses CSV text.
pub fn parse_csv(text: &str) -> Result<Parsed> {
    const COLUMNS: [&str; 4] = ["name", "mac", "ip", "group"];
    let mut columns: Vec<usize> = vec![0, 1, 2, 3];
    let mut specs = Vec::new();
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}", i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"').trim().to_string())
            .collect();
        // A header is a first line that names columns (a MAC is never "mac").
        let header = fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case("mac") || f.eq_ignore_ascii_case("name"));
        if std::mem::take(&mut first) && header {
            columns.clear();
            for f in &fields {
                match COLUMNS.iter().position(|c| f.eq_ignore_ascii_case(c)) {
                    Some(c) if !columns.contains(&c) => columns.push(c),
                    _ => bail!(
                        "{at}: header column '{f}' is not one of name, mac, ip, group (each once)"
                    ),
                }
            }
            if !columns.contains(&1) {
                bail!("{at}: the header has no mac column");
            }
            continue;
        }
        if fields.len() > columns.len() {
            specs.push((
                at,
                Err(format!(
                    "{} fields, expected at most {} ({})",
                    fields.len(),
                    columns.len(),
                    columns
                        .iter()
                        .map(|c| COLUMNS[*c])
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            ));
            continue;
        }
        let mut s = Spec::default();
        for (f, c) in fields.into_iter().zip(&columns) {
            match c {
                0 => s.name = f,
                1 => s.mac = f,
                2 => s.ip = Some(f),
                _ => s.group = Some(f),
            }
        }
        let spec = if s.mac.is_empty() {
            Err("no MAC".to_string())
        } else {
            Ok(s)
        };
        specs.push((at, spec));
    }
    finish(specs)
}

/// Parses JSON text.
pub fn parse_json(text: &str) -> Result<Parsed> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Doc {
        List(Vec<serde_json::Value>),
        Inventory { nodes: Vec<serde_json::Value> },
    }
    let doc: Doc = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("not a JSON list of nodes nor {{\"nodes\": [...]}} ({e})"))?;
    let (Doc::List(values) | Doc::Inventory { nodes: values }) = doc;
    let specs = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let name = v
                .get("name")
                .and_then(|n| n.as_str())
                .map(|n| format!(" ('{n}')"))
                .unwrap_or_default();
            let spec = serde_json::from_value::<Spec>(v).map_err(|e| e.to_string());
            (format!("node {}{name}", i + 1), spec)
        })
        .collect();
    finish(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_and_without_header() {
        let p = parse_csv("# rack 1\nn1,52:54:00:00:00:01,10.0.0.1,canary\n\nn2,52-54-00-00-00-02,,rest\nn3,5254.0000.0003\n").unwrap();
        assert_eq!(p.nodes.len(), 3);
        assert_eq!(p.whence, ["line 2", "line 4", "line 5"]);
        assert_eq!(p.nodes[1].mac.to_string(), "52:54:00:00:00:02");
        assert_eq!(p.nodes[1].ip, None);
        assert_eq!(p.nodes[2].group, None);
        let p = parse_csv("MAC,Group,Name\n\"52:54:00:00:00:01\",a,n1\n").unwrap();
        assert_eq!(
            (
                p.nodes[0].name.as_str(),
                p.nodes[0].group.as_ref().unwrap().as_str()
            ),
            ("n1", "a")
        );
    }

    #[test]
    fn every_bad_line_is_named() {
        let e = parse_csv("n1,52:54:00:00:00:01\nN2,52:54:00:00:00:02\nn3,zz\nn4,52:54:00:00:00:04,10.0.0.300\nn5,52:54:00:00:00:05,,Bad Group\nn6\nn7,52:54:00:00:00:07,,,x\n")
            .unwrap_err()
            .to_string();
        for want in [
            "line 2: node name: invalid name 'N2'",
            "line 3: bad MAC 'zz'",
            "line 4: bad address '10.0.0.300'",
            "line 5: group name: invalid name 'Bad Group'",
            "line 6: no MAC",
            "and 1 more",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = parse_csv("name,mac,rack\n").unwrap_err().to_string();
        assert!(e.contains("line 1: header column 'rack'"), "{e}");
        assert!(parse_csv("# nothing\n")
            .unwrap_err()
            .to_string()
            .contains("no nodes"));
    }

    #[test]
    fn json_list_or_inventory_shape() {
        let p =
            parse_json(r#"[{"name": "n1", "mac": "52:54:00:00:00:01", "group": "g"}]"#).unwrap();
        assert_eq!(p.nodes[0].group.as_ref().unwrap().as_str(), "g");
        let p = parse_json(
            r#"{"nodes": [{"name": "n1", "mac": "52:54:00:00:00:01", "ip": "fd00::1"}]}"#,
        )
        .unwrap();
        assert_eq!(p.nodes[0].ip.unwrap().to_string(), "fd00::1");
        let e = parse_json(r#"[{"name": "n1", "mac": "52:54:00:00:00:01"}, {"name": "n2", "mac": "52:54:00:00:00:02", "grup": "g"}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("node 2 ('n2'): unknown field `grup`"), "{e}");
        assert!(parse_json("[1,")
            .unwrap_err()
            .to_string()
            .contains("not a JSON list"));
    }
}
