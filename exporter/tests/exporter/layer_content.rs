//! What a layer tar contains: order, header fields, whiteouts, links, xattrs; checked with
//! a tar reader, GNU tar's listing and GNU tar's extraction.

use crate::util::{self, require_root};
use exporter::{LayerOptions, export_layer};
use registry::{Compression, MediaType};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

fn expected_order() -> Vec<Vec<u8>> {
    let long = util::long_name();
    let long_dir = long.rsplit_once('/').unwrap().0.to_string();
    let mut names: Vec<Vec<u8>> = [
        "bin/",
        "bin/caf\u{0}",
        "bin/link",
        "bin/tool",
        "bin/tool-hard",
        "deep/",
        &format!("{long_dir}/"),
        &long,
        "dev/",
        "dev/loop0",
        "dev/null",
        "etc/",
        "etc/.wh.removed",
        "etc/passwd",
        "home/",
        "home/big/",
        "home/big/file",
        "run/",
        "run/fifo",
        "tmp/",
        "var/",
        "var/cache/",
        "var/cache/.wh..wh..opq",
        "var/cache/new",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // The fixture's non-UTF-8 name: "caf" + 0xe9.
    names[1] = b"bin/caf\xe9".to_vec();
    names
}

struct Seen {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<Vec<u8>>,
    dev: Option<(u32, u32)>,
    uname: Vec<u8>,
    pax: BTreeMap<String, Vec<u8>>,
}

fn read_entries(tar_bytes: &[u8]) -> Vec<(Vec<u8>, Seen)> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut pax = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                pax.insert(x.key().unwrap().to_string(), x.value_bytes().to_vec());
            }
        }
        let h = e.header();
        let seen = Seen {
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: pax
                .get("uid")
                .map_or_else(|| h.uid().unwrap(), |v| std::str::from_utf8(v).unwrap().parse().unwrap()),
            gid: pax
                .get("gid")
                .map_or_else(|| h.gid().unwrap(), |v| std::str::from_utf8(v).unwrap().parse().unwrap()),
            mtime: h.mtime().unwrap(),
            size: h.size().unwrap(),
            link: e.link_name_bytes().map(|l| l.into_owned()),
            dev: h.device_major().unwrap().map(|m| (m, h.device_minor().unwrap().unwrap())),
            uname: h.username_bytes().unwrap_or_default().to_vec(),
            pax,
        };
        let path = e.path_bytes().into_owned();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.push((path, seen));
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn layer_entries_headers_and_order() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    util::layer_fixture(&layer);
    let (_s, store) = util::store();
    let exported = export_layer(&store, &layer, &LayerOptions::default()).unwrap();
    assert_eq!(exported.blob.media_type, MediaType::OciLayerGzip);
    let tar_bytes = gunzip(&store.read(&exported.blob.digest).unwrap());
    assert_eq!(registry::Digest::of_bytes(&tar_bytes), exported.diff_id);

    let entries = read_entries(&tar_bytes);
    let names: Vec<Vec<u8>> = entries.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        names.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect::<Vec<_>>(),
        expected_order().iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect::<Vec<_>>()
    );
    let by_name: BTreeMap<Vec<u8>, &Seen> = entries.iter().map(|(p, s)| (p.clone(), s)).collect();
    let get = |n: &str| *by_name.get(n.as_bytes()).unwrap_or_else(|| panic!("missing {n}"));

    for (_, s) in &entries {
        assert!(s.uname.is_empty(), "uname must stay empty");
        assert!(!s.pax.contains_key("atime") && !s.pax.contains_key("ctime"));
        assert!(s.pax.keys().all(|k| !k.contains("overlay") && !k.contains("selinux")), "{:?}", s.pax);
    }
    let tool = get("bin/tool");
    assert_eq!(
        (tool.kind, tool.mode, tool.uid, tool.gid, tool.mtime),
        (tar::EntryType::Regular, 0o4755, 1000, 1000, 1_700_000_000)
    );
    let hard = get("bin/tool-hard");
    assert_eq!(
        (hard.kind, hard.link.as_deref(), hard.size),
        (tar::EntryType::Link, Some(&b"bin/tool"[..]), 0)
    );
    let link = get("bin/link");
    assert_eq!((link.kind, link.link.as_deref()), (tar::EntryType::Symlink, Some(&b"tool"[..])));
    for marker in ["etc/.wh.removed", "var/cache/.wh..wh..opq"] {
        let m = get(marker);
        assert_eq!(
            (m.kind, m.mode, m.uid, m.gid, m.mtime, m.size),
            (tar::EntryType::Regular, 0, 0, 0, 0, 0),
            "{marker}"
        );
    }
    assert_eq!((get("dev/null").kind, get("dev/null").dev), (tar::EntryType::Char, Some((1, 3))));
    assert_eq!((get("dev/loop0").kind, get("dev/loop0").dev), (tar::EntryType::Block, Some((7, 0))));
    assert_eq!(get("run/fifo").kind, tar::EntryType::Fifo);
    assert_eq!((get("tmp/").kind, get("tmp/").mode), (tar::EntryType::Directory, 0o1777));
    assert_eq!(
        get("etc/passwd").pax.get("SCHILY.xattr.user.comment").map(Vec::as_slice),
        Some(&b"hello"[..])
    );
    let big = get("home/big/file");
    assert_eq!((big.uid, big.gid), (u64::from(util::BIG_UID), u64::from(util::BIG_UID)));
    assert_eq!(
        get(&util::long_name()).pax.get("path").map(Vec::as_slice),
        Some(util::long_name().as_bytes())
    );
}

