//! Section 8 man pages: the NAME, SYNOPSIS, DESCRIPTION and OPTIONS of each
//! come from the clap definitions (so they never drift from `--help`), the
//! rest from a hand-written roff fragment per page in `man/src/` (see
//! [`fragments`]). The rendered pages are checked in under `man/`, beside the
//! hand-written `sidus.toml.5`; tests fail when they are stale, warn under
//! groff, or lack EXAMPLES and EXIT STATUS.

pub mod fragments;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result};
use clap::CommandFactory;
use fragments::Fragment;
use std::fmt::Write as _;
use std::path::Path;

/// The section of the generated pages: commands for the administrator, beside
/// zfs(8), lvm(8) and exportfs(8).
pub const SECTION: &str = "8";

/// The name of a subcommand's page, without the section: `sidus-publish`.
pub fn page_name(sub: &str) -> String {
    format!("sidus-{sub}")
}

/// The line `--help` ends with, pointing to the command's man page.
pub fn see_page(sub: Option<&str>) -> String {
    match sub {
        Some(s) => format!(
            "See {}({SECTION}) for what it guarantees, examples, exit status and files.",
            page_name(s)
        ),
        None => format!(
            "See sidus({SECTION}), sidus-COMMAND({SECTION}) (man sidus-publish) and sidus.toml(5)."
        ),
    }
}

/// Every generated page as (file name, roff text), `sidus.8` last, with the
/// hand-written fragments read from `fragments_dir` (`man/src`).
pub fn render_all(fragments_dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = crate::cli::Cli::command();
    // Propagates the global options (--config, --json, -v) into each subcommand.
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let mut pages = Vec::new();
    for sub in documented(&cmd) {
        let name = page_name(sub.get_name());
        let fragment = Fragment::load(fragments_dir, &name)?;
        let text = render_page(sub, &name, Some(sub.get_name()), &version, &fragment)
            .with_context(|| format!("man page {name}"))?;
        pages.push((format!("{name}.{SECTION}"), text.into_bytes()));
    }
    let fragment = Fragment::load(fragments_dir, "sidus")?;
    let text = render_page(&cmd, "sidus", None, &version, &fragment)?;
    pages.push((format!("sidus.{SECTION}"), text.into_bytes()));
    Ok(pages)
}

/// The subcommands with a page: not hidden, not clap's own `help`.
fn documented(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// One page: clap's parts, then the fragment's sections in man-pages(7) order.
fn render_page(
    cmd: &clap::Command,
    name: &str,
    sub: Option<&str>,
    version: &str,
    fragment: &Fragment,
) -> Result<String> {
    let man = clap_mangen::Man::new(cmd.clone().name(name.to_string()))
        .section(SECTION)
        .source(format!("sidus {version}"))
        .manual("System Administration");
    let mut out = clap_part(&man, |m, w| m.render_title(w))?;
    out += &drop_preamble(&clap_part(&man, |m, w| m.render_name_section(w))?);
    out += ".SH SYNOPSIS\n";
    match fragment.get("SYNOPSIS") {
        Some(forms) => out += forms,
        None => out += &synopsis(cmd, sub),
    }
    // clap's description, unless it only repeats NAME and the fragment has one.
    match (cmd.get_long_about(), fragment.get("DESCRIPTION")) {
        (None, Some(text)) => {
            out += ".SH DESCRIPTION\n";
            out += text;
        }
        (_, more) => {
            out += &drop_preamble(&clap_part(&man, |m, w| m.render_description_section(w))?);
            if let Some(text) = more {
                out += ".PP\n";
                out += text;
            }
        }
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        out += &drop_preamble(&clap_part(&man, |m, w| m.render_options_section(w))?);
    }
    match sub {
        None => out += &commands(cmd),
        Some(name) if cmd.has_subcommands() => out += &nested_commands(cmd, name),
        Some(_) => {}
    }
    out += ".SH \"EXIT STATUS\"\n";
    out += fragment.get("EXIT STATUS").unwrap_or(DEFAULT_EXIT_STATUS);
    out += &environment(cmd, fragment.get("ENVIRONMENT"));
    out += ".SH FILES\n";
    out += fragment.get("FILES").unwrap_or(DEFAULT_FILES);
    for section in ["NOTES", "EXAMPLES"] {
        if let Some(text) = fragment.get(section) {
            let _ = writeln!(out, ".SH {section}");
            out += text;
        }
    }
    out += ".SH \"SEE ALSO\"\n";
    let mut see: Vec<String> = Vec::new();
    if sub.is_some() {
        see.push(format!(".BR sidus ({SECTION})"));
    }
    see.push(".BR sidus.toml (5)".into());
    let _ = write!(out, "{}", see.join(",\n"));
    match fragment.get("SEE ALSO") {
        Some(more) => {
            out += ",\n";
            out += more;
        }
        None => out += "\n",
    }
    Ok(out)
}

/// What every command but `run`, `shell` and `update` exits with.
const DEFAULT_EXIT_STATUS: &str = "\
.TP
.B 0
Success.
.TP
.B 1
The operation failed; the message is on standard error and, with
.BR \\-\\-json ,
one document
\\fB{\"error\": ..., \"causes\": [...], \"exit\": 1}\\fR
is on standard output.
A refusal changes nothing.
.TP
.B 2
A usage error: an unknown option, a missing or malformed argument.
";

/// FILES of a page whose fragment names none.
const DEFAULT_FILES: &str = "\
.TP
.I /etc/sidus/sidus.toml
The configuration (another with
.B \\-\\-config
or
.BR SIDUS_CONFIG );
see
.BR sidus.toml (5).
";

/// ENVIRONMENT: the variables clap reads, `SIDUS_LOG`, then the fragment's.
fn environment(cmd: &clap::Command, extra: Option<&str>) -> String {
    let mut out = String::from(".SH ENVIRONMENT\n");
    let mut vars: Vec<_> = cmd
        .get_arguments()
        .filter_map(|a| Some((a.get_env()?.to_string_lossy().to_string(), a)))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (var, arg) in vars {
        let long = arg.get_long().unwrap_or_default();
        let _ = writeln!(
            out,
            ".TP\n.B {var}\nThe value of\n.B \\-\\-{}\nwhen that option is not given.",
            escape(long)
        );
    }
    out += ".TP\n.B SIDUS_LOG\nSet to\n.B debug\nto log every external command sidus runs, as\n.B \\-v\ndoes.\n";
    if let Some(extra) = extra {
        out += extra;
    }
    out
}

/// `sidus(8)`'s list of the commands, each a reference to its page.
fn commands(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in documented(cmd) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            ".TP\n.BR {} ({SECTION})\n{}",
            escape(&page_name(sub.get_name())),
            escape(&about)
        );
    }
    out
}

