//! Shell completion. `sidus completions SHELL` prints a script for bash, zsh or
//! fish; the script asks the binary itself for candidates
//! (`SIDUS_COMPLETE=SHELL sidus -- WORDS...`, clap_complete's dynamic
//! protocol), so subcommands and options come from the clap definitions and
//! tree names, snapshot IDs and labels from the store.
//!
//! Completing reads the store only: it never mounts it, takes no lock and
//! writes no journal entry; when the store cannot be read it offers nothing.

use crate::config::{Config, DEFAULT_PATH};
use crate::output::escape;
use clap::CommandFactory;
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{Bash, CompleteEnv, EnvCompleter, Fish, Shells};
use sidus_backends::{Backend, TreeName};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::PathBuf;

/// The environment variable that turns the binary into its own completer.
const VAR: &str = "SIDUS_COMPLETE";
/// The name the scripts complete and call back.
const BIN: &str = "sidus";

/// The shells `sidus completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash (with or without the bash-completion package).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// Answers a shell's completion request and exits, when `SIDUS_COMPLETE` says
/// the shell is asking; otherwise returns at once.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(crate::cli::Cli::command)
        .var(VAR)
        .bin(BIN)
        .completer(BIN)
        .shells(Shells(&[&SidusBash, &SidusZsh, &Fish]))
        .complete();
}

/// Writes the completion script of `shell`.
pub fn write_script(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let s: &dyn EnvCompleter = match shell {
        Shell::Bash => &SidusBash,
        Shell::Zsh => &SidusZsh,
        Shell::Fish => &Fish,
    };
    s.write_registration(VAR, BIN, BIN, BIN, out)
}

/// bash: clap's protocol, but the words are taken with `@` kept inside them
/// (bash breaks words at `@`, so `lab@2026` would reach sidus as three words),
/// and the candidates lose the part before the `@` that readline keeps.
struct SidusBash;

const BASH_SCRIPT: &str = r#"# bash completion for sidus; written by `sidus completions bash`.
# The candidates come from sidus itself: SIDUS_COMPLETE=bash sidus -- WORDS...
_sidus() {
    local cur words cword
    if declare -F _comp_get_words >/dev/null; then
        _comp_get_words -n @ cur words cword
    elif declare -F _get_comp_words_by_ref >/dev/null; then
        _get_comp_words_by_ref -n @ cur words cword
    else
        # Without bash-completion: the words up to the cursor, split at blanks.
        local line=${COMP_LINE:0:COMP_POINT}
        IFS=$' \t\n' read -r -a words <<<"$line"
        [[ -z $line || $line == *[[:blank:]] ]] && words+=("")
        cword=$((${#words[@]} - 1))
        cur=${words[cword]}
    fi
    words[cword]=$cur
    local IFS=$'\013'
    COMPREPLY=( $( \
        _CLAP_IFS="$IFS" \
        _CLAP_COMPLETE_INDEX="$cword" \
        _CLAP_COMPLETE_COMP_TYPE="${COMP_TYPE:-9}" \
        SIDUS_COMPLETE=bash \
        sidus -- "${words[@]:0:cword+1}" 2>/dev/null \
    ) ) || { unset COMPREPLY; return; }
    # readline replaces only the text after the last '@' of the word.
    if [[ $cur == *@* && $COMP_WORDBREAKS == *@* ]]; then
        local keep=${cur%"${cur##*@}"}
        COMPREPLY=("${COMPREPLY[@]#"$keep"}")
    fi
    # TREE@ and --option= go on without a space.
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} =~ [@=/]$ ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -o bashdefault -o default -o nosort -F _sidus sidus
"#;

impl EnvCompleter for SidusBash {
    fn name(&self) -> &'static str {
        "bash"
    }
    fn is(&self, name: &str) -> bool {
        name == "bash"
    }
    fn write_registration(
        &self,
        _var: &str,
        _name: &str,
        _bin: &str,
        _completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        buf.write_all(BASH_SCRIPT.as_bytes())
    }
    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        Bash.write_complete(cmd, args, current_dir, buf)
    }
}

/// zsh: clap's protocol and script, except that a candidate ending in `@`
/// (a tree, before its REF) gets no space after it.
struct SidusZsh;

const ZSH_SCRIPT: &str = r#"#compdef sidus
# zsh completion for sidus; written by `sidus completions zsh`.
# The candidates come from sidus itself: SIDUS_COMPLETE=zsh sidus -- WORDS...
_sidus() {
    local _CLAP_COMPLETE_INDEX=$(( CURRENT - 1 ))
    local -a completions=("${(@f)$( \
        _CLAP_IFS=$'\n' \
        _CLAP_COMPLETE_INDEX="$_CLAP_COMPLETE_INDEX" \
        SIDUS_COMPLETE=zsh \
        sidus -- "${words[@]}" 2>/dev/null \
    )}")
    [[ -n $completions ]] || return 1
    local -a open=() other=()
    local c
    for c in $completions; do
        if [[ ${c%%:*} == *[@/] ]]; then open+=("$c"); else other+=("$c"); fi
    done
    [[ -n $open ]] && _describe -V values open -S ''
    [[ -n $other ]] && _describe -V values other
}
compdef _sidus sidus
"#;

impl EnvCompleter for SidusZsh {
    fn name(&self) -> &'static str {
        "zsh"
    }
    fn is(&self, name: &str) -> bool {
        name == "zsh"
    }
    fn write_registration(
        &self,
        _var: &str,
        _name: &str,
        _bin: &str,
        _completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        buf.write_all(ZSH_SCRIPT.as_bytes())
    }
    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        clap_complete::env::Zsh.write_complete(cmd, args, current_dir, buf)
    }
}

