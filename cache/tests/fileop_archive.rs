//! ADD of local archives: formats recognised by content, extraction scoped to the
//! destination, ownership, replacement of existing entries.

mod fileop_support;

use cache::fileop::{self, CopyAction, FileAction, Owner, SourceRoot};
use fileop_support::{Comp, assert_tree, compress, tar_bytes, tree};

fn add(src: &str, dest: &str) -> CopyAction {
    let mut a = CopyAction::new(0, src, dest);
    a.attempt_unpack = true;
    a
}

/// Puts `bytes` at `name` in a fresh context and runs `action` on a destination built from
/// `dest_spec`.
fn run_add(
    name: &str,
    bytes: &[u8],
    dest_spec: &str,
    action: CopyAction,
) -> (tempfile::TempDir, Result<(), fileop::FileOpError>) {
    let ctx = tree("");
    std::fs::write(ctx.path().join(name), bytes).unwrap();
    let dest = tree(dest_spec);
    let result =
        fileop::apply(dest.path(), &[SourceRoot::context(ctx.path(), vec![])], &[FileAction::Copy(action)]);
    (dest, result)
}

const SAMPLE: &str = "
    app d 750 10:20
    app/bin d 755
    app/bin/run f 4755 =#!/bin/sh
    app/data f 600 10:20 =payload
    app/link l ->bin/run
    app/hard h 600 10:20 =>app/data
";

const SAMPLE_TREE: &str = "
    app d 750 10:20
    app/bin d 755 0:0
    app/bin/run f 4755 0:0 =#!/bin/sh
    app/data f 600 10:20 #1 =payload
    app/hard f 600 10:20 #1 =payload
    app/link l 0:0 ->bin/run
";

#[test]
fn every_format_is_recognised_by_content() {
    let tar = tar_bytes(SAMPLE);
    // Misleading names on purpose: detection never looks at them.
    let cases = [
        ("plain.zip", Comp::None),
        ("gz.tar", Comp::Gzip),
        ("bz.txt", Comp::Bzip2),
        ("xz.gz", Comp::Xz),
        ("zst", Comp::Zstd),
    ];
    for (name, comp) in cases {
        let (dest, result) = run_add(name, &compress(&tar, comp), "", add(name, "/"));
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_tree(dest.path(), SAMPLE_TREE, name);
    }
}

#[test]
fn files_that_are_not_archives_are_copied() {
    let cases: &[(&str, &[u8])] = &[
        ("notes.tar.gz", b"just text, not gzip"),
        ("empty.tar", b""),
        ("fake.gz", &[0x1f, 0x8b, 0x08, 0, 0, 0]),
        ("zeros.tar", &[0u8; 1024]),
    ];
    for (name, bytes) in cases {
        let (dest, result) = run_add(name, bytes, "", add(name, "/in/"));
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(std::fs::read(dest.path().join("in").join(name)).unwrap(), *bytes, "{name}");
    }
    // COPY (no unpack) keeps even a real archive as a file.
    let tar = tar_bytes("x f =y");
    let mut copy = add("t.tar", "/");
    copy.attempt_unpack = false;
    let (dest, result) = run_add("t.tar", &tar, "", copy);
    result.unwrap();
    assert_eq!(std::fs::read(dest.path().join("t.tar")).unwrap(), tar);
}

#[test]
fn chown_overrides_archive_owners() {
    let mut a = add("t.tgz", "/opt/pkg/");
    a.owner = Some(Owner::Ids { uid: 7, gid: 8 });
    let (dest, result) = run_add("t.tgz", &compress(&tar_bytes(SAMPLE), Comp::Gzip), "", a);
    result.unwrap();
    assert_tree(
        dest.path(),
        "opt d 755 7:8
         opt/pkg d 755 7:8
         opt/pkg/app d 750 7:8
         opt/pkg/app/bin d 755 7:8
         opt/pkg/app/bin/run f 4755 7:8 =#!/bin/sh
         opt/pkg/app/data f 600 7:8 #1 =payload
         opt/pkg/app/hard f 600 7:8 #1 =payload
         opt/pkg/app/link l 7:8 ->bin/run",
        "chown",
    );
}

