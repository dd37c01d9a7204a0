//! Build secrets (`RUN --mount=type=secret`): where their values come from, and the
//! memory-backed files they are mounted from while one step runs.
//!
//! A secret's value never enters the IR, a cache key, a layer, the image config or a log
//! line written by rbuild: the op names the secret by id only, the file lives in a private
//! tmpfs directory outside the store for the duration of the step, and the mount point is a
//! stub the executor removes afterwards.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest secret accepted (BuildKit's limit).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Where a secret's value comes from (`--secret id=X,src=FILE` / `env=VAR`). Read when a
/// step mounts it, like BuildKit's session does.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// The content of this file.
    File(PathBuf),
    /// The value of this environment variable of the building process.
    Env(String),
    /// These bytes.
    Bytes(Vec<u8>),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => f.debug_tuple("File").field(p).finish(),
            SecretSource::Env(v) => f.debug_tuple("Env").field(v).finish(),
            SecretSource::Bytes(b) => write!(f, "Bytes(<{} bytes redacted>)", b.len()),
        }
    }
}

/// Why a secret's value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The build was not given this secret, or its environment variable is unset.
    #[error("secret {id} not found{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    NotFound {
        /// The secret id.
        id: String,
        /// More about why, when there is more to say.
        detail: Option<String>,
    },
    /// Reading its file failed.
    #[error("secret {id}: reading {path}: {source}")]
    Read {
        /// The secret id.
        id: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// It is larger than [`MAX_SECRET_SIZE`].
    #[error("secret {id} too big. max size 500KB")]
    TooBig {
        /// The secret id.
        id: String,
    },
    /// The memory-backed file for it could not be written.
    #[error("secret {id}: preparing its file in {path}: {source}")]
    Materialize {
        /// The secret id.
        id: String,
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No memory-backed directory to hold secret files on this host.
    #[error("secret {id}: no tmpfs to hold it (tried {tried})")]
    NoTmpfs {
        /// The secret id.
        id: String,
        /// The directories tried.
        tried: String,
    },
}

impl SecretSource {
    /// The value, or [`SecretError::NotFound`] for an unset environment variable.
    pub fn read(&self, id: &str) -> Result<Vec<u8>, SecretError> {
        let data = match self {
            SecretSource::Bytes(b) => b.clone(),
            SecretSource::Env(name) => match std::env::var_os(name) {
                Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
                None => {
                    return Err(SecretError::NotFound {
                        id: id.into(),
                        detail: Some(format!("environment variable {name} is not set")),
                    });
                }
            },
            SecretSource::File(path) => {
                let meta = fs::metadata(path).map_err(|source| SecretError::Read {
                    id: id.into(),
                    path: path.clone(),
                    source,
                })?;
                if meta.len() > MAX_SECRET_SIZE {
                    return Err(SecretError::TooBig { id: id.into() });
                }
                fs::read(path).map_err(|source| SecretError::Read {
                    id: id.into(),
                    path: path.clone(),
                    source,
                })?
            }
        };
        if data.len() as u64 > MAX_SECRET_SIZE {
            return Err(SecretError::TooBig { id: id.into() });
        }
        Ok(data)
    }
}

/// `statfs` magic numbers of memory-backed file systems.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Directories that are usually tmpfs, best first.
const MEMORY_DIRS: [&str; 2] = ["/dev/shm", "/run"];

fn is_memory_backed(dir: &Path) -> bool {
    rustix::fs::statfs(dir).is_ok_and(|s| {
        // `f_type`'s integer type differs between architectures.
        #[allow(clippy::unnecessary_cast)]
        let kind = s.f_type as i64;
        kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
    })
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// The secret files of one step, in a private (0700, root-owned) directory on a tmpfs;
/// removed on drop.
#[derive(Debug, Default)]
pub(crate) struct SecretFiles {
    dir: Option<PathBuf>,
    count: usize,
}

impl SecretFiles {
    fn dir(&mut self, id: &str) -> Result<PathBuf, SecretError> {
        if let Some(d) = &self.dir {
            return Ok(d.clone());
        }
        let base = MEMORY_DIRS
            .iter()
            .map(Path::new)
            .find(|d| is_memory_backed(d))
            .ok_or_else(|| SecretError::NoTmpfs { id: id.into(), tried: MEMORY_DIRS.join(", ") })?;
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("rbuild-secrets-{}-{n}", std::process::id()));
        fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|source| SecretError::Materialize {
            id: id.into(),
            path: dir.clone(),
            source,
        })?;
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    /// Writes one secret to a new file with the mount's mode and owner; returns its path.
    pub(crate) fn add(
        &mut self,
        id: &str,
        data: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<PathBuf, SecretError> {
        let dir = self.dir(id)?;
        self.count += 1;
        let path = dir.join(self.count.to_string());
        let err = |source| SecretError::Materialize { id: id.into(), path: path.clone(), source };
        // Created owner-only, so the value is never readable by others on the host.
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(err)?;
        file.write_all(data).map_err(err)?;
        drop(file);
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(err)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(err)?;
        Ok(path)
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sources_read_and_redact() {
        let file = tempfile::NamedTempFile::new().unwrap();
        fs::write(file.path(), b"from file").unwrap();
        let cases: Vec<(SecretSource, Result<&[u8], &str>)> = vec![
            (SecretSource::Bytes(b"raw".to_vec()), Ok(b"raw")),
            (SecretSource::File(file.path().into()), Ok(b"from file")),
            (
                SecretSource::Env("RBUILD_TEST_SURELY_UNSET_VAR".into()),
                Err("secret s not found: environment variable RBUILD_TEST_SURELY_UNSET_VAR is not set"),
            ),
            (
                SecretSource::Bytes(vec![0; MAX_SECRET_SIZE as usize + 1]),
                Err("secret s too big. max size 500KB"),
            ),
        ];
        for (source, want) in cases {
            let got = source.read("s").map_err(|e| e.to_string());
            assert_eq!(got, want.map(<[u8]>::to_vec).map_err(String::from));
        }
        assert_eq!(format!("{:?}", SecretSource::Bytes(b"hunter2".to_vec())), "Bytes(<7 bytes redacted>)");
    }

    #[test]
    fn files_live_in_memory_and_go_away() {
        let mut files = SecretFiles::default();
        let path = match files.add("s", b"value", 0o440, 1000, 1001) {
            Ok(p) => p,
            Err(SecretError::NoTmpfs { .. }) => {
                eprintln!("skipped: no tmpfs on this host");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let dir = path.parent().unwrap().to_path_buf();
        assert!(is_memory_backed(&dir));
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o440, 1000, 1001));
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::read(&path).unwrap(), b"value");
        drop(files);
        assert!(!dir.exists());
    }
}
