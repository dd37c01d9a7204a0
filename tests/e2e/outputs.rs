//! Every output type, each read back by a tool that is not rbuild: skopeo, umoci,
//! oci-image-tool, GNU tar, and the registry itself.

use crate::harness::{self, Cmd, Image, Rbuild, require_lab};
use serde_json::Value;
use std::path::Path;

fn app_context() -> tempfile::TempDir {
    let lab = harness::lab();
    let dockerfile = format!(
        "FROM {base}\n\
         COPY --chown=1000:1001 hello.txt /app/hello.txt\n\
         RUN ln -s hello.txt /app/link && mkdir -p /app/empty && echo built > /app/built\n\
         ENV GREETING=hi\n\
         CMD [\"cat\", \"/app/hello.txt\"]\n",
        base = lab.base
    );
    harness::context(&[("Dockerfile", &dockerfile), ("hello.txt", "hello\n")])
}

fn build_to(rb: &Rbuild, ctx: &Path, output: String) {
    rb.build(ctx).args(["-o", &output]).expect_ok();
}

fn json_of(o: &harness::Outcome) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{o}"))
}

#[test]
fn oci_archive_is_accepted_by_skopeo_umoci_and_oci_image_tool() {
    require_lab!();
    let ctx = app_context();
    let out = harness::tempdir();
    let tar = out.path().join("app.tar");
    Rbuild::new()
        .build(ctx.path())
        .args(["-t", "e2e/oci-app:v1", "-o", &format!("type=oci,dest={}", tar.display())])
        .expect_ok();

    let img = Image::from_oci_archive(&tar);
    let inspect = json_of(
        &Cmd::tool("skopeo").arg("inspect").arg(format!("oci-archive:{}", tar.display())).expect_ok(),
    );
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(img.layers.len()));
    assert!(harness::image::strings(&inspect["Env"]).contains(&"GREETING=hi".to_string()), "{inspect}");

    // oci-image-tool checks the layout (index, manifest, config, blob digests) against the spec.
    let layout = out.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    Cmd::tool("tar").args(["-xf"]).arg(&tar).arg("-C").arg(&layout).expect_ok();
    let ref_name = img.index.as_ref().and_then(|i| {
        i["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].as_str().map(String::from)
    });
    // Debian's oci-image-tool calls an extracted layout `--type image` (it detects the layout).
    let mut validate = Cmd::tool("oci-image-tool").args(["validate", "--type", "image"]);
    if let Some(r) = &ref_name {
        validate = validate.arg("--ref").arg(format!("name={r}"));
    }
    let o = validate.arg(&layout).expect_ok();
    assert!(o.stdout.contains("Validation succeeded"), "{o}");
    Cmd::tool("oci-image-tool")
        .args(["validate", "--type", "imageIndex"])
        .arg(layout.join("index.json"))
        .expect_ok();

    // umoci unpacks it into a runtime bundle whose rootfs has our files, owners included.
    let r = ref_name.expect("index.json names the image (org.opencontainers.image.ref.name)");
    assert_eq!(r, "v1", "ref.name is the tag, as BuildKit writes it");
    let bundle = out.path().join("bundle");
    Cmd::tool("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{r}", layout.display()))
        .arg(&bundle)
        .expect_ok();
    let rootfs = bundle.join("rootfs");
    assert_eq!(std::fs::read_to_string(rootfs.join("app/hello.txt")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(rootfs.join("app/built")).unwrap(), "built\n");
    assert_eq!(std::fs::read_link(rootfs.join("app/link")).unwrap(), Path::new("hello.txt"));
    let meta = std::fs::metadata(rootfs.join("app/hello.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
    assert!(rootfs.join("bin/busybox").is_file());
}

#[test]
fn docker_archive_is_accepted_by_skopeo() {
    require_lab!();
    let ctx = app_context();
    let out = harness::tempdir();
    let tar = out.path().join("app.tar");
    build_to(&Rbuild::new(), ctx.path(), format!("type=docker,dest={}", tar.display()));
    let inspect = json_of(
        &Cmd::tool("skopeo").arg("inspect").arg(format!("docker-archive:{}", tar.display())).expect_ok(),
    );
    let img = Image::from_docker_archive(&tar);
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(img.layers.len()));
    assert_eq!(img.cfg("Cmd"), &serde_json::json!(["cat", "/app/hello.txt"]));
    assert_eq!(img.rootfs()["app/hello.txt"].data, b"hello\n");
}

#[test]
fn local_output_writes_the_file_system() {
    require_lab!();
    let ctx = app_context();
    let out = harness::tempdir();
    let dest = out.path().join("fs");
    build_to(&Rbuild::new(), ctx.path(), format!("type=local,dest={}", dest.display()));
    assert_eq!(std::fs::read_to_string(dest.join("app/hello.txt")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_link(dest.join("app/link")).unwrap(), Path::new("hello.txt"));
    assert_eq!(std::fs::read_link(dest.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    assert!(dest.join("app/empty").is_dir());
    assert_eq!(std::fs::read_dir(dest.join("app/empty")).unwrap().count(), 0);
}

#[test]
fn tar_output_keeps_owners_in_the_headers() {
    require_lab!();
    let ctx = app_context();
    let out = harness::tempdir();
    let tar = out.path().join("fs.tar");
    build_to(&Rbuild::new(), ctx.path(), format!("type=tar,dest={}", tar.display()));
    let entries = harness::image::tar_file_entries(&tar);
    let hello = &entries["app/hello.txt"];
    assert_eq!((hello.uid, hello.gid, hello.kind), (1000, 1001, '-'));
    assert_eq!(hello.data, b"hello\n");
    assert_eq!(entries["app/link"].link.as_deref(), Some("hello.txt"));
    assert_eq!(entries["app/empty"].kind, 'd');
    // GNU tar agrees on the owner.
    let listing = Cmd::tool("tar").args(["--numeric-owner", "-tvf"]).arg(&tar).expect_ok().stdout;
    let line = listing.lines().find(|l| l.ends_with("app/hello.txt")).expect("tar -t lists app/hello.txt");
    assert!(line.contains("1000/1001"), "tar -tv line: {line}");
}

#[test]
fn push_then_second_push_reuses_blobs() {
    require_lab!();
    let lab = harness::lab();
    let ctx = app_context();
    let rb = Rbuild::new();
    let first = lab.registry.image("e2e/outputs-push:v1");
    let o = rb.build(ctx.path()).args(["-t", &first, "--push"]).expect_ok();
    let inspect = json_of(
        &Cmd::tool("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{first}"))
            .expect_ok(),
    );
    let digest = inspect["Digest"].as_str().expect("Digest").to_string();
    assert!(o.stdout.contains(&digest) || o.stderr.contains(&digest), "rbuild did not report {digest}:\n{o}");
    let layers = inspect["Layers"].as_array().map_or(0, Vec::len);
    assert!(layers >= 2, "{inspect}");

    // Blobs are checked with a HEAD, or (once the registry has mounted one) a mount from the
    // repository itself; either way no byte is sent again.
    let count = |method: &str, part: &str| lab.registry.requests(method, part).len();
    let uploads = "/v2/e2e/outputs-push/blobs/uploads/";
    let sent_before = count("PUT", uploads) + count("PATCH", uploads);
    let checks_before = count("HEAD", "/v2/e2e/outputs-push/blobs/") + count("POST", "?mount=");
    let second = lab.registry.image("e2e/outputs-push:v2");
    rb.build(ctx.path()).args(["-t", &second, "--push"]).expect_ok();
    let sent = count("PUT", uploads) + count("PATCH", uploads) - sent_before;
    let checks = count("HEAD", "/v2/e2e/outputs-push/blobs/") + count("POST", "?mount=") - checks_before;
    assert_eq!(sent, 0, "second push uploaded blobs again:\n{}", lab.registry.access_log());
    assert!(checks > layers, "second push did not check every blob ({checks} checks)");
    let again = json_of(
        &Cmd::tool("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{second}"))
            .expect_ok(),
    );
    assert_eq!(again["Digest"].as_str(), Some(digest.as_str()), "same build, same manifest");
}

#[test]
fn push_mounts_base_layers_from_the_base_repository() {
    require_lab!();
    let lab = harness::lab();
    let ctx = app_context();
    let base = json_of(
        &Cmd::tool("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}", lab.base))
            .expect_ok(),
    );
    let base_layer = base["Layers"][0].as_str().expect("base layer digest").to_string();
    // Query strings may percent-encode the colon: compare the hex part.
    let hex = base_layer.trim_start_matches("sha256:").to_string();
    let target = lab.registry.image("e2e/outputs-mount:v1");
    Rbuild::new().build(ctx.path()).args(["-t", &target, "--push"]).expect_ok();
    let mounts = lab.registry.requests("POST", "/v2/e2e/outputs-mount/blobs/uploads/?mount=");
    assert!(
        mounts.iter().any(|r| r.contains(&hex)),
        "the base layer {base_layer} was not mounted from lab/busybox:\n{}",
        lab.registry.access_log()
    );
    let uploads = lab.registry.requests("PUT", "/v2/e2e/outputs-mount/blobs/uploads/");
    assert!(!uploads.iter().any(|r| r.contains(&hex)), "the base layer was uploaded again");

    // `rbuild push` of a built image knows where its base came from, too.
    let rb = Rbuild::new();
    rb.build(ctx.path()).args(["-t", "e2e/outputs-mount-later:v1"]).expect_ok();
    let later = lab.registry.image("e2e/outputs-mount-later:v1");
    rb.cmd(["tag", "e2e/outputs-mount-later:v1", &later]).expect_ok();
    let o = rb.cmd(["push", &later]).expect_ok();
    assert!(o.stdout.contains("Mounted from") || o.stderr.contains("Mounted from"), "{o}");
    let uploads = lab.registry.requests("PUT", "/v2/e2e/outputs-mount-later/blobs/uploads/");
    assert!(!uploads.iter().any(|r| r.contains(&hex)), "the base layer was uploaded again by rbuild push");
}

#[test]
fn squash_merges_the_build_layers_into_one_over_the_shared_base() {
    require_lab!();
    let lab = harness::lab();
    let dockerfile = format!(
        "FROM {base}\n\
         COPY hello.txt /app/hello.txt\n\
         RUN echo one > /app/one && echo tmp > /app/tmp && rm /bin/ls\n\
         RUN echo two > /app/one && rm /app/tmp && mkdir /app/dir && echo x > /app/dir/x\n\
         RUN rm -r /app/dir && mkdir /app/dir && echo y > /app/dir/y\n\
         ENV GREETING=hi\n",
        base = lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &dockerfile), ("hello.txt", "hello\n")]);
    let rb = Rbuild::new();
    let out = harness::tempdir();
    let export = |name: &str, squash: bool| {
        let tar = out.path().join(format!("{name}.tar"));
        rb.build(ctx.path())
            .args(["-o", &format!("type=image,name=e2e/{name},squash={squash}")])
            .args(["-o", &format!("type=oci,dest={}", tar.display())])
            .expect_ok();
        Image::from_oci_archive(&tar)
    };
    let plain = export("layered", false);
    let squashed = export("squashed", true);

    let base_layers = plain.layers.len() - 4;
    assert_eq!(squashed.layers.len(), base_layers + 1, "base layers + one squashed layer");
    assert_eq!(squashed.diff_ids()[..base_layers], plain.diff_ids()[..base_layers], "base layers are shared");
    // Same file system, down to owners, modes and contents; deletions of base files survive.
    let view = |img: &Image| -> Vec<(String, char, u64, u32, Vec<u8>)> {
        img.rootfs().into_iter().map(|(p, e)| (p, e.kind, e.uid, e.mode, e.data)).collect()
    };
    assert_eq!(view(&squashed), view(&plain));
    let fs = squashed.rootfs();
    assert!(!fs.contains_key("bin/ls") && !fs.contains_key("app/tmp") && !fs.contains_key("app/dir/x"));
    assert_eq!(fs["app/one"].data, b"two\n");
    // Every step stays in the history; entries that own a layer match the layers.
    let history = squashed.history();
    assert_eq!(history.len(), plain.history().len());
    let owning = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(owning, squashed.layers.len(), "{history:#?}");
    assert_eq!(squashed.cfg("Env"), plain.cfg("Env"));

    // The squashed layer is made once: a no-op rebuild gives the same image.
    let again = export("squashed", true);
    assert_eq!(again.manifest_digest(), squashed.manifest_digest());
}
