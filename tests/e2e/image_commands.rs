//! The image commands a docker user expects (issue 8): `inspect`, `history`, `tag`, `rmi`,
//! `save`, `load`, `push`, `pull`, `version`, `completion`, checked against the build that
//! made the image and against tools that are not rbuild (skopeo, bash).

use crate::harness::{self, Cmd, Image, Outcome, Rbuild, Registry, require_lab};
use serde_json::Value;
use std::path::Path;

/// A RUN line longer than `history`'s 45-character column.
const LONG_RUN: &str = "RUN echo made-by-the-image-commands-test > /made && echo more > /more";

fn app_dockerfile(base: &str, marker: &str) -> String {
    format!(
        "FROM {base}\n{LONG_RUN}\nENV MARKER={marker}\nLABEL e2e.marker={marker}\nCMD [\"cat\", \"/made\"]\n"
    )
}

/// Builds the test image under `name` in `rb`'s store and returns its image ID.
fn build_app(rb: &Rbuild, name: &str, marker: &str) -> String {
    let ctx = harness::context(&[("Dockerfile", &app_dockerfile(&harness::lab().base, marker))]);
    rb.build(ctx.path()).args(["-q", "-t", name]).expect_ok().stdout.trim().to_string()
}

fn json_of(o: &Outcome) -> Value {
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{o}"))
}

/// The `IMAGE ID` column of `images` for `name`.
fn listed_id(rb: &Rbuild, name: &str) -> Option<String> {
    let images = rb.images();
    let line = images.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    line.split_whitespace().nth(1).map(String::from)
}

