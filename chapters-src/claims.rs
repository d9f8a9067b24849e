//! `claims`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("claims: not written yet");
    std::process::ExitCode::FAILURE
}
