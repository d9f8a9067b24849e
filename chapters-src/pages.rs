//! Chapter program `pages`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("pages: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