#[test]
fn inspect_history_tag_and_rmi_describe_the_built_image() {
    require_lab!();
    let rb = Rbuild::new();
    let id = build_app(&rb, "e2e/cmds:1", "one");

    // inspect: docker's fields, the same config an independent reader sees in the saved image.
    let inspect = json_of(&rb.cmd(["inspect", "e2e/cmds:1"]).expect_ok());
    let i = &inspect[0];
    assert_eq!(i["Id"], id.as_str(), "{inspect}");
    assert_eq!(i["RepoTags"], serde_json::json!(["e2e/cmds:1"]));
    assert!(i["RepoDigests"][0].as_str().is_some_and(|d| d.starts_with("e2e/cmds@sha256:")), "{i}");
    assert_eq!((i["Os"].as_str(), i["Architecture"].as_str()), (Some("linux"), Some("amd64")));
    assert!(harness::image::strings(&i["Config"]["Env"]).contains(&"MARKER=one".to_string()), "{i}");
    assert_eq!(i["Config"]["Labels"]["e2e.marker"], "one");
    assert!(i["Size"].as_u64().is_some_and(|s| s > 0), "{i}");
    let out = harness::tempdir();
    let oci = out.path().join("cmds.tar");
    rb.cmd(["save", "--format", "oci", "-o"]).arg(&oci).arg("e2e/cmds:1").expect_ok();
    let saved = Image::from_oci_archive(&oci);
    assert_eq!(i["RootFS"]["Layers"], saved.config["rootfs"]["diff_ids"], "inspect and the archive disagree");
    assert_eq!(i["Descriptor"]["digest"].as_str(), Some(saved.manifest_digest().as_str()));

    // The same image by ID prefix and by manifest digest; unknown images and formats fail.
    let by_id = json_of(&rb.cmd(["inspect", &id[7..19]]).expect_ok());
    assert_eq!(by_id[0]["Id"], id.as_str());
    let by_digest = format!("e2e/cmds@{}", saved.manifest_digest());
    assert_eq!(json_of(&rb.cmd(["inspect", &by_digest]).expect_ok())[0]["Id"], id.as_str());
    let o = rb.cmd(["inspect", "e2e/cmds:1", "e2e/absent:1"]).run();
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stderr.contains("no such image: e2e/absent:1"), "{o}");
    assert_eq!(json_of(&o)[0]["Id"], id.as_str(), "the found image is still shown:\n{o}");
    let o = rb.cmd(["inspect", "--format", "{{json .Config}}", "e2e/cmds:1"]).run();
    assert!(o.code == Some(2) && o.stderr.contains("Go templates"), "{o}");
    let pretty = rb.cmd(["inspect", "--format", "pretty", "e2e/cmds:1"]).expect_ok().stdout;
    assert!(pretty.contains("Env:") && pretty.contains("MARKER=one") && pretty.contains(&id), "{pretty}");

    // history: one row per config history entry, newest first, RUN truncated unless asked.
    let history = rb.cmd(["history", "e2e/cmds:1"]).expect_ok().stdout;
    let rows: Vec<&str> = history.lines().collect();
    assert!(rows[0].starts_with("IMAGE") && rows[0].contains("CREATED BY") && rows[0].contains("COMMENT"));
    assert_eq!(rows.len() - 1, saved.history().len(), "{history}");
    assert!(rows[1].starts_with(&id[7..19]), "the newest row carries the image ID:\n{history}");
    assert!(rows[2..].iter().all(|r| r.starts_with("<missing>")), "{history}");
    assert!(rows[1].contains("CMD"), "{history}");
    let run_row = rows.iter().find(|r| r.contains("RUN")).unwrap_or_else(|| panic!("no RUN row:\n{history}"));
    assert!(run_row.contains('…') && !run_row.contains("echo more"), "not truncated: {run_row}");
    let full = rb.cmd(["history", "--no-trunc", "--human=false", "e2e/cmds:1"]).expect_ok().stdout;
    assert!(full.contains("echo more > /more") && full.contains(&id), "{full}");
    let quiet = rb.cmd(["history", "-q", "e2e/cmds:1"]).expect_ok().stdout;
    assert_eq!(quiet.lines().next(), Some(&id[7..19]));

    // tag: a second name for the same image; rmi removes only the name.
    rb.cmd(["tag", "e2e/cmds:1", "e2e/cmds-copy:2"]).expect_ok();
    assert_eq!(listed_id(&rb, "docker.io/e2e/cmds-copy:2"), listed_id(&rb, "docker.io/e2e/cmds:1"));
    let both = json_of(&rb.cmd(["inspect", "e2e/cmds-copy:2"]).expect_ok());
    assert_eq!(both[0]["RepoTags"], serde_json::json!(["e2e/cmds-copy:2", "e2e/cmds:1"]));
    let o = rb.cmd(["rmi", &id]).run();
    assert!(
        o.code == Some(1) && o.stderr.contains("several names"),
        "rmi by ID of a twice-named image:\n{o}"
    );
    let o = rb.cmd(["tag", "e2e/cmds:1", "Bad/Name"]).run();
    assert_eq!(o.code, Some(2), "{o}");
    let o = rb.cmd(["tag", "e2e/absent:1", "e2e/x:1"]).run();
    assert!(o.code == Some(1) && o.stderr.contains("no such image"), "{o}");

    let o = rb.cmd(["rmi", "e2e/cmds-copy:2", "e2e/absent:1"]).run();
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stdout.contains("Untagged: e2e/cmds-copy:2") && o.stderr.contains("no such image"), "{o}");
    assert_eq!(listed_id(&rb, "docker.io/e2e/cmds-copy:2"), None);
    let o = rb.cmd(["rmi", &id[7..19]]).expect_ok();
    assert!(o.stdout.contains("Untagged: e2e/cmds:1"), "{o}");
    assert!(rb.cmd(["inspect", &id]).run().code == Some(1), "the image is still found by ID");

    // Untagging leaves the content; prune collects it.
    let config_blob = rb.root().join("blobs/sha256").join(&id[7..]);
    assert!(config_blob.exists(), "rmi deleted content");
    rb.cmd(["prune", "--all"]).expect_ok();
    assert!(!config_blob.exists(), "prune left the untagged image's config");
}

