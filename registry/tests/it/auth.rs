//! Authentication against real registries: htpasswd basic auth (with credentials from
//! `auths` and from a credential helper) and the bearer token flow.

use crate::harness::*;
use registry::{AuthFailure, RegistryError};

const USER: &str = "tester";
const PASSWORD: &str = "s3cret-pw";

fn htpasswd_registry() -> Registry {
    Registry::start_with(Auth::Htpasswd { user: USER, password: PASSWORD }, false)
}

#[tokio::test]
async fn basic_auth_with_config_json_credentials_pushes_and_pulls() {
    require_registry!();
    let reg = htpasswd_registry();
    let cfg = DockerConfig::with_login(&reg.addr, USER, PASSWORD);
    let client = cfg.client();
    let reference = reg.reference("private/app:v1");
    let image = test_image("linux/amd64", 1, true);
    let digest = image.push(&client, &reference).await;
    let resolved = client.resolve_image(&reference, &"linux/amd64".parse().unwrap()).await.unwrap();
    assert_eq!(resolved.manifest.digest, digest);
}

#[tokio::test]
async fn wrong_password_and_missing_credentials_are_told_apart() {
    require_registry!();
    let reg = htpasswd_registry();
    let reference = reg.reference("private/app:v1");
    let wrong = DockerConfig::with_login(&reg.addr, USER, "not-the-password");
    let none = DockerConfig::empty();
    let other_registry = DockerConfig::with_login("other.example", USER, PASSWORD);
    let cases = [
        (&wrong, AuthFailure::CredentialsRejected, "rejected the configured credentials"),
        (&none, AuthFailure::NoCredentials, "no credentials are configured"),
        (&other_registry, AuthFailure::NoCredentials, "no credentials are configured"),
    ];
    for (cfg, want, text) in cases {
        let err = cfg.client().get_manifest(&reference).await.unwrap_err();
        match &err {
            RegistryError::Unauthorized { reason, status, .. } => {
                assert_eq!((*reason, *status), (want, 401), "{err}");
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(text) && msg.contains(&reg.addr) && msg.contains("private/app"), "{msg}");
        assert!(!msg.contains("not-the-password") && !format!("{err:?}").contains("not-the-password"));
    }
}

/// A `docker-credential-*` helper installed for one test and removed afterwards.
struct Helper {
    path: std::path::PathBuf,
    name: String,
}

impl Helper {
    /// Installs a helper answering `get` with `user`/`secret` for `server` only.
    fn install(server: &str, user: &str, secret: &str) -> Helper {
        use std::os::unix::fs::PermissionsExt;
        let name = format!("rbuild-test-{}-{}", std::process::id(), free_port());
        let path = std::path::PathBuf::from(format!("/usr/local/bin/docker-credential-{name}"));
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nif [ \"$server\" = '{server}' ]; then\n  \
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\nelse\n  \
             echo 'credentials not found in native keychain'; exit 1\nfi\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Helper { path, name }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test]
async fn credentials_from_a_credential_helper() {
    require_registry!();
    if std::fs::metadata("/usr/local/bin").is_err() {
        eprintln!("SKIPPED: /usr/local/bin does not exist");
        return;
    }
    let reg = htpasswd_registry();
    let helper = Helper::install(&reg.addr, USER, PASSWORD);
    let image = test_image("linux/amd64", 2, false);
    let reference = reg.reference("private/helped:v1");

    let per_registry =
        DockerConfig::with_json(&format!(r#"{{"credHelpers": {{"{}": "{}"}}}}"#, reg.addr, helper.name));
    image.push(&per_registry.client(), &reference).await;

    let store = DockerConfig::with_json(&format!(r#"{{"credsStore": "{}"}}"#, helper.name));
    store.client().get_manifest(&reference).await.unwrap();

    // The helper has nothing for another server: that is "no credentials", not a failure.
    let elsewhere = DockerConfig::with_json(&format!(r#"{{"credsStore": "{}"}}"#, helper.name));
    let other = Registry::start_with(Auth::Htpasswd { user: USER, password: PASSWORD }, false);
    let err = elsewhere.client().get_manifest(&other.reference("private/helped:v1")).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { reason: AuthFailure::NoCredentials, .. }), "{err:?}");
}

#[tokio::test]
async fn login_is_verified_before_it_is_saved() {
    require_registry!();
    let reg = htpasswd_registry();
    let cfg = DockerConfig::empty();
    let err = cfg.client().verify_login(&reg.addr, USER, "nope").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unauthorized { reason: AuthFailure::CredentialsRejected, .. }),
        "{err:?}"
    );

    let client = cfg.client();
    client.verify_login(&reg.addr, USER, PASSWORD).await.unwrap();
    registry::credentials::store(cfg.dir.path(), &reg.addr, USER, PASSWORD).unwrap();
    // The same client and a new one reading the saved config.json both get in.
    let reference = reg.reference("private/login:v1");
    test_image("linux/amd64", 5, true).push(&client, &reference).await;
    cfg.client().get_manifest(&reference).await.unwrap();
}
