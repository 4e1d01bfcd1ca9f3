//! The hand-written parts of a man page: `man/src/PAGE.roff`, plain roff
//! split into sections by `.SH` lines.
//!
//! Plain roff rather than Markdown: no converter to write or depend on, what
//! is written is what man shows, and the render test runs it through groff
//! with every warning on. A fragment may hold SYNOPSIS (replacing the
//! generated line, for a command with several forms; a test checks that it
//! still names the command and its arguments), DESCRIPTION (appended after the
//! clap text), EXIT STATUS (replacing the default 0/1/2), ENVIRONMENT
//! (appended after the generated variables), FILES (replacing the default:
//! the config file), NOTES, EXAMPLES and SEE ALSO (appended after sidus(8)
//! and sidus.toml(5)). A page without a fragment still renders, with the
//! defaults and no EXAMPLES; a test names the pages that lack them.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Sections a fragment may hold, in the order the page prints them.
pub const SECTIONS: [&str; 8] = [
    "SYNOPSIS",
    "DESCRIPTION",
    "EXIT STATUS",
    "ENVIRONMENT",
    "FILES",
    "NOTES",
    "EXAMPLES",
    "SEE ALSO",
];

/// The hand-written sections of one page.
#[derive(Debug, Default)]
pub struct Fragment {
    sections: Vec<(String, String)>,
    /// Whether a file was there at all.
    pub exists: bool,
}

impl Fragment {
    /// Reads `dir/PAGE.roff`; a missing file is an empty fragment.
    pub fn load(dir: &Path, page: &str) -> Result<Fragment> {
        let path = dir.join(format!("{page}.roff"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Fragment::default()),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let mut f =
            Fragment::parse(&text).with_context(|| format!("man fragment {}", path.display()))?;
        f.exists = true;
        Ok(f)
    }

    /// Splits roff text at its `.SH` lines; only comments may come before the first.
    pub fn parse(text: &str) -> Result<Fragment> {
        let mut sections: Vec<(String, String)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if let Some(head) = line.strip_prefix(".SH ") {
                let head = head.trim().trim_matches('"').to_string();
                if !SECTIONS.contains(&head.as_str()) {
                    bail!(
                        "line {}: section {head:?} is not one of {SECTIONS:?}",
                        n + 1
                    );
                }
                if sections.iter().any(|(h, _)| *h == head) {
                    bail!("line {}: section {head:?} appears twice", n + 1);
                }
                sections.push((head, String::new()));
            } else if let Some((_, body)) = sections.last_mut() {
                body.push_str(line);
                body.push('\n');
            } else if !(line.starts_with(".\\\"") || line.trim().is_empty()) {
                bail!("line {}: text before the first .SH", n + 1);
            }
        }
        for (head, body) in &sections {
            if body.trim().is_empty() {
                bail!("section {head:?} is empty");
            }
        }
        Ok(Fragment {
            sections,
            exists: false,
        })
    }

    /// The body of section `head`, if the fragment has it.
    pub fn get(&self, head: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(h, _)| h == head)
            .map(|(_, b)| b.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Fragment;

    #[test]
    fn sections_split_at_sh_lines() {
        let f = Fragment::parse(
            ".\\\" comment\n.SH EXAMPLES\n.EX\nsidus list\n.EE\n.SH \"SEE ALSO\"\n.BR zfs (8)\n",
        )
        .unwrap();
        assert_eq!(f.get("EXAMPLES"), Some(".EX\nsidus list\n.EE\n"));
        assert_eq!(f.get("SEE ALSO"), Some(".BR zfs (8)\n"));
        assert_eq!(f.get("FILES"), None);
    }

    #[test]
    fn unknown_repeated_and_stray_text_are_refused() {
        for (text, want) in [
            (".SH BUGS\nnone\n", "not one of"),
            (".SH FILES\na\n.SH FILES\nb\n", "twice"),
            ("hello\n.SH FILES\na\n", "before the first"),
            (".SH FILES\n\n", "empty"),
        ] {
            let e = Fragment::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
