//! rbuild under test: the same program as the `rbuild` binary.

fn main() -> std::process::ExitCode {
    rbuild::main()
}
