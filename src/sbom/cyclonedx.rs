//! CycloneDX 1.5 JSON (bom-1.5.schema.json): the snapshot as the
//! operating-system component of the metadata, hashed by its content root
//! hash, with one library component per installed Debian package.

use super::{purl, uuid5, Subject};
use serde_json::{json, Value};

/// The CycloneDX document.
pub fn document(s: &Subject) -> Value {
    let snap = s.snap;
    let tree_ref = format!("sidus:{}@{}", snap.tree, snap.id);
    let mut refs = Vec::new();
    let components: Vec<Value> = s
        .packages
        .iter()
        .map(|p| {
            let purl = purl(&s.distro, &p.name, &p.version, &p.arch);
            refs.push(purl.clone());
            let mut c = json!({
                "type": "library",
                "bom-ref": purl,
                "name": p.name,
                "version": p.version,
                "purl": purl,
                "properties": [
                    { "name": "sidus:deb:architecture", "value": p.arch },
                    { "name": "sidus:deb:source", "value": p.source },
                    { "name": "sidus:deb:source_version", "value": p.source_version },
                    { "name": "sidus:deb:source_purl", "value": super::purl(&s.distro, &p.source, &p.source_version, "source") },
                ],
            });
            if let Some(m) = &p.maintainer {
                c["author"] = json!(m);
            }
            if let Some(d) = &p.summary {
                c["description"] = json!(d);
            }
            if let Some(h) = &p.homepage {
                c["externalReferences"] = json!([{ "type": "website", "url": h }]);
            }
            c
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid5(&s.identity())),
        "version": 1,
        "metadata": {
            "timestamp": s.created(),
            "tools": {
                "components": [{ "type": "application", "name": "sidus", "version": env!("CARGO_PKG_VERSION") }],
            },
            "component": {
                "type": "operating-system",
                "bom-ref": tree_ref,
                "name": snap.tree.as_str(),
                "version": snap.id.as_str(),
                "description": format!(
                    "sidus snapshot {}@{}; its hash is the BLAKE3 root hash of the snapshot's content manifest (sidus manifest)",
                    snap.tree, snap.id
                ),
                "hashes": [{ "alg": "BLAKE3", "content": s.root_hash }],
            },
        },
        "components": components,
        "dependencies": [{ "ref": tree_ref, "dependsOn": refs }],
    })
}
