//! Build contexts other than a plain directory, made into one: a context tar from stdin is
//! detected (as `docker build -` does, by content) and extracted safely; a git repository is
//! shallow-cloned at a ref. Both go into a directory the caller owns (and removes), which is
//! then built like any directory context. Also the named contexts of a [`crate::BuildRequest`].
//!
//! Blocking: these functions do file and process I/O on the calling thread; call them before
//! the build starts (or from `spawn_blocking`).

use registry::Reference;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// A `--build-context NAME=VALUE` value, resolved by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A client directory; its files are checksummed for cache keys like the main context's.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Its `.dockerignore` patterns.
        dockerignore: Vec<String>,
    },
    /// `docker-image://REF`: a registry (or local store) image.
    Image(Reference),
    /// A git repository, fetched by the build at the ref's current commit.
    Git(GitContext),
}

/// A git repository as a context: `URL#ref:subdir`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitContext {
    /// What git fetches from (no fragment).
    pub remote: String,
    /// Branch, tag or commit (`None`: the default branch).
    pub reference: Option<String>,
    /// Subdirectory of the repository to use as the context.
    pub subdir: Option<String>,
}

/// Why a context could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Reading the input or writing the directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path (or `-` for stdin).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A tar entry would land outside the context directory.
    #[error("context tar: refusing entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as stored.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `git` program failed or could not be run.
    #[error("git {command} failed for {remote}: {stderr}")]
    Git {
        /// The remote (password masked).
        remote: String,
        /// The git subcommand.
        command: String,
        /// The end of git's stderr.
        stderr: String,
    },
    /// The subdirectory of a git context is missing or leaves the repository.
    #[error("{remote}: subdirectory {subdir:?} {reason}")]
    Subdir {
        /// The remote (password masked).
        remote: String,
        /// The subdirectory.
        subdir: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ContextError {
    let path = path.into();
    move |source| ContextError::Io { path, source }
}

/// What stdin (the context `-`) holds.
pub enum StdinContext {
    /// A Dockerfile; the context is empty.
    Dockerfile(String),
    /// A (possibly compressed) tar of the context; it was extracted.
    Extracted,
}

/// Whether `head` (the input's first bytes; 1024 are enough) starts an archive: a gzip, bzip2,
/// xz or zstd stream, or a tar header with a valid checksum — docker's `IsArchive`.
pub fn is_archive(head: &[u8]) -> bool {
    match head {
        [0x1f, 0x8b, ..] | [0x28, 0xb5, 0x2f, 0xfd, ..] | [b'B', b'Z', b'h', ..] => true,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => true,
        _ => head.len() >= 512 && tar_checksum_ok(&head[..512]),
    }
}

/// A tar header block whose stored checksum matches its bytes (not an all-zero block).
fn tar_checksum_ok(block: &[u8]) -> bool {
    if block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    let text = text.trim();
    let Ok(stored) = u64::from_str_radix(text, 8) else { return false };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(*b) })
        .sum();
    stored == sum
}

/// Reads the context `-` from `input`: a tar (extracted into `dest`) or a Dockerfile.
pub fn read_stdin_context(
    input: impl Read + Send + 'static,
    dest: &Path,
) -> Result<StdinContext, ContextError> {
    let mut buffered = BufReader::with_capacity(1 << 16, input);
    let mut head = Vec::new();
    // Peek up to 1024 bytes (a pipe may deliver them in pieces).
    loop {
        let chunk = buffered.fill_buf().map_err(io_err("-"))?;
        if chunk.is_empty() || head.len() >= 1024 {
            break;
        }
        let take = chunk.len().min(1024 - head.len());
        head.extend_from_slice(&chunk[..take]);
        buffered.consume(take);
    }
    let whole = std::io::Cursor::new(head.clone()).chain(buffered);
    if is_archive(&head) {
        extract_tar(whole, dest)?;
        return Ok(StdinContext::Extracted);
    }
    let mut text = String::new();
    let mut whole = whole;
    whole.read_to_string(&mut text).map_err(io_err("-"))?;
    Ok(StdinContext::Dockerfile(text))
}

