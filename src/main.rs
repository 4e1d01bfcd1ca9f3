//! The `sidus` binary: everything happens in [`sidus::run`].

fn main() -> std::process::ExitCode {
    sidus::run()
}
