//! Sending one registry request: choosing http or https, per-registry CA certificates, the
//! per-registry concurrency limit, authentication (with re-auth on 401) and retries.

use super::ClientConfig;
use super::auth::{AuthCache, Challenge, Scope, basic_header, fetch_token, parse_challenges};
use super::retry::{RetryPolicy, retry_after, retryable_status, retryable_transport};
use crate::credentials::{self, Credential};
use crate::error::{AuthFailure, RegistryError, Target, body_snippet};
use crate::reference::host_is_loopback;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, Response, Url};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncSeekExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One server that speaks the distribution API for a registry: the registry itself or one of
/// its mirrors.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    /// The registry name used for credentials and messages (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// `host[:port]` contacted (`registry-1.docker.io` for Docker Hub).
    pub host: String,
    /// `http://host/` or `https://host/`.
    pub base: Url,
}

impl Endpoint {
    /// The endpoint of `registry` itself.
    pub fn for_registry(config: &ClientConfig, registry: &str) -> Result<Endpoint, RegistryError> {
        let host = match registry {
            crate::DOCKER_HUB | "index.docker.io" => "registry-1.docker.io",
            other => other,
        };
        Endpoint::new(config, registry, host, None)
    }

    /// A mirror given as `host[:port]` or `http(s)://host[:port]`.
    pub fn for_mirror(config: &ClientConfig, mirror: &str) -> Result<Endpoint, RegistryError> {
        let (scheme, host) = if let Some(h) = mirror.strip_prefix("http://") {
            (Some("http"), h)
        } else if let Some(h) = mirror.strip_prefix("https://") {
            (Some("https"), h)
        } else {
            (None, mirror)
        };
        let host = host.trim_end_matches('/');
        Endpoint::new(config, host, host, scheme)
    }

    fn new(
        config: &ClientConfig,
        registry: &str,
        host: &str,
        scheme: Option<&str>,
    ) -> Result<Endpoint, RegistryError> {
        let plain = host_is_loopback(host)
            || config.insecure_registries.iter().any(|i| {
                let i = i.trim_start_matches("http://").trim_end_matches('/');
                i == host || i == registry
            });
        let scheme = scheme.unwrap_or(if plain { "http" } else { "https" });
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| RegistryError::Config { reason: format!("registry address {host:?}: {e}") })?;
        if base.path() != "/" || base.query().is_some() {
            return Err(RegistryError::Config { reason: format!("registry address {host:?} has a path") });
        }
        Ok(Endpoint { registry: registry.to_string(), host: host.to_string(), base })
    }

    /// `<base>/v2/<path>`.
    pub fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(&format!("v2/{path}"))
            .map_err(|e| RegistryError::Config { reason: format!("url for {path:?} on {}: {e}", self.host) })
    }
}

/// The body of a request, re-creatable for every attempt.
pub(crate) enum CallBody {
    /// No body.
    Empty,
    /// Bytes in memory.
    Bytes(Bytes),
    /// `len` bytes of the file at `path` from `offset`, streamed; `sent` counts bytes read.
    File { path: PathBuf, offset: u64, len: u64, sent: Arc<AtomicU64> },
}

/// A request to make.
pub(crate) struct Call {
    pub method: Method,
    pub url: Url,
    pub scope: Scope,
    pub headers: HeaderMap,
    pub body: CallBody,
    /// Whether the request may be sent again after a transport error or 5xx.
    pub idempotent: bool,
    pub target: Target,
}

impl Call {
    pub fn new(method: Method, url: Url, scope: Scope, target: Target) -> Call {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
        Call { method, url, scope, headers: HeaderMap::new(), body: CallBody::Empty, idempotent, target }
    }
}

/// A response, holding its registry's concurrency permit until it is dropped (so a streamed
/// body counts against the limit while it is read). Drop it before sending the next request
/// of the same operation: holding one while waiting for another permit can deadlock.
pub(crate) struct Sent {
    pub response: Response,
    pub attempts: u32,
    _permit: OwnedSemaphorePermit,
}

impl Sent {
    /// An error for an unexpected status, with the start of the body.
    pub async fn unexpected(self, target: &Target, method: &Method) -> RegistryError {
        let status = self.response.status().as_u16();
        if status == 404 {
            return target.not_found();
        }
        let attempts = self.attempts;
        let body = read_limited(self.response, 4096).await.unwrap_or_default();
        target.http(method.as_str(), status, attempts, body_snippet(&body))
    }
}