/// Completes a TREE argument: the store's tree names.
pub fn trees() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete(current, Want::Tree))
}

/// Completes a `TREE[@REF]` argument: tree names, and after `TREE@` that
/// tree's snapshot IDs, labels and `latest`.
pub fn tree_or_ref() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete(current, Want::TreeOrRef))
}

/// Completes a `TREE@REF` argument: `TREE@` for each tree, then as
/// [`tree_or_ref`].
pub fn snapshot_ref() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete(current, Want::Ref))
}

/// What an argument takes.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    Tree,
    TreeOrRef,
    Ref,
}

fn complete(current: &OsStr, want: Want) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return vec![];
    };
    let Some(backend) = open_store() else {
        return vec![];
    };
    match current.split_once('@') {
        Some((tree, prefix)) if want != Want::Tree => refs(&*backend, tree, prefix),
        Some(_) => vec![],
        None => tree_names(&*backend, current, want),
    }
}

fn tree_names(backend: &dyn Backend, prefix: &str, want: Want) -> Vec<CompletionCandidate> {
    let Ok(trees) = backend.list_trees() else {
        return vec![];
    };
    let mut names: Vec<String> = trees
        .into_iter()
        .map(|t| t.name.to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| match want {
            Want::Ref => CompletionCandidate::new(format!("{n}@")),
            _ => CompletionCandidate::new(n),
        })
        .collect()
}

/// `TREE@X` for the snapshot IDs, labels and `latest` of `tree` that start
/// with `prefix`: labels and `latest` first, then IDs newest first.
fn refs(backend: &dyn Backend, tree: &str, prefix: &str) -> Vec<CompletionCandidate> {
    let Ok(name) = tree.parse::<TreeName>() else {
        return vec![];
    };
    let Ok(mut snaps) = backend.list_snapshots(Some(&name)) else {
        return vec![];
    };
    snaps.sort_by(|a, b| b.id.cmp(&a.id));
    let pins = crate::history::pins::Pins::new(&backend.state_dir())
        .of_tree(&name)
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut offer = |value: String, help: String| {
        if value.starts_with(prefix) {
            out.push(
                CompletionCandidate::new(format!("{tree}@{value}"))
                    .help(Some(escape(&help).into_owned().into())),
            );
        }
    };
    for p in &pins {
        if let Some(l) = &p.label {
            offer(l.to_string(), format!("label of {}", p.id));
        }
    }
    if let Some(newest) = snaps.first() {
        offer("latest".into(), format!("newest: {}", newest.id));
    }
    for s in &snaps {
        let help = match s.message.as_str() {
            "" => s.kind.to_string(),
            m => format!("{}: {m}", s.kind),
        };
        offer(s.id.to_string(), help);
    }
    out
}

/// The store the command line being completed names (`--config`,
/// `SIDUS_CONFIG`, or the default), with nothing mounted or opened.
fn open_store() -> Option<Box<dyn Backend>> {
    let path = config_in(std::env::args_os().skip_while(|a| a != "--"))
        .or_else(|| std::env::var_os("SIDUS_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    Config::load(&path).ok()?.backend().ok()
}

/// The value of `--config` among the words of the command line.
fn config_in(words: impl Iterator<Item = OsString>) -> Option<PathBuf> {
    let mut found = None;
    let mut next_is_value = false;
    for w in words {
        if next_is_value {
            found = Some(PathBuf::from(&w));
            next_is_value = false;
        } else if w == "--config" {
            next_is_value = true;
        } else if let Some(v) = w.to_str().and_then(|w| w.strip_prefix("--config=")) {
            found = Some(PathBuf::from(v));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_read_from_the_words_being_completed() {
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>().into_iter();
        assert_eq!(
            config_in(words(&["--", "sidus", "--config", "/a.toml", "show", ""])),
            Some(PathBuf::from("/a.toml"))
        );
        assert_eq!(
            config_in(words(&["--", "sidus", "--config=/b.toml", "show"])),
            Some(PathBuf::from("/b.toml"))
        );
        assert_eq!(config_in(words(&["--", "sidus", "show", "lab@"])), None);
    }

    #[test]
    fn every_script_calls_sidus_back() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_script(shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("SIDUS_COMPLETE=") && text.contains("sidus"),
                "{text}"
            );
        }
    }
}
