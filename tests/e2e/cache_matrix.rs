//! The cache hit/miss matrix (issue 5): one store, one context, a sequence of changes; after
//! each, the rebuild runs exactly the steps the change reaches and `--explain` names the
//! change. Rows build on each other: each compares with the build of the row before.

use crate::harness::{self, Rbuild, Steps, image, require_lab};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base} AS src\n\
         ARG OWNER=0:0\n\
         RUN echo data > /f && chown $OWNER /f\n\
         \n\
         FROM {base}\n\
         ARG V=1\n\
         COPY a.txt /a.txt\n\
         COPY b/ /b/\n\
         RUN cat /a.txt > /copy-a\n\
         RUN echo $V > /v\n\
         COPY --from=src /f /f\n"
    )
}

// The graph steps, by a part of their progress name.
const FROM: &str = "FROM ";
const SRC_RUN: &str = "[src 2/2] RUN";
const COPY_A: &str = "COPY a.txt";
const COPY_B: &str = "COPY b/";
const RUN_CAT: &str = "RUN cat /a.txt";
const RUN_V: &str = "> /v";
const COPY_FROM: &str = "COPY --from=src";
const ALL: &[&str] = &[FROM, SRC_RUN, COPY_A, COPY_B, RUN_CAT, RUN_V, COPY_FROM];

/// The state rows change: the context, the build args every build gets, the base image tag.
struct World {
    ctx: PathBuf,
    args: Vec<String>,
    base: String,
    lab_base: String,
}

impl World {
    fn file(&self, path: &str) -> PathBuf {
        self.ctx.join(path)
    }
}

struct Row {
    what: &'static str,
    change: fn(&mut World),
    /// Flags for this build only.
    flags: &'static [&'static str],
    /// The steps that must run; every other step must come from the cache.
    ran: &'static [&'static str],
    /// Parts of the `--explain` line (`{base}` stands for the base image reference); empty
    /// when nothing may run, and then no miss may be explained either.
    explained: &'static [&'static str],
}

fn touch(path: &Path) {
    let later = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options().write(true).open(path).and_then(|f| f.set_modified(later)).expect("touch");
}

fn chown(path: &Path, owner: &str) {
    harness::Cmd::tool("chown").arg(owner).arg(path).expect_ok();
}

/// Pushes a different image under the base's tag (what a rebuilt upstream image does).
fn push_new_base(world: &mut World) {
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!("FROM {}\nRUN echo 2 > /base-version\n", world.lab_base),
    )]);
    Rbuild::new().build(ctx.path()).args(["-t", &world.base, "--push"]).expect_ok();
}

const ROWS: &[Row] = &[
    Row {
        what: "touch selected files (mtime only)",
        change: |w| {
            touch(&w.file("a.txt"));
            touch(&w.file("b/one.txt"));
        },
        flags: &[],
        ran: &[],
        explained: &[],
    },
    Row {
        what: "edit an unselected file, add another",
        change: |w| {
            harness::write(&w.file("unused.txt"), "edited, but no step selects it\n");
            harness::write(&w.file("new.txt"), "new, but no step selects it\n");
        },
        flags: &[],
        ran: &[],
        explained: &[],
    },
    Row {
        // The docker CLI sends the context with every owner reset to 0:0 (its
        // resetUIDAndGID), so who owns a context file on the host is not part of any key.
        what: "chown a selected context file",
        change: |w| chown(&w.file("a.txt"), "1234:1234"),
        flags: &[],
        ran: &[],
        explained: &[],
    },
    Row {
        what: "chmod a selected file",
        change: |w| {
            std::fs::set_permissions(w.file("b/one.txt"), std::fs::Permissions::from_mode(0o755)).unwrap()
        },
        flags: &[],
        ran: &[COPY_B, RUN_CAT, RUN_V, COPY_FROM],
        explained: &["COPY b/ /b/", "modified: /b/one.txt"],
    },
    Row {
        what: "edit a selected file",
        change: |w| harness::write(&w.file("a.txt"), "a edited\n"),
        flags: &[],
        ran: &[COPY_A, COPY_B, RUN_CAT, RUN_V, COPY_FROM],
        explained: &["COPY a.txt /a.txt", "modified: /a.txt"],
    },
    Row {
        what: "add a file to a copied directory",
        change: |w| harness::write(&w.file("b/three.txt"), "3\n"),
        flags: &[],
        ran: &[COPY_B, RUN_CAT, RUN_V, COPY_FROM],
        explained: &["COPY b/ /b/", "added: /b/three.txt"],
    },
    Row {
        // ARG values reach every RUN after the ARG (as environment), not COPY.
        what: "change a build arg",
        change: |w| w.args.extend(["--build-arg".into(), "V=2".into()]),
        flags: &[],
        ran: &[RUN_CAT, RUN_V, COPY_FROM],
        explained: &["RUN cat /a.txt", "V: 1 -> 2"],
    },
    Row {
        // COPY --from must follow a change of owner in the stage it copies from.
        what: "change the owner of a file in a stage COPY --from reads",
        change: |w| w.args.extend(["--build-arg".into(), "OWNER=5:5".into()]),
        flags: &[],
        ran: &[SRC_RUN, COPY_FROM],
        explained: &["[src 2/2] RUN", "OWNER: 0:0 -> 5:5"],
    },
    Row {
        what: "a new base image under the same tag, without --pull",
        change: push_new_base,
        flags: &[],
        ran: &[],
        explained: &[],
    },
    Row {
        what: "--pull after the base image changed",
        change: |_| {},
        flags: &["--pull"],
        ran: ALL,
        explained: &["FROM {base}", "base image {base} changed: sha256:"],
    },
    Row {
        what: "--pull with the base image unchanged",
        change: |_| {},
        flags: &["--pull"],
        ran: &[],
        explained: &[],
    },
    Row {
        // The filtered stage runs again, and what is built on it (rbuild's keys do not
        // follow the content of another stage's result, so it cannot tell it is unchanged).
        what: "--no-cache-filter for one stage",
        change: |_| {},
        flags: &["--no-cache-filter", "src"],
        ran: &[SRC_RUN, COPY_FROM],
        explained: &["[src 2/2] RUN", "the cache was bypassed"],
    },
    Row { what: "nothing changed", change: |_| {}, flags: &[], ran: &[], explained: &[] },
];