/// Reads at most `limit` bytes of a body (error bodies can be large HTML pages).
pub(crate) async fn read_limited(response: Response, limit: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// HTTP clients, limits and auth state shared by all clones of a client.
pub(crate) struct Transport {
    pub config: ClientConfig,
    pub retry: RetryPolicy,
    /// The client for plain-HTTP servers: no root certificates loaded (reading the system's
    /// roots costs a few milliseconds of start-up, and plain HTTP needs none). It does not
    /// follow redirects to HTTPS; [`Transport::execute`] sends those through a TLS client.
    plain_http: reqwest::Client,
    /// HTTPS clients by `host[:port]`: the system roots plus that host's `certs.d` CA. Made
    /// on first use.
    http_by_host: Mutex<HashMap<String, reqwest::Client>>,
    /// The HTTPS client with only the system roots, shared by hosts without a CA of their own.
    system_tls: Mutex<Option<reqwest::Client>>,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Hosts that have answered a cross-repository mount with 201 Created.
    mounting_hosts: Mutex<std::collections::HashSet<String>>,
    auth: AuthCache,
    docker_config_dir: Option<PathBuf>,
}

fn builder(config: &ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .connect_timeout(Duration::from_secs(30))
        .tcp_keepalive(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90))
}

/// Why [`Transport::send`] failed.
enum SendError {
    /// The request failed (retryable or not, as the error says).
    Http(reqwest::Error),
    /// No client could be set up for the redirect's host.
    Registry(RegistryError),
}

/// How many redirects one request may follow (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// The client for plain-HTTP servers: follows plain-HTTP redirects itself and stops at one
/// to HTTPS, for the caller to send through a TLS client.
fn plain_builder(config: &ClientConfig) -> reqwest::ClientBuilder {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.url().scheme() != "http" {
            attempt.stop()
        } else if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    });
    builder(config).tls_certs_only([]).redirect(policy)
}