#[test]
fn gnu_tar_lists_and_extracts_the_layer() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    util::layer_fixture(&layer);
    let (_s, store) = util::store();
    let exported = export_layer(&store, &layer, &LayerOptions::default()).unwrap();
    let blob = store.path(&exported.blob.digest);

    let listing = util::run("tar", &["--numeric-owner", "-tvf", util::path_str(&blob)]);
    for want in [
        "-rwsr-xr-x 1000/1000",
        "bin/tool-hard link to bin/tool",
        "bin/link -> tool",
        "var/cache/.wh..wh..opq",
        "drwxrwxrwt",
        "prw-r--r--",
        "1,3",
    ] {
        assert!(listing.contains(want), "missing {want:?} in\n{listing}");
    }
    for marker in ["etc/.wh.removed", "var/cache/.wh..wh..opq"] {
        let line = listing.lines().find(|l| l.ends_with(marker)).unwrap();
        assert!(line.starts_with("---------- 0/0 ") && line.contains(" 0 1970-01-01 00:00 "), "{line}");
    }
    assert!(!listing.contains("run/sock"), "sockets are not archived");
    assert!(!listing.lines().any(|l| l.ends_with(" ./")), "root must not be listed");

    let out = dir.path().join("out");
    util::untar(&blob, &out);
    assert_eq!(fs::read(out.join("etc/passwd")).unwrap(), b"root:x:0:0:root:/root:/bin/sh\n");
    assert_eq!(util::get_xattr(&out.join("etc/passwd"), "user.comment").as_deref(), Some(&b"hello"[..]));
    assert!(util::get_xattr(&out.join("etc/passwd"), "trusted.overlay.origin").is_none());
    let tool = fs::metadata(out.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(tool.ino(), fs::metadata(out.join("bin/tool-hard")).unwrap().ino());
    assert_eq!(fs::metadata(out.join("home/big/file")).unwrap().uid(), util::BIG_UID);
    assert_eq!(fs::read(out.join(util::long_name())).unwrap(), b"long\n");
    assert_eq!(fs::read_link(out.join("bin/link")).unwrap().to_str(), Some("tool"));
}

#[test]
fn every_compression_holds_the_same_tar() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    util::layer_fixture(&layer);
    let (_s, store) = util::store();
    // (compression, oci, expected media type, tool that decompresses to stdout)
    let cases = [
        (Compression::Gzip, true, MediaType::OciLayerGzip, Some("gzip")),
        (Compression::Gzip, false, MediaType::DockerLayerGzip, Some("pigz")),
        (Compression::Zstd, false, MediaType::OciLayerZstd, Some("zstd")),
        (Compression::Uncompressed, true, MediaType::OciLayer, None),
        (Compression::Uncompressed, false, MediaType::DockerLayer, None),
    ];
    let mut diff_ids = Vec::new();
    for (compression, oci, media_type, tool) in cases {
        let opts = LayerOptions { compression, oci_media_types: oci, ..LayerOptions::default() };
        let e = export_layer(&store, &layer, &opts).unwrap();
        assert_eq!(e.blob.media_type, media_type);
        assert_eq!(e.blob.size, store.size(&e.blob.digest).unwrap());
        let path = store.path(&e.blob.digest);
        let raw = match tool {
            Some(t) => {
                let out =
                    std::process::Command::new(t).args(["-dc", util::path_str(&path)]).output().unwrap();
                assert!(out.status.success(), "{t} -dc failed");
                out.stdout
            }
            None => fs::read(&path).unwrap(),
        };
        assert_eq!(registry::Digest::of_bytes(&raw), e.diff_id, "{compression:?}");
        diff_ids.push(e.diff_id);
    }
    assert!(diff_ids.windows(2).all(|w| w[0] == w[1]), "the tar must not depend on compression");
}

#[test]
fn bad_levels_and_missing_dirs_are_errors() {
    let (_s, store) = util::store();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (LayerOptions { level: Some(10), ..LayerOptions::default() }, "out of range for gzip"),
        (
            LayerOptions { compression: Compression::Zstd, level: Some(23), ..LayerOptions::default() },
            "out of range for zstd",
        ),
    ];
    for (opts, want) in cases {
        let err = export_layer(&store, dir.path(), &opts).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    let err = export_layer(&store, &dir.path().join("missing"), &LayerOptions::default()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(store.list().unwrap().is_empty(), "a failed export stores nothing");
}

#[test]
fn overlay_redirect_and_metacopy_are_rejected() {
    require_root!();
    for (name, value) in
        [("trusted.overlay.redirect", &b"/elsewhere"[..]), ("trusted.overlay.metacopy", &b""[..])]
    {
        let dir = tempfile::tempdir().unwrap();
        let target = if name.ends_with("redirect") { dir.path().join("d") } else { dir.path().join("f") };
        if name.ends_with("redirect") {
            fs::create_dir(&target).unwrap();
        } else {
            fs::write(&target, b"").unwrap();
        }
        util::set_xattr(&target, name, value);
        let (_s, store) = util::store();
        let err = export_layer(&store, dir.path(), &LayerOptions::default()).unwrap_err().to_string();
        assert!(err.contains("not supported"), "{name}: {err}");
    }
}
