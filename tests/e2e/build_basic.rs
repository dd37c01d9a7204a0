//! A multi-stage build FROM the registry's busybox using the basic instructions, checked in the
//! exported image; stages the target does not need are never built; independent stages overlap.

use crate::harness::{self, Image, Rbuild, require_lab};
use serde_json::{Value, json};

const DOCKERFILE: &str = r#"
ARG BASE
FROM ${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY app.txt ./
RUN echo "$GREETING from $(cat app.txt)" > /src/out.txt
RUN ["sh", "-c", "echo exec-form > /src/exec.txt"]

FROM ${BASE} AS broken
RUN echo "this stage is not needed" && exit 3

FROM ${BASE}
ARG VERSION=1.0
LABEL org.example.version=$VERSION maintainer="e2e tests"
ENV APP_HOME=/app MODE=test
WORKDIR $APP_HOME
COPY --from=builder /src/out.txt /src/exec.txt ./
COPY --chown=daemon:daemon --chmod=640 app.txt ./owned.txt
ADD added.txt /app/added.txt
COPY dir/ /app/dir/
RUN adduser -D -u 1234 app && chown app /app
USER app
RUN whoami > /app/whoami && echo "$MODE $VERSION" > /app/mode
EXPOSE 8080 9090/udp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/out.txt"]
"#;

fn app_context() -> tempfile::TempDir {
    harness::context(&[
        ("Dockerfile", DOCKERFILE),
        ("app.txt", "the app"),
        ("added.txt", "added file\n"),
        ("dir/sub/deep.txt", "deep\n"),
        ("dir/top.txt", "top\n"),
    ])
}

#[test]
fn multi_stage_build_has_expected_files_and_config() {
    require_lab!();
    let lab = harness::lab();
    let ctx = app_context();
    let out = harness::tempdir();
    let tar = out.path().join("image.tar");
    let rb = Rbuild::new();
    let o = rb
        .build(ctx.path())
        .args(["--build-arg", &format!("BASE={}", lab.base), "--build-arg", "GREETING=hi"])
        .arg("-o")
        .arg(format!("type=oci,dest={}", tar.display()))
        .expect_ok();
    assert!(!o.stderr.contains("this stage is not needed"), "the unused stage ran:\n{o}");
    assert!(!o.stderr.contains("[broken"), "the unused stage appears in the progress:\n{o}");

    let img = Image::from_oci_archive(&tar);
    let cfg = |k: &str| img.cfg(k).clone();
    assert_eq!(cfg("User"), json!("app"));
    assert_eq!(cfg("WorkingDir"), json!("/app"));
    assert_eq!(cfg("Entrypoint"), json!(["/bin/sh", "-c"]));
    assert_eq!(cfg("Cmd"), json!(["cat /app/out.txt"]));
    assert_eq!(cfg("Labels"), json!({"org.example.version": "1.0", "maintainer": "e2e tests"}));
    assert_eq!(harness::image::keys(&cfg("ExposedPorts")), ["8080/tcp", "9090/udp"]);
    let env = harness::image::strings(&cfg("Env"));
    for want in [format!("PATH={}", harness::base::BASE_PATH), "APP_HOME=/app".into(), "MODE=test".into()] {
        assert!(env.contains(&want), "Env {env:?} lacks {want}");
    }
    assert!(
        !env.iter().any(|e| e.starts_with("VERSION=") || e.starts_with("GREETING=")),
        "ARG leaked: {env:?}"
    );
    assert_eq!(img.config["os"], "linux");
    assert_eq!(img.config["architecture"], "amd64");
    assert_eq!(img.diff_ids().len(), img.layers.len());
    let base_history = lab.base_config()["history"].as_array().map_or(0, Vec::len);
    // ARG LABEL ENV WORKDIR COPY COPY ADD COPY RUN USER RUN EXPOSE ENTRYPOINT CMD after the base's
    // (BuildKit records ARG in the history too).
    assert_eq!(img.history().len(), base_history + 14, "history: {:#?}", img.history());
    let history = img.history();
    let whoami = history.iter().filter(|h| h["created_by"].as_str().is_some_and(|c| c.contains("whoami")));
    assert_eq!(whoami.count(), 1, "one RUN whoami entry expected in history");

    let fs = img.rootfs();
    let file = |p: &str| {
        let e = fs.get(p).unwrap_or_else(|| panic!("{p} missing from the image"));
        (String::from_utf8_lossy(&e.data).into_owned(), e.uid, e.gid, e.mode & 0o7777)
    };
    assert_eq!(file("app/out.txt").0, "hi from the app\n");
    assert_eq!(file("app/exec.txt").0, "exec-form\n");
    assert_eq!(file("app/owned.txt"), ("the app".into(), 1, 1, 0o640));
    assert_eq!(file("app/added.txt").0, "added file\n");
    assert_eq!(file("app/dir/sub/deep.txt").0, "deep\n");
    assert_eq!(file("app/dir/top.txt").0, "top\n");
    assert_eq!(file("app/whoami").0, "app\n");
    assert_eq!(file("app/whoami").1, 1234, "RUN after USER app runs as uid 1234");
    assert_eq!(file("app/mode").0, "test 1.0\n");
    assert!(!fs.contains_key("src/out.txt"), "a builder file leaked into the final stage");
    assert!(fs.contains_key("bin/busybox"), "the base layer is missing");
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    require_lab!();
    let lab = harness::lab();
    let ctx = app_context();
    let rb = Rbuild::new();
    let out = harness::tempdir();
    let o = rb
        .build(ctx.path())
        .args(["--build-arg", &format!("BASE={}", lab.base), "--target", "builder"])
        .arg("-o")
        .arg(format!("type=local,dest={}", out.path().display()))
        .expect_ok();
    assert!(!o.stderr.contains("[stage-2") && !o.stderr.contains("adduser"), "final stage was built:\n{o}");
    assert_eq!(std::fs::read_to_string(out.path().join("src/out.txt")).unwrap(), "hello from the app\n");

    // The broken stage fails when it is the target: proof that skipping it above mattered.
    let o = rb
        .build(ctx.path())
        .args(["--build-arg", &format!("BASE={}", lab.base), "--target", "broken"])
        .expect_fail();
    assert!(o.stderr.contains("exit code") || o.stderr.contains("exit status"), "no exit code named:\n{o}");
}

/// Start and end (seconds since the epoch) of the step whose name contains `needle`.
fn span(events: &[Value], needle: &str) -> (f64, f64) {
    let at = |e: &Value| {
        e["at"]["secs_since_epoch"].as_f64().unwrap_or(0.0)
            + e["at"]["nanos_since_epoch"].as_f64().unwrap_or(0.0) / 1e9
    };
    let started = events
        .iter()
        .find(|e| e["event"] == "started" && e["name"].as_str().is_some_and(|n| n.contains(needle)))
        .unwrap_or_else(|| panic!("no started event for {needle}: {events:#?}"));
    let step = &started["step"];
    let done = events
        .iter()
        .find(|e| e["event"] == "done" && e["step"] == *step)
        .unwrap_or_else(|| panic!("no done event for {needle}"));
    (at(started), at(done))
}

#[test]
fn independent_stages_run_concurrently() {
    require_lab!();
    let lab = harness::lab();
    let dockerfile = format!(
        "FROM {base} AS left\nRUN sleep 1 && echo left > /left\n\
         FROM {base} AS right\nRUN sleep 1 && echo right > /right\n\
         FROM {base}\nCOPY --from=left /left /\nCOPY --from=right /right /\n",
        base = lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &dockerfile)]);
    let rb = Rbuild::new();
    let o = rb.cmd(["build", "--progress", "rawjson"]).arg(ctx.path()).expect_ok();
    let events = o.events();
    let (l0, l1) = span(&events, "echo left");
    let (r0, r1) = span(&events, "echo right");
    assert!(l1 - l0 >= 1.0 && r1 - r0 >= 1.0, "each RUN sleeps 1 s: left {l0}..{l1}, right {r0}..{r1}");
    assert!(l0 < r1 && r0 < l1, "the two stages did not overlap: left {l0}..{l1}, right {r0}..{r1}");
}