/// The `Location` of a redirect to HTTPS, resolved against the request's URL.
fn https_redirect(response: &Response) -> Option<Url> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?.to_str().ok()?;
    let url = response.url().join(location).ok()?;
    (url.scheme() == "https").then_some(url)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Transport {
    pub fn new(config: ClientConfig) -> Result<Transport, RegistryError> {
        let plain_http = plain_builder(&config)
            .build()
            .map_err(|e| RegistryError::Config { reason: format!("cannot set up HTTP client: {e}") })?;
        let docker_config_dir = config.docker_config_dir.clone().or_else(credentials::default_config_dir);
        Ok(Transport {
            config,
            retry: RetryPolicy::default(),
            plain_http,
            http_by_host: Mutex::new(HashMap::new()),
            system_tls: Mutex::new(None),
            semaphores: Mutex::new(HashMap::new()),
            mounting_hosts: Mutex::new(std::collections::HashSet::new()),
            auth: AuthCache::default(),
            docker_config_dir,
        })
    }

    /// The HTTP client for `url`: the plain one for `http://`, else [`Transport::tls_for`]
    /// its host.
    fn http_for_url(&self, url: &Url) -> Result<reqwest::Client, RegistryError> {
        if url.scheme() != "https" {
            return Ok(self.plain_http.clone());
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        self.tls_for(&host)
    }

    /// The HTTPS client for `host[:port]`: the system roots, plus the CA found in a
    /// `certs.d/<host>/ca.crt`. Made on first use and kept.
    fn tls_for(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        if let Some(c) = lock(&self.http_by_host).get(host) {
            return Ok(c.clone());
        }
        let mut certs = Vec::new();
        for dir in &self.config.certs_dirs {
            let path = dir.join(host).join("ca.crt");
            let pem = match std::fs::read(&path) {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(RegistryError::Config {
                        reason: format!("cannot read {}: {e}", path.display()),
                    });
                }
            };
            let found = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| RegistryError::Config {
                reason: format!("{} is not a PEM certificate bundle: {e}", path.display()),
            })?;
            certs.extend(found);
        }
        let setup_failed = |e: reqwest::Error| RegistryError::Config {
            reason: format!("cannot set up HTTPS client for {host}: {e}"),
        };
        let client = if certs.is_empty() {
            // Hosts without a CA of their own share one client (and one copy of the roots).
            let mut system = lock(&self.system_tls);
            match &*system {
                Some(c) => c.clone(),
                None => system.insert(builder(&self.config).build().map_err(setup_failed)?).clone(),
            }
        } else {
            builder(&self.config).tls_certs_merge(certs).build().map_err(setup_failed)?
        };
        Ok(lock(&self.http_by_host).entry(host.to_string()).or_insert(client).clone())
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let permits = self.config.max_concurrent_per_registry.max(1);
        lock(&self.semaphores)
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }

    /// Remembers that `host` mounts blobs across repositories.
    pub fn learn_mounts_work(&self, host: &str) {
        let mut hosts = lock(&self.mounting_hosts);
        if !hosts.contains(host) {
            hosts.insert(host.to_string());
        }
    }

    /// Whether `host` has mounted a blob for this client.
    pub fn mounts_work(&self, host: &str) -> bool {
        lock(&self.mounting_hosts).contains(host)
    }

    /// Uses `credential` for `registry` from now on, instead of what `config.json` says.
    pub fn set_credential(&self, registry: &str, credential: Credential) {
        self.auth.store_credentials(registry, Some(credential));
    }

    /// The credentials configured for `registry` (looked up once per client).
    async fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(c) = self.auth.cached_credentials(registry) {
            return Ok(c);
        }
        let flight = self.auth.credential_flight(registry);
        let _looking_up = flight.lock().await;
        if let Some(c) = self.auth.cached_credentials(registry) {
            return Ok(c);
        }
        let Some(dir) = self.docker_config_dir.clone() else {
            self.auth.store_credentials(registry, None);
            return Ok(None);
        };
        let name = registry.to_string();
        // Credential helpers are processes: keep them off the async threads.
        let found = tokio::task::spawn_blocking(move || credentials::lookup(&dir, &name))
            .await
            .map_err(|e| RegistryError::Credentials {
                registry: registry.to_string(),
                reason: e.to_string(),
            })?
            .map_err(|e| RegistryError::Credentials {
                registry: registry.to_string(),
                reason: e.to_string(),
            })?;
        self.auth.store_credentials(registry, found.clone());
        Ok(found)
    }

    /// The `Authorization` header for a request to `ep` needing `scope`, if the registry
    /// asked for one.
    async fn authorization(
        &self,
        ep: &Endpoint,
        scope: &Scope,
        target: &Target,
    ) -> Result<Option<String>, RegistryError> {
        match self.auth.challenge(&ep.host) {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match self.credential(&ep.registry).await? {
                Some(Credential::Basic { username, password }) => Some(basic_header(&username, &password)),
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some(t) = self.auth.token(&ep.host, scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let flight = self.auth.token_flight(&ep.host, scope);
                let _fetching = flight.lock().await;
                if let Some(t) = self.auth.token(&ep.host, scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let cred = self.credential(&ep.registry).await?;
                let realm_http = match Url::parse(&realm) {
                    Ok(url) => self.http_for_url(&url)?,
                    // fetch_token reports the malformed realm.
                    Err(_) => self.plain_http.clone(),
                };
                let (token, lifetime) = fetch_token(
                    &realm_http,
                    &self.retry,
                    &realm,
                    service.as_deref(),
                    scope,
                    cred.as_ref(),
                    target,
                )
                .await?;
                self.auth.store_token(&ep.host, scope, token.clone(), lifetime);
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Decides what to do about a 401: `Ok(())` to try again with new authorization, or the
    /// error to report.
    async fn on_unauthorized(
        &self,
        ep: &Endpoint,
        call: &Call,
        sent_auth: bool,
        headers: &HeaderMap,
    ) -> Result<(), RegistryError> {
        let challenges =
            parse_challenges(headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()));
        let cred = self.credential(&ep.registry).await?;
        let fail = |reason| Err(call.target.unauthorized(401, reason));
        let missing_or_rejected =
            if cred.is_some() { AuthFailure::CredentialsRejected } else { AuthFailure::NoCredentials };
        let bearer = challenges.iter().find(|c| matches!(c, Challenge::Bearer { .. }));
        if let Some(Challenge::Bearer { realm, service, error, .. }) = bearer {
            if sent_auth {
                if error.as_deref() == Some("insufficient_scope") {
                    return fail(if cred.is_some() {
                        AuthFailure::Denied
                    } else {
                        AuthFailure::NoCredentials
                    });
                }
                // The token may have expired early or been revoked: fetch a fresh one once.
                self.auth.forget_token(&ep.host, &call.scope);
            }
            let learned = Challenge::Bearer {
                realm: realm.clone(),
                service: service.clone(),
                scope: None,
                error: None,
            };
            self.auth.set_challenge(&ep.host, learned);
            return Ok(());
        }
        if challenges.contains(&Challenge::Basic) {
            if sent_auth {
                return fail(AuthFailure::CredentialsRejected);
            }
            return match cred {
                Some(Credential::Basic { .. }) => {
                    self.auth.set_challenge(&ep.host, Challenge::Basic);
                    Ok(())
                }
                // An identity token is only usable with a token service.
                Some(Credential::IdentityToken(_)) => fail(AuthFailure::CredentialsRejected),
                None => fail(AuthFailure::NoCredentials),
            };
        }
        fail(missing_or_rejected)
    }

    /// Sends `call` to `ep`, authenticating and retrying as needed. Returns any response that
    /// is not an auth failure (401/403) or a retryable failure with attempts left; the
    /// caller interprets its status.
    pub async fn execute(&self, ep: &Endpoint, call: &Call) -> Result<Sent, RegistryError> {
        let http = self.http_for_url(&call.url)?;
        let semaphore = self.semaphore(&ep.host);
        // Registry credentials must not follow a Location to another server (blob storage).
        let same_origin = call.url.origin() == ep.base.origin();
        let mut attempts = 0u32;
        // At most one anonymous-to-authenticated switch and one token refresh per call, so
        // a registry that keeps answering 401 cannot loop us.
        let mut learned_challenge = false;
        let mut refreshed = false;
        loop {
            attempts += 1;
            let permit =
                semaphore.clone().acquire_owned().await.map_err(|_| RegistryError::Config {
                    reason: "registry concurrency limit closed".into(),
                })?;
            let auth =
                if same_origin { self.authorization(ep, &call.scope, &call.target).await? } else { None };
            let request = self.build(&http, call, auth.as_deref()).await?;
            let response = match self.send(&http, request, call).await {
                Ok(r) => r,
                Err(SendError::Registry(e)) => return Err(e),
                Err(SendError::Http(e)) => {
                    drop(permit);
                    if call.idempotent && retryable_transport(&e) && self.retry.allows_another(attempts) {
                        tracing::debug!(host = %ep.host, attempts, error = %e.without_url(), "retrying request");
                        tokio::time::sleep(self.retry.delay(attempts, None)).await;
                        continue;
                    }
                    return Err(RegistryError::Network {
                        host: ep.host.clone(),
                        attempts,
                        source: e.without_url(),
                    });
                }
            };
            let status = response.status().as_u16();
            match status {
                401 if same_origin && !(if auth.is_some() { refreshed } else { learned_challenge }) => {
                    let headers = response.headers().clone();
                    drop(response);
                    drop(permit);
                    self.on_unauthorized(ep, call, auth.is_some(), &headers).await?;
                    if auth.is_some() {
                        refreshed = true;
                    } else {
                        learned_challenge = true;
                    }
                    attempts -= 1;
                    continue;
                }
                401 | 403 => {
                    let cred = self.credential(&ep.registry).await?;
                    let reason = match (status, cred.is_some()) {
                        (_, false) => AuthFailure::NoCredentials,
                        (401, true) => AuthFailure::CredentialsRejected,
                        _ => AuthFailure::Denied,
                    };
                    return Err(call.target.unauthorized(status, reason));
                }
                s if call.idempotent && retryable_status(s) && self.retry.allows_another(attempts) => {
                    let wait = self.retry.delay(attempts, retry_after(response.headers()));
                    tracing::debug!(host = %ep.host, status = s, attempts, ?wait, "retrying request");
                    drop(response);
                    drop(permit);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                _ => return Ok(Sent { response, attempts, _permit: permit }),
            }
        }
    }

    /// Sends `request` with `http`; a plain-HTTP server's redirect to HTTPS (blob storage
    /// behind an insecure registry) is followed with the TLS client for the new host,
    /// without the registry's credentials.
    async fn send(
        &self,
        http: &reqwest::Client,
        request: reqwest::Request,
        call: &Call,
    ) -> Result<Response, SendError> {
        let response = http.execute(request).await.map_err(SendError::Http)?;
        let Some(url) = https_redirect(&response) else { return Ok(response) };
        if !matches!(call.method, Method::GET | Method::HEAD) {
            return Ok(response);
        }
        drop(response);
        let tls = self.http_for_url(&url).map_err(SendError::Registry)?;
        let request = tls
            .request(call.method.clone(), url)
            .headers(call.headers.clone())
            .build()
            .map_err(SendError::Http)?;
        tls.execute(request).await.map_err(SendError::Http)
    }

    async fn build(
        &self,
        http: &reqwest::Client,
        call: &Call,
        auth: Option<&str>,
    ) -> Result<reqwest::Request, RegistryError> {
        let mut rb = http.request(call.method.clone(), call.url.clone()).headers(call.headers.clone());
        if let Some(a) = auth {
            rb = rb.header(AUTHORIZATION, a);
        }
        rb = match &call.body {
            CallBody::Empty => {
                if matches!(call.method, Method::POST | Method::PUT | Method::PATCH) {
                    rb.header(CONTENT_LENGTH, 0)
                } else {
                    rb
                }
            }
            CallBody::Bytes(b) => rb.header(CONTENT_LENGTH, b.len()).body(b.clone()),
            CallBody::File { path, offset, len, sent } => {
                let body = file_body(path, *offset, *len, sent.clone()).await?;
                rb.header(CONTENT_LENGTH, *len).body(body)
            }
        };
        rb.build().map_err(|e| call.target.protocol(format!("cannot build request: {}", e.without_url())))
    }
}

/// Streams `len` bytes of `path` from `offset`, counting into `sent` (reset to 0 first, so a
/// retried request reports progress from its own start).
async fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
    sent: Arc<AtomicU64>,
) -> Result<reqwest::Body, RegistryError> {
    use tokio::io::AsyncReadExt;
    let io = |source| RegistryError::Io { action: "read blob file", path: Some(path.to_path_buf()), source };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
    sent.store(0, Ordering::Relaxed);
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024).map(move |chunk| {
        if let Ok(c) = &chunk {
            sent.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        chunk
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_scheme_and_host_table() {
        let config = ClientConfig {
            insecure_registries: vec!["lab.internal:5000".into(), "http://old.internal".into()],
            ..Default::default()
        };
        let cases = [
            ("docker.io", "https://registry-1.docker.io/"),
            ("index.docker.io", "https://registry-1.docker.io/"),
            ("quay.io", "https://quay.io/"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000/"),
            ("localhost:5000", "http://localhost:5000/"),
            ("lab.internal:5000", "http://lab.internal:5000/"),
            ("lab.internal:5001", "https://lab.internal:5001/"),
            ("old.internal", "http://old.internal/"),
        ];
        for (registry, want) in cases {
            let ep = Endpoint::for_registry(&config, registry).unwrap();
            assert_eq!(ep.base.as_str(), want, "{registry}");
            assert_eq!(ep.registry, registry);
        }
        let mirrors = [
            ("mirror.example", "https://mirror.example/"),
            ("http://mirror.example:8080/", "http://mirror.example:8080/"),
            ("https://127.0.0.1:9443", "https://127.0.0.1:9443/"),
            ("127.0.0.1:9000", "http://127.0.0.1:9000/"),
        ];
        for (mirror, want) in mirrors {
            assert_eq!(Endpoint::for_mirror(&config, mirror).unwrap().base.as_str(), want, "{mirror}");
        }
        assert!(Endpoint::for_mirror(&config, "https://mirror.example/some/path").is_err());
        let ep = Endpoint::for_registry(&config, "127.0.0.1:5000").unwrap();
        assert_eq!(
            ep.url("lab/app/manifests/v1").unwrap().as_str(),
            "http://127.0.0.1:5000/v2/lab/app/manifests/v1"
        );
    }
}
