//! Content checksums: which changes to a source change the digest of a selection, and
//! that a copy's selector covers what the copy reads (a different copy result always means
//! a different digest).

mod fileop_support;

use cache::checksum::{self, ChecksumCache, ChecksumError, Selector};
use cache::fileop::{self, CopyAction, FileAction, SourceRoot};
use fileop_support::{build, listing, tree};
use std::path::Path;

const BASE: &str = "
    app d 755
    app/main.go f 644 =package main
    app/util.go f 644 =package util
    app/README f 644 =readme
    app/link l ->main.go
    app/sub d 755
    app/sub/x.txt f 600 =x
    app/node_modules/dep.js f 644 =dep
    other f 644 =unselected
    linked l ->app/main.go
";

fn touch(p: &Path) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 12_345, tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: 12_345, tv_nsec: 0 },
    };
    rustix::fs::utimensat(rustix::fs::CWD, p, &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

struct Case {
    name: &'static str,
    copy: CopyAction,
    context: bool,
    ignore: &'static [&'static str],
    mutate: fn(&Path),
    changed: bool,
}

fn copy(src: &str) -> CopyAction {
    CopyAction::new(0, src, "/dst/")
}

fn with(mut a: CopyAction, f: impl FnOnce(&mut CopyAction)) -> CopyAction {
    f(&mut a);
    a
}

fn cases() -> Vec<Case> {
    let case = |name, copy, mutate, changed| Case { name, copy, context: true, ignore: &[], mutate, changed };
    vec![
        case("touch a selected file", copy("app"), |r| touch(&r.join("app/main.go")), false),
        case("touch a selected directory", copy("app"), |r| touch(&r.join("app/sub")), false),
        case(
            "edit a selected file (same size)",
            copy("app"),
            |r| std::fs::write(r.join("app/main.go"), "package mair").unwrap(),
            true,
        ),
        case(
            "edit an unselected file",
            copy("app"),
            |r| std::fs::write(r.join("other"), "changed").unwrap(),
            false,
        ),
        case("chmod a selected file", copy("app"), |r| chmod(&r.join("app/util.go"), 0o755), true),
        case("chmod a selected directory", copy("app"), |r| chmod(&r.join("app/sub"), 0o700), true),
        case(
            "chmod an unselected file",
            copy("app/main.go"),
            |r| chmod(&r.join("app/util.go"), 0o755),
            false,
        ),
        case(
            "retarget a symlink inside the selection",
            copy("app"),
            |r| {
                std::fs::remove_file(r.join("app/link")).unwrap();
                std::os::unix::fs::symlink("util.go", r.join("app/link")).unwrap();
            },
            true,
        ),
        case(
            "rename a selected file",
            copy("app"),
            |r| std::fs::rename(r.join("app/README"), r.join("app/README.md")).unwrap(),
            true,
        ),
        case(
            "add a file to a selected directory",
            copy("app"),
            |r| std::fs::write(r.join("app/new"), "").unwrap(),
            true,
        ),
        case(
            "add a file next to the selection",
            copy("app"),
            |r| std::fs::write(r.join("new"), "").unwrap(),
            false,
        ),
        case(
            "wildcard: a new match",
            copy("app/*.go"),
            |r| std::fs::write(r.join("app/new.go"), "").unwrap(),
            true,
        ),
        case(
            "wildcard: a new non-match",
            copy("app/*.go"),
            |r| std::fs::write(r.join("app/new.rs"), "").unwrap(),
            false,
        ),
        case(
            "wildcard: edit a non-match",
            copy("app/*.go"),
            |r| std::fs::write(r.join("app/README"), "x").unwrap(),
            false,
        ),
        case(
            "wildcard: edit a match",
            copy("app/*.go"),
            |r| std::fs::write(r.join("app/util.go"), "x").unwrap(),
            true,
        ),
        case(
            "followed symlink: edit its target",
            copy("linked"),
            |r| std::fs::write(r.join("app/main.go"), "x").unwrap(),
            true,
        ),
        case(
            "excluded file edited",
            with(copy("app"), |a| a.exclude_patterns = vec!["node_modules".into()]),
            |r| std::fs::write(r.join("app/node_modules/dep.js"), "x").unwrap(),
            false,
        ),
        case(
            "excluded directory gets a new file",
            with(copy("app"), |a| a.exclude_patterns = vec!["node_modules".into()]),
            |r| std::fs::write(r.join("app/node_modules/more.js"), "x").unwrap(),
            false,
        ),
        case(
            "parents: edit the selected file",
            with(CopyAction::new(0, "app/sub/x.txt", "/"), |a| a.parents = true),
            |r| std::fs::write(r.join("app/sub/x.txt"), "y").unwrap(),
            true,
        ),
        case(
            "parents: edit a sibling",
            with(CopyAction::new(0, "app/sub/x.txt", "/"), |a| a.parents = true),
            |r| std::fs::write(r.join("app/main.go"), "y").unwrap(),
            false,
        ),
        case(
            "parents: chmod a parent directory that the copy recreates",
            with(CopyAction::new(0, "app/sub/x.txt", "/"), |a| a.parents = true),
            |r| chmod(&r.join("app"), 0o700),
            true,
        ),
        Case {
            name: "ignored file edited",
            copy: copy("app"),
            context: true,
            ignore: &["app/README"],
            mutate: |r| std::fs::write(r.join("app/README"), "secret").unwrap(),
            changed: false,
        },
        Case {
            name: "chown in a stage changes the digest",
            copy: copy("app"),
            context: false,
            ignore: &[],
            mutate: |r| std::os::unix::fs::lchown(r.join("app/main.go"), Some(42), Some(43)).unwrap(),
            changed: true,
        },
        Case {
            name: "chown in the build context does not (owners read as 0:0)",
            copy: copy("app"),
            context: true,
            ignore: &[],
            mutate: |r| std::os::unix::fs::lchown(r.join("app/main.go"), Some(42), Some(43)).unwrap(),
            changed: false,
        },
    ]
}

