//! `ADD https://…` against a server started by the test: file name, mode, owner and mtime of
//! the download, `--checksum`, `--unpack`, errors that name the URL and the status, and the
//! cache (an unchanged URL answers a conditional request and nothing re-runs; a changed one
//! is downloaded again; with `--checksum` nothing is asked at all).

use crate::harness::{self, Image, Rbuild, require_lab};
use crate::http_server::{File, Server};
use std::io::Read;
use std::path::Path;

/// `Wed, 21 Oct 2015 07:28:00 GMT`.
const LAST_MODIFIED: (&str, u64) = ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480);

fn sha256(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(data)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    format!("sha256:{}", String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default())
}

fn tar_gz(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).expect("tar entry");
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// The mtime of `path` in the image's layers (the last layer that has it).
fn mtime(image: &Image, path: &str) -> Option<u64> {
    let mut found = None;
    for layer in &image.layers {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&layer[..]).read_to_end(&mut plain).ok()?;
        let mut archive = tar::Archive::new(&plain[..]);
        for e in archive.entries().ok()? {
            let e = e.ok()?;
            if harness::image::clean_path(&e.path().ok()?.to_string_lossy()) == path {
                found = e.header().mtime().ok();
            }
        }
    }
    found
}

fn build_oci(rb: &Rbuild, ctx: &Path) -> (Image, crate::harness::Outcome) {
    let out = harness::tempdir();
    let tar = out.path().join("image.tar");
    let o = rb.build(ctx).arg("-o").arg(format!("type=oci,dest={}", tar.display())).expect_ok();
    (Image::from_oci_archive(&tar), o)
}

#[test]
fn downloads_get_name_mode_owner_mtime_and_stay_packed() {
    require_lab!();
    let lab = harness::lab();
    let server = Server::start();
    let tool = b"#!/bin/sh\necho tool\n";
    server.put(
        "/files/hello.txt",
        File { last_modified: Some(LAST_MODIFIED.0.into()), ..File::new(b"hello from the web\n") },
    );
    server.put("/files/tool.sh", File::new(tool));
    server.put("/files/archive.tar.gz", File::new(&tar_gz("inner.txt", b"inside\n")));
    server.put("/files/with%20space.txt", File::new(b"spaced\n"));
    let dockerfile = format!(
        "FROM {base}\n\
         ADD {u}/files/hello.txt /dl/\n\
         ADD --chmod=755 --chown=daemon:daemon --checksum={sum} {u}/files/tool.sh /usr/local/bin/tool\n\
         ADD {u}/files/archive.tar.gz /packed/\n\
         ADD --unpack=true {u}/files/archive.tar.gz /unpacked/\n\
         ADD {u}/files/with%20space.txt /dl/\n\
         RUN /usr/local/bin/tool > /tool.out && ls -ln /dl/hello.txt | cut -c1-10 > /mode.out\n",
        base = lab.base,
        u = server.url(""),
        sum = sha256(tool),
    );
    let ctx = harness::context(&[("Dockerfile", &dockerfile)]);
    let rb = Rbuild::new();
    let (image, _) = build_oci(&rb, ctx.path());
    let fs = image.rootfs();
    let entry = |p: &str| fs.get(p).unwrap_or_else(|| panic!("{p} missing from the image"));
    let hello = entry("dl/hello.txt");
    assert_eq!(
        (hello.kind, hello.mode & 0o7777, hello.uid),
        ('-', 0o600, 0),
        "downloads are 0600 root files"
    );
    assert_eq!(hello.data, b"hello from the web\n");
    assert_eq!(mtime(&image, "dl/hello.txt"), Some(LAST_MODIFIED.1), "mtime comes from Last-Modified");
    let tool_entry = entry("usr/local/bin/tool");
    assert_eq!((tool_entry.mode & 0o7777, tool_entry.uid, tool_entry.gid), (0o755, 1, 1));
    assert_eq!(entry("tool.out").data, b"tool\n");
    assert_eq!(entry("mode.out").data, b"-rw-------\n");
    assert_eq!(entry("packed/archive.tar.gz").kind, '-', "a remote archive is not unpacked by default");
    assert_eq!(entry("unpacked/inner.txt").data, b"inside\n", "--unpack=true extracts it");
    assert_eq!(entry("dl/with space.txt").data, b"spaced\n", "the name is the decoded URL path");
}

