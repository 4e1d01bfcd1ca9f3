//! A minimal stderr logger: `-v` (or `SIDUS_LOG=debug`) shows every command run.

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        eprintln!("sidus: {}", record.args());
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger; debug level with `verbose` or `SIDUS_LOG=debug`.
pub fn init(verbose: bool) {
    let debug = verbose || std::env::var("SIDUS_LOG").is_ok_and(|v| v == "debug");
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    });
}