/// `sidus node`'s COMMANDS: each of its subcommands with its synopsis, what
/// it does and its own options (the global ones are in OPTIONS above).
fn nested_commands(cmd: &clap::Command, name: &str) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in documented(cmd) {
        let full = format!("{name} {}", sub.get_name());
        let _ = write!(out, ".TP\n{}", synopsis(sub, Some(&full)));
        let about = sub.get_long_about().or_else(|| sub.get_about());
        let _ = writeln!(
            out,
            "{}",
            escape(&about.map(|a| a.to_string()).unwrap_or_default())
        );
        let args: Vec<_> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help")
            .collect();
        if !args.is_empty() {
            out += ".RS\n";
            for a in args {
                let tag = match (a.get_short(), a.get_long()) {
                    _ if a.is_positional() => value_name(a),
                    (Some(s), Some(l)) => format!("\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR", escape(l)),
                    (Some(s), None) => format!("\\fB\\-{s}\\fR"),
                    (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", escape(l)),
                    (None, None) => continue,
                };
                let takes_value =
                    !a.is_positional() && a.get_num_args().is_some_and(|n| n.takes_values());
                let value = if takes_value {
                    format!(" {}", value_name(a))
                } else {
                    String::new()
                };
                let help = a.get_long_help().or_else(|| a.get_help());
                let _ = writeln!(
                    out,
                    ".TP\n{tag}{value}\n{}",
                    escape(&help.map(|h| h.to_string()).unwrap_or_default())
                );
            }
            out += ".RE\n";
        }
    }
    out
}

/// The SYNOPSIS line: `sidus publish [OPTIONS] TREE[@REF]`, the subcommand
/// named with a space as it is typed; required options and every positional
/// shown. A fragment's SYNOPSIS replaces it where a command has several forms.
fn synopsis(cmd: &clap::Command, sub: Option<&str>) -> String {
    let mut line = match sub {
        Some(s) => format!("\\fBsidus {}\\fR", escape(s)),
        None => "\\fBsidus\\fR".into(),
    };
    let args: Vec<_> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    if args
        .iter()
        .any(|a| !a.is_positional() && !a.is_required_set())
    {
        line += " [\\fIOPTIONS\\fR]";
    }
    for a in args
        .iter()
        .filter(|a| !a.is_positional() && a.is_required_set())
    {
        let flag = match (a.get_short(), a.get_long()) {
            (Some(s), _) => format!("\\-{s}"),
            (None, Some(l)) => format!("\\-\\-{}", escape(l)),
            (None, None) => continue,
        };
        let _ = write!(line, " \\fB{flag}\\fR {}", value_name(a));
    }
    for a in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let mut v = value_name(a);
        if a.is_last_set() {
            v = format!("\\fB\\-\\-\\fR {v}");
        }
        if a.get_num_args().is_some_and(|n| n.max_values() > 1) {
            v += " ...";
        }
        if !a.is_required_set() {
            v = format!("[{v}]");
        }
        line += " ";
        line += &v;
    }
    if cmd.has_subcommands() {
        line += " \\fICOMMAND\\fR";
    }
    format!("{line}\n")
}

/// A value name with its words in italics and its punctuation (`[@]|`) plain:
/// `TREE[@REF]` reads as \fITREE\fR[@\fIREF\fR].
pub(crate) fn value_name(a: &clap::Arg) -> String {
    let name = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().to_string().to_uppercase());
    let mut out = String::new();
    let mut word = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            word.push(c);
        } else {
            if !word.is_empty() {
                let _ = write!(out, "\\fI{}\\fR", escape(&word));
                word.clear();
            }
            out += &escape(&c.to_string());
        }
    }
    if !word.is_empty() {
        let _ = write!(out, "\\fI{}\\fR", escape(&word));
    }
    out
}

/// Text for roff: backslashes and hyphens escaped; a leading `.` or `'` guarded.
pub fn escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with(['.', '\'']) {
        format!("\\&{s}")
    } else {
        s
    }
}

/// One part clap_mangen renders, as text.
fn clap_part(
    man: &clap_mangen::Man,
    part: impl Fn(&clap_mangen::Man, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result<String> {
    let mut buf = Vec::new();
    part(man, &mut buf).context("render to memory")?;
    String::from_utf8(buf).context("clap_mangen wrote UTF-8")
}

/// clap_mangen starts each part it renders with the definition of `\*(Aq`;
/// the page needs it once, at the top.
fn drop_preamble(part: &str) -> String {
    part.lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect()
}
