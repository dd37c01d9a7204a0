//! `rbuild build` flags about how `RUN` steps run (docker buildx build spellings, plus the
//! legacy `docker build` resource flags). Parsed only; `resolve_run.rs` checks and
//! converts them.

use clap::{Args, ValueEnum};

/// Network modes of `--network`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkFlag {
    /// Host networking for steps without `RUN --network` (what `docker build` users expect).
    Default,
    /// The host's network.
    Host,
    /// Only a loopback interface.
    None,
}

/// Sandbox flags of `rbuild build`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Secret for `RUN --mount=type=secret`: `id=ID[,src=FILE]`, `id=ID,env=VAR` or
    /// `id=ID,type=env`; may be repeated.
    #[arg(long = "secret", value_name = "id=ID[,src=FILE|env=VAR]")]
    pub secrets: Vec<String>,

    /// ssh agent for `RUN --mount=type=ssh`: `default` ($SSH_AUTH_SOCK),
    /// `ID=SOCKET` or `ID=KEYFILE[,KEYFILE]`; may be repeated.
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY]]")]
    pub ssh: Vec<String>,

    /// Network of RUN steps that do not set `RUN --network`.
    #[arg(long, value_enum, value_name = "MODE")]
    pub network: Option<NetworkFlag>,

    /// Grant an entitlement: `security.insecure` (for `RUN --security=insecure`) or
    /// `network.host`; may be repeated.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,

    /// Security option for every RUN step: `no-new-privileges`.
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opts: Vec<String>,

    /// Memory limit of each RUN step (`512m`, `2g`); no swap on top of it.
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,

    /// CPUs each RUN step may use (`1.5`).
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<f64>,

    /// CFS quota of each RUN step, in microseconds per period.
    #[arg(long, value_name = "MICROSECONDS")]
    pub cpu_quota: Option<u64>,

    /// CFS period for `--cpu-quota`, in microseconds (default 100000).
    #[arg(long, value_name = "MICROSECONDS")]
    pub cpu_period: Option<u64>,

    /// Maximum number of processes and threads of each RUN step (-1: unlimited).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
}