/// The decompressed stream, by its first bytes (gzip, bzip2, xz, zstd or none).
fn decompressed(input: impl Read + Send + 'static) -> Result<Box<dyn Read + Send>, ContextError> {
    let mut buffered = BufReader::with_capacity(1 << 16, input);
    let head = buffered.fill_buf().map_err(io_err("-"))?.to_vec();
    Ok(match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_err("-"))?)
        }
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(buffered))
        }
        _ => Box::new(buffered),
    })
}

/// Extracts a (possibly compressed) context tar into `dest`, refusing entries with `..`
/// components or absolute paths, and entries whose parent inside `dest` is a symbolic link
/// (so a link in the archive cannot redirect later entries out of `dest`). Hard links must
/// point inside the archive. Owners are not applied; modes and times are.
pub fn extract_tar(input: impl Read + Send + 'static, dest: &Path) -> Result<(), ContextError> {
    let mut archive = tar::Archive::new(decompressed(input)?);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(io_err("-"))?;
    for entry in entries {
        let mut entry = entry.map_err(io_err("-"))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let rel = safe_relative(&name)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if let Some(link) = entry.link_name_bytes()
            && entry.header().entry_type().is_hard_link()
        {
            safe_relative(&String::from_utf8_lossy(&link))?;
        }
        let mut parent = dest.to_path_buf();
        for component in rel.parent().into_iter().flat_map(Path::components) {
            parent.push(component);
            if std::fs::symlink_metadata(&parent).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(ContextError::UnsafeEntry { entry: name, reason: "a parent is a symbolic link" });
            }
        }
        entry.unpack_in(dest).map_err(io_err(dest.join(&rel)))?;
    }
    Ok(())
}

/// `name` as a path below the extraction root: `./` prefixes dropped; `..` and absolute
/// paths refused.
fn safe_relative(name: &str) -> Result<PathBuf, ContextError> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ContextError::UnsafeEntry {
                    entry: name.to_string(),
                    reason: "it contains '..'",
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ContextError::UnsafeEntry {
                    entry: name.to_string(),
                    reason: "it is an absolute path",
                });
            }
        }
    }
    Ok(out)
}

/// Runs one git command (no terminal prompts, no system configuration, local submodules
/// refused) and returns its stdout.
fn git(remote: &str, cwd: Option<&Path>, args: &[&str]) -> Result<String, ContextError> {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-c")
        .arg("protocol.file.allow=user")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let command = args.iter().find(|a| !a.starts_with('-')).copied().unwrap_or("").to_string();
    let output = cmd.output().map_err(|e| ContextError::Git {
        remote: solver::redact_git_remote(remote),
        command: command.clone(),
        stderr: format!("cannot run git (is it installed?): {e}"),
    })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    Err(ContextError::Git {
        remote: solver::redact_git_remote(remote),
        command,
        stderr: if tail.is_empty() { output.status.to_string() } else { tail },
    })
}

