//! The pages are current, render without a warning, have EXAMPLES and EXIT
//! STATUS, name the subcommand with a space, and sidus.toml(5) lists exactly
//! the config keys the code accepts.

use super::{render_all, SECTION};
use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn pages() -> Vec<(String, String)> {
    render_all(&man_dir().join("src"))
        .unwrap_or_else(|e| panic!("{e:#}"))
        .into_iter()
        .map(|(n, t)| (n, String::from_utf8(t).unwrap()))
        .collect()
}

/// The hand-written page of the config file.
const CONFIG_PAGE: &str = "sidus.toml.5";

/// Regenerate with `SIDUS_UPDATE_MAN=1 cargo test man::`.
#[test]
fn man_pages_are_current() {
    let dir = man_dir();
    let update = std::env::var_os("SIDUS_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    let mut want: BTreeSet<String> = [CONFIG_PAGE.to_string()].into();
    for (name, text) in pages() {
        let path = dir.join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(&text[..]) {
            stale.push(name.clone());
        }
        want.insert(name);
    }
    let mut extra = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type().unwrap().is_file() && !want.contains(&name) {
            if update {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                extra.push(name);
            }
        }
    }
    assert!(
        stale.is_empty() && extra.is_empty(),
        "stale man pages {stale:?}, pages of no command {extra:?}: run SIDUS_UPDATE_MAN=1 cargo test man::"
    );
}

/// Runs `cmd` and gives its stderr, or None (with a visible SKIP) when the tool is missing.
fn stderr_of(mut cmd: Command) -> Option<String> {
    match cmd.output() {
        Ok(out) => {
            assert!(out.status.success(), "{cmd:?} failed: {out:?}");
            Some(String::from_utf8_lossy(&out.stderr).into_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIP: {:?} is not installed (apt-get install groff-base man-db)",
                cmd.get_program()
            );
            None
        }
        Err(e) => panic!("{cmd:?}: {e}"),
    }
}

/// Every page, with the config page, through groff and man with warnings on.
#[test]
fn every_page_renders_without_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = vec![man_dir().join(CONFIG_PAGE)];
    for (name, text) in pages() {
        let path = tmp.path().join(&name);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let mut warned = Vec::new();
    for file in &files {
        let mut groff = Command::new("groff");
        groff.args(["-ww", "-man", "-Tutf8", "-z"]).arg(file);
        let mut man = Command::new("man");
        man.args(["--warnings", "-l"])
            .arg(file)
            .env("MANWIDTH", "80");
        for cmd in [groff, man] {
            match stderr_of(cmd) {
                Some(err) if !err.trim().is_empty() => {
                    warned.push(format!("{}: {err}", file.display()))
                }
                Some(_) => {}
                None => return,
            }
        }
    }
    assert!(warned.is_empty(), "warnings:\n{}", warned.join("\n"));
}

#[test]
fn every_page_has_exit_status_and_a_synopsis_with_a_space() {
    for (name, text) in pages() {
        assert!(
            text.contains("\n.SH \"EXIT STATUS\"\n"),
            "{name} has no EXIT STATUS"
        );
        let sub = name
            .strip_suffix(&format!(".{SECTION}"))
            .unwrap()
            .strip_prefix("sidus-");
        let want = match sub {
            Some(s) => format!(".SH SYNOPSIS\n\\fBsidus {}\\fR", super::escape(s)),
            None => ".SH SYNOPSIS\n\\fBsidus\\fR".into(),
        };
        assert!(
            text.contains(&want),
            "{name}: synopsis does not start {want:?}"
        );
    }
    // A hand-written synopsis still shows every positional argument clap knows.
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    for sub in cmd.get_subcommands() {
        let name = super::page_name(sub.get_name());
        let fragment = super::Fragment::load(&man_dir().join("src"), &name).unwrap();
        let Some(forms) = fragment.get("SYNOPSIS") else {
            continue;
        };
        for a in sub.get_positionals().filter(|a| !a.is_hide_set()) {
            let shown = super::value_name(a);
            assert!(
                forms.contains(&shown),
                "{name}: the SYNOPSIS of man/src/{name}.roff does not show {shown}"
            );
        }
    }
    let publish = pages()
        .into_iter()
        .find(|(n, _)| n == "sidus-publish.8")
        .unwrap()
        .1;
    assert!(
        publish.contains(
            ".SH SYNOPSIS\n\\fBsidus publish\\fR [\\fIOPTIONS\\fR] \\fITREE\\fR[@\\fIREF\\fR]\n"
        ),
        "{publish}"
    );
}

/// Every page has EXAMPLES; a subcommand added without a fragment is named here.
#[test]
fn every_page_has_examples() {
    let missing: Vec<String> = pages()
        .into_iter()
        .filter(|(_, t)| !t.contains("\n.SH EXAMPLES\n"))
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty(),
        "pages without EXAMPLES (write man/src/PAGE.roff, see src/man/fragments.rs): {missing:?}"
    );
}

