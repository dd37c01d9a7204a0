//! Bearer token flow against distribution in `auth: token` mode, with a small token issuer
//! written for the tests: RS256 JWTs signed by `openssl` with a self-signed certificate that
//! the registry trusts (`rootcertbundle`), carried in the token's `x5c` header.

use crate::harness::*;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use registry::{AuthFailure, RegistryError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const USER: &str = "tester";
const PASSWORD: &str = "t0ken-pw";
const REFRESH: &str = "refresh-ok";
const SERVICE: &str = "rbuild-test-registry";
const ISSUER: &str = "rbuild-test-issuer";

struct Issuer {
    key: PathBuf,
    cert_der_b64: String,
    lifetime: u64,
    /// Tokens issued so far.
    issued: AtomicU32,
    /// Issue this many tokens with a broken signature (as if revoked).
    poison: AtomicU32,
    /// Scopes asked for, per request.
    asked: Mutex<Vec<Vec<String>>>,
}

/// A running token issuer plus a registry that trusts it.
struct TokenLab {
    issuer: Arc<Issuer>,
    registry: Registry,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for TokenLab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TokenLab {
    async fn start(lifetime: u64) -> TokenLab {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let der = dir.path().join("cert.der");
        let (k, c, d) = (key.to_str().unwrap(), cert.to_str().unwrap(), der.to_str().unwrap());
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            k,
            "-out",
            c,
            "-days",
            "2",
            "-subj",
            "/CN=rbuild-token-test",
        ]);
        openssl(&["x509", "-in", c, "-outform", "DER", "-out", d]);
        let issuer = Arc::new(Issuer {
            key,
            cert_der_b64: STANDARD.encode(std::fs::read(&der).unwrap()),
            lifetime,
            issued: AtomicU32::new(0),
            poison: AtomicU32::new(0),
            asked: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/token", axum::routing::get(get_token).post(post_token))
            .with_state(issuer.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let auth = Auth::Token { realm, service: SERVICE.into(), issuer: ISSUER.into(), cert_pem: cert };
        let registry = Registry::start_with(auth, false);
        TokenLab { issuer, registry, task, _dir: dir }
    }

    fn tokens_issued(&self) -> u32 {
        self.issuer.issued.load(Ordering::SeqCst)
    }
}

/// `repository:<name>:<a,b>` → access entry granting the actions `allowed` permits.
fn access(scope: &str, allowed: &[&str]) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let granted: Vec<&str> = actions.split(',').filter(|a| allowed.contains(a)).collect();
    Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
}

async fn issue(issuer: &Issuer, subject: &str, scopes: &[String], allowed: &[&str]) -> String {
    issuer.asked.lock().unwrap().push(scopes.to_vec());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let n = issuer.issued.fetch_add(1, Ordering::SeqCst);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [issuer.cert_der_b64]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + issuer.lifetime, "nbf": now - 5, "iat": now, "jti": format!("jti-{n}"),
        "access": scopes.iter().filter_map(|s| access(s, allowed)).collect::<Vec<_>>(),
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let mut child = tokio::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&issuer.key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    let mut signature = child.wait_with_output().await.unwrap().stdout;
    let poisoned =
        issuer.poison.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1)).is_ok();
    if poisoned {
        signature[0] ^= 0xff;
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn denied() -> Response {
    (StatusCode::UNAUTHORIZED, "{\"details\":\"bad credentials\"}").into_response()
}

async fn get_token(
    State(issuer): State<Arc<Issuer>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let scopes: Vec<String> = query.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    let service_ok = query.iter().any(|(k, v)| k == "service" && v == SERVICE);
    if !service_ok {
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let (subject, allowed): (&str, &[&str]) = match basic {
        None => ("", &["pull"]),
        Some(b64) => {
            let decoded =
                STANDARD.decode(b64).ok().and_then(|d| String::from_utf8(d).ok()).unwrap_or_default();
            if decoded != format!("{USER}:{PASSWORD}") {
                return denied();
            }
            (USER, &["pull", "push"])
        }
    };
    let token = issue(&issuer, subject, &scopes, allowed).await;
    axum::Json(serde_json::json!({"token": token, "expires_in": issuer.lifetime})).into_response()
}

async fn post_token(State(issuer): State<Arc<Issuer>>, body: String) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let get = |k: &str| form.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("refresh_token")
        || get("refresh_token") != Some(REFRESH)
        || get("service") != Some(SERVICE)
    {
        return denied();
    }
    let scopes: Vec<String> =
        get("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let token = issue(&issuer, USER, &scopes, &["pull", "push"]).await;
    axum::Json(serde_json::json!({"access_token": token, "expires_in": issuer.lifetime})).into_response()
}

/// Skips when openssl (the test issuer's signer) is missing.
macro_rules! require_openssl {
    () => {
        if std::process::Command::new("openssl").arg("version").output().is_err() {
            eprintln!("SKIPPED: openssl is not installed (the test token issuer needs it)");
            return;
        }
    };
}

#[tokio::test]
async fn bearer_tokens_per_scope_are_fetched_once_and_reused() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(300).await;
    let cfg = DockerConfig::with_login(&lab.registry.addr, USER, PASSWORD);
    let client = cfg.client();
    let reference = lab.registry.reference("team/app:v1");
    let image = test_image("linux/amd64", 1, true);
    image.push(&client, &reference).await;
    let resolved = client.resolve_image(&reference, &"linux/amd64".parse().unwrap()).await.unwrap();
    assert_eq!(resolved.config_bytes, image.config.bytes);
    // One token for pull+push (all pushes), one for pull (the resolve).
    assert_eq!(lab.tokens_issued(), 2, "{:?}", lab.issuer.asked.lock().unwrap());

    // Mounting asks one token covering both repositories.
    let other = lab.registry.reference("team/other:v1");
    let pushed = client
        .push_blob(&other, &image.layer.desc, &image.layer.path, Some(&reference), &no_progress())
        .await
        .unwrap();
    assert_eq!(pushed, registry::PushedBlob::Mounted);
    let asked = lab.issuer.asked.lock().unwrap().last().cloned().unwrap();
    assert_eq!(asked, ["repository:team/other:pull,push", "repository:team/app:pull"]);
}

#[tokio::test]
async fn anonymous_tokens_pull_but_cannot_push() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(300).await;
    let reference = lab.registry.reference("team/public:v1");
    let image = test_image("linux/amd64", 2, false);
    image.push(&DockerConfig::with_login(&lab.registry.addr, USER, PASSWORD).client(), &reference).await;

    let (anonymous, _cfg) = anonymous_client();
    anonymous.resolve_image(&reference, &"linux/amd64".parse().unwrap()).await.unwrap();
    let new_blob = blob_file(registry::MediaType::OciLayerGzip, pseudo_random(1000, 99));
    let err = anonymous
        .push_blob(&reference, &new_blob.desc, &new_blob.path, None, &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { reason: AuthFailure::NoCredentials, .. }), "{err:?}");
}

