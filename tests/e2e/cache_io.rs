//! Sharing the build cache between machines (`--cache-to`, `--cache-from`), as CI does with
//! docker buildx: a build on a second, empty store serves its steps from a cache exported
//! by the first, through the registry or a directory, and gives the same image.

use crate::harness::{self, Cmd, Outcome, Rbuild, Steps, require_lab};
use std::path::Path;

const CACHE_CONFIG_TYPE: &str = "application/vnd.rbuild.cacheconfig.v0+json";

/// One `--progress rawjson` build with `extra` flags; its steps, image ID and outcome.
fn build(rb: &Rbuild, ctx: &Path, extra: &[&str]) -> (Steps, String, Outcome) {
    let out = harness::tempdir();
    let iid = out.path().join("iid");
    let o =
        rb.cmd(["build", "--progress", "rawjson", "--iidfile"]).arg(&iid).args(extra).arg(ctx).expect_ok();
    let id = std::fs::read_to_string(&iid).expect("iidfile").trim().to_string();
    (Steps::of(&o), id, o)
}

/// The `warning` events of a rawjson run.
fn warnings(steps: &Steps) -> Vec<String> {
    steps
        .events
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The digest a registry tag points to, read with skopeo.
fn remote_digest(reference: &str) -> String {
    let o = Cmd::tool("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{reference}"))
        .expect_ok();
    o.stdout.trim().to_string()
}

/// The cache config of a `type=local` cache export, via its OCI layout.
fn local_cache_config(dir: &Path) -> serde_json::Value {
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).expect("layout blob");
        serde_json::from_slice(&bytes).expect("json blob")
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json")).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(manifest["config"]["mediaType"], CACHE_CONFIG_TYPE, "{manifest}");
    read(manifest["config"]["digest"].as_str().unwrap())
}

/// The top layer blob of the record whose description contains `needle`.
fn record_top_blob(config: &serde_json::Value, needle: &str) -> String {
    let record = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["description"].as_str().unwrap_or_default().contains(needle))
        .unwrap_or_else(|| panic!("no record for {needle:?} in {config}"));
    let layer = record["results"][0]["layer"].as_i64().unwrap();
    config["layers"][layer as usize]["blob"].as_str().unwrap().to_string()
}

#[test]
fn registry_round_trip_onto_an_empty_store_is_fully_cached_with_the_same_digest() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[
        (
            "Dockerfile",
            &format!(
                "FROM {base} AS builder\n\
                 RUN echo artifact > /artifact\n\
                 FROM {base}\n\
                 COPY a.txt /a.txt\n\
                 RUN cat /a.txt >> /log && echo ran >> /log\n\
                 COPY --from=builder /artifact /artifact\n\
                 RUN echo done >> /log\n",
                base = lab.base
            ),
        ),
        ("a.txt", "a\n"),
    ]);
    let image = lab.registry.image("e2e/cacheio-app");
    let cache_ref = lab.registry.image("e2e/cacheio-app:buildcache");
    let to = format!("type=registry,ref={cache_ref},mode=max");
    let from = format!("type=registry,ref={cache_ref}");
    let local = harness::tempdir();
    let local_to = format!("type=local,dest={},mode=max", local.path().display());

    // Machine one: the cache does not exist yet (a warning), the build runs and exports it.
    let first_tag = format!("{image}:1");
    let (first, first_id, o) = build(
        &Rbuild::new(),
        ctx.path(),
        &["-t", &first_tag, "--push", "--cache-to", &to, "--cache-to", &local_to, "--cache-from", &from],
    );
    assert_eq!(first.runs_of("echo ran"), 1, "first build ran {:?}\n{o}", first.ran);
    assert!(warnings(&first).iter().any(|w| w.contains("not found")), "{:?}", warnings(&first));

    // The export is an OCI image manifest that an independent client reads.
    let raw = Cmd::tool("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{cache_ref}"))
        .expect_ok();
    let manifest: serde_json::Value = serde_json::from_str(&raw.stdout).expect("manifest json");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], CACHE_CONFIG_TYPE);
    assert!(manifest["layers"].as_array().is_some_and(|l| l.len() >= 4), "{manifest}");
    let builder_blob = record_top_blob(&local_cache_config(local.path()), "echo artifact");

    // Machine two: an empty store. Nothing runs, the image is the same.
    let second_tag = format!("{image}:2");
    let before = lab.registry.access_log().lines().count();
    let (second, second_id, o) =
        build(&Rbuild::new(), ctx.path(), &["-t", &second_tag, "--push", "--cache-from", &from]);
    assert!(second.ran.is_empty(), "steps ran despite the imported cache: {:?}\n{o}", second.ran);
    assert!(second.cached.iter().any(|c| c.contains("echo ran")), "{:?}", second.cached);
    assert_eq!(first_id, second_id, "image IDs differ");
    assert_eq!(remote_digest(&first_tag), remote_digest(&second_tag), "pushed digests differ");
    // Lazy: the builder stage's layer was not needed (the COPY --from step hit), so it was
    // never downloaded.
    let log: Vec<String> = lab.registry.access_log().lines().skip(before).map(str::to_string).collect();
    let fetched_builder = log.iter().any(|l| l.contains("\"GET ") && l.contains(&builder_blob));
    assert!(!fetched_builder, "the unneeded builder layer {builder_blob} was fetched:\n{}", log.join("\n"));
}