#[test]
fn extraction_stays_inside_the_destination() {
    // (archive, destination before, ADD destination, expected tree or error)
    let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
        ("../evil f =x", "", "/", Err("outside the extraction root")),
        ("a/../../evil f =x", "", "/", Err("outside the extraction root")),
        ("/abs/file f =x", "", "/", Ok("abs d 755 0:0\nabs/file f 644 0:0 =x")),
        (
            "root l ->/\nroot/etc/passwd f =mine",
            "",
            "/",
            Ok("etc d 755 0:0\netc/passwd f 644 0:0 =mine\nroot l 0:0 ->/"),
        ),
        (
            "up l ->../../../..\nup/escaped f =x",
            "",
            "/sub/",
            Ok("sub d 755 0:0\nsub/escaped f 644 0:0 =x\nsub/up l 0:0 ->../../../.."),
        ),
        (
            // An absolute symlink already in the destination resolves inside the
            // extraction root (the ADD destination), as with a chroot.
            "lnk/file f =x",
            "sub/lnk l ->/target",
            "/sub/",
            Ok("sub d 755 0:0\nsub/lnk l 0:0 ->/target\nsub/target d 755 0:0\nsub/target/file f 644 0:0 =x"),
        ),
        ("h h =>../../etc/passwd", "", "/", Err("outside the extraction root")),
    ];
    for (archive, before, dest_path, want) in cases {
        let (dest, result) = run_add("t.tar", &tar_bytes(archive), before, add("t.tar", dest_path));
        match (want, result) {
            (Ok(want), Ok(())) => assert_tree(dest.path(), want, archive),
            (Err(want), Err(e)) => assert!(e.to_string().contains(want), "{archive}: {e}"),
            (want, got) => panic!("{archive}: want {want:?}, got {got:?}"),
        }
        // Whatever happened, nothing appeared next to the destination.
        let parent = dest.path().parent().unwrap();
        assert!(!parent.join("evil").exists() && !parent.join("escaped").exists(), "{archive}");
    }
}

#[test]
fn existing_entries_are_replaced() {
    let archive = "a d 700\nb f =new\nc l ->b\nd f =file-over-dir";
    let before = "a f 600 =was-a-file\nb d 755\nb/x f 600 =x\nc f 600 =was-file\nd d 755\nd/deep/er f 600 =x";
    let (dest, result) = run_add("t.tar", &tar_bytes(archive), before, add("t.tar", "/"));
    result.unwrap();
    assert_tree(
        dest.path(),
        "a d 700 0:0\nb f 644 0:0 =new\nc l 0:0 ->b\nd f 644 0:0 =file-over-dir",
        "replace",
    );
}

#[test]
fn existing_directories_are_merged_and_take_archive_metadata() {
    let (dest, result) =
        run_add("t.tar", &tar_bytes("etc d 700 3:3\netc/new f =n"), "etc/old f 600 =o", add("t.tar", "/"));
    result.unwrap();
    assert_tree(dest.path(), "etc d 700 3:3\netc/new f 644 0:0 =n\netc/old f 600 0:0 =o", "merge");
}

#[test]
fn corrupt_compressed_archive_is_an_error() {
    // The first header is intact (so it is an archive), the compressed stream then ends.
    let big: String = (0..20_000u64).map(|i| (i * 7919 % 10007).to_string()).collect();
    let gz = compress(&tar_bytes(&format!("big f ={big}")), Comp::Gzip);
    let gz = &gz[..gz.len() / 2];
    let (_dest, result) = run_add("t.tgz", gz, "", add("t.tgz", "/"));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("/t.tgz"), "{err}");
}

#[test]
fn extraction_matches_gnu_tar() {
    // A tree archived by GNU tar and extracted by it (as root, keeping owners and modes)
    // must look the same as after ADD.
    let src = tree(
        "etc d 755
         etc/conf f 640 1:2 =c
         usr/bin d 755
         usr/bin/tool f 4755 =t
         usr/bin/alias l ->tool
         usr/bin/hard h =>usr/bin/tool
         var/cache d 1777
         var/fifo p 600 3:4",
    );
    let archive = tempfile::tempdir().unwrap();
    let tar_path = archive.path().join("t.tar");
    let status = std::process::Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(src.path())
        .arg("-cf")
        .arg(&tar_path)
        .args(["etc", "usr", "var"])
        .status();
    let Ok(status) = status else {
        println!("skipping: no tar binary");
        return;
    };
    assert!(status.success());
    let by_tar = tree("");
    let ok = std::process::Command::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(by_tar.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let (by_add, result) = run_add("t.tar", &std::fs::read(&tar_path).unwrap(), "", add("t.tar", "/"));
    result.unwrap();
    assert_eq!(fileop_support::listing(by_add.path()), fileop_support::listing(by_tar.path()));
}
