//! `RUN --mount=type=cache`: the content persists across builds, never reaches the image,
//! can be seeded `from=` a stage, and `sharing=locked` users take turns.

use super::{build_local, read};
use crate::harness::{self, Rbuild, require_lab};

#[test]
fn cache_persists_across_builds_and_stays_out_of_the_image() {
    require_lab!();
    let lab = harness::lab();
    let df = |round: &str| {
        format!(
            "FROM {}\n\
             ARG ROUND={round}\n\
             RUN --mount=type=cache,target=/var/cache/app echo \"$ROUND\" >> /var/cache/app/log \
                 && cp /var/cache/app/log /seen\n\
             RUN --mount=type=cache,id=owned,target=/owned,uid=1000,gid=1000,mode=0750 \
                 stat -c '%a %u %g' /owned > /owned.stat\n",
            lab.base
        )
    };
    let rb = Rbuild::new();
    let ctx = harness::context(&[("Dockerfile", &df("one"))]);
    let (o, out) = build_local(&rb, ctx.path(), &[]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "seen"), "one\n");
    assert_eq!(read(out.path(), "owned.stat").trim(), "750 1000 1000");

    harness::write(&ctx.path().join("Dockerfile"), &df("two"));
    let (o, out) = build_local(&rb, ctx.path(), &[]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "seen"), "one\ntwo\n", "the second build did not see the first one's cache");

    // Never exported: the image holds what the step copied out, not the cache.
    let tar = harness::tempdir();
    let tar = tar.path().join("img.tar");
    rb.build(ctx.path()).arg("-o").arg(format!("type=oci,dest={}", tar.display())).expect_ok();
    let fs = harness::Image::from_oci_archive(&tar).rootfs();
    assert!(fs.contains_key("seen"));
    for leaked in ["var/cache", "var/cache/app/log", "owned"] {
        assert!(!fs.contains_key(leaked), "{leaked} is in the image");
    }

    // Another store starts empty.
    let (o, out) = build_local(&Rbuild::new(), ctx.path(), &[]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "seen"), "two\n");
}

#[test]
fn cache_seeded_from_a_stage_and_locked_users_take_turns() {
    require_lab!();
    let lab = harness::lab();
    // Two independent stages use one locked cache at the same time: each checks that nobody
    // else is inside, stays a while, and appends its name; the last stage reads the log.
    let locked = |name: &str| {
        format!(
            "FROM {} AS {name}\n\
             RUN --mount=type=cache,id=shared-tool,target=/c,sharing=locked \
                 [ ! -e /c/busy ] && touch /c/busy && sleep 1 && rm /c/busy && echo {name} >> /c/log \
                 && echo {name} > /done\n",
            lab.base
        )
    };
    let df = format!(
        "FROM {base} AS seed\n\
         RUN mkdir -p /opt/seed && echo seeded > /opt/seed/file\n\
         {a}{b}\
         FROM {base}\n\
         COPY --from=a /done /a.done\n\
         COPY --from=b /done /b.done\n\
         RUN --mount=type=cache,id=seeded,target=/s,from=seed,source=/opt/seed cat /s/file > /from-seed\n\
         RUN --mount=type=cache,id=shared-tool,target=/c,sharing=locked sort /c/log > /locked.log\n",
        base = lab.base,
        a = locked("a"),
        b = locked("b"),
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let (o, out) = build_local(&Rbuild::new(), ctx.path(), &[]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "from-seed"), "seeded\n");
    assert_eq!(read(out.path(), "locked.log"), "a\nb\n");
}