fn copy_listing(source: &SourceRoot, action: &CopyAction) -> String {
    let dest = tree("");
    fileop::apply(dest.path(), std::slice::from_ref(source), &[FileAction::Copy(action.clone())]).unwrap();
    listing(dest.path())
}

#[test]
fn checksum_table() {
    for case in cases() {
        let src = tree(BASE);
        let source = SourceRoot {
            root: src.path().to_path_buf(),
            excludes: case.ignore.iter().map(|s| s.to_string()).collect(),
            reset_owner: case.context,
        };
        let selector = case.copy.selector();
        let cache = ChecksumCache::new();
        let before = checksum::checksum(&source, &selector, &cache).unwrap();
        let copied_before = copy_listing(&source, &case.copy);
        (case.mutate)(src.path());
        let after = checksum::checksum(&source, &selector, &cache).unwrap();
        let copied_after = copy_listing(&source, &case.copy);
        assert_eq!(before != after, case.changed, "case {}: digest changed = {}", case.name, before != after);
        // Soundness: if the copy would produce something else, the key must differ.
        if copied_before != copied_after {
            assert_ne!(before, after, "case {}: copy result changed but the digest did not", case.name);
        }
        // A fresh cache computes the same digest as the warm one.
        assert_eq!(
            checksum::checksum(&source, &selector, &ChecksumCache::new()).unwrap(),
            after,
            "case {}",
            case.name
        );
    }
}

#[test]
fn same_content_same_digest_anywhere() {
    let a = tree(BASE);
    let b = tree(BASE);
    let sel = Selector::path("/app");
    let (ca, cb) = (SourceRoot::context(a.path(), vec![]), SourceRoot::context(b.path(), vec![]));
    let cache = ChecksumCache::new();
    assert_eq!(
        checksum::checksum(&ca, &sel, &cache).unwrap(),
        checksum::checksum(&cb, &sel, &cache).unwrap()
    );
    // Different selections of the same tree differ.
    let whole = checksum::checksum(&ca, &Selector::path("/"), &cache).unwrap();
    assert_ne!(whole, checksum::checksum(&ca, &sel, &cache).unwrap());
}

