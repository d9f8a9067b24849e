//! Chapter program `posix-shm`: not written yet.

fn main() -> std::process::ExitCode {
    eprintln!("posix-shm: this chapter program is not written yet");
    std::process::ExitCode::FAILURE
}