#[tokio::test]
async fn token_service_rejecting_the_password_is_credentials_rejected() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(300).await;
    let cfg = DockerConfig::with_login(&lab.registry.addr, USER, "wrong");
    let client = cfg.client();
    let err = client.get_manifest(&lab.registry.reference("team/app:v1")).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized { reason: AuthFailure::CredentialsRejected, status: 401, .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn identity_token_is_exchanged_with_the_oauth_refresh_grant() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(300).await;
    let cfg = DockerConfig::with_json(&format!(
        r#"{{"auths": {{"{}": {{"identitytoken": "{REFRESH}"}}}}}}"#,
        lab.registry.addr
    ));
    let reference = lab.registry.reference("team/oauth:v1");
    test_image("linux/amd64", 3, true).push(&cfg.client(), &reference).await;
    assert!(lab.tokens_issued() >= 1);
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_replaced() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(2).await;
    let cfg = DockerConfig::with_login(&lab.registry.addr, USER, PASSWORD);
    let client = cfg.client();
    let reference = lab.registry.reference("team/short:v1");
    test_image("linux/amd64", 4, true).push(&client, &reference).await;
    client.get_manifest(&reference).await.unwrap();
    let before = lab.tokens_issued();
    client.get_manifest(&reference).await.unwrap();
    assert_eq!(lab.tokens_issued(), before, "a live token is reused");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    client.get_manifest(&reference).await.unwrap();
    assert_eq!(lab.tokens_issued(), before + 1, "an expired token is replaced");

    // A token the registry refuses (bad signature, as if revoked) is fetched again once.
    let fresh = DockerConfig::with_login(&lab.registry.addr, USER, PASSWORD);
    let client = fresh.client();
    lab.issuer.poison.store(1, Ordering::SeqCst);
    let before = lab.tokens_issued();
    client.get_manifest(&reference).await.unwrap();
    assert_eq!(lab.tokens_issued(), before + 2);
}

#[tokio::test]
async fn login_through_the_token_service() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(300).await;
    let (client, _cfg) = anonymous_client();
    client.verify_login(&lab.registry.addr, USER, PASSWORD).await.unwrap();
    let (other, _cfg2) = anonymous_client();
    let err = other.verify_login(&lab.registry.addr, USER, "bad").await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { reason: AuthFailure::CredentialsRejected, .. }));
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    require_registry!();
    require_openssl!();
    let lab = TokenLab::start(300).await;
    let cfg = DockerConfig::with_login(&lab.registry.addr, USER, PASSWORD);
    let client = cfg.client();
    let repo = lab.registry.reference("team/many:v1");
    // Learn the challenge first, so that the concurrent pushes all need the same token.
    assert!(!client.blob_exists(&repo, &registry::Digest::of_bytes(b"x")).await.unwrap());
    let before = lab.tokens_issued();
    let blobs: Vec<_> = (0..6)
        .map(|i| blob_file(registry::MediaType::OciLayerGzip, pseudo_random(20_000, 100 + i)))
        .collect();
    let pushes = blobs.iter().map(|b| client.push_blob(&repo, &b.desc, &b.path, None, &|_| {}));
    for r in futures::future::join_all(pushes).await {
        assert_eq!(r.unwrap(), registry::PushedBlob::Uploaded);
    }
    assert_eq!(lab.tokens_issued(), before + 1);
}