#[test]
fn local_round_trip_gives_the_same_image_and_an_oci_layout() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[
        ("Dockerfile", &format!("FROM {}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\n", lab.base)),
        ("a.txt", "a\n"),
    ]);
    let dir = harness::tempdir();
    let cache = dir.path().join("cache");
    let (first, first_id, _) =
        build(&Rbuild::new(), ctx.path(), &["--cache-to", &format!("type=local,dest={}", cache.display())]);
    assert_eq!(first.runs_of("cat /a.txt"), 1);
    assert!(cache.join("oci-layout").is_file() && cache.join("index.json").is_file());
    // skopeo reads the layout.
    let raw =
        Cmd::tool("skopeo").args(["inspect", "--raw"]).arg(format!("oci:{}", cache.display())).expect_ok();
    assert!(raw.stdout.contains(CACHE_CONFIG_TYPE), "{}", raw.stdout);

    let second_store = Rbuild::new();
    let from = format!("type=local,src={}", cache.display());
    let (second, second_id, o) = build(&second_store, ctx.path(), &["--cache-from", &from]);
    assert!(second.ran.is_empty(), "steps ran: {:?}\n{o}", second.ran);
    assert_eq!(first_id, second_id);
    // The imported records are local now: the next build hits without --cache-from.
    let (third, third_id, _) = build(&second_store, ctx.path(), &[]);
    assert!(third.ran.is_empty(), "steps ran: {:?}", third.ran);
    assert_eq!(third_id, first_id);
}

#[test]
fn an_intermediate_stage_hits_only_with_mode_max() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!(
            "FROM {base} AS builder\n\
             RUN echo artifact > /artifact\n\
             FROM {base}\n\
             ARG V=1\n\
             RUN echo \"$V\" > /v\n\
             COPY --from=builder /artifact /artifact\n",
            base = lab.base
        ),
    )]);
    let dir = harness::tempdir();
    let (min, max) = (dir.path().join("min"), dir.path().join("max"));
    let (first, _, _) = build(
        &Rbuild::new(),
        ctx.path(),
        &[
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
        ],
    );
    assert_eq!(first.runs_of("echo artifact"), 1);
    // The final stage's first RUN changes (another V); the builder stage is needed again.
    let from_min = format!("type=local,src={}", min.display());
    let (with_min, _, _) =
        build(&Rbuild::new(), ctx.path(), &["--build-arg", "V=2", "--cache-from", &from_min]);
    assert_eq!(
        with_min.runs_of("echo artifact"),
        1,
        "mode=min holds the builder stage: {:?}",
        with_min.cached
    );
    let from_max = format!("type=local,src={}", max.display());
    let (with_max, _, _) =
        build(&Rbuild::new(), ctx.path(), &["--build-arg", "V=2", "--cache-from", &from_max]);
    assert_eq!(with_max.runs_of("echo artifact"), 0, "mode=max lacks the builder stage: {:?}", with_max.ran);
    assert!(with_max.cached.iter().any(|c| c.contains("echo artifact")));
    assert_eq!(with_max.runs_of("echo \"2\""), 1, "{:?}", with_max.ran);
}

#[test]
fn a_changed_file_misses_only_from_its_step() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[
        (
            "Dockerfile",
            &format!(
                "FROM {}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy-a\nCOPY b.txt /b.txt\nRUN cat /b.txt > /copy-b\n",
                lab.base
            ),
        ),
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
    ]);
    let dir = harness::tempdir();
    build(&Rbuild::new(), ctx.path(), &["--cache-to", &format!("type=local,dest={}", dir.path().display())]);
    harness::write(&ctx.path().join("b.txt"), "changed\n");
    let from = format!("type=local,src={}", dir.path().display());
    let (steps, _, _) = build(&Rbuild::new(), ctx.path(), &["--cache-from", &from]);
    assert_eq!(steps.runs_of("cat /a.txt"), 0, "ran: {:?}", steps.ran);
    assert_eq!(steps.runs_of("cat /b.txt"), 1, "ran: {:?}", steps.ran);
    assert!(steps.ran.iter().any(|s| s.contains("COPY b.txt")), "ran: {:?}", steps.ran);
}

#[test]
fn a_missing_cache_is_a_warning() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\nRUN echo hi > /hi\n", lab.base))]);
    let missing_ref = lab.registry.image("e2e/cacheio-missing:nope");
    let (steps, _, _) = build(
        &Rbuild::new(),
        ctx.path(),
        &["--cache-from", &missing_ref, "--cache-from", "type=local,src=/nonexistent/rbuild-cache"],
    );
    let w = warnings(&steps);
    assert!(w.iter().any(|m| m.contains("e2e/cacheio-missing") && m.contains("not found")), "{w:?}");
    assert!(w.iter().any(|m| m.contains("/nonexistent/rbuild-cache") && m.contains("not found")), "{w:?}");
    assert_eq!(steps.runs_of("echo hi"), 1);
}

