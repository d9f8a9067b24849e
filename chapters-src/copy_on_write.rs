//! Chapter program `copy-on-write`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("copy-on-write: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
