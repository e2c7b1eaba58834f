//! The `provisioner` binary; all logic lives in the library.

fn main() -> std::process::ExitCode {
    provisioner::cli::main()
}
