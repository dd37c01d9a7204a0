//! Registry credentials from Docker's `config.json`: `auths` entries (base64 `auth` or
//! `username`/`password`, `identitytoken`), `credsStore` and `credHelpers` executables
//! (`docker-credential-<name>`), read through the `docker_credential` crate.
//!
//! Docker Hub is special: its entries live under the key `https://index.docker.io/v1/`,
//! whatever spelling of the registry the image reference used.

use crate::DOCKER_HUB;
use docker_credential::{CredentialRetrievalError, DockerCredential};
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The `config.json` key of Docker Hub.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// A secret for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and a password (or an access token used as password).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`), exchanged at the token
    /// service for access tokens.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Why credentials could not be read. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `config.json` exists but cannot be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A credential helper could not be run or failed.
    #[error("credential helper {helper} failed for {server}: {reason}")]
    Helper {
        /// The helper's name (`docker-credential-<name>`).
        helper: String,
        /// The config key asked for.
        server: String,
        /// Its message.
        reason: String,
    },
}

/// Docker's default configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn default_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".docker"))
}

/// The key under which `config.json` stores credentials for `registry` (`host[:port]` as
/// in [`crate::Reference::registry`]).
pub fn config_key(registry: &str) -> String {
    match registry {
        DOCKER_HUB | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_CONFIG_KEY.to_string(),
        other => other.to_string(),
    }
}

/// Looks up the credentials for `registry` in `<config_dir>/config.json`.
///
/// Returns `Ok(None)` when there is no config file, no entry for the registry, or the
/// credential helper says it has none. This may run a credential helper process, so it
/// blocks: call it from `spawn_blocking` in async code.
pub fn lookup(config_dir: &Path, registry: &str) -> Result<Option<Credential>, CredentialError> {
    let path = config_dir.join("config.json");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CredentialError::Config { path, reason: e.to_string() }),
    };
    let server = config_key(registry);
    match docker_credential::get_credential_from_reader(BufReader::new(file), &server) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credential::Basic { username, password }))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(Credential::IdentityToken(token))),
        Err(e) => map_error(e, path, server, config_dir),
    }
}

fn map_error(
    error: CredentialRetrievalError,
    path: PathBuf,
    server: String,
    config_dir: &Path,
) -> Result<Option<Credential>, CredentialError> {
    use CredentialRetrievalError as E;
    let config =
        |reason: &str| Err(CredentialError::Config { path: path.clone(), reason: reason.to_string() });
    match error {
        E::NoCredentialConfigured | E::ConfigNotFound => Ok(None),
        E::ConfigReadError => config("malformed JSON"),
        E::CredentialDecodingError => config("the auth field is not base64 of user:password"),
        E::CredentialMismatchError => config("the auth field disagrees with username/password"),
        E::HelperFailure { helper, stdout, stderr } => {
            // Helpers report a missing entry as a failure with this message (docker treats it
            // as "not logged in").
            if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
                return Ok(None);
            }
            let first_line =
                |s: &str| s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            let reason = [first_line(&stderr), first_line(&stdout)]
                .into_iter()
                .find(|l| !l.is_empty())
                .map(|l| l.chars().take(200).collect())
                .unwrap_or_else(|| "exited with an error".to_string());
            Err(CredentialError::Helper { helper, server, reason })
        }
        E::HelperCommunicationError | E::MalformedHelperResponse => {
            let helper = helper_name(config_dir, &server).unwrap_or_else(|| "docker-credential-*".into());
            let reason = if matches!(error, E::HelperCommunicationError) {
                "cannot run it (is it installed and on PATH?)"
            } else {
                "its answer is not valid JSON"
            };
            Err(CredentialError::Helper { helper, server, reason: reason.to_string() })
        }
    }
}

