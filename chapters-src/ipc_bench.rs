//! Chapter program `ipc-bench`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("ipc-bench: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
