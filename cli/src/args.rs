//! Command-line flags. Step one of two: clap structs only parse and validate; `resolve.rs`
//! turns them into an `engine::BuildRequest`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// rbuild: build container images from Dockerfiles, BuildKit-compatible, daemonless.
#[derive(Parser, Debug)]
#[command(name = "rbuild", version, about, long_about = None, disable_help_subcommand = true)]
pub struct Cli {
    /// Store root (images, build cache). Default: /var/lib/rbuild as root,
    /// $XDG_DATA_HOME/rbuild otherwise.
    #[arg(long, global = true, env = "RBUILD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// What isolates RUN steps: `native` (rbuild's own sandbox, the default), `runc`, `crun`,
    /// or the path of another OCI runtime, given a bundle per step.
    #[arg(long, global = true, env = "RBUILD_RUNTIME", value_name = "RUNTIME")]
    pub runtime: Option<String>,

    /// Log level for rbuild's own diagnostics (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "RBUILD_LOG", default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile and a context (directory, stdin, git repository).
    #[command(after_help = BUILD_EXAMPLES)]
    Build(BuildArgs),
    /// List images in the local store.
    #[command(after_help = "Examples:\n  rbuild images\n  rbuild --root /tmp/store images")]
    Images,
    /// List recent builds (time, result, duration, steps run and cached).
    #[command(
        after_help = "Examples:\n  rbuild builds\n  rbuild logs                # steps of the last build\n  rbuild logs 1764300000 --step 5"
    )]
    Builds,
    /// Print a build's steps, or the whole output of one step (`#N` in the progress).
    #[command(
        after_help = "Examples:\n  rbuild logs\n  rbuild logs --step 5\n  rbuild logs 1764300000-123456 --step 2"
    )]
    Logs {
        /// Build id (a unique prefix is enough); the newest build when omitted.
        build: Option<String>,
        /// The step number, as `#N` in the progress output.
        #[arg(long)]
        step: Option<usize>,
    },
    /// Show the disk space the store uses.
    #[command(after_help = "Examples:\n  rbuild du\n  rbuild du --verbose")]
    Du {
        /// List every cache record with its size and last use.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Remove build cache that tagged images do not need.
    #[command(
        after_help = "Examples:\n  rbuild prune\n  rbuild prune --all\n  rbuild prune --filter until=24h\n  rbuild prune --keep-storage 10GB"
    )]
    Prune {
        /// Remove all cache records, not only unused ones (tagged images are always kept).
        #[arg(short, long)]
        all: bool,
        /// Only remove records not used for this long: `until=24h`.
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        /// Keep at most this much cache, removing the least recently used first (`10GB`).
        #[arg(long, value_name = "SIZE")]
        keep_storage: Option<String>,
    },
    /// Inspect internals: the parsed Dockerfile or the build graph.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Show images' configuration and metadata as JSON (docker image inspect).
    #[command(after_help = crate::commands::inspect::EXAMPLES)]
    Inspect(crate::commands::inspect::InspectArgs),
    /// Show the build steps of an image, newest first.
    #[command(after_help = crate::commands::history::EXAMPLES)]
    History(crate::commands::history::HistoryArgs),
    /// Give an image another name.
    #[command(after_help = crate::commands::tag::EXAMPLES)]
    Tag(crate::commands::tag::TagArgs),
    /// Remove image names (the content stays until `rbuild prune`).
    #[command(after_help = crate::commands::rmi::EXAMPLES)]
    Rmi(crate::commands::rmi::RmiArgs),
    /// Push an image from the local store to its registry.
    #[command(after_help = crate::commands::push::EXAMPLES)]
    Push(crate::commands::push::PushArgs),
    /// Pull an image from a registry into the local store.
    #[command(after_help = crate::commands::pull::EXAMPLES)]
    Pull(crate::commands::pull::PullArgs),
    /// Write images to a tar archive (docker-archive or OCI layout).
    #[command(after_help = crate::commands::save::EXAMPLES)]
    Save(crate::commands::save::SaveArgs),
    /// Load images from a docker-archive or OCI layout tar.
    #[command(after_help = crate::commands::load::EXAMPLES)]
    Load(crate::commands::load::LoadArgs),
    /// Log in to a registry.
    #[command(after_help = crate::commands::login::LOGIN_EXAMPLES)]
    Login(crate::commands::login::LoginArgs),
    /// Log out from a registry.
    #[command(after_help = crate::commands::login::LOGOUT_EXAMPLES)]
    Logout(crate::commands::login::LogoutArgs),
    /// Show version information (rbuild, rustc, OS, cgroup version).
    #[command(after_help = crate::commands::version::EXAMPLES)]
    Version(crate::commands::version::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = crate::commands::completion::EXAMPLES)]
    Completion(crate::commands::completion::CompletionArgs),
}

