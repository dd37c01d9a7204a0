//! HTTPS registries: a registry with a certificate from a test CA is trusted only when the
//! CA is in `certs.d/<host:port>/ca.crt`. Loopback registries are plain HTTP, so the TLS
//! registry is reached as an explicit `https://` mirror.

use crate::harness::*;
use registry::{Client, ClientConfig, Reference};
use std::path::{Path, PathBuf};

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=rbuild-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p("srv.key"),
        "-out",
        &p("srv.csr"),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("srv.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("srv.crt"),
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
    ]);
    (dir.join("ca.crt"), dir.join("srv.crt"), dir.join("srv.key"))
}

#[tokio::test]
async fn tls_registry_is_trusted_through_its_certs_d_ca() {
    require_registry!();
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: openssl is not installed (needed to make the test CA)");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(certs.path());
    let tls_reg = Registry::start_tls(&cert, &key);
    let certs_d = tempfile::tempdir().unwrap();
    let cfg = DockerConfig::empty();
    let client_for = |upstream: &str| {
        Client::new(ClientConfig {
            docker_config_dir: Some(cfg.dir.path().to_path_buf()),
            mirrors: [(upstream.to_string(), vec![format!("https://{}", tls_reg.addr)])].into(),
            certs_dirs: vec![certs_d.path().to_path_buf()],
            ..Default::default()
        })
        .unwrap()
    };

    // Without the CA the certificate is not trusted, and that failure is not retried (the
    // registry itself, spoken to over plain HTTP, then refuses fast with a 400).
    let started = std::time::Instant::now();
    let err = client_for(&tls_reg.addr).get_manifest(&tls_reg.reference("lab/tls:v1")).await.unwrap_err();
    assert!(matches!(err, registry::RegistryError::Http { status: 400, .. }), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());

    // Put an image into the TLS registry with an independent tool (its cert dir must hold
    // only the CA: a *.key there is taken for a client key).
    let skopeo_certs = tempfile::tempdir().unwrap();
    std::fs::copy(&ca, skopeo_certs.path().join("ca.crt")).unwrap();
    let plain = Registry::start();
    let image = test_image("linux/amd64", 1, true);
    image.push(&cfg.client(), &plain.reference("lab/tls:v1")).await;
    let copied = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-cert-dir",
        skopeo_certs.path().to_str().unwrap(),
        &format!("docker://{}/lab/tls:v1", plain.addr),
        &format!("docker://{}/lab/tls:v1", tls_reg.addr),
    ]);
    let Some(copied) = copied else { return };
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));

    // With the CA in certs.d, the mirror serves the image of a registry that is down.
    let host_dir = certs_d.path().join(&tls_reg.addr);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca, host_dir.join("ca.crt")).unwrap();
    let reference: Reference = "127.0.0.1:1/lab/tls:v1".parse().unwrap();
    let resolved =
        client_for("127.0.0.1:1").resolve_image(&reference, &"linux/amd64".parse().unwrap()).await.unwrap();
    assert_eq!(resolved.config_bytes, image.config.bytes);
}