/// Replaces the content of the last layer blob of an extracted OCI layout, keeping its name.
fn corrupt_a_layer(layout: &Path) {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let path = blob(layers.last().unwrap()["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn save_and_load_round_trip_docker_oci_and_legacy_archives() {
    require_lab!();
    let src = Rbuild::new();
    let one = build_app(&src, "e2e/saved:1", "one");
    src.cmd(["tag", "e2e/saved:1", "e2e/saved:also"]).expect_ok();
    let two = build_app(&src, "e2e/other:2", "two");
    assert_ne!(one, two);
    let out = harness::tempdir();
    let file = |n: &str| out.path().join(n);

    // A docker archive of one image under two names: skopeo reads it.
    src.cmd(["save", "-o"]).arg(file("one.tar")).args(["e2e/saved:1", "e2e/saved:also"]).expect_ok();
    let docker = Image::from_docker_archive(&file("one.tar"));
    assert_eq!(harness::image::strings(&docker.manifest["RepoTags"]), ["e2e/saved:1", "e2e/saved:also"]);
    let o = Cmd::tool("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", file("one.tar").display()))
        .expect_ok();
    assert_eq!(json_of(&o)["Layers"].as_array().map(Vec::len), Some(docker.layers.len()), "{o}");
    let o = src.cmd(["save", "e2e/saved:1"]).run();
    assert_eq!(o.code, Some(0), "save to a pipe:\n{}", o.stderr);

    // Both images in one archive, loaded into a fresh store: same IDs, names restored, and
    // `FROM` the loaded name builds with no registry that knows it.
    src.cmd(["save", "-o"])
        .arg(file("both.tar"))
        .args(["e2e/saved:1", &two[7..19], "e2e/other:2"])
        .expect_ok();
    let dst = Rbuild::new();
    let o = dst.cmd(["load", "-i"]).arg(file("both.tar")).expect_ok();
    assert!(
        o.stdout.contains("Loaded image: e2e/saved:1") && o.stdout.contains("Loaded image: e2e/other:2"),
        "{o}"
    );
    assert_eq!(listed_id(&dst, "docker.io/e2e/saved:1"), Some(one[7..19].to_string()));
    assert_eq!(listed_id(&dst, "docker.io/e2e/other:2"), Some(two[7..19].to_string()));
    let ctx = harness::context(&[("Dockerfile", "FROM e2e/saved:1\nRUN cat /made /more > /both\n")]);
    dst.build(ctx.path()).args(["-t", "e2e/on-loaded:1"]).expect_ok();

    // gzip-compressed input, an OCI archive, and skopeo's legacy docker-archive layout.
    Cmd::tool("sh")
        .arg("-c")
        .arg(format!("gzip -c {0}/one.tar > {0}/one.tar.gz", out.path().display()))
        .expect_ok();
    let gz = Rbuild::new();
    gz.cmd(["load", "-q", "-i"]).arg(file("one.tar.gz")).expect_ok();
    assert_eq!(listed_id(&gz, "docker.io/e2e/saved:also"), Some(one[7..19].to_string()));
    src.cmd(["save", "--format", "oci", "-o"]).arg(file("one-oci.tar")).arg("e2e/saved:1").expect_ok();
    Cmd::tool("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci-archive:{}", file("one-oci.tar").display()))
        .arg(format!("docker-archive:{}:e2e/legacy:1", file("legacy.tar").display()))
        .expect_ok();
    let legacy = Rbuild::new();
    let o = legacy.cmd(["load", "-i"]).arg(file("legacy.tar")).expect_ok();
    assert!(o.stdout.contains("Loaded image: e2e/legacy:1"), "{o}");
    let i = json_of(&legacy.cmd(["inspect", "e2e/legacy:1"]).expect_ok());
    assert_eq!(i[0]["Id"], one.as_str(), "skopeo's archive holds the same config");
    let ctx = harness::context(&[("Dockerfile", "FROM e2e/legacy:1\nRUN test -f /made\n")]);
    legacy.build(ctx.path()).expect_ok();

    // Saved by ID, the image has no name: it loads as a dangling image that its ID finds
    // and `tag` names.
    src.cmd(["save", "--format", "oci", "-o"]).arg(file("unnamed.tar")).arg(&two).expect_ok();
    let unnamed = Rbuild::new();
    let o = unnamed.cmd(["load", "-i"]).arg(file("unnamed.tar")).expect_ok();
    assert_eq!(o.stdout.trim(), format!("Loaded image ID: {two}"), "{o}");
    let i = json_of(&unnamed.cmd(["inspect", &two]).expect_ok());
    assert_eq!(i[0]["RepoTags"], serde_json::json!([]), "{i}");
    unnamed.cmd(["tag", &two[7..19], "e2e/named-later:1"]).expect_ok();
    let images = unnamed.images();
    assert_eq!(images.lines().count(), 2, "the dangling entry outlived its naming:\n{images}");
    assert_eq!(listed_id(&unnamed, "docker.io/e2e/named-later:1"), Some(two[7..19].to_string()));

    // A layer whose bytes do not match its digest: nothing is loaded.
    let layout = out.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    Cmd::tool("tar").arg("-xf").arg(file("one-oci.tar")).arg("-C").arg(&layout).expect_ok();
    corrupt_a_layer(&layout);
    Cmd::tool("tar").arg("-cf").arg(file("corrupt.tar")).arg("-C").arg(&layout).arg(".").expect_ok();
    let bad = Rbuild::new();
    let o = bad.cmd(["load", "-i"]).arg(file("corrupt.tar")).run();
    assert_eq!(o.code, Some(1), "{o}");
    assert!(o.stderr.contains("corrupt"), "{o}");
    assert_eq!(bad.images().lines().count(), 1, "a corrupt archive named images:\n{}", bad.images());
    let o = bad.cmd(["load", "-i"]).arg(file("Dockerfile-does-not-exist")).run();
    assert_eq!(o.code, Some(1), "{o}");
}

