//! Chapter program `synchronization`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("synchronization: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
