//! The `rbuild` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    rbuild::main()
}
