//! The `provisioner` binary; all logic lives in the library.

/// mimalloc rather than the system allocator: every job allocates a few hundred small,
/// short-lived objects (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    provisioner::cli::main()
}
