//! Man pages rendered from the clap definitions, one per subcommand, checked in
//! under `man/`; a test fails when they are stale.

use clap::CommandFactory;

/// Every man page as (file name, roff text).
pub fn render_all() -> Vec<(String, Vec<u8>)> {
    let cmd = crate::cli::Cli::command();
    let mut pages = Vec::new();
    let mut render = |name: String, c: clap::Command| {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .expect("render to memory");
        pages.push((format!("{name}.1"), buf));
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("sidus-{}", sub.get_name());
        render(
            name.clone(),
            sub.clone()
                .name(name)
                .version(cmd.get_version().unwrap_or_default().to_string()),
        );
    }
    render("sidus".into(), cmd);
    pages
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Regenerate with `SIDUS_UPDATE_MAN=1 cargo test man_pages`.
    #[test]
    fn man_pages_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let update = std::env::var_os("SIDUS_UPDATE_MAN").is_some();
        let mut stale = Vec::new();
        for (name, text) in super::render_all() {
            let path = dir.join(&name);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(&text[..]) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "stale man pages {stale:?}: run SIDUS_UPDATE_MAN=1 cargo test man_pages"
        );
    }
}
