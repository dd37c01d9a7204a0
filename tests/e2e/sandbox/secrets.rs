//! `RUN --mount=type=secret` fed by `--secret`: readable in the step, absent from every
//! layer, the config, the history, the store and the progress output, and not part of the
//! cache key.

use super::{build_local, contains, ran_and_cached, read, unique, with_env};
use crate::harness::{self, Image, Rbuild, require_lab};
use std::path::Path;

/// Decompressed bytes of every layer blob.
fn layer_bytes(img: &Image) -> Vec<Vec<u8>> {
    use std::io::Read;
    img.layers
        .iter()
        .map(|blob| {
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(&blob[..]).read_to_end(&mut out) {
                Ok(_) => out,
                Err(_) => blob.clone(),
            }
        })
        .collect()
}

/// Every file under `dir` (not following links) whose content contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && std::fs::read(&path).is_ok_and(|b| contains(&b, needle)) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

fn sha256_hex(data: &str) -> String {
    let o =
        harness::Cmd::tool("/bin/sh").args(["-c", &format!("printf %s '{data}' | sha256sum")]).expect_ok();
    o.stdout.split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn secret_is_readable_but_never_stored_and_not_in_the_cache_key() {
    require_lab!();
    let lab = harness::lab();
    let value = unique("e2e-secret-file");
    let dockerfile = format!(
        "FROM {}\n\
         RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /tok.sha \
             && stat -c '%a %u %g' /run/secrets/tok > /tok.stat\n\
         RUN --mount=type=secret,id=tok,target=/etc/app.key,mode=0440,uid=1000,gid=1000 \
             stat -c '%a %u %g' /etc/app.key > /key.stat\n\
         RUN --mount=type=secret,id=tok,env=TOKEN,required [ \"${{#TOKEN}}\" -gt 10 ] && echo ok > /env.ok\n\
         RUN [ ! -e /run ] && ls -a /etc > /etc.list\n",
        lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &dockerfile)]);
    let secret_file = harness::tempdir();
    let src = secret_file.path().join("tok");
    std::fs::write(&src, &value).unwrap();
    let secret_flag = format!("id=tok,src={}", src.display());
    let rb = Rbuild::new();

    let (o, out) = build_local(&rb, ctx.path(), &["--secret", &secret_flag]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "tok.sha").trim(), sha256_hex(&value), "the step read another value");
    assert_eq!(read(out.path(), "tok.stat").trim(), "400 0 0", "BuildKit's default mode and owner");
    assert_eq!(read(out.path(), "key.stat").trim(), "440 1000 1000");
    assert_eq!(read(out.path(), "env.ok").trim(), "ok");
    // The mount points were stubs, removed after each step.
    // (The base image has no /run: /run/secrets/tok was a stub, removed with its parents.)
    assert!(!read(out.path(), "etc.list").lines().any(|l| l == "app.key"), "/etc/app.key left behind");
    assert!(!contains(o.stderr.as_bytes(), value.as_bytes()), "the secret is in the progress output:\n{o}");

    // The image: no layer, the config (history included) nor the manifest holds the value.
    let tar = harness::tempdir();
    let tar = tar.path().join("img.tar");
    let o = rb
        .build(ctx.path())
        .args(["--secret", &secret_flag, "-o"])
        .arg(format!("type=oci,dest={}", tar.display()))
        .expect_ok();
    let img = Image::from_oci_archive(&tar);
    for (i, layer) in layer_bytes(&img).iter().enumerate() {
        assert!(!contains(layer, value.as_bytes()), "layer {i} holds the secret");
    }
    let config = serde_json::to_vec(&img.config).unwrap();
    assert!(!contains(&config, value.as_bytes()), "the config holds the secret");
    assert!(!contains(&std::fs::read(&tar).unwrap(), value.as_bytes()), "the archive holds the secret");
    let history: Vec<String> =
        img.history().iter().filter_map(|h| h["created_by"].as_str().map(String::from)).collect();
    assert!(history.iter().any(|h| h.contains("sha256sum /run/secrets/tok")), "{history:#?}");
    assert!(!contains(o.stderr.as_bytes(), value.as_bytes()));
    // Nor does anything rbuild keeps: layers, blobs, the metadata DB.
    assert_eq!(files_containing(rb.root(), value.as_bytes()), Vec::<String>::new());

    // Another value: same keys, so every step is served from the cache (as in BuildKit).
    std::fs::write(&src, unique("e2e-secret-changed")).unwrap();
    let o = rb.cmd(["build", "--progress", "rawjson", "--secret", &secret_flag]).arg(ctx.path()).expect_ok();
    let (ran, cached) = ran_and_cached(&o);
    assert!(ran.is_empty(), "a changed secret re-ran steps: {ran:?}");
    assert!(cached.iter().any(|n| n.contains("sha256sum")), "{cached:?}");
}

#[test]
fn env_secrets_missing_required_and_optional_secrets() {
    require_lab!();
    let lab = harness::lab();
    let rb = Rbuild::new();
    let value = unique("e2e-secret-env");

    // From an environment variable, as a file and as a variable.
    let df = format!(
        "FROM {}\n\
         RUN --mount=type=secret,id=api,env=API_TOKEN,target=/api \
             [ \"$API_TOKEN\" = \"$(cat /api)\" ] && echo \"${{#API_TOKEN}}\" > /len\n\
         RUN --mount=type=secret,id=absent [ ! -e /run/secrets/absent ] && echo skipped > /optional\n",
        lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let out = harness::tempdir();
    let dest = format!("type=local,dest={}", out.path().display());
    let o = with_env(
        &rb,
        &[("E2E_API", &value)],
        &["build", "--progress", "plain", "--secret", "id=api,env=E2E_API", "-o", &dest],
    )
    .arg(ctx.path())
    .expect_ok();
    assert_eq!(read(out.path(), "len").trim(), value.len().to_string());
    assert_eq!(read(out.path(), "optional").trim(), "skipped");
    assert!(!contains(o.stderr.as_bytes(), value.as_bytes()), "{o}");

    // A required secret nobody gave: the step fails and says which secret.
    let df = format!("FROM {}\nRUN --mount=type=secret,id=deploy_key,required true\n", lab.base);
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let o = rb.build(ctx.path()).expect_fail();
    assert!(o.error_text().contains("secret deploy_key not found"), "{o}");
    assert!(o.error_text().contains("Dockerfile:2"), "the error names the line:\n{o}");

    // Bad --secret values are usage errors (exit 2), checked before anything runs.
    for (flag, message) in [
        ("id=x,src=/nonexistent/secret", "failed to stat /nonexistent/secret"),
        ("src=/etc/hostname", "secret missing ID"),
        ("id=x,kind=file", "unexpected key 'kind' in 'kind=file'"),
    ] {
        let o = rb.build(ctx.path()).args(["--secret", flag]).run();
        assert_eq!(o.code, Some(2), "{flag}:\n{o}");
        assert!(o.stderr.contains(message), "{flag}: {message:?} not in\n{o}");
    }
}