#[test]
fn errors_and_empty_selections() {
    let src = tree(BASE);
    let ctx = SourceRoot::context(src.path(), vec!["other".into()]);
    let cache = ChecksumCache::new();
    let err = checksum::checksum(&ctx, &Selector::path("missing"), &cache).unwrap_err();
    assert!(
        matches!(err, ChecksumError::NotFound { .. }) && err.to_string() == "\"/missing\": not found",
        "{err}"
    );
    let err = checksum::checksum(&ctx, &Selector::path("other"), &cache).unwrap_err();
    assert!(matches!(err, ChecksumError::NotFound { .. }), "ignored path: {err}");
    let mut wild = Selector::path("nomatch*");
    wild.allow_wildcard = true;
    let empty = checksum::checksum(&ctx, &wild, &cache).unwrap();
    wild.path = "nomatch2*".into();
    assert_eq!(checksum::checksum(&ctx, &wild, &cache).unwrap(), empty);
    let mut bad = Selector::path("app");
    bad.exclude_patterns = vec!["[".into()];
    assert!(matches!(checksum::checksum(&ctx, &bad, &cache), Err(ChecksumError::Pattern(_))));
}

#[test]
fn xattr_changes_change_the_digest() {
    let src = tree("f f 644 =x");
    let file = src.path().join("f");
    let ctx = SourceRoot::context(src.path(), vec![]);
    let sel = Selector::path("f");
    let before = checksum::checksum(&ctx, &sel, &ChecksumCache::new()).unwrap();
    if let Err(e) = rustix::fs::setxattr(&file, "user.k", b"v", rustix::fs::XattrFlags::empty()) {
        println!("skipping: file system without user xattrs ({e})");
        return;
    }
    assert_ne!(before, checksum::checksum(&ctx, &sel, &ChecksumCache::new()).unwrap());
}

#[test]
fn cache_serves_unchanged_entries_and_survives_save_and_load() {
    let src = tree("");
    for i in 0..50 {
        build(src.path(), &format!("d{}/f{i} f 644 =content {i}", i % 5));
    }
    // Entries changed within the last two seconds are never remembered (their timestamps
    // could hide a second change), so let the tree age first.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let ctx = SourceRoot::context(src.path(), vec![]);
    let sel = Selector::path("/");
    let cache = ChecksumCache::new();
    let first = checksum::checksum(&ctx, &sel, &cache).unwrap();
    assert_eq!((cache.hits(), cache.misses()), (0, 56), "50 files, 5 dirs and the root");
    let second = checksum::checksum(&ctx, &sel, &cache).unwrap();
    assert_eq!(first, second);
    assert_eq!((cache.hits(), cache.misses()), (56, 56));

    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("state/checksums");
    cache.save(&path).unwrap();
    let loaded = ChecksumCache::load(&path).unwrap();
    assert_eq!(loaded.len(), 56);
    assert_eq!(checksum::checksum(&ctx, &sel, &loaded).unwrap(), first);
    assert_eq!((loaded.hits(), loaded.misses()), (56, 0));

    // An edit is noticed even though the cache knows the old content.
    std::fs::write(src.path().join("d1/f1"), "content X").unwrap();
    let third = checksum::checksum(&ctx, &sel, &loaded).unwrap();
    assert_ne!(third, first);
    assert_eq!(loaded.misses(), 1, "only the edited file is read again");

    // A damaged cache file is reported, a missing one is empty.
    std::fs::write(&path, b"garbage").unwrap();
    assert!(matches!(ChecksumCache::load(&path), Err(ChecksumError::CorruptCache { .. })));
    assert!(ChecksumCache::load(&file.path().join("nope")).unwrap().is_empty());
}