/// The helper `config.json` names for `server`, for error messages.
fn helper_name(config_dir: &Path, server: &str) -> Option<String> {
    let text = std::fs::read(config_dir.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let name = json
        .get("credHelpers")
        .and_then(|h| h.get(server))
        .or_else(|| json.get("credsStore"))
        .and_then(|v| v.as_str())?;
    Some(format!("docker-credential-{name}"))
}

/// Saves credentials for `registry` as `docker login` does: through the credential helper
/// that `config.json` names for it (`credHelpers`, else `credsStore`), otherwise as a base64
/// `auth` entry in `<config_dir>/config.json`. Other content of the file is kept; the file
/// is replaced atomically and readable by its owner only. Blocks (may run a helper).
pub fn store(
    config_dir: &Path,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<(), CredentialError> {
    use base64::Engine;
    let server = config_key(registry);
    let mut config = read_json(config_dir)?;
    if let Some(helper) = configured_helper(&config, &server) {
        let request = serde_json::json!({"ServerURL": server, "Username": username, "Secret": password});
        run_helper(&helper, "store", &request.to_string(), &server)?;
        // docker keeps an empty entry so that `docker info`-like listings show the login.
        auths_mut(&mut config, config_dir)?.insert(server, serde_json::json!({}));
    } else {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        auths_mut(&mut config, config_dir)?.insert(server, serde_json::json!({ "auth": auth }));
    }
    write_json(config_dir, &config)
}

/// Removes the credentials for `registry` (from its credential helper and from
/// `config.json`). Returns whether anything was configured. Blocks (may run a helper).
pub fn erase(config_dir: &Path, registry: &str) -> Result<bool, CredentialError> {
    let server = config_key(registry);
    let mut config = read_json(config_dir)?;
    let mut found = false;
    if let Some(helper) = configured_helper(&config, &server) {
        match run_helper(&helper, "erase", &server, &server) {
            Ok(()) => found = true,
            Err(CredentialError::Helper { reason, .. }) if reason.contains("credentials not found") => {}
            Err(e) => return Err(e),
        }
    }
    if auths_mut(&mut config, config_dir)?.remove(&server).is_some() {
        found = true;
        write_json(config_dir, &config)?;
    }
    Ok(found)
}

fn configured_helper(config: &serde_json::Value, server: &str) -> Option<String> {
    let named = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_string)
    };
    named(config.get("credHelpers").and_then(|h| h.get(server))).or_else(|| named(config.get("credsStore")))
}

fn read_json(config_dir: &Path) -> Result<serde_json::Value, CredentialError> {
    let path = config_dir.join("config.json");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| CredentialError::Config { path, reason: format!("malformed JSON: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(CredentialError::Config { path, reason: e.to_string() }),
    }
}

fn auths_mut<'a>(
    config: &'a mut serde_json::Value,
    config_dir: &Path,
) -> Result<&'a mut serde_json::Map<String, serde_json::Value>, CredentialError> {
    let bad = || CredentialError::Config {
        path: config_dir.join("config.json"),
        reason: "\"auths\" is not an object".to_string(),
    };
    let root = config.as_object_mut().ok_or_else(bad)?;
    root.entry("auths").or_insert_with(|| serde_json::json!({})).as_object_mut().ok_or_else(bad)
}

