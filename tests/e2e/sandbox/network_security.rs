//! Network modes (`RUN --network`, `--network`), the `security.insecure` entitlement and
//! `--security-opt no-new-privileges`.

use super::{build_local, read};
use crate::harness::{self, Rbuild, require_lab};

/// Docker's (and BuildKit's) default effective capability set.
const DEFAULT_CAPS: &str = "00000000a80425fb";

#[test]
fn network_none_has_only_loopback() {
    require_lab!();
    let lab = harness::lab();
    let probe = "ip -o link | wc -l > /links; ip route | wc -l > /routes";
    let df = format!(
        "FROM {}\n\
         RUN --network=none {probe}\n\
         RUN mkdir /default && cd /default && {}\n",
        lab.base,
        probe.replace(" /", " /default/")
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let rb = Rbuild::new();
    let (o, out) = build_local(&rb, ctx.path(), &[]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "links").trim(), "1", "only lo with --network=none");
    assert_eq!(read(out.path(), "routes").trim(), "0", "no route with --network=none");

    // `--network none` makes it the default of every RUN; `RUN --network=host` still wins.
    let df = format!(
        "FROM {}\n\
         RUN ip -o link | wc -l > /links\n\
         RUN --network=host ip -o link | wc -l > /host.links\n",
        lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let (o, out) = build_local(&rb, ctx.path(), &["--network", "none"]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "links").trim(), "1");
    let host_links: usize = std::fs::read_dir("/sys/class/net").map(|d| d.count()).unwrap_or(0);
    assert_eq!(read(out.path(), "host.links").trim(), host_links.to_string(), "host network");

    let o = rb.build(ctx.path()).args(["--network", "bridge"]).run();
    assert_eq!(o.code, Some(2), "{o}");
}

#[test]
fn insecure_needs_the_entitlement_and_privileges_follow_the_flags() {
    require_lab!();
    let lab = harness::lab();
    let df = format!(
        "FROM {}\n\
         RUN grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t' > /sandbox.status\n\
         RUN --security=insecure grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -d '\\t' > /insecure.status\n",
        lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let rb = Rbuild::new();

    // Refused before anything runs, with BuildKit's words, the step and its line.
    let o = rb.build(ctx.path()).expect_fail();
    let report = o.error_text();
    assert!(report.contains("security.insecure is not allowed"), "{o}");
    assert!(report.contains("--allow security.insecure"), "{o}");
    assert!(report.contains("Dockerfile:3"), "{o}");
    assert!(!o.stderr.contains("grep -E '^(CapEff|NoNewPrivs"), "a step ran before the refusal:\n{o}");

    let (o, out) = build_local(&rb, ctx.path(), &["--allow", "security.insecure"]);
    assert_eq!(o.code, Some(0), "{o}");
    let sandbox = read(out.path(), "sandbox.status");
    assert!(sandbox.contains(&format!("CapEff:{DEFAULT_CAPS}")), "{sandbox}");
    assert!(sandbox.contains("Seccomp:2") && sandbox.contains("NoNewPrivs:0"), "{sandbox}");
    let insecure = read(out.path(), "insecure.status");
    assert!(!insecure.contains(DEFAULT_CAPS) && insecure.contains("Seccomp:0"), "{insecure}");

    let (o, out) = build_local(
        &rb,
        ctx.path(),
        &["--allow", "security.insecure", "--security-opt", "no-new-privileges", "--no-cache"],
    );
    assert_eq!(o.code, Some(0), "{o}");
    assert!(read(out.path(), "sandbox.status").contains("NoNewPrivs:1"));

    let o = rb.build(ctx.path()).args(["--allow", "device"]).run();
    assert_eq!(o.code, Some(2), "{o}");
    assert!(o.stderr.contains("unknown entitlement device"), "{o}");
}