/// Checks `git.reference` (the default branch when `None`) of `git.remote` out into `dest`
/// (an empty directory) without the `.git` directory, submodules included, and returns the
/// context directory: `dest` or its `subdir`, which must be a directory inside the checkout.
/// The fetch is shallow where the remote allows it (a commit hash falls back to a full fetch).
pub fn clone_git(ctx: &GitContext, dest: &Path) -> Result<PathBuf, ContextError> {
    let remote = ctx.remote.as_str();
    let dir = dest.to_string_lossy().into_owned();
    git(remote, None, &["init", "-q", &dir])?;
    let wanted = ctx.reference.as_deref().unwrap_or("HEAD");
    let shallow = git(remote, Some(dest), &["fetch", "-q", "--depth=1", "--no-tags", remote, wanted]);
    if shallow.is_ok() {
        git(remote, Some(dest), &["checkout", "-q", "--detach", "FETCH_HEAD"])?;
    } else {
        // A commit hash (or a server without shallow support): fetch everything, then check
        // the ref out by name.
        git(remote, Some(dest), &["fetch", "-q", "--tags", remote, "+refs/heads/*:refs/remotes/origin/*"])?;
        let candidates = [wanted.to_string(), format!("origin/{wanted}")];
        let found = candidates.iter().find(|c| {
            git(remote, Some(dest), &["rev-parse", "-q", "--verify", &format!("{c}^{{commit}}")]).is_ok()
        });
        let Some(found) = found else {
            return Err(shallow.err().unwrap_or_else(|| ContextError::Git {
                remote: solver::redact_git_remote(remote),
                command: "fetch".into(),
                stderr: format!("ref {wanted} not found"),
            }));
        };
        git(remote, Some(dest), &["checkout", "-q", "--detach", found])?;
    }
    if dest.join(".gitmodules").exists() {
        git(remote, Some(dest), &["submodule", "update", "-q", "--init", "--recursive", "--depth=1"])?;
    }
    std::fs::remove_dir_all(dest.join(".git")).map_err(io_err(dest.join(".git")))?;
    let Some(subdir) = ctx.subdir.as_deref().filter(|s| !s.is_empty() && *s != "/" && *s != ".") else {
        return Ok(dest.to_path_buf());
    };
    let subdir_err = |reason| ContextError::Subdir {
        remote: solver::redact_git_remote(remote),
        subdir: subdir.to_string(),
        reason,
    };
    let rel =
        safe_relative(subdir.trim_start_matches('/')).map_err(|_| subdir_err("leaves the repository"))?;
    let path = dest.join(rel);
    let real = path.canonicalize().map_err(|_| subdir_err("does not exist in the repository"))?;
    let root = dest.canonicalize().map_err(io_err(dest))?;
    if !real.starts_with(&root) {
        return Err(subdir_err("leaves the repository"));
    }
    if !real.is_dir() {
        return Err(subdir_err("is not a directory"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry: name, type, data, link target.
    type TarEntry<'a> = (&'a str, tar::EntryType, &'a [u8], Option<&'a str>);

    fn tar_of(entries: &[TarEntry]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            // Write the raw name: `append_data` itself refuses `..`.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if let Some(l) = link {
                header.set_link_name(l).unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn archives_are_detected_by_content() {
        let tar = tar_of(&[("Dockerfile", tar::EntryType::Regular, b"FROM scratch\n", None)]);
        assert!(is_archive(&tar[..1024]));
        assert!(is_archive(&[0x1f, 0x8b, 8, 0]));
        assert!(is_archive(b"BZh91AY"));
        assert!(!is_archive(b"FROM scratch\nCOPY . /\n"));
        assert!(!is_archive(&[0u8; 1024]), "zero blocks are the end of an archive, not one");
        let mut text = b"# a Dockerfile longer than a block\n".repeat(40);
        text.truncate(1024);
        assert!(!is_archive(&text));
    }

    #[test]
    fn extraction_refuses_escapes() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let cases: Vec<(Vec<TarEntry>, bool)> = vec![
            (vec![("a/b.txt", Regular, b"x", None), ("./c", Regular, b"y", None)], true),
            (vec![("../evil", Regular, b"x", None)], false),
            (vec![("a/../../evil", Regular, b"x", None)], false),
            (vec![("/etc/evil", Regular, b"x", None)], false),
            (vec![("link", Symlink, b"", Some("/tmp")), ("link/evil", Regular, b"x", None)], false),
            (vec![("d", Directory, b"", None), ("hard", Link, b"", Some("../outside"))], false),
            // A symlink pointing outside is data; only writing through it is refused.
            (vec![("link", Symlink, b"", Some("/etc/passwd"))], true),
        ];
        for (entries, ok) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("ctx");
            std::fs::create_dir(&dest).unwrap();
            let result = extract_tar(std::io::Cursor::new(tar_of(&entries)), &dest);
            assert_eq!(result.is_ok(), ok, "{entries:?}: {result:?}");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn stdin_is_a_dockerfile_or_a_tar() {
        let dir = tempfile::tempdir().unwrap();
        match read_stdin_context(std::io::Cursor::new(b"FROM scratch\n".to_vec()), dir.path()).unwrap() {
            StdinContext::Dockerfile(text) => assert_eq!(text, "FROM scratch\n"),
            StdinContext::Extracted => panic!("a Dockerfile is not a tar"),
        }
        let tar = tar_of(&[("Dockerfile", tar::EntryType::Regular, b"FROM scratch\n", None)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(matches!(
            read_stdin_context(std::io::Cursor::new(gz), dir.path()).unwrap(),
            StdinContext::Extracted
        ));
        assert_eq!(std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(), "FROM scratch\n");
    }
}
