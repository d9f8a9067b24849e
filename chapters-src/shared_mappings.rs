//! Chapter program `shared-mappings`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("shared-mappings: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
