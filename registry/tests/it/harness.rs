//! Test lab: a real `docker-registry` (CNCF distribution) per test on a free loopback port
//! with its own storage, optional htpasswd or token auth, and helpers to make content.

use registry::{Client, ClientConfig, Descriptor, Digest, MediaType, Reference};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Skips the calling test (with a printed reason) when the registry binary is missing.
macro_rules! require_registry {
    () => {
        if !std::path::Path::new("/usr/bin/docker-registry").exists() {
            eprintln!("SKIPPED: /usr/bin/docker-registry is not installed (apt-get install docker-registry)");
            return;
        }
    };
}
pub(crate) use require_registry;

/// How the registry authenticates clients.
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// htpasswd basic auth with one user.
    Htpasswd { user: &'static str, password: &'static str },
    /// Bearer tokens from the issuer at `realm`, signed by the key of `cert_pem`.
    Token { realm: String, service: String, issuer: String, cert_pem: PathBuf },
}

/// A running registry; stopped and its storage deleted on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    dir: TempDir,
}

impl Registry {
    /// A plain registry without auth.
    pub fn start() -> Registry {
        Registry::start_with(Auth::None, false)
    }

    /// A registry with `auth`; `relative_urls` makes it send relative `Location` headers
    /// (needed behind the fault proxy, which has another address).
    pub fn start_with(auth: Auth, relative_urls: bool) -> Registry {
        Registry::launch(auth, relative_urls, None)
    }

    /// A registry serving HTTPS with this certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> Registry {
        Registry::launch(Auth::None, false, Some((cert, key)))
    }

    fn launch(auth: Auth, relative_urls: bool, tls: Option<(&Path, &Path)>) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls_yaml = tls.map_or(String::new(), |(cert, key)| {
            format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display())
        });
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let hash = bcrypt::hash(password, 4).expect("bcrypt");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n", path.display())
            }
            Auth::Token { realm, service, issuer, cert_pem } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
                 rootcertbundle: {}\n",
                cert_pem.display()
            ),
        };
        // A port picked by the kernel can be taken again before the registry binds it:
        // try a few times.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                 rootdirectory: {storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      \
                 enabled: false\nhttp:\n  addr: {addr}\n  secret: rbuild-test\n  relativeurls: {relative_urls}\n\
                 {tls_yaml}{auth_yaml}health:\n  storagedriver:\n    enabled: false\n",
                storage = dir.path().join("storage").display(),
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            if wait_for_http(&addr, &mut child) {
                return Registry { child, addr, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not come up; log:\n{log}");
    }

    /// `127.0.0.1:<port>/<repo>:<tag>`.
    pub fn reference(&self, repo_tag: &str) -> Reference {
        format!("{}/{repo_tag}", self.addr).parse().expect("reference")
    }

    /// Where the registry stores a blob (to check uploads independently of the client).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir.path().join(format!("storage/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits until `GET /v2/` answers (any status) or the process exits.
fn wait_for_http(addr: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A docker config dir (possibly empty) for a client, so tests never read the host's
/// `~/.docker/config.json`.
pub struct DockerConfig {
    pub dir: TempDir,
}

impl DockerConfig {
    /// No credentials at all.
    pub fn empty() -> DockerConfig {
        DockerConfig { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// `config.json` with exactly this text.
    pub fn with_json(json: &str) -> DockerConfig {
        let c = DockerConfig::empty();
        std::fs::write(c.dir.path().join("config.json"), json).expect("write config.json");
        c
    }

    /// `config.json` with a base64 `auth` entry for `registry`.
    pub fn with_login(registry: &str, user: &str, password: &str) -> DockerConfig {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        DockerConfig::with_json(&format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#))
    }

    /// A client reading only this config.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig {
            docker_config_dir: Some(self.dir.path().to_path_buf()),
            // Small chunks, so that tens-of-MiB test blobs exercise chunked uploads.
            upload_chunk_size: 16 << 20,
            ..Default::default()
        })
        .expect("client")
    }
}

/// A client with no credentials.
pub fn anonymous_client() -> (Client, DockerConfig) {
    let c = DockerConfig::empty();
    (c.client(), c)
}

/// Deterministic pseudo-random bytes (xorshift), so blobs are incompressible and distinct.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A blob written to a file, with its descriptor.
pub struct BlobFile {
    pub desc: Descriptor,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    _dir: TempDir,
}

/// Writes `bytes` to a temp file as a blob of `media_type`.
pub fn blob_file(media_type: MediaType, bytes: Vec<u8>) -> BlobFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("blob");
    std::fs::write(&path, &bytes).expect("write blob");
    BlobFile { desc: Descriptor::for_bytes(media_type, &bytes), path, bytes, _dir: dir }
}

/// A progress callback that ignores progress.
pub fn no_progress() -> impl Fn(u64) + Send + Sync {
    |_| {}
}

/// Runs `skopeo` with `args`; `None` (with a printed notice) when it is not installed.
pub fn skopeo(args: &[&str]) -> Option<std::process::Output> {
    if !Path::new("/usr/bin/skopeo").exists() {
        eprintln!("NOTICE: skopeo is not installed; skipping the independent check");
        return None;
    }
    Some(Command::new("/usr/bin/skopeo").args(args).output().expect("run skopeo"))
}

/// A small image for one platform: config, one layer, manifest bytes.
pub struct TestImage {
    pub config: BlobFile,
    pub layer: BlobFile,
    pub manifest: Vec<u8>,
    pub manifest_type: MediaType,
}

/// Makes an image for `platform` (`linux/arm64/v8`...) in the OCI or Docker family.
pub fn test_image(platform: &str, seed: u64, oci: bool) -> TestImage {
    let p: registry::Platform = platform.parse().expect("platform");
    let layer_type = if oci { MediaType::OciLayerGzip } else { MediaType::DockerLayerGzip };
    let layer = blob_file(layer_type, pseudo_random(4096 + seed as usize, seed));
    let mut config = serde_json::json!({
        "architecture": p.architecture,
        "os": p.os,
        "config": {"Env": [format!("SEED={seed}")]},
        "rootfs": {"type": "layers", "diff_ids": [layer.desc.digest.to_string()]},
    });
    if let Some(v) = &p.variant {
        config["variant"] = serde_json::json!(v);
    }
    let config_type = if oci { MediaType::OciConfig } else { MediaType::DockerConfig };
    let config = blob_file(config_type, serde_json::to_vec(&config).expect("json"));
    let manifest_type = if oci { MediaType::OciManifest } else { MediaType::DockerManifest };
    let manifest = registry::ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_type.clone()),
        config: config.desc.clone(),
        layers: vec![layer.desc.clone()],
        annotations: Default::default(),
    };
    let manifest = serde_json::to_vec(&manifest).expect("json");
    TestImage { config, layer, manifest, manifest_type }
}

impl TestImage {
    /// Pushes blobs then the manifest under `reference`; returns the manifest digest.
    pub async fn push(&self, client: &Client, reference: &Reference) -> Digest {
        for b in [&self.layer, &self.config] {
            client.push_blob(reference, &b.desc, &b.path, None, &no_progress()).await.expect("push blob");
        }
        client.put_manifest(reference, &self.manifest_type, &self.manifest).await.expect("put manifest")
    }

    /// The descriptor of this image's manifest inside an index.
    pub fn index_entry(&self, platform: &str) -> Descriptor {
        let mut d = Descriptor::for_bytes(self.manifest_type.clone(), &self.manifest);
        d.platform = Some(platform.parse().expect("platform"));
        d
    }
}