#[test]
fn push_pull_then_build_without_the_registry() {
    require_lab!();
    let lab = harness::lab();
    let private = Registry::start();
    let target = private.image("e2e/pushed:1");

    let a = Rbuild::new();
    let o = a.cmd(["pull", &lab.base]).expect_ok();
    assert!(o.stdout.contains("Pull complete") && o.stdout.contains("Status: Downloaded newer image"), "{o}");
    assert_eq!(o.stdout.lines().last(), Some(lab.base.as_str()));
    let o = a.cmd(["pull", &lab.base]).expect_ok();
    assert!(o.stdout.contains("Already exists") && o.stdout.contains("Status: Image is up to date"), "{o}");
    let o = a.cmd(["pull", "--platform", "linux/arm64", &lab.base]).run();
    assert!(o.code == Some(1) && o.stderr.contains("linux/amd64") && o.stderr.contains("linux/arm64"), "{o}");

    a.cmd(["tag", &lab.base, &target]).expect_ok();
    let o = a.cmd(["push", &target]).expect_ok();
    assert!(o.stdout.contains("Pushed") && o.stdout.contains("1: digest: sha256:"), "{o}");
    assert!(
        !private.requests("PUT", "/manifests/1").is_empty(),
        "no manifest PUT:\n{}",
        private.access_log()
    );
    let o = a.cmd(["push", &private.image("e2e/never-built:1")]).run();
    assert!(o.code == Some(1) && o.stderr.contains("no such image"), "{o}");
    let pushed = Cmd::tool("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{target}"))
        .expect_ok();
    let local = json_of(&a.cmd(["inspect", &target]).expect_ok());
    assert_eq!(
        local[0]["Descriptor"]["digest"],
        json_of(&pushed)["Digest"],
        "the registry has another manifest"
    );

    // Into another repository of the base's registry: the layers are mounted, not sent.
    let beside_base = lab.registry.image("e2e/mounted-from-base:1");
    a.cmd(["tag", &lab.base, &beside_base]).expect_ok();
    let o = a.cmd(["push", &beside_base]).expect_ok();
    assert!(o.stdout.contains("Mounted from lab/busybox") && !o.stdout.contains("Pushed"), "{o}");
    let mounts = lab.registry.requests("POST", "/v2/e2e/mounted-from-base/blobs/uploads/?mount=").len();
    assert!(mounts > 0, "no mount request:\n{}", lab.registry.access_log());

    let b = Rbuild::new();
    let o = b.cmd(["pull", "-q", &target]).expect_ok();
    assert_eq!(o.stdout.trim(), target, "-q prints only the name:\n{o}");
    drop(private);
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {target}\nRUN echo offline > /offline\n"))]);
    b.build(ctx.path()).args(["-t", "e2e/offline:1"]).expect_ok();
}

