//! The operations of the IR.

use registry::{Digest, Platform, Reference};
use serde::{Deserialize, Serialize};

/// One build operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Produces a filesystem from outside the graph.
    Source(Source),
    /// Runs a process on top of input 0 (the root filesystem).
    Exec(Exec),
    /// File-system actions on top of an optional base input.
    File(FileOp),
    /// Stacks the inputs' filesystems, later inputs on top (BuildKit `MergeOp`).
    Merge,
    /// The changes that take input 0 (lower) to input 1 (upper) (BuildKit `DiffOp`).
    Diff,
}

impl Op {
    /// The largest input index the op refers to, if any (used to validate vertices).
    pub fn max_input_index(&self) -> Option<usize> {
        match self {
            Op::Source(_) => None,
            Op::Exec(e) => e.mounts.iter().filter_map(|m| m.input).max(),
            Op::File(f) => {
                let copies = f.actions.iter().filter_map(|a| match a {
                    FileAction::Copy(c) => Some(c.source),
                    _ => None,
                });
                f.base.into_iter().chain(copies).max()
            }
            Op::Merge => None,
            Op::Diff => Some(1),
        }
    }

    /// A short kind name for progress and `debug ir`.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source(Source::Image(_)) => "image",
            Op::Source(Source::Local(_)) => "local",
            Op::Source(Source::Http(_)) => "http",
            Op::Source(Source::Git(_)) => "git",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Merge => "merge",
            Op::Diff => "diff",
        }
    }
}

/// Where a source's content comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A registry image, pinned to a manifest digest.
    Image(ImageSource),
    /// A directory on the client (the build context or a named context).
    Local(LocalSource),
    /// A file downloaded over HTTP(S).
    Http(HttpSource),
    /// A git repository.
    Git(GitSource),
}

/// `image://ref@digest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSource {
    /// The reference, pinned to the platform's manifest digest.
    pub reference: Reference,
    /// The platform whose manifest was chosen.
    pub platform: Platform,
}

/// `local://name`: a client directory, filtered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSource {
    /// Context name (`context`, or a `--build-context` name).
    pub name: String,
    /// `.dockerignore` patterns.
    pub excludes: Vec<String>,
}

/// `https://…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSource {
    /// The URL.
    pub url: String,
    /// Expected content digest (`ADD --checksum`).
    pub checksum: Option<Digest>,
    /// File name to store the download under.
    pub filename: String,
    /// Mode of the downloaded file.
    pub mode: u32,
}

/// `git://…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    /// Remote URL.
    pub remote: String,
    /// Branch, tag or commit.
    pub reference: Option<String>,
    /// Subdirectory to take.
    pub subdir: Option<String>,
    /// Keep `.git`.
    pub keep_git_dir: bool,
    /// Expected commit (a full or abbreviated hash, `ADD --checksum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Network mode of an exec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Host networking (the default, as in `docker build`).
    #[default]
    Host,
    /// No network: only loopback.
    None,
}

/// Security mode of an exec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Default capabilities and seccomp profile.
    #[default]
    Sandbox,
    /// All capabilities, no seccomp (needs `--allow security.insecure`).
    Insecure,
}

/// Runs one process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// argv.
    pub args: Vec<String>,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User spec (`name`, `uid:gid`, ...), resolved in the root filesystem.
    pub user: String,
    /// Mounts; the first is the root filesystem (`dest` `/`, kind `Layer`).
    pub mounts: Vec<ExecMount>,
    /// Network mode.
    pub network: Network,
    /// Security mode.
    pub security: Security,
    /// Hostname, when not the default.
    pub hostname: Option<String>,
    /// Extra `/etc/hosts` entries (`host`, `ip`).
    pub extra_hosts: Vec<(String, String)>,
    /// Platform the process is for (decides emulation).
    pub platform: Platform,
    /// Proxy variables (`HTTP_PROXY=...`) added to `env` when the process runs. Like
    /// BuildKit's proxy env they never enter the digest, so changing a proxy re-runs nothing.
    #[serde(default, skip_serializing)]
    pub proxy_env: Vec<String>,
}

/// A mount of an exec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecMount {
    /// Input index whose filesystem is mounted (`None`: scratch or not input-based).
    pub input: Option<usize>,
    /// Subpath of the input to mount.
    pub selector: String,
    /// Mount point inside the container.
    pub dest: String,
    /// Read-only mount.
    pub readonly: bool,
    /// What kind of mount.
    pub kind: MountKind,
}

