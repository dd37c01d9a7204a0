//! The command line itself: usage errors exit 2, `-q`/`--iidfile`/`images` agree on the image
//! ID, and `debug ir` prints the same graph every time in all three formats.

use crate::harness::{self, Rbuild, require_lab};

#[test]
fn usage_errors_exit_2_and_name_the_bad_value() {
    require_lab!();
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\n")]);
    let ctx = ctx.path().to_str().expect("utf-8 temp path").to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["build"], "CONTEXT"),
        (&["build", "-o", "type=bogus", &ctx], "bogus"),
        (&["build", "-o", "type=local,dest=x,bogus=1", &ctx], "bogus"),
        (&["build", "--progress", "fancy", &ctx], "fancy"),
        (&["frobnicate"], "frobnicate"),
    ];
    let rb = Rbuild::new();
    let mut wrong = Vec::new();
    for (args, needle) in cases {
        let o = rb.cmd(args).run();
        if o.code != Some(2) || !o.stderr.contains(needle) {
            wrong.push(format!("want exit 2 and {needle:?} in stderr:\n{o}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn quiet_build_iidfile_and_images_agree() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\nRUN echo quiet > /q\n", lab.base))]);
    let out = harness::tempdir();
    let iid = out.path().join("iid");
    let rb = Rbuild::new();
    let o = rb.build(ctx.path()).args(["-q", "-t", "e2e/quiet:1", "--iidfile"]).arg(&iid).expect_ok();
    let id = o.stdout.trim();
    assert_eq!(o.stdout.lines().count(), 1, "-q prints only the image ID:\n{o}");
    assert!(id.starts_with("sha256:") && id.len() == 71, "not an image ID: {id:?}");
    assert_eq!(std::fs::read_to_string(&iid).expect("iidfile").trim(), id);
    let images = rb.images();
    let line =
        images.lines().find(|l| l.contains("e2e/quiet:1")).unwrap_or_else(|| panic!("not listed:\n{images}"));
    assert!(line.contains(&id[7..19]), "images shows another ID than {id}: {line}");
}

#[test]
fn debug_ir_is_deterministic_in_every_format() {
    require_lab!();
    let ctx = harness::context(&[(
        "Dockerfile",
        "FROM scratch\nCOPY Dockerfile /d\nFROM scratch AS other\nCOPY --from=0 /d /e\n",
    )]);
    let rb = Rbuild::new();
    let ir = |format: &str| rb.cmd(["debug", "ir", "--format", format]).arg(ctx.path()).expect_ok().stdout;
    let json = ir("json");
    assert_eq!(json, ir("json"), "the graph differs between two runs");
    let graph: serde_json::Value = serde_json::from_str(&json).expect("debug ir --format json is JSON");
    let vertices = graph["vertices"].as_array().expect("vertices");
    assert_eq!(vertices.len(), 3, "context, COPY, COPY --from: {json}");
    for v in vertices {
        let d = v["digest"].as_str().unwrap_or_default();
        assert!(d.starts_with("sha256:") && d.len() == 71, "vertex digest {d:?}");
    }
    let dot = ir("dot");
    assert!(dot.starts_with("digraph") && dot.matches("->").count() >= 2, "{dot}");
    let text = ir("text");
    assert!(text.contains("COPY --from=0 /d /e") && text.lines().count() >= 3, "{text}");
}
