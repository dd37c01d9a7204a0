//! Sandbox init for the executor's integration tests: the tests point
//! `ExecutorConfig::init_program` at this binary.

fn main() {
    executor::maybe_sandbox_init();
    eprintln!("rbuild-sandbox-test-init: run by the executor only (first argument {})", executor::INIT_ARG);
    std::process::exit(2);
}