/// Sharing mode of a cache mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Concurrent builds share the directory.
    #[default]
    Shared,
    /// Concurrent builds get separate directories.
    Private,
    /// Concurrent builds wait for each other.
    Locked,
}

/// The kinds of exec mounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// The root filesystem; its changes become the op's output layer.
    Layer,
    /// A bind of an input (writes are discarded unless readonly is false and... never kept).
    Bind,
    /// A persistent cache directory.
    Cache {
        /// Cache id (default: the target path).
        id: String,
        /// Sharing mode.
        sharing: CacheSharing,
        /// Mode of the created directory.
        mode: u32,
        /// Owner of the created directory.
        uid: u32,
        /// Group of the created directory.
        gid: u32,
    },
    /// A tmpfs.
    Tmpfs {
        /// Size limit in bytes.
        size: Option<u64>,
    },
    /// A secret file (never in a layer, a cache key or the history).
    Secret {
        /// Secret id.
        id: String,
        /// Fail when the secret is not provided.
        required: bool,
        /// File mode.
        mode: u32,
        /// File owner.
        uid: u32,
        /// File group.
        gid: u32,
        /// Expose as this environment variable instead of (or as well as) a file.
        env: Option<String>,
    },
    /// An ssh-agent socket.
    Ssh {
        /// Ssh id.
        id: String,
        /// Fail when not provided.
        required: bool,
        /// Socket mode.
        mode: u32,
        /// Socket owner.
        uid: u32,
        /// Socket group.
        gid: u32,
    },
}

/// File-system actions applied in order on top of `base`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// Input index of the filesystem to modify (`None`: start from scratch).
    pub base: Option<usize>,
    /// The actions.
    pub actions: Vec<FileAction>,
}

/// Owner for created or copied files: names are resolved in the destination's
/// `/etc/passwd` and `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Numeric ids.
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// User (and group) names or numeric strings to resolve.
    Names {
        /// User.
        user: String,
        /// Group; `None` means the user's primary group.
        group: Option<String>,
    },
}

/// One file action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Create a directory.
    Mkdir(Mkdir),
    /// Create a file with content.
    Mkfile(Mkfile),
    /// Remove a path.
    Rm(Rm),
    /// Copy from an input.
    Copy(Copy),
}

/// `mkdir`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkdir {
    /// Absolute path.
    pub path: String,
    /// Mode bits.
    pub mode: u32,
    /// Create missing parents.
    pub make_parents: bool,
    /// Owner.
    pub owner: Option<Owner>,
    /// mtime to set.
    pub timestamp: Option<i64>,
}

/// `mkfile`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mkfile {
    /// Absolute path.
    pub path: String,
    /// Mode bits.
    pub mode: u32,
    /// Content.
    pub data: Vec<u8>,
    /// Owner.
    pub owner: Option<Owner>,
    /// mtime to set.
    pub timestamp: Option<i64>,
}

/// `rm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rm {
    /// Absolute path.
    pub path: String,
    /// No error when missing.
    pub allow_not_found: bool,
    /// The path may contain wildcards.
    pub allow_wildcard: bool,
}

/// Mode for copied files: octal bits, or a symbolic expression (`u+x`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChmodSpec {
    /// Octal bits.
    Octal(u32),
    /// Symbolic, as chmod(1).
    Symbolic(String),
}

/// `copy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// Input index to copy from.
    pub source: usize,
    /// Path in the source (may contain wildcards).
    pub src: String,
    /// Absolute destination; a trailing `/` means "into this directory".
    pub dest: String,
    /// Owner of copied files.
    pub owner: Option<Owner>,
    /// Mode of copied files.
    pub mode: Option<ChmodSpec>,
    /// Follow a symlink given as `src`.
    pub follow_symlinks: bool,
    /// Copy a directory's contents rather than the directory.
    pub dir_copy_contents: bool,
    /// Extract local archives (ADD).
    pub attempt_unpack: bool,
    /// Create missing parents of `dest`.
    pub create_dest_path: bool,
    /// `src` may contain wildcards.
    pub allow_wildcard: bool,
    /// A wildcard matching nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Only copy paths matching these patterns.
    pub include_patterns: Vec<String>,
    /// Skip paths matching these patterns (`--exclude`).
    pub exclude_patterns: Vec<String>,
    /// Keep the source's parent directories (`--parents`).
    pub parents: bool,
    /// Replace existing destination entries even when types differ.
    pub always_replace_existing: bool,
    /// mtime to set on copied files.
    pub timestamp: Option<i64>,
}
