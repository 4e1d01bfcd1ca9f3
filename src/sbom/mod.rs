//! Software bills of materials of a snapshot's Debian packages (`sidus sbom`):
//! SPDX 2.3 or CycloneDX 1.5 JSON, from the tree's `var/lib/dpkg/status`.
//!
//! The same snapshot gives the same bytes on every run: no wall-clock time
//! (the document's time is the snapshot's creation), the SPDX namespace and
//! the CycloneDX serial number are derived from `TREE@ID` and the content
//! root hash, packages are sorted, and JSON keys are written in sorted order.

mod cyclonedx;
mod spdx;

use crate::history::packages::{self, Installed};
use crate::manifest::kept;
use crate::progress::Progress;
use crate::store::Store;
use anyhow::{bail, Result};
use sha1::{Digest, Sha1};
use sidus_backends::Snapshot;
use std::path::Path;

/// What both formats say about the snapshot.
pub struct Subject<'a> {
    /// The snapshot.
    pub snap: &'a Snapshot,
    /// Its content root hash.
    pub root_hash: String,
    /// Its installed packages, sorted.
    pub packages: Vec<Installed>,
    /// The purl namespace and distro qualifier (from the tree's os-release).
    pub distro: Distro,
}

/// Which distribution the tree is, as purls name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distro {
    /// The purl namespace: os-release `ID` (`debian`, `ubuntu`).
    pub namespace: String,
    /// The `distro` qualifier: os-release `VERSION_CODENAME` (`bookworm`).
    pub codename: Option<String>,
}

impl Distro {
    /// From the text of an os-release file (`None`: the tree has none).
    pub fn from_os_release(text: Option<&str>) -> Distro {
        let field = |k: &str| {
            text?.lines().find_map(|l| {
                l.strip_prefix(k)
                    .and_then(|v| v.strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_lowercase())
                    .filter(|v| !v.is_empty())
            })
        };
        Distro {
            namespace: field("ID").unwrap_or_else(|| "debian".into()),
            codename: field("VERSION_CODENAME"),
        }
    }
}

/// Percent-encodes a purl name or version: everything but `A-Za-z0-9.-_~`
/// and the epoch's `:` (purl-spec PURL-TYPES for deb).
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b".-_~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The purl of a Debian package: `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=CODENAME`.
pub fn purl(d: &Distro, name: &str, version: &str, arch: &str) -> String {
    let mut q = Vec::new();
    if !arch.is_empty() {
        q.push(format!("arch={}", purl_escape(&arch.to_lowercase())));
    }
    if let Some(c) = &d.codename {
        q.push(format!("distro={}", purl_escape(c)));
    }
    let mut p = format!(
        "pkg:deb/{}/{}@{}",
        purl_escape(&d.namespace),
        purl_escape(&name.to_lowercase()),
        purl_escape(version)
    );
    if !q.is_empty() {
        p.push('?');
        p.push_str(&q.join("&"));
    }
    p
}