#[test]
fn a_failed_export_fails_the_build_unless_ignore_error() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\nRUN echo hi > /hi\n", lab.base))]);
    let dir = harness::tempdir();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let rb = Rbuild::new();
    let o = rb
        .build(ctx.path())
        .args(["--cache-to", &format!("type=local,dest={}", file.display())])
        .expect_fail();
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stderr.contains("not-a-dir"), "{o}");
    let spec = format!("type=local,dest={},ignore-error=true", file.display());
    let (_, _, o) = build(&rb, ctx.path(), &["--cache-to", &spec]);
    let steps = Steps::of(&o);
    assert!(warnings(&steps).iter().any(|w| w.contains("ignore-error")), "{:?}", warnings(&steps));
}

#[test]
fn unsupported_types_and_unknown_keys_are_usage_errors() {
    require_lab!();
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\n")]);
    let rb = Rbuild::new();
    let cases: &[(&str, &str, &str)] = &[
        ("--cache-to", "type=gha", "type=gha is not supported"),
        ("--cache-to", "type=s3,bucket=b", "type=s3 is not supported"),
        ("--cache-from", "type=azblob,name=x", "type=azblob is not supported"),
        ("--cache-to", "type=inline,mode=max", "type=inline supports only mode=min"),
        ("--cache-from", "type=inline", "--cache-from type=registry,ref=IMAGE"),
        ("--cache-to", "type=registry,ref=r.example/a:c,colour=blue", "unknown key \"colour\""),
        ("--cache-from", "type=local,src=/x,mode=max", "unknown key \"mode\""),
        ("--cache-to", "type=local", "type=local needs dest=DIR"),
    ];
    for (flag, spec, want) in cases {
        let o = rb.build(ctx.path()).args([*flag, *spec]).expect_fail();
        assert_eq!(o.code, Some(2), "{flag} {spec}: {o}");
        assert!(o.stderr.contains(want), "{flag} {spec}: want {want:?}\n{o}");
    }
}

#[test]
fn index_and_docker_media_type_exports_are_accepted_and_imported() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\nRUN echo variant > /v\n", lab.base))]);
    let variants = [
        ("oci-index", "image-manifest=false", "application/vnd.oci.image.index.v1+json"),
        (
            "docker",
            "image-manifest=false,oci-mediatypes=false,compression=uncompressed",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ),
    ];
    for (name, options, root_type) in variants {
        let cache_ref = lab.registry.image(&format!("e2e/cacheio-variants:{name}"));
        let to = format!("type=registry,ref={cache_ref},{options}");
        let (first, first_id, _) = build(&Rbuild::new(), ctx.path(), &["--cache-to", &to]);
        assert_eq!(first.runs_of("echo variant"), 1);
        let raw = Cmd::tool("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{cache_ref}"))
            .expect_ok();
        let root: serde_json::Value = serde_json::from_str(&raw.stdout).expect("root json");
        assert_eq!(root["mediaType"], root_type, "{name}: {root}");
        let (second, second_id, o) = build(&Rbuild::new(), ctx.path(), &["--cache-from", &cache_ref]);
        assert!(second.ran.is_empty(), "{name}: steps ran: {:?}\n{o}", second.ran);
        assert_eq!(first_id, second_id, "{name}");
    }
}

#[test]
fn inline_cache_rides_in_the_image_config() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[
        ("Dockerfile", &format!("FROM {}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /inline\n", lab.base)),
        ("a.txt", "a\n"),
    ]);
    let image = lab.registry.image("e2e/cacheio-inline:1");
    let (first, first_id, _) =
        build(&Rbuild::new(), ctx.path(), &["-t", &image, "--push", "--cache-to", "type=inline"]);
    assert_eq!(first.runs_of("cat /a.txt"), 1);
    let o = Cmd::tool("skopeo")
        .args(["inspect", "--config", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .expect_ok();
    let config: serde_json::Value = serde_json::from_str(&o.stdout).expect("config json");
    assert!(config["rbuild.cache.v0"]["records"].as_array().is_some_and(|r| r.len() >= 2), "{config}");

    // Another store uses the image itself as the cache; exporting inline again gives the
    // same image.
    let (second, second_id, o) =
        build(&Rbuild::new(), ctx.path(), &["--cache-from", &image, "--cache-to", "type=inline"]);
    assert!(second.ran.is_empty(), "steps ran: {:?}\n{o}", second.ran);
    assert_eq!(first_id, second_id);
    // Without type=inline the config has no cache records (and a base's are not inherited).
    let (_, plain_id, _) = build(&Rbuild::new(), ctx.path(), &["--cache-from", &image]);
    assert_ne!(plain_id, first_id);
}
