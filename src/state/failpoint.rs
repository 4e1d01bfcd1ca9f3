//! Failpoints: named places between the steps of every multi-step change
//! where a test makes sidus die as a crash would; they live in the backends
//! crate so its own steps have them too (see [`sidus_backends::failpoint`]).

pub use sidus_backends::failpoint::{hit, ALL};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `hit("...")` in src/ is listed, and every listed name is hit somewhere.
    #[test]
    fn the_list_matches_the_source() {
        let mut found = std::collections::BTreeSet::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("src"), root.join("backends/src")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("failpoint.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for part in text.split("failpoint::hit(\"").skip(1) {
                        found.insert(part.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, listed);
    }
}
