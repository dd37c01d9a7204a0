//! The content-addressed cache seen from outside: what a rebuild runs again after which change
//! to the context, and that an unchanged build gives the same image ID.

use crate::harness::{self, Rbuild, require_lab};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What one build did, from its `--progress rawjson` events.
struct Run {
    image_id: String,
    /// Names of graph steps that ran.
    ran: Vec<String>,
    /// Names of graph steps served from the cache.
    cached: Vec<String>,
}

impl Run {
    fn ran_any(&self, needle: &str) -> bool {
        self.ran.iter().any(|n| n.contains(needle))
    }
}

fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\n\
         COPY a.txt /a.txt\n\
         RUN cat /a.txt > /copy-a\n\
         COPY b.txt /b.txt\n\
         RUN cat /b.txt > /copy-b\n\
         RUN echo done > /done\n"
    )
}

fn setup() -> (Rbuild, tempfile::TempDir) {
    let lab = harness::lab();
    let ctx = harness::context(&[
        ("Dockerfile", &dockerfile(&lab.base)),
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("unused.txt", "not selected by any COPY\n"),
    ]);
    (Rbuild::new(), ctx)
}

fn build(rb: &Rbuild, ctx: &Path, extra: &[&str]) -> Run {
    let out = harness::tempdir();
    let iid = out.path().join("iid");
    let o =
        rb.cmd(["build", "--progress", "rawjson", "--iidfile"]).arg(&iid).args(extra).arg(ctx).expect_ok();
    let mut run = Run { image_id: String::new(), ran: Vec::new(), cached: Vec::new() };
    for e in o.events() {
        // Graph steps are named by their vertex digest; export and pulls have other ids. Loading
        // the context is a transfer that runs every time, as in BuildKit.
        let name = e["name"].as_str().unwrap_or_default().to_string();
        let is_vertex =
            e["step"].as_str().is_some_and(|s| s.starts_with("sha256:")) && !name.starts_with("[internal]");
        match e["event"].as_str() {
            Some("started") if is_vertex => run.ran.push(name),
            Some("cached") if is_vertex => run.cached.push(name),
            _ => {}
        }
    }
    run.image_id = std::fs::read_to_string(&iid).expect("iidfile").trim().to_string();
    assert!(run.image_id.starts_with("sha256:"), "iidfile holds {:?}", run.image_id);
    run
}

#[test]
fn identical_rebuild_is_fully_cached_with_the_same_image_id() {
    require_lab!();
    let (rb, ctx) = setup();
    let first = build(&rb, ctx.path(), &[]);
    assert!(first.ran_any("cat /b.txt"), "first build ran nothing: {:?}", first.ran);
    let second = build(&rb, ctx.path(), &[]);
    assert!(second.ran.is_empty(), "steps re-ran on an identical build: {:?}", second.ran);
    assert!(second.cached.len() >= 5, "expected every step CACHED, got {:?}", second.cached);
    assert_eq!(first.image_id, second.image_id);

    // Plain progress says CACHED in BuildKit's words.
    let o = rb.build(ctx.path()).expect_ok();
    let cached_lines = o.stderr.lines().filter(|l| l.starts_with('#') && l.ends_with(" CACHED")).count();
    assert!(cached_lines >= 5, "plain progress has {cached_lines} CACHED lines:\n{o}");
}

#[test]
fn touching_a_context_file_keeps_everything_cached() {
    require_lab!();
    let (rb, ctx) = setup();
    let first = build(&rb, ctx.path(), &[]);
    let later = SystemTime::now() + Duration::from_secs(3600);
    for f in ["a.txt", "b.txt"] {
        std::fs::File::options()
            .write(true)
            .open(ctx.path().join(f))
            .and_then(|file| file.set_modified(later))
            .expect("touch");
    }
    let second = build(&rb, ctx.path(), &[]);
    assert!(second.ran.is_empty(), "mtime change re-ran steps: {:?}", second.ran);
    assert_eq!(first.image_id, second.image_id);
}

