//! Chapter program `cleanup`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("cleanup: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