fn build(rb: &Rbuild, world: &World, flags: &[&str]) -> Steps {
    let o = rb
        .cmd(["build", "--progress", "rawjson", "--explain"])
        .args(&world.args)
        .args(flags)
        .arg(&world.ctx)
        .expect_ok();
    Steps::of(&o)
}

#[test]
fn each_change_reruns_exactly_what_it_reaches_and_is_explained() {
    require_lab!();
    let lab = harness::lab();
    let base = lab.registry.image("cache-matrix/base:latest");
    harness::Cmd::tool("skopeo")
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}", lab.base))
        .arg(format!("docker://{base}"))
        .expect_ok();
    let ctx = harness::context(&[
        ("Dockerfile", &dockerfile(&base)),
        ("a.txt", "a\n"),
        ("b/one.txt", "1\n"),
        ("b/two.txt", "2\n"),
        ("unused.txt", "not selected by any step\n"),
    ]);
    let mut world =
        World { ctx: ctx.path().to_path_buf(), args: Vec::new(), base, lab_base: lab.base.clone() };
    let rb = Rbuild::new();
    let first = build(&rb, &world, &[]);
    for step in ALL {
        assert_eq!(
            first.runs_of(step),
            1,
            "first build: {step} ran {} times: {:?}",
            first.runs_of(step),
            first.ran
        );
    }

    let mut failures = Vec::new();
    for row in ROWS {
        (row.change)(&mut world);
        let steps = build(&rb, &world, row.flags);
        let mut wrong = Vec::new();
        for step in ALL {
            let want = usize::from(row.ran.contains(step));
            if steps.runs_of(step) != want {
                wrong.push(format!("{step:?} ran {} times, expected {want}", steps.runs_of(step)));
            }
        }
        let explanation = steps.explanation();
        match (row.explained.is_empty(), explanation) {
            (true, None) => {}
            (true, Some(e)) => wrong.push(format!("unexpected explanation {e:?}")),
            (false, None) => wrong.push("no explanation".into()),
            (false, Some(e)) => {
                for part in row.explained {
                    let part = part.replace("{base}", &world.base);
                    if !e.contains(&part) {
                        wrong.push(format!("explanation {e:?} lacks {part:?}"));
                    }
                }
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{}:\n  {}\n  ran: {:?}", row.what, wrong.join("\n  "), steps.ran));
        }
    }
    assert!(failures.is_empty(), "cache matrix rows failed:\n{}", failures.join("\n"));

    // The result is right, not only cached: context files are owned by root whoever owns
    // them on the host; the copied stage file has the stage's new owner.
    let out = harness::tempdir();
    let tar = out.path().join("fs.tar");
    rb.cmd(["build", "--progress", "plain", "-o"])
        .arg(format!("type=tar,dest={}", tar.display()))
        .args(&world.args)
        .arg(&world.ctx)
        .expect_ok();
    let files = image::tar_file_entries(&tar);
    let owner = |p: &str| files.get(p).map(|e| (e.uid, e.gid, e.mode & 0o7777));
    assert_eq!(owner("a.txt"), Some((0, 0, 0o644)), "a.txt");
    assert_eq!(owner("b/one.txt"), Some((0, 0, 0o755)), "b/one.txt");
    assert_eq!(owner("f"), Some((5, 5, 0o644)), "f");
    assert_eq!(files.get("v").map(|e| e.data.as_slice()), Some(&b"2\n"[..]));
    assert_eq!(files.get("base-version").map(|e| e.data.as_slice()), Some(&b"2\n"[..]));
}
