//! Equal steps run once: two stages with the same RUN on the same base are one step, and so
//! are two equal `COPY --from` of those stages; the image still gets every file.

use crate::harness::{self, Rbuild, Steps, image, require_lab};

fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base} AS one\n\
         RUN echo shared > /shared\n\
         \n\
         FROM {base} AS two\n\
         RUN echo shared > /shared\n\
         \n\
         FROM {base} AS copy-one\n\
         COPY --from=one /shared /copied\n\
         \n\
         FROM {base} AS copy-two\n\
         COPY --from=two /shared /copied\n\
         \n\
         FROM {base}\n\
         COPY --from=copy-one /copied /from-one\n\
         COPY --from=copy-two /copied /from-two\n"
    )
}

#[test]
fn equal_steps_of_different_stages_run_once() {
    require_lab!();
    let ctx = harness::context(&[("Dockerfile", &dockerfile(&harness::lab().base))]);
    let rb = Rbuild::new();
    let out = harness::tempdir();
    let tar = out.path().join("fs.tar");
    let o = rb
        .cmd(["build", "--progress", "rawjson", "-o"])
        .arg(format!("type=tar,dest={}", tar.display()))
        .arg(ctx.path())
        .expect_ok();
    let steps = Steps::of(&o);
    for (what, needle) in [
        ("the RUN of stages one and two", "RUN echo shared > /shared"),
        ("the COPY --from of stages copy-one and copy-two", "/shared /copied"),
        ("the base image", "FROM "),
    ] {
        assert_eq!(steps.runs_of(needle), 1, "{what} ran {} times: {:?}", steps.runs_of(needle), steps.ran);
    }
    // One started event per step id: nothing ran twice under another name.
    let mut ids: Vec<&str> =
        steps.events.iter().filter(|e| e["event"] == "started").filter_map(|e| e["step"].as_str()).collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "a step started twice: {:?}", steps.ran);

    let files = image::tar_file_entries(&tar);
    for path in ["from-one", "from-two"] {
        assert_eq!(files.get(path).map(|e| e.data.as_slice()), Some(&b"shared\n"[..]), "{path}");
    }
}