fn write_json(config_dir: &Path, config: &serde_json::Value) -> Result<(), CredentialError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = config_dir.join("config.json");
    let fail = |e: std::io::Error| CredentialError::Config { path: path.clone(), reason: e.to_string() };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(config_dir).map_err(fail)?;
    let tmp = config_dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let mut text = serde_json::to_vec_pretty(config).map_err(|e| fail(std::io::Error::other(e)))?;
    text.push(b'\n');
    let written = (|| {
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(fail)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &str, server: &str) -> Result<(), CredentialError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let name = format!("docker-credential-{helper}");
    let fail =
        |reason: String| CredentialError::Helper { helper: name.clone(), server: server.to_string(), reason };
    let mut child = Command::new(&name)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|e| fail(format!("cannot talk to it: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(format!("cannot talk to it: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(if out.stderr.is_empty() { &out.stdout } else { &out.stderr }).into_owned();
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("exited with an error").trim();
    Err(fail(line.chars().take(200).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn write_config(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    fn basic(u: &str, p: &str) -> Option<Credential> {
        Some(Credential::Basic { username: u.into(), password: p.into() })
    }

    #[test]
    fn lookup_table() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
        let config = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{b64}"}},
                "https://index.docker.io/v1/": {{"username": "hub", "password": "hubpw"}},
                "https://quay.example/v1/": {{"username": "q", "password": "qpw"}},
                "tok.example": {{"identitytoken": "refresh-me"}}
            }}}}"#
        );
        let dir = write_config(&config);
        let cases: &[(&str, Option<Credential>)] = &[
            ("127.0.0.1:5000", basic("alice", "s3cret:with:colons")),
            ("docker.io", basic("hub", "hubpw")),
            ("registry-1.docker.io", basic("hub", "hubpw")),
            ("quay.example", basic("q", "qpw")),
            ("tok.example", Some(Credential::IdentityToken("refresh-me".into()))),
            ("127.0.0.1:5001", None),
        ];
        for (registry, want) in cases {
            assert_eq!(&lookup(dir.path(), registry).unwrap(), want, "{registry}");
        }
    }

    #[test]
    fn missing_file_means_anonymous_and_bad_json_is_an_error() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(lookup(empty.path(), "x.example").unwrap(), None);
        let bad = write_config("{not json");
        let err = lookup(bad.path(), "x.example").unwrap_err();
        assert!(matches!(err, CredentialError::Config { .. }), "{err}");
    }

    #[test]
    fn missing_helper_is_named_in_the_error() {
        let dir = write_config(r#"{"credHelpers": {"h.example": "rbuild-no-such-helper"}}"#);
        let err = lookup(dir.path(), "h.example").unwrap_err().to_string();
        assert!(err.contains("docker-credential-rbuild-no-such-helper"), "{err}");
        // Registries without a helper entry are unaffected.
        assert_eq!(lookup(dir.path(), "other.example").unwrap(), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let shown =
            format!("{:?} {:?}", basic("u", "pw-123").unwrap(), Credential::IdentityToken("tok-456".into()));
        assert!(!shown.contains("pw-123") && !shown.contains("tok-456"), "{shown}");
    }

    #[test]
    fn store_then_lookup_then_erase_keeps_other_settings() {
        let dir = write_config(r#"{"auths": {"other.example": {"auth": "eDp5"}}, "psFormat": "table"}"#);
        store(dir.path(), "127.0.0.1:5000", "alice", "pw").unwrap();
        store(dir.path(), "docker.io", "hub", "hubpw").unwrap();
        assert_eq!(lookup(dir.path(), "127.0.0.1:5000").unwrap(), basic("alice", "pw"));
        assert_eq!(lookup(dir.path(), "docker.io").unwrap(), basic("hub", "hubpw"));
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(
            text.contains("psFormat")
                && text.contains("other.example")
                && text.contains(DOCKER_HUB_CONFIG_KEY)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("config.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        assert!(erase(dir.path(), "127.0.0.1:5000").unwrap());
        assert!(!erase(dir.path(), "127.0.0.1:5000").unwrap());
        assert_eq!(lookup(dir.path(), "127.0.0.1:5000").unwrap(), None);
        assert_eq!(lookup(dir.path(), "other.example").unwrap(), basic("x", "y"));
    }

    #[test]
    fn store_creates_the_directory() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new/.docker");
        store(&dir, "r.example", "u", "p").unwrap();
        assert_eq!(lookup(&dir, "r.example").unwrap(), basic("u", "p"));
    }

    #[test]
    fn docker_hub_key() {
        for hub in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(config_key(hub), DOCKER_HUB_CONFIG_KEY);
        }
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