const BUILD_EXAMPLES: &str = "Examples:
  rbuild build -t app:latest .
  rbuild build -f docker/Dockerfile --build-arg VERSION=1.2 --target release -t app .
  rbuild build --output type=oci,dest=app.tar .
  rbuild build -t 127.0.0.1:5000/team/app:1.0 --push .
  rbuild build -f - . < Dockerfile.dev             # Dockerfile from stdin, context .
  rbuild build - < Dockerfile                      # no context files
  tar -cz . | rbuild build -t app -                # context tar (gzip, bzip2, xz, zstd or plain)
  rbuild build https://example.com/app.git#v1.2:docker
  rbuild build file:///srv/repos/app.git#main
  rbuild build --build-context deps=../vendor .    # COPY --from=deps, FROM deps
  rbuild build --build-context alpine=docker-image://127.0.0.1:5000/alpine:3.20 .
  rbuild build --build-context src=https://example.com/lib.git#v2 .
  rbuild build -t reg.example.com/app --push \\
    --cache-to type=registry,ref=reg.example.com/app:buildcache,mode=max \\
    --cache-from type=registry,ref=reg.example.com/app:buildcache .
  rbuild build --cache-to type=local,dest=/ci/cache --cache-from type=local,src=/ci/cache .";

/// `rbuild debug ...`.
#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Print the build graph (IR) a Dockerfile lowers to.
    Ir {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: IrFormat,
        /// The same options as `build` (context, -f, --build-arg, --target, --platform).
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Say why the next build would not be fully cached (which step would run first and
    /// which file, build arg, base image or instruction changed). Runs nothing.
    Why {
        /// The same options as `build`.
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Print the parsed Dockerfile in the format of BuildKit's parser test results, to compare
    /// rbuild's reading of a Dockerfile with BuildKit's.
    Parse {
        /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
        #[arg(short = 'f', long = "file", value_name = "PATH")]
        file: Option<PathBuf>,
        /// Build context directory.
        #[arg(value_name = "CONTEXT", default_value = ".")]
        context: PathBuf,
    },
}

/// `debug ir` formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrFormat {
    /// One line per vertex.
    Text,
    /// Graphviz.
    Dot,
    /// JSON of the whole graph.
    Json,
}

/// Progress output modes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal, else `plain`.
    Auto,
    /// Live view with timers.
    Tty,
    /// BuildKit-style numbered lines.
    Plain,
    /// One JSON event per line.
    Rawjson,
    /// Nothing but errors.
    Quiet,
}

/// `rbuild build` flags (the docker buildx build subset rbuild implements).
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Build context: a directory, `-` (stdin holds a Dockerfile, or a tar of the context,
    /// optionally gzip/bzip2/xz/zstd-compressed), or a git repository `URL#ref:subdir`
    /// (`https://host/repo.git`, `git://`, `ssh://`, `git@host:repo`, `file:///path/repo`, or
    /// a local repository path with a `#ref` fragment).
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,

    /// Additional build context `NAME=VALUE` (repeatable): VALUE is a directory,
    /// `docker-image://REF[:TAG|@DIGEST]` or a git URL. It replaces the stage named NAME and
    /// is used by `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME`.
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// Name and optionally a tag (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,

    /// Name of the Dockerfile (default: CONTEXT/Dockerfile); `-` reads it from stdin. With a
    /// git or stdin-tar context, a relative PATH is inside that context.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Build-time variable `KEY=VALUE` (or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,

    /// Build this stage.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Target platform (`linux/amd64`, `linux/arm64`).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Set a label on the image (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Do not use the cache for these stages (comma-separated or repeated).
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,

    /// Resolve base image tags again instead of using the locally known digests.
    #[arg(long)]
    pub pull: bool,

    /// Say why the first step that has to run missed the cache (which file, build arg, base
    /// image or instruction changed since the previous build of this target).
    #[arg(long)]
    pub explain: bool,

    /// Fail before running anything if any step is not served from the cache (for CI), naming
    /// the first such step and why.
    #[arg(long)]
    pub expect_cached: bool,

    /// Output destination: `type=image|oci|docker|local|tar[,key=value...]`; may be repeated.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,

    /// Push the image to the registry named by -t (short for --output type=image,push=true).
    #[arg(long)]
    pub push: bool,

    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,

    /// Print only the image ID when done.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Run the build checks (BuildKit's rules) without building; exit 1 when any fails.
    #[arg(long)]
    pub check: bool,

    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,

    /// Write the build result (image digests, per-step times and resource use) to this
    /// file as JSON.
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Write a Chrome trace-event JSON of the build (Perfetto, chrome://tracing).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// How RUN steps run.
    #[command(flatten)]
    pub run: crate::run_args::RunArgs,

    /// Export the build cache after a successful build (may be repeated):
    /// `type=registry,ref=NAME[,mode=min|max][,compression=gzip|zstd|uncompressed]
    /// [,oci-mediatypes=true|false][,image-manifest=true|false][,ignore-error=true|false]`
    /// or `type=local,dest=DIR[,...]` or `type=inline` (in the image config, mode=min).
    /// `mode=max` includes intermediate stages' steps.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,

    /// Use a build cache exported with --cache-to (may be repeated): `type=registry,ref=NAME`
    /// (or just `NAME`, also an image built with --cache-to type=inline), or
    /// `type=local,src=DIR`. Layers are fetched only for steps the build needs; a missing
    /// cache is a warning.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
}