/// A `sidus-X(8)` a page refers to is a page that exists.
#[test]
fn references_to_sidus_pages_exist() {
    let pages = pages();
    let names: BTreeSet<String> = pages.iter().map(|(n, _)| n.clone()).collect();
    let config = std::fs::read_to_string(man_dir().join(CONFIG_PAGE)).unwrap();
    for (name, text) in pages
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .chain([(CONFIG_PAGE, config.as_str())])
    {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(".BR sidus\\-") else {
                continue;
            };
            let Some((page, tail)) = rest.split_once(' ') else {
                continue;
            };
            if tail.starts_with("(8)") {
                let file = format!("sidus-{}.8", page.replace("\\-", "-"));
                assert!(
                    names.contains(&file),
                    "{name} refers to {file}, which is no page"
                );
            }
        }
    }
}

/// The keys of sidus.toml(5): each `.TP` entry's bold word in the SETTINGS
/// section, under the `.SS [section]` heading it is in.
fn documented_keys(page: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_settings = false;
    let mut table = String::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(head) = line.strip_prefix(".SH ") {
            in_settings = head == "SETTINGS";
        } else if !in_settings {
        } else if let Some(head) = line.strip_prefix(".SS ") {
            table = head
                .trim()
                .trim_matches('"')
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if table.contains(' ') {
                table.clear(); // "Top level"
            }
        } else if line == ".TP" {
            let entry = lines.next().unwrap_or_default();
            // `\fITREE\fR = [...]`: an entry of a table of free-form names.
            let word = if entry.starts_with("\\fI") {
                Some("*")
            } else {
                None
            };
            let word = word
                .or_else(|| {
                    entry
                        .strip_prefix(".B ")
                        .or_else(|| entry.strip_prefix(".BR "))
                        .and_then(|r| r.split_whitespace().next())
                        .or_else(|| {
                            entry
                                .strip_prefix("\\fB")
                                .and_then(|r| r.split("\\fR").next())
                        })
                })
                .unwrap_or_else(|| panic!("entry {entry:?} does not start with a bold key"));
            let key = word
                .replace("\\-", "-")
                .replace("\\(**", "*")
                .replace("\\fI", "")
                .replace("\\fR", "");
            keys.insert(if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            });
        }
    }
    keys
}

#[test]
fn config_page_lists_exactly_the_keys_of_the_code() {
    let page = std::fs::read_to_string(man_dir().join(CONFIG_PAGE)).unwrap();
    let documented = documented_keys(&page);
    let code: BTreeSet<String> = crate::config_keys::keys().unwrap().into_iter().collect();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "man/{CONFIG_PAGE}: keys the code has and the page lacks {undocumented:?}; keys the page lists and the code lacks {unknown:?}"
    );
}

#[test]
fn long_help_points_to_the_man_page() {
    let mut cmd = crate::cli::command();
    let help = cmd.render_long_help().to_string();
    assert!(help.contains("sidus(8)"), "{help}");
    let publish = cmd.find_subcommand_mut("publish").unwrap();
    let help = publish.render_long_help().to_string();
    assert!(help.contains("See sidus-publish(8)"), "{help}");
}

/// The README's guide, as tests/vm/scenarios/guide.sh reads it: every ```sh
/// block of the `## Guide` section follows a `<!-- guide -->`,
/// `<!-- guide: BACKEND -->` or `<!-- guide: skip: WHY -->` line, and each
/// backend has its store block. (The VM runs the blocks; this catches an
/// unmarked one without it.)
#[test]
fn readme_guide_blocks_are_marked_for_the_vm() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let guide = readme
        .split("\n## Guide")
        .nth(1)
        .expect("README has a ## Guide section");
    let guide = guide.split("\n## ").next().unwrap();
    let mut previous = "";
    let mut markers = Vec::new();
    for line in guide.lines() {
        if line == "```sh" {
            let marker = previous
                .strip_prefix("<!-- guide")
                .and_then(|m| m.strip_suffix("-->"))
                .map(|m| m.trim_start_matches(':').trim())
                .unwrap_or_else(|| {
                    panic!("a guide block follows {previous:?}, not a <!-- guide --> marker")
                });
            assert!(
                ["", "btrfs", "zfs", "lvm"].contains(&marker) || marker.starts_with("skip: "),
                "unknown guide marker {marker:?}"
            );
            markers.push(marker.to_string());
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    for backend in ["btrfs", "zfs", "lvm"] {
        assert!(
            markers.iter().any(|m| m == backend),
            "no guide block for {backend}"
        );
    }
    let run = markers.iter().filter(|m| !m.starts_with("skip")).count();
    assert!(
        run >= 9,
        "only {run} guide blocks run in the VM: {markers:?}"
    );
}
