//! Registry authentication: `WWW-Authenticate` challenges, the bearer token flow of the
//! distribution token spec, and the per-client caches (credentials, challenges, tokens).
//!
//! Like containerd, the first request to a registry goes out anonymously; the 401 challenge
//! it gets back tells whether to send basic credentials or fetch a bearer token from the
//! realm, and that choice is remembered per host.

use super::retry::{RetryPolicy, retry_after, retryable_status, retryable_transport};
use crate::credentials::Credential;
use crate::error::{AuthFailure, RegistryError, Target, body_snippet};
use base64::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="...",error="..."`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` to ask the token for.
        service: Option<String>,
        /// The scope the registry says it needs (informational).
        scope: Option<String>,
        /// `invalid_token`, `insufficient_scope`, ... when a sent token was refused.
        error: Option<String>,
    },
}

/// Parses the values of all `WWW-Authenticate` headers of a response. Unknown schemes are
/// skipped; a malformed header yields what could be understood of it.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        for (scheme, params) in split_challenges(value) {
            let get =
                |k: &str| params.iter().find(|(pk, _)| pk.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
            match scheme.to_ascii_lowercase().as_str() {
                "basic" => out.push(Challenge::Basic),
                "bearer" => {
                    if let Some(realm) = get("realm") {
                        out.push(Challenge::Bearer {
                            realm,
                            service: get("service"),
                            scope: get("scope"),
                            error: get("error"),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Splits `Scheme k=v, k="v", Other k=v` into schemes with their parameters (RFC 7235:
/// a bare token starts a new challenge, `token=value` continues the current one).
fn split_challenges(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let bytes = value.as_bytes();
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut i = 0;
    let is_sep = |b: u8| b == b',' || b.is_ascii_whitespace() || b == b'=';
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !is_sep(bytes[i]) {
            i += 1;
        }
        if start == i {
            // A stray '=' (e.g. token68 padding): skip it.
            i += 1;
            continue;
        }
        let token = &value[start..i];
        let mut j = i;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'=' {
            j += 1;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            let (param, next) = read_param_value(value, j);
            i = next;
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_string(), param));
            }
        } else {
            out.push((token.to_string(), Vec::new()));
        }
    }
    out
}

/// Reads a quoted-string (with `\` escapes) or a token starting at byte `at`; returns it and
/// the index after it.
fn read_param_value(value: &str, at: usize) -> (String, usize) {
    let bytes = value.as_bytes();
    if at < bytes.len() && bytes[at] == b'"' {
        let mut out = String::new();
        let mut chars = value[at + 1..].char_indices();
        while let Some((k, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, esc)) = chars.next() {
                        out.push(esc);
                    }
                }
                '"' => return (out, at + 1 + k + 1),
                c => out.push(c),
            }
        }
        (out, bytes.len())
    } else {
        let end = value[at..].find([',', ' ', '\t']).map_or(bytes.len(), |k| at + k);
        (value[at..end].to_string(), end)
    }
}

/// The token-service scopes a request needs: `repository:<name>:<actions>` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    /// No repository access (enough for `GET /v2/`, which checks a login).
    pub fn none() -> Scope {
        Scope(Vec::new())
    }

    /// Read access to `repository`.
    pub fn pull(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull")])
    }

    /// Read and write access to `repository`.
    pub fn push(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }

    /// Adds read access to another repository (the source of a cross-repository mount).
    pub fn and_pull(mut self, repository: &str) -> Scope {
        let entry = format!("repository:{repository}:pull");
        if !self.0.iter().any(|e| e.starts_with(&format!("repository:{repository}:"))) {
            self.0.push(entry);
        }
        self
    }

    /// The scope entries.
    pub fn entries(&self) -> &[String] {
        &self.0
    }

    fn cache_key(&self) -> String {
        let mut v = self.0.clone();
        v.sort();
        v.join(" ")
    }
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

/// Per-client authentication state, shared by all clones of a [`crate::Client`].
#[derive(Default)]
pub(crate) struct AuthCache {
    /// Credentials per registry name; `None` = looked up, none configured.
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// The scheme each host asked for.
    challenges: Mutex<HashMap<String, Challenge>>,
    /// Bearer tokens per (host, scope).
    tokens: Mutex<HashMap<(String, String), Token>>,
    /// One lock per credential or token being fetched, so that concurrent requests wait for
    /// one fetch instead of each running the helper or asking the token service.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl AuthCache {
    pub fn cached_credentials(&self, registry: &str) -> Option<Option<Credential>> {
        lock(&self.credentials).get(registry).cloned()
    }

    pub fn store_credentials(&self, registry: &str, credential: Option<Credential>) {
        lock(&self.credentials).insert(registry.to_string(), credential);
    }

    pub fn challenge(&self, host: &str) -> Option<Challenge> {
        lock(&self.challenges).get(host).cloned()
    }

    pub fn set_challenge(&self, host: &str, challenge: Challenge) {
        lock(&self.challenges).insert(host.to_string(), challenge);
    }

    pub fn token(&self, host: &str, scope: &Scope) -> Option<String> {
        let tokens = lock(&self.tokens);
        let t = tokens.get(&(host.to_string(), scope.cache_key()))?;
        (t.expires > Instant::now()).then(|| t.value.clone())
    }

    pub fn store_token(&self, host: &str, scope: &Scope, value: String, lifetime: Duration) {
        let token = Token { value, expires: Instant::now() + lifetime };
        lock(&self.tokens).insert((host.to_string(), scope.cache_key()), token);
    }