/// Names of graph steps that ran, from `--progress rawjson`.
fn ran_steps(o: &crate::harness::Outcome) -> Vec<String> {
    o.events()
        .iter()
        .filter(|e| e["event"] == "started" && e["step"].as_str().is_some_and(|s| s.starts_with("sha256:")))
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .filter(|n| !n.starts_with("[internal]"))
        .collect()
}

#[test]
fn unchanged_urls_are_cached_changed_ones_downloaded_again() {
    require_lab!();
    let lab = harness::lab();
    let server = Server::start();
    server.put("/f.txt", File { etag: Some("\"v1\"".into()), ..File::new(b"one\n") });
    let url = server.url("/f.txt");
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!("FROM {}\nADD {url} /f\nRUN cat /f > /copy\n", lab.base),
    )]);
    let rb = Rbuild::new();
    let build =
        |args: &[&str]| rb.cmd(["build", "--progress", "rawjson"]).args(args).arg(ctx.path()).expect_ok();

    let first = build(&[]);
    assert!(ran_steps(&first).iter().any(|n| n.contains("RUN cat")), "{first}");
    assert_eq!(server.requests(), vec!["GET /f.txt"]);

    server.clear_log();
    let second = build(&[]);
    assert_eq!(ran_steps(&second), Vec::<String>::new(), "nothing re-runs for an unchanged URL:\n{second}");
    assert_eq!(server.requests(), vec!["HEAD /f.txt"], "a conditional HEAD, no download");

    server.put("/f.txt", File { etag: Some("\"v2\"".into()), ..File::new(b"two\n") });
    server.clear_log();
    let third = build(&[]);
    assert!(
        ran_steps(&third).iter().any(|n| n.contains("RUN cat")),
        "a changed URL re-runs what follows:\n{third}"
    );
    assert_eq!(server.requests(), vec!["HEAD /f.txt", "GET /f.txt"]);

    // With the checksum of what is there now, the key needs no request at all.
    let pinned =
        format!("FROM {}\nADD --checksum={} {url} /f\nRUN cat /f > /copy\n", lab.base, sha256(b"two\n"));
    harness::write(&ctx.path().join("Dockerfile"), &pinned);
    server.clear_log();
    let fourth = build(&[]);
    assert_eq!(ran_steps(&fourth), Vec::<String>::new(), "{fourth}");
    assert!(
        server.requests().is_empty(),
        "with --checksum a cached ADD asks nothing: {:?}",
        server.requests()
    );
}

#[test]
fn bad_checksums_and_statuses_fail_naming_the_url() {
    require_lab!();
    let lab = harness::lab();
    let server = Server::start();
    server.put("/ok.txt", File::new(b"ok\n"));
    server.put("/gone.txt", File { status: Some(410), ..File::new(b"gone\n") });
    let wrong = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (
            format!("ADD --checksum={wrong} {} /x", server.url("/ok.txt")),
            vec!["digest mismatch", "/ok.txt", wrong.as_str()],
        ),
        (format!("ADD {} /x", server.url("/missing.txt")), vec!["/missing.txt", "404"]),
        (format!("ADD {} /x", server.url("/gone.txt")), vec!["/gone.txt", "410"]),
        (format!("COPY {} /x", server.url("/ok.txt")), vec!["source can't be a URL for COPY"]),
    ];
    let rb = Rbuild::new();
    for (line, needles) in cases {
        let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\n{line}\n", lab.base))]);
        let o = rb.build(ctx.path()).expect_fail();
        let text = o.error_text();
        for n in needles {
            assert!(text.contains(n), "{line}: {n:?} not in the error:\n{o}");
        }
        assert!(
            text.contains("Dockerfile:2") || text.contains(":2:"),
            "{line}: the error names the line:\n{o}"
        );
    }
}
