//! `--runtime runc`: RUN steps handed to an OCI runtime as bundles keep the native sandbox's
//! privileges, mounts and limits, and a runtime that is not there is a usage error.

use super::{build_local, read, with_env};
use crate::harness::{self, Rbuild, require_lab};

/// Where Debian's `runc` lives; `None` (test skipped with a message) when it is missing.
fn runc() -> Option<&'static str> {
    let found = ["/usr/sbin/runc", "/usr/bin/runc"].into_iter().find(|p| std::path::Path::new(p).is_file());
    if found.is_none() {
        eprintln!("skipped: runc is not installed (scripts/setup.sh installs it)");
    }
    found
}

#[test]
fn runc_runs_steps_with_the_default_privileges_mounts_and_limits() {
    require_lab!();
    let Some(runc) = runc() else { return };
    let lab = harness::lab();
    let df = format!(
        "FROM {}\n\
         RUN grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t' > /status\n\
         RUN adduser -D -u 1234 app\n\
         USER app\n\
         RUN id -u > /tmp/uid\n\
         RUN --mount=type=secret,id=token,uid=1234 cat /run/secrets/token | wc -c > /tmp/secret.len\n\
         RUN --mount=type=cache,target=/tmp/cache,uid=1234 echo kept > /tmp/cache/f && cat /tmp/cache/f > /tmp/cache.seen\n",
        lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &df), ("token.txt", "s3cr3t")]);
    let rb = Rbuild::new();
    let secret = format!("id=token,src={}", ctx.path().join("token.txt").display());
    let (o, out) = build_local(&rb, ctx.path(), &["--runtime", runc, "--secret", &secret]);
    assert_eq!(o.code, Some(0), "{o}");
    let status = read(out.path(), "status");
    assert!(status.contains("CapEff:00000000a80425fb"), "{status}");
    assert!(status.contains("Seccomp:2") && status.contains("NoNewPrivs:0"), "{status}");
    assert_eq!(read(out.path(), "tmp/uid").trim(), "1234");
    assert_eq!(read(out.path(), "tmp/secret.len").trim(), "6");
    assert_eq!(read(out.path(), "tmp/cache.seen").trim(), "kept");
    assert!(!out.path().join("tmp/cache/f").exists(), "cache mount content leaked into the image");

    // The runtime is chosen by name through PATH too, and limits reach its containers.
    let df = format!("FROM {}\nRUN head -c 200m /dev/zero | tail\n", lab.base);
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let o = with_env(&rb, &[("RBUILD_RUNTIME", "runc")], &["build", "--memory", "32m"])
        .arg(ctx.path())
        .expect_fail();
    assert!(o.error_text().contains("out of memory, limit 32 MiB"), "{o}");
}

#[test]
fn a_missing_runtime_is_a_usage_error() {
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\n")]);
    let rb = Rbuild::new();
    for (runtime, says) in [
        ("no-such-runtime", "`no-such-runtime` not found in PATH"),
        ("/nonexistent/runc", "--runtime /nonexistent/runc: no such file"),
    ] {
        let o = rb.build(ctx.path()).args(["--runtime", runtime]).run();
        assert_eq!(o.code, Some(2), "{runtime}: {o}");
        assert!(o.stderr.contains(says), "{runtime}: {o}");
    }
}