#[test]
fn editing_a_file_reruns_only_from_the_copy_that_selects_it() {
    require_lab!();
    let (rb, ctx) = setup();
    let first = build(&rb, ctx.path(), &[]);
    harness::write(&ctx.path().join("b.txt"), "b edited\n");
    let second = build(&rb, ctx.path(), &[]);
    for still_cached in ["COPY a.txt", "cat /a.txt"] {
        assert!(!second.ran_any(still_cached), "{still_cached} re-ran: {:?}", second.ran);
    }
    for rerun in ["COPY b.txt", "cat /b.txt", "echo done"] {
        assert!(second.ran_any(rerun), "{rerun} did not re-run: {:?}", second.ran);
    }
    assert_ne!(first.image_id, second.image_id);
}

#[test]
fn editing_an_unselected_file_reruns_nothing() {
    require_lab!();
    let (rb, ctx) = setup();
    let first = build(&rb, ctx.path(), &[]);
    harness::write(&ctx.path().join("unused.txt"), "changed, but no COPY selects it\n");
    harness::write(&ctx.path().join("new-file.txt"), "new, but no COPY selects it\n");
    let second = build(&rb, ctx.path(), &[]);
    assert!(second.ran.is_empty(), "steps re-ran: {:?}", second.ran);
    assert_eq!(first.image_id, second.image_id);
}

#[test]
fn no_cache_reruns_everything() {
    require_lab!();
    let (rb, ctx) = setup();
    build(&rb, ctx.path(), &[]);
    let second = build(&rb, ctx.path(), &["--no-cache"]);
    assert!(second.cached.is_empty(), "--no-cache still served from the cache: {:?}", second.cached);
    for step in ["COPY a.txt", "cat /a.txt", "COPY b.txt", "cat /b.txt", "echo done"] {
        assert!(second.ran_any(step), "{step} did not run with --no-cache: {:?}", second.ran);
    }
}

/// `COPY --from` keys follow the copied files' content (as BuildKit's do): a stage that ran
/// again but produced the same files leaves the copy and everything after it cached.
#[test]
fn a_stage_that_reruns_with_the_same_output_keeps_its_copies_cached() {
    require_lab!();
    let lab = harness::lab();
    let df = format!(
        "FROM {base} AS builder\n\
         COPY src.txt /src.txt\n\
         RUN cut -c1-3 /src.txt > /artifact\n\
         FROM {base}\n\
         COPY --from=builder /artifact /artifact\n\
         RUN cat /artifact > /copied && echo ran > /final\n",
        base = lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &df), ("src.txt", "abcXYZ\n")]);
    let rb = Rbuild::new();
    let first = build(&rb, ctx.path(), &[]);
    assert!(first.ran_any("RUN cat /artifact"), "{:?}", first.ran);

    // Same first three characters: the builder's RUN re-runs, its result is the same.
    harness::write(&ctx.path().join("src.txt"), "abcQQQ\n");
    let second = build(&rb, ctx.path(), &[]);
    assert!(second.ran_any("RUN cut"), "the builder stage must run again: {:?}", second.ran);
    assert!(!second.ran_any("COPY --from") && !second.ran_any("RUN cat /artifact"), "{:?}", second.ran);
    assert!(second.cached.iter().any(|n| n.contains("RUN cat /artifact")), "{:?}", second.cached);
    assert_eq!(second.image_id, first.image_id, "the same image as before");
    // And the next identical build is served without a checksum, fully cached.
    let third = build(&rb, ctx.path(), &[]);
    assert!(third.ran.is_empty(), "{:?}", third.ran);

    // A different artifact runs the copy and what follows.
    harness::write(&ctx.path().join("src.txt"), "xyzQQQ\n");
    let fourth = build(&rb, ctx.path(), &[]);
    assert!(fourth.ran_any("COPY --from") && fourth.ran_any("RUN cat /artifact"), "{:?}", fourth.ran);
    assert_ne!(fourth.image_id, first.image_id);
}
