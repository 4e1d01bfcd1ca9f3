//! SPDX 2.3 JSON (schemas/spdx-schema.json of spdx-spec v2.3): the snapshot
//! as an OPERATING_SYSTEM package whose checksum is the content root hash,
//! containing one package per installed binary package, each GENERATED_FROM
//! its source package.

use super::{purl, uuid5, Subject};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An SPDX element ID: `SPDXRef-` and `[A-Za-z0-9.-]`, others as `-`; made
/// unique with a counter where two names map to one ID.
struct Ids(BTreeSet<String>);

impl Ids {
    fn make(&mut self, parts: &[&str]) -> String {
        let base: String = format!("SPDXRef-{}", parts.join("-"))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

/// SPDX `supplier`: `Person: NAME (EMAIL)` from a Maintainer field.
fn supplier(maintainer: &str) -> String {
    match maintainer.split_once('<') {
        Some((name, rest)) => format!(
            "Person: {} ({})",
            name.trim(),
            rest.trim_end().trim_end_matches('>')
        ),
        None => format!("Person: {}", maintainer.trim()),
    }
}

fn purl_ref(p: String) -> Value {
    json!([{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p }])
}

/// The SPDX document.
pub fn document(s: &Subject) -> Value {
    let snap = s.snap;
    let mut ids = Ids(BTreeSet::new());
    let tree_id = ids.make(&["sidus-tree", snap.tree.as_str()]);
    let mut packages = vec![json!({
        "SPDXID": tree_id,
        "name": snap.tree.as_str(),
        "versionInfo": snap.id.as_str(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "OPERATING_SYSTEM",
        "checksums": [{ "algorithm": "BLAKE3", "checksumValue": s.root_hash }],
        "comment": format!(
            "sidus snapshot {}@{}; its checksum is the BLAKE3 root hash of the snapshot's content manifest (sidus manifest)",
            snap.tree, snap.id
        ),
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": tree_id,
    })];
    let mut sources: BTreeMap<(String, String), String> = BTreeMap::new();
    for p in &s.packages {
        let id = ids.make(&["deb", &p.name, &p.arch]);
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "INSTALL",
            "sourceInfo": format!("built from Debian source package {} {}", p.source, p.source_version),
            "externalRefs": purl_ref(purl(&s.distro, &p.name, &p.version, &p.arch)),
        });
        if let Some(m) = &p.maintainer {
            pkg["supplier"] = json!(supplier(m));
        }
        if let Some(h) = &p.homepage {
            pkg["homepage"] = json!(h);
        }
        if let Some(d) = &p.summary {
            pkg["summary"] = json!(d);
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": tree_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
        let key = (p.source.clone(), p.source_version.clone());
        let src = match sources.get(&key) {
            Some(src) => src.clone(),
            None => {
                let src = ids.make(&["debsrc", &p.source, &p.source_version]);
                packages.push(json!({
                    "SPDXID": src,
                    "name": p.source,
                    "versionInfo": p.source_version,
                    "downloadLocation": "NOASSERTION",
                    "filesAnalyzed": false,
                    "primaryPackagePurpose": "SOURCE",
                    "externalRefs": purl_ref(purl(&s.distro, &p.source, &p.source_version, "source")),
                }));
                sources.insert(key, src.clone());
                src
            }
        };
        relationships.push(json!({
            "spdxElementId": id,
            "relationshipType": "GENERATED_FROM",
            "relatedSpdxElement": src,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", snap.tree, snap.id),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/sidus-{}-{}-{}",
            snap.tree, snap.id, uuid5(&s.identity())
        ),
        "creationInfo": {
            "created": s.created(),
            "creators": [format!("Tool: sidus-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": [tree_id],
        "packages": packages,
        "relationships": relationships,
    })
}
