//! The sandbox init as a program of its own. rbuild can re-execute itself as the init, but
//! this program is a tenth of its size, so every RUN starts sooner (less to map and
//! relocate). rbuild uses it when it sits next to rbuild and was built from the same
//! sources (see `executor::ExecutorConfig::standalone_init`).

fn main() {
    executor::maybe_sandbox_init();
    eprintln!("rbuild-sandbox-init: started by rbuild only (first argument {})", executor::INIT_ARG);
    std::process::exit(2);
}