#[test]
fn version_completion_and_help_examples() {
    require_lab!();
    let rb = Rbuild::new();
    let text = rb.cmd(["version"]).expect_ok().stdout;
    for key in ["Version:", "Git commit:", "Rust version:", "OS/Arch:", "Kernel:", "Cgroup version:"] {
        assert!(text.contains(key), "no {key}:\n{text}");
    }
    assert!(text.contains(env!("CARGO_PKG_VERSION")) && text.contains("rustc "), "{text}");
    let json = json_of(&rb.cmd(["version", "--format", "json"]).expect_ok());
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));

    // bash accepts the script and registers the completion.
    let out = harness::tempdir();
    let script = out.path().join("rbuild.bash");
    std::fs::write(&script, rb.cmd(["completion", "bash"]).expect_ok().stdout).unwrap();
    let o = Cmd::tool("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p rbuild", script.display()))
        .expect_ok();
    assert!(o.stdout.contains("rbuild"), "{o}");
    let words = Cmd::tool("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(rbuild ins) COMP_CWORD=1 && _rbuild rbuild ins rbuild && echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .expect_ok();
    assert!(words.stdout.contains("inspect"), "bash does not complete `ins`:\n{words}");
    assert!(rb.cmd(["completion", "zsh"]).expect_ok().stdout.starts_with("#compdef rbuild"));
    assert!(rb.cmd(["completion", "fish"]).expect_ok().stdout.contains("complete -c rbuild"));
    assert_eq!(rb.cmd(["completion", "tcsh"]).run().code, Some(2));

    let commands = [
        "inspect",
        "history",
        "tag",
        "rmi",
        "push",
        "pull",
        "save",
        "load",
        "login",
        "logout",
        "version",
        "completion",
    ];
    for c in commands {
        let help = rb.cmd([c, "--help"]).expect_ok().stdout;
        assert!(help.contains("Examples:\n  rbuild"), "`{c} --help` shows no examples:\n{help}");
    }
}

#[test]
fn multi_platform_images_show_this_machines_platform_and_keep_the_index() {
    require_lab!();
    let rb = Rbuild::new();
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\nCOPY a /a\nCMD [\"/a\"]\n"), ("a", "a\n")]);
    let o = rb
        .build(ctx.path())
        .args(["-q", "--platform", "linux/amd64,linux/arm64", "-t", "e2e/multi:1"])
        .expect_ok();
    let id = o.stdout.trim().to_string();

    let i = json_of(&rb.cmd(["inspect", "e2e/multi:1"]).expect_ok());
    assert_eq!(i[0]["Id"], id.as_str(), "a multi-platform image's ID is its index digest");
    assert_eq!(i[0]["Architecture"], "amd64");
    assert_eq!(i[0]["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json");
    let history = rb.cmd(["history", "e2e/multi:1"]).expect_ok().stdout;
    assert!(history.lines().nth(1).is_some_and(|l| l.starts_with(&id[7..19])), "{history}");

    let out = harness::tempdir();
    let oci = out.path().join("multi-oci.tar");
    rb.cmd(["save", "--format", "oci", "-o"]).arg(&oci).arg("e2e/multi:1").expect_ok();
    let raw = Cmd::tool("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", oci.display()))
        .expect_ok();
    assert_eq!(json_of(&raw)["manifests"].as_array().map(Vec::len), Some(2), "{raw}");
    let docker = out.path().join("multi-docker.tar");
    rb.cmd(["save", "-o"]).arg(&docker).arg("e2e/multi:1").expect_ok();
    assert_eq!(Image::from_docker_archive(&docker).config["architecture"], "amd64");

    let arm = Rbuild::new();
    arm.cmd(["load", "--platform", "linux/arm64", "-i"]).arg(&oci).expect_ok();
    assert_eq!(json_of(&arm.cmd(["inspect", "e2e/multi:1"]).expect_ok())[0]["Architecture"], "arm64");

    let target = harness::lab().registry.image("e2e/multi-pushed:1");
    rb.cmd(["tag", "e2e/multi:1", &target]).expect_ok();
    rb.cmd(["push", &target]).expect_ok();
    let raw = Cmd::tool("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{target}"))
        .expect_ok();
    assert_eq!(
        json_of(&raw)["manifests"].as_array().map(Vec::len),
        Some(2),
        "the registry has no index:\n{raw}"
    );
}
