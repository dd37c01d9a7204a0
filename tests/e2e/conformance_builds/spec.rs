//! The `expect.json` of a build scenario, as `builds/README.md` defines it. Unknown keys are an
//! error, so that an expectation the runner does not check can never pass silently.

use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

/// One scenario.
#[derive(Debug, Deserialize)]
pub struct CaseSpec {
    /// Folder name.
    pub id: String,
    /// Images to build first, in order.
    #[serde(default)]
    pub prebuild: Vec<Prebuild>,
    /// Context folder (relative to the case) → its entries with modes and symlink targets.
    #[serde(default)]
    pub contexts: BTreeMap<String, Vec<ContextEntry>>,
    /// Builds, in order, on one store.
    pub runs: Vec<RunSpec>,
}

/// An image built and pushed before the runs.
#[derive(Debug, Deserialize)]
pub struct Prebuild {
    /// Name within the case.
    pub name: String,
    /// Dockerfile, relative to the case.
    pub dockerfile: String,
    /// Context folder, relative to the case.
    pub context: String,
    /// The text standing for the image in other files (`{{IMAGE:name}}`).
    pub placeholder: String,
}

/// A context entry whose mode or link target git could not keep.
#[derive(Debug, Deserialize)]
pub struct ContextEntry {
    /// Path inside the context folder.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Octal mode (`"0600"`).
    pub mode: Option<String>,
    /// Symlink target.
    pub target: Option<String>,
}

/// One build.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Name within the case.
    pub name: String,
    /// Dockerfile, relative to the case.
    pub dockerfile: String,
    /// Context folder, relative to the case.
    pub context: String,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg`s.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// `--platform`.
    pub platform: Option<String>,
    /// `--label`s.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Only meaningful right after the previous run on the same store (a cache hit is expected).
    #[serde(default)]
    pub depends_on_previous_run_cache: bool,
    /// What must hold afterwards.
    pub expect: Expect,
    /// Free text.
    #[serde(default, rename = "notes")]
    _notes: Option<IgnoredAny>,
}

/// Expectations of one build.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Whether the build succeeds.
    pub success: bool,
    /// Substrings of the error message (failures only).
    #[serde(default)]
    pub error_contains: Vec<String>,
    /// Assertions on the built file system.
    #[serde(default)]
    pub files: Vec<FileExpect>,
    /// Assertions on the image config and manifest.
    pub image: Option<ImageExpect>,
    /// Informational: how upstream observed the result.
    #[serde(default, rename = "checked_via")]
    _checked_via: Option<IgnoredAny>,
}

/// Assertions on one path of the result.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExpect {
    /// Path relative to the result's root.
    pub path: String,
    /// Exact content (symlinks followed).
    pub content: Option<String>,
    /// Content contains this.
    pub contains: Option<String>,
    /// Content does not contain this.
    pub not_contains: Option<String>,
    /// Byte-identical to this file of the run's context.
    pub content_same_as_context_file: Option<String>,
    /// Exists (`stat`, following symlinks) or not.
    pub exists: Option<bool>,
    /// `dir` or `file`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// An existing, empty directory.
    pub empty_dir: Option<bool>,
    /// Symlink target (or content, when not a symlink).
    pub link_target: Option<String>,
    /// Same inode as this other path.
    pub same_file_as: Option<String>,
    /// Owner in the tar exporter's headers.
    pub uid: Option<u64>,
    /// Group in the tar exporter's headers.
    pub gid: Option<u64>,
}

impl FileExpect {
    /// True when checking needs the file system (local exporter).
    pub fn needs_local(&self) -> bool {
        self.content.is_some()
            || self.contains.is_some()
            || self.not_contains.is_some()
            || self.content_same_as_context_file.is_some()
            || self.exists.is_some()
            || self.kind.is_some()
            || self.empty_dir.is_some()
            || self.link_target.is_some()
            || self.same_file_as.is_some()
    }

    /// True when checking needs tar headers (tar exporter).
    pub fn needs_tar(&self) -> bool {
        self.uid.is_some() || self.gid.is_some()
    }
}

/// Assertions on the image.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageExpect {
    /// Fields of the config's `config` object, with the README's suffix conventions.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Top-level `os` set.
    pub os_nonempty: Option<bool>,
    /// Top-level `architecture` set.
    pub architecture_nonempty: Option<bool>,
    /// `rootfs.type`.
    pub rootfs_type: Option<String>,
    /// Number of `rootfs.diff_ids`.
    pub diff_ids_count: Option<usize>,
    /// Number of diff_ids beyond the base image's.
    pub diff_ids_added: Option<usize>,
    /// Number of layers in the manifest.
    pub layers_count: Option<usize>,
    /// Number of history entries.
    pub history_count: Option<usize>,
    /// History entries from the first, in order.
    pub history: Option<Vec<HistoryExpect>>,
    /// History entries after the base image's, in order (all of them).
    pub history_added: Option<Vec<HistoryExpect>>,
    /// Image `created` as Unix seconds.
    pub created_unix: Option<i64>,
    /// Every history entry's `created` as Unix seconds.
    pub all_history_created_unix: Option<i64>,
}

/// One expected history entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryExpect {
    /// `created_by` contains this.
    pub created_by_contains: Option<String>,
    /// `empty_layer` is this (absent counts as false).
    pub empty_layer: Option<bool>,
    /// `created` is present (or absent).
    pub created_set: Option<bool>,
}