/// An RFC 4122 version 5 UUID (SHA-1, URL namespace) of `name`.
pub fn uuid5(name: &str) -> String {
    // The URL namespace, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
    const NS: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    let mut h = Sha1::new();
    h.update(NS);
    h.update(name.as_bytes());
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    let x = crate::manifest::hex(&u);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

impl Subject<'_> {
    /// The name both formats derive their unique identifiers from.
    fn identity(&self) -> String {
        format!(
            "sidus:{}@{}:{}",
            self.snap.tree, self.snap.id, self.root_hash
        )
    }

    /// The document's time: the snapshot's creation, to the second.
    fn created(&self) -> String {
        self.snap
            .created
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// The document for the tree at `root` (the snapshot's content).
pub fn render(subject: &Subject, cyclonedx: bool) -> String {
    let doc = if cyclonedx {
        cyclonedx::document(subject)
    } else {
        spdx::document(subject)
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serializable");
    s.push('\n');
    s
}

/// What [`render`] needs, read from the snapshot mounted at `root`.
pub fn subject<'a>(snap: &'a Snapshot, root: &Path, root_hash: String) -> Result<Subject<'a>> {
    let Some(status) = packages::read_status_in(root)? else {
        bail!(
            "it has no dpkg status ({}): not a Debian tree",
            packages::STATUS_PATH
        );
    };
    let os = packages::read_in_tree(root, "etc/os-release")?;
    let os = match os {
        Some(t) => Some(t),
        None => packages::read_in_tree(root, "usr/lib/os-release")?,
    };
    Ok(Subject {
        snap,
        root_hash,
        packages: packages::installed(&status),
        distro: Distro::from_os_release(os.as_deref()),
    })
}

/// The SBOM of `snap` (SPDX, or CycloneDX when `cyclonedx`).
pub fn for_snapshot(store: &Store, snap: &Snapshot, cyclonedx: bool) -> Result<String> {
    let what = format!("{}@{}", snap.tree, snap.id);
    let (m, _) = kept::of_snapshot(store, snap, &Progress::new(what))?;
    let root = store.backend.snapshot_path(&snap.tree, &snap.id)?;
    Ok(render(&subject(snap, &root, m.root_hash())?, cyclonedx))
}

#[cfg(test)]
#[path = "../../tests/fixtures/sbom/validate.rs"]
mod validate;

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libstdc++6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: gcc-12 (12.2.0-14+deb12u1)
Version: 12.2.0-14+deb12u1
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Homepage: https://gcc.gnu.org/
Description: GNU Standard C++ Library v3
 This package contains an additional runtime library.

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1
Description: basic utilities from 4.4BSD-Lite

Package: removed-one
Status: deinstall ok config-files
Architecture: all
Version: 1

Package: util-linux
Status: install ok installed
Architecture: amd64
Version: 2.38.1-5+b1
Source: util-linux (2.38.1-5)
";

    fn subject(snap: &Snapshot) -> Subject<'_> {
        Subject {
            snap,
            root_hash: "da33d7eaa5dfefacebcace75ebd0b0f3baccda72034bce7e1b0bc51c39689a63".into(),
            packages: packages::installed(STATUS),
            distro: Distro::from_os_release(Some("ID=debian\nVERSION_CODENAME=bookworm\n")),
        }
    }

    #[test]
    fn documents_validate_against_their_schemas_and_repeat_byte_for_byte() {
        let mut snap = Snapshot::from_properties(
            "lab".parse().unwrap(),
            "20261125T101500Z".parse().unwrap(),
            |_| None,
        )
        .unwrap();
        snap.created = "2026-11-25T10:15:00.123Z".parse().unwrap();
        for cdx in [false, true] {
            let doc = render(&subject(&snap), cdx);
            let errors = validate::schema_errors(&doc, cdx);
            assert!(errors.is_empty(), "{errors:#?}\n{doc}");
            assert_eq!(doc, render(&subject(&snap), cdx), "same bytes");
            assert!(doc.contains("2026-11-25T10:15:00Z"), "the snapshot's time");
            assert!(doc.contains(
                "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=bookworm"
            ));
            assert!(!doc.contains("removed-one"));
        }
        let spdx: serde_json::Value =
            serde_json::from_str(&render(&subject(&snap), false)).unwrap();
        // 3 binary + 2 source packages + the tree.
        assert_eq!(spdx["packages"].as_array().unwrap().len(), 6);
        let other = Snapshot {
            id: "20261125T101600Z".parse().unwrap(),
            ..snap.clone()
        };
        let ns = |s: &Snapshot| {
            let v: serde_json::Value = serde_json::from_str(&render(&subject(s), false)).unwrap();
            v["documentNamespace"].as_str().unwrap().to_string()
        };
        assert_ne!(ns(&snap), ns(&other), "unique per snapshot");
    }

    #[test]
    fn purls_follow_the_deb_type() {
        let d = Distro::from_os_release(Some(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n",
        ));
        assert_eq!(
            purl(&d, "libstdc++6", "12.2.0-14+deb12u1", "amd64"),
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=bookworm"
        );
        assert_eq!(
            purl(&d, "bsdutils", "1:2.38.1-5+b1", "source"),
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=source&distro=bookworm"
        );
        let none = Distro::from_os_release(None);
        assert_eq!(purl(&none, "x", "1", ""), "pkg:deb/debian/x@1");
    }

    #[test]
    fn uuid5_matches_rfc_4122() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org/")
        assert_eq!(
            uuid5("https://example.org/"),
            "527dda32-a0de-5105-a042-cb475b5f7d11"
        );
        let u = uuid5("sidus:lab@X:00");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert!("89ab".contains(&u[19..20]));
    }
}