    /// The lock serialising fetches of the credential for `registry`.
    pub fn credential_flight(&self, registry: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.flight(format!("credential {registry}"))
    }

    /// The lock serialising fetches of the token for `host` and `scope`.
    pub fn token_flight(&self, host: &str, scope: &Scope) -> Arc<tokio::sync::Mutex<()>> {
        self.flight(format!("token {host} {}", scope.cache_key()))
    }

    fn flight(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.in_flight).entry(key).or_default().clone()
    }

    pub fn forget_token(&self, host: &str, scope: &Scope) {
        lock(&self.tokens).remove(&(host.to_string(), scope.cache_key()));
    }
}

/// Locks a cache map; a panic while holding one of these locks cannot leave the map
/// half-updated (each critical section is one insert or lookup), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `Authorization` value for basic credentials.
pub(crate) fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// How long a token without `expires_in` is valid (the token spec's default).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

/// Fetches a bearer token for `scope` from the challenge's realm, with credentials when
/// configured (basic auth to the realm, or an OAuth2 refresh-token grant for identity
/// tokens). Returns the token and how long to use it.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    retry: &RetryPolicy,
    realm: &str,
    service: Option<&str>,
    scope: &Scope,
    credential: Option<&Credential>,
    target: &Target,
) -> Result<(String, Duration), RegistryError> {
    let mut url = reqwest::Url::parse(realm)
        .map_err(|e| target.protocol(format!("token realm {realm:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(target.protocol(format!("token realm {realm:?} is not an http(s) URL")));
    }
    let realm_host = format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let request = match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh.clone()),
                    ("client_id", "rbuild".into()),
                    ("scope", scope.entries().join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                let body =
                    form.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect::<Vec<_>>().join("&");
                http.post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    q.clear();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scope.entries() {
                        q.append_pair("scope", s);
                    }
                    if let Some(Credential::Basic { username, .. }) = other {
                        q.append_pair("account", username);
                    }
                }
                let mut rb = http.get(url.clone());
                if let Some(Credential::Basic { username, password }) = other {
                    rb = rb.header(reqwest::header::AUTHORIZATION, basic_header(username, password));
                }
                rb
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if retryable_transport(&e) && retry.allows_another(attempts) => {
                tokio::time::sleep(retry.delay(attempts, None)).await;
                continue;
            }
            Err(e) => {
                return Err(RegistryError::Network { host: realm_host, attempts, source: e.without_url() });
            }
        };
        let status = response.status().as_u16();
        if retryable_status(status) && retry.allows_another(attempts) {
            let wait = retry.delay(attempts, retry_after(response.headers()));
            tokio::time::sleep(wait).await;
            continue;
        }
        if status == 401 || status == 403 {
            let reason = match (credential, status) {
                (None, _) => AuthFailure::NoCredentials,
                (Some(_), 401) => AuthFailure::CredentialsRejected,
                (Some(_), _) => AuthFailure::Denied,
            };
            return Err(target.unauthorized(status, reason));
        }
        let body = response.bytes().await.map_err(|e| RegistryError::Network {
            host: realm_host.clone(),
            attempts,
            source: e.without_url(),
        })?;
        if !(200..300).contains(&status) {
            return Err(target.http("token request to", status, attempts, body_snippet(&body)));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| target.protocol(format!("token service answered malformed JSON: {e}")))?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| target.protocol("token service answered without a token"))?;
        let lifetime = parsed.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME).max(1);
        // Stop using a token a little before it expires, so a request in flight does not
        // arrive with a dead one.
        let margin = (lifetime / 10).min(10);
        return Ok((token, Duration::from_secs(lifetime - margin)));
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>, error: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn challenge_table() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (r#"Basic realm="rbuild-lab""#, vec![Challenge::Basic]),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:samalba/my-app:pull,push"),
                    None,
                )],
            ),
            (
                r#"bearer REALM="https://a/t", service=reg , error="insufficient_scope""#,
                vec![bearer("https://a/t", Some("reg"), None, Some("insufficient_scope"))],
            ),
            (
                r#"Basic realm="x", Bearer realm="https://t/\"q\"",service="s""#,
                vec![Challenge::Basic, bearer("https://t/\"q\"", Some("s"), None, None)],
            ),
            (r#"Negotiate abc==, Basic realm="r""#, vec![Challenge::Basic]),
            (r#"Bearer service="no realm""#, vec![]),
            ("", vec![]),
            (r#"Bearer realm="unterminated"#, vec![bearer("unterminated", None, None, None)]),
        ];
        for (header, want) in cases {
            assert_eq!(parse_challenges([header]), want, "{header}");
        }
    }

    #[test]
    fn scope_entries_and_key() {
        let s = Scope::push("lab/app").and_pull("lab/base").and_pull("lab/app");
        assert_eq!(s.entries(), ["repository:lab/app:pull,push", "repository:lab/base:pull"]);
        let t = Scope::pull("lab/base");
        assert_ne!(s.cache_key(), t.cache_key());
    }

    #[test]
    fn token_cache_expires() {
        let cache = AuthCache::default();
        let scope = Scope::pull("a");
        cache.store_token("h", &scope, "t1".into(), Duration::from_secs(30));
        assert_eq!(cache.token("h", &scope).as_deref(), Some("t1"));
        assert_eq!(cache.token("h", &Scope::push("a")), None);
        cache.store_token("h", &scope, "t2".into(), Duration::ZERO);
        assert_eq!(cache.token("h", &scope), None);
    }

    #[test]
    fn basic_header_encodes() {
        assert_eq!(basic_header("tester", "secret"), "Basic dGVzdGVyOnNlY3JldA==");
    }
}
