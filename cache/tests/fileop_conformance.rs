//! BuildKit's COPY/ADD integration scenarios (`../shared/conformance/builds/*`, from
//! `frontend/dockerfile/dockerfile_{copy,add}_test.go`) restated at the file-operation level:
//! each Dockerfile instruction becomes the copy action the frontend lowers it to (destination
//! already resolved against WORKDIR), and the expectations of `expect.json` are checked on
//! the resulting tree. The contexts are rebuilt here, so the test does not need `../shared`.

mod fileop_support;

use cache::fileop::{self, CopyAction, FileAction, Mode, Owner, SourceRoot};
use fileop_support::{Comp, assert_tree, compress, listing, tar_bytes, tree};
use std::path::Path;

fn cp(src: &str, dest: &str) -> CopyAction {
    CopyAction::new(0, src, dest)
}

fn add(src: &str, dest: &str) -> CopyAction {
    let mut a = CopyAction::new(0, src, dest);
    a.attempt_unpack = true;
    a
}

fn with(mut a: CopyAction, f: impl FnOnce(&mut CopyAction)) -> CopyAction {
    f(&mut a);
    a
}

fn run(dest: &Path, sources: &[SourceRoot], actions: Vec<CopyAction>) {
    let actions: Vec<FileAction> = actions.into_iter().map(FileAction::Copy).collect();
    fileop::apply(dest, sources, &actions).unwrap();
}

fn context(spec: &str) -> (tempfile::TempDir, SourceRoot) {
    let dir = tree(spec);
    let root = SourceRoot::context(dir.path(), vec![]);
    (dir, root)
}

fn read(dest: &Path, p: &str) -> String {
    std::fs::read_to_string(dest.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn copy_wildcards() {
    let (_c, ctx) = context(
        "Dockerfile f 600 =FROM scratch
         foo.go f 600 =foo-contents
         bar.go f 600 =bar-contents
         sub d 700
         sub/dir1 d 700
         sub/dir1/dir2 d 700
         sub/dir1/dir2/foo f 600 =foo-contents",
    );
    let dest = tree("");
    run(
        dest.path(),
        &[ctx],
        vec![
            cp("*.go", "/gofiles/"),
            cp("f*.go", "/foo2.go"),
            cp("sub/*", "/subdest/"),
            cp("sub/*/dir2/foo", "/subdest2/"),
            cp("sub/*/dir2/foo", "/subdest3/bar"),
            cp(".", "/all/"),
            cp("sub/dir1/", "/subdest4"),
            cp("sub/dir1/.", "/subdest5"),
            cp("sub/dir1", "/subdest6"),
        ],
    );
    assert_tree(
        dest.path(),
        "all d 755 0:0
         all/Dockerfile f 600 0:0 =FROM scratch
         all/bar.go f 600 0:0 =bar-contents
         all/foo.go f 600 0:0 =foo-contents
         all/sub d 700 0:0
         all/sub/dir1 d 700 0:0
         all/sub/dir1/dir2 d 700 0:0
         all/sub/dir1/dir2/foo f 600 0:0 =foo-contents
         foo2.go f 600 0:0 =foo-contents
         gofiles d 755 0:0
         gofiles/bar.go f 600 0:0 =bar-contents
         gofiles/foo.go f 600 0:0 =foo-contents
         subdest d 755 0:0
         subdest/dir2 d 700 0:0
         subdest/dir2/foo f 600 0:0 =foo-contents
         subdest2 d 755 0:0
         subdest2/foo f 600 0:0 =foo-contents
         subdest3 d 755 0:0
         subdest3/bar f 600 0:0 =foo-contents
         subdest4 d 755 0:0
         subdest4/dir2 d 700 0:0
         subdest4/dir2/foo f 600 0:0 =foo-contents
         subdest5 d 755 0:0
         subdest5/dir2 d 700 0:0
         subdest5/dir2/foo f 600 0:0 =foo-contents
         subdest6 d 755 0:0
         subdest6/dir2 d 700 0:0
         subdest6/dir2/foo f 600 0:0 =foo-contents",
        "copy-wildcards",
    );
}

#[test]
fn copy_symlinks() {
    let (_c, ctx) = context(
        "bar f 600 =bar-contents
         foo l ->bar
         sub/lfile f 600 =lfile-contents
         sub/l0 l ->subfile
         sub/subfile f 600 =subfile-contents
         sub/l1 l ->second
         sub/second l ->baz
         sub/baz f 600 =baz-contents",
    );
    let dest = tree("");
    run(dest.path(), &[ctx], vec![cp("foo", "/"), cp("sub/l*", "/alllinks/")]);
    assert_tree(
        dest.path(),
        "alllinks d 755 0:0
         alllinks/l0 f 600 0:0 =subfile-contents
         alllinks/l1 f 600 0:0 =baz-contents
         alllinks/lfile f 600 0:0 =lfile-contents
         foo f 600 0:0 =bar-contents",
        "copy-symlinks",
    );
}

#[test]
fn copy_parents() {
    let (_c, ctx) = context(
        "Dockerfile f 600 =x
         foo1 d 700
         foo1/foo2 d 700
         foo1/foo2/bar f 600 =testing
         foo1/foo2/baz f 600 =testing2",
    );
    // WORKDIR /test made the directory before the second COPY.
    let dest = tree("");
    let parents = |src: &str, dest: &str| with(cp(src, dest), |a| a.parents = true);
    run(dest.path(), std::slice::from_ref(&ctx), vec![parents("foo1/foo2/bar", "/")]);
    fileop::apply(
        dest.path(),
        &[ctx],
        &[
            FileAction::Mkdir {
                path: "/test".into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                timestamp: None,
            },
            FileAction::Copy(parents("foo1/foo2/ba*", "/test/")),
        ],
    )
    .unwrap();
    assert_tree(
        dest.path(),
        "foo1 d 700 0:0
         foo1/foo2 d 700 0:0
         foo1/foo2/bar f 600 0:0 =testing
         test d 755 0:0
         test/foo1 d 700 0:0
         test/foo1/foo2 d 700 0:0
         test/foo1/foo2/bar f 600 0:0 =testing
         test/foo1/foo2/baz f 600 0:0 =testing2",
        "copy-parents",
    );
}

const EXCLUDE_CTX: &str = "
    dir1 d 777
    dir2 d 777
    dir3 d 777
    dir4 d 777
    dir1/file-101.png f 600 =2
    dir1/file-102.txt f 600 =3
    dir1/file-103.jpeg f 600 =4
    dir2/file-201.pdf f 600 =6
    dir2/file-202.jpeg f 600 =7
    dir2/file-203.png f 600 =8
    dir3/file-301.mp3 f 600 =9
    dir3/file-302.mpeg f 600 =10
    dir4/file-401.txt f 600 =11
    dir4/file-402.txt l ->file-401.txt
    dir4/file-403.txt l ->file-404.txt
";

#[test]
fn copy_exclude() {
    let (_c, ctx) = context(EXCLUDE_CTX);
    let ex = |a: CopyAction, patterns: &[&str]| {
        with(a, |a| a.exclude_patterns = patterns.iter().map(|s| s.to_string()).collect())
    };
    let builders: Vec<(CopyAction, &str)> = vec![
        (
            ex(cp(".", "/1"), &["*/*.png", "*/*.jpeg"]),
            "1 d 755 0:0
             1/dir1 d 777 0:0
             1/dir1/file-102.txt f 600 0:0 =3
             1/dir2 d 777 0:0
             1/dir2/file-201.pdf f 600 0:0 =6
             1/dir3 d 777 0:0
             1/dir3/file-301.mp3 f 600 0:0 =9
             1/dir3/file-302.mpeg f 600 0:0 =10
             1/dir4 d 777 0:0
             1/dir4/file-401.txt f 600 0:0 =11
             1/dir4/file-402.txt l 0:0 ->file-401.txt
             1/dir4/file-403.txt l 0:0 ->file-404.txt",
        ),
        (
            ex(cp(".", "/2"), &["*/*.pdf", "*/*.txt"]),
            "2 d 755 0:0
             2/dir1 d 777 0:0
             2/dir1/file-101.png f 600 0:0 =2
             2/dir1/file-103.jpeg f 600 0:0 =4
             2/dir2 d 777 0:0
             2/dir2/file-202.jpeg f 600 0:0 =7
             2/dir2/file-203.png f 600 0:0 =8
             2/dir3 d 777 0:0
             2/dir3/file-301.mp3 f 600 0:0 =9
             2/dir3/file-302.mpeg f 600 0:0 =10
             2/dir4 d 777 0:0",
        ),
        (ex(add("dir3/", "/3/"), &["*.mp3"]), "3 d 755 0:0\n3/file-302.mpeg f 600 0:0 =10"),
        (
            ex(cp("dir*", "/4/"), &["*.mp3", "*.jpeg", "*.png", "*.pdf", "*.txt"]),
            "4 d 755 0:0\n4/file-302.mpeg f 600 0:0 =10",
        ),
        (
            ex(add("dir*", "/5"), &["*.mp*", "*.jpeg", "*.png", "*.pdf"]),
            "5 d 755 0:0
             5/file-102.txt f 600 0:0 =3
             5/file-401.txt f 600 0:0 =11
             5/file-402.txt l 0:0 ->file-401.txt
             5/file-403.txt l 0:0 ->file-404.txt",
        ),
        (ex(add("dir*", "/6"), &["*"]), "6 d 755 0:0"),
    ];
    for (i, (action, want)) in builders.into_iter().enumerate() {
        let dest = tree("");
        run(dest.path(), std::slice::from_ref(&ctx), vec![action]);
        assert_tree(dest.path(), want, &format!("copy-exclude builder{}", i + 1));
    }
}

#[test]
fn copy_empty_wildcard() {
    let (_c, ctx) = context("Dockerfile f 600 =x\nfoo f 600 =contents0");
    let dest = tree("");
    run(dest.path(), &[ctx], vec![cp("foo", "/"), cp("nomatch*", "/")]);
    assert_tree(dest.path(), "foo f 600 0:0 =contents0", "copy-empty-wildcard");
}

#[test]
fn symlink_destination() {
    let (c, ctx) = context("foo f 600 =content0");
    std::fs::write(c.path().join("t.tar"), tar_bytes("symlink l ->../tmp/symlink-target")).unwrap();
    let dest = tree("");
    run(dest.path(), &[ctx], vec![add("t.tar", "/"), cp("foo", "/symlink/")]);
    assert_tree(
        dest.path(),
        "symlink l 0:0 ->../tmp/symlink-target
         tmp d 755 0:0
         tmp/symlink-target d 755 0:0
         tmp/symlink-target/foo f 600 0:0 =content0",
        "symlink-destination",
    );
}

#[test]
fn add_archive() {
    let tar = tar_bytes("foo f 644 =content0");
    let runs: &[(&str, Comp, bool, &str)] = &[
        ("t.tar", Comp::None, true, "foo f 644 0:0 =content0"),
        ("t.tar.gz", Comp::Gzip, true, "foo f 644 0:0 =content0"),
    ];
    for (name, comp, unpack, want) in runs {
        let (c, ctx) = context("");
        std::fs::write(c.path().join(name), compress(&tar, *comp)).unwrap();
        let dest = tree("");
        run(dest.path(), &[ctx], vec![with(add(name, "/"), |a| a.attempt_unpack = *unpack)]);
        assert_tree(dest.path(), want, name);
    }
    // ADD --unpack=false and COPY keep the archive as a file.
    let (c, ctx) = context("");
    let gz = compress(&tar, Comp::Gzip);
    std::fs::write(c.path().join("t.tar.gz"), &gz).unwrap();
    let dest = tree("");
    run(dest.path(), &[ctx], vec![cp("t.tar.gz", "/")]);
    assert_eq!(std::fs::read(dest.path().join("t.tar.gz")).unwrap(), gz);
    assert!(!dest.path().join("foo").exists());
}

#[test]
fn add_archive_implied_parent_dir() {
    let (c, ctx) = context("");
    let tar = tar_bytes("etc/dnf d 755\netc/dnf/dnf.conf f 644 =content0");
    std::fs::write(c.path().join("t.tar.gz"), compress(&tar, Comp::Gzip)).unwrap();
    let dest = tree("");
    run(dest.path(), &[ctx], vec![add("t.tar.gz", "/")]);
    assert_tree(
        dest.path(),
        "etc d 755 0:0\netc/dnf d 755 0:0\netc/dnf/dnf.conf f 644 0:0 =content0",
        "add-archive-implied-parent-dir",
    );
}

#[test]
fn add_archive_through_absolute_symlink() {
    let (c, ctx) = context("");
    std::fs::write(c.path().join("rootfs.tar"), tar_bytes("run d 755\nvar d 755\nvar/run l ->/run")).unwrap();
    std::fs::write(
        c.path().join("payload.tar"),
        tar_bytes(
            "var/run/act d 755
             var/run/act/actions d 755
             var/run/act/actions/broad d 755
             var/run/act/actions/broad/.git d 755
             var/run/act/actions/broad/.git/HEAD f 644 =ref: refs/heads/main\\n
             var/run/act/actions/broad/.git/HEAD.link h =>var/run/act/actions/broad/.git/HEAD",
        ),
    )
    .unwrap();
    let dest = tree("");
    run(dest.path(), &[ctx], vec![add("rootfs.tar", "/"), add("payload.tar", "/")]);
    assert_tree(
        dest.path(),
        "run d 755 0:0
         run/act d 755 0:0
         run/act/actions d 755 0:0
         run/act/actions/broad d 755 0:0
         run/act/actions/broad/.git d 755 0:0
         run/act/actions/broad/.git/HEAD f 644 0:0 #1 =ref: refs/heads/main\\n
         run/act/actions/broad/.git/HEAD.link f 644 0:0 #1 =ref: refs/heads/main\\n
         var d 755 0:0
         var/run l 0:0 ->/run",
        "add-archive-through-absolute-symlink",
    );
}

#[test]
fn add_chown_archive() {
    let (c, ctx) = context("");
    std::fs::write(c.path().join("t.tar"), tar_bytes("foo f 644 =content0")).unwrap();
    let dest = tree("");
    run(
        dest.path(),
        &[ctx],
        vec![with(add("t.tar", "/out/"), |a| a.owner = Some(Owner::Ids { uid: 100, gid: 200 }))],
    );
    assert_tree(dest.path(), "out d 755 100:200\nout/foo f 644 100:200 =content0", "add-chown-archive");
}

#[test]
fn copy_chmod() {
    let (_c, ctx) = context("foo f 600 =foo\nbar f 700 =bar");
    let dest = tree("");
    let chmod = |src: &str, dest: &str, mode: u32| with(cp(src, dest), |a| a.mode = Some(Mode::Octal(mode)));
    run(
        dest.path(),
        &[ctx],
        vec![
            chmod("foo", "/", 0o644),
            chmod("bar", "/baz", 0o777),
            chmod("foo", "/foobis", 0),
            chmod("foo", "/parent/foo", 0o777),
            chmod("foo", "/parent/sub/foo", 0o770),
            with(cp("foo", "/footer"), |a| a.mode = Some(Mode::parse("755").unwrap())),
        ],
    );
    assert_tree(
        dest.path(),
        "baz f 777 0:0 =bar
         foo f 644 0:0 =foo
         foobis f 0 0:0 =foo
         footer f 755 0:0 =foo
         parent d 777 0:0
         parent/foo f 777 0:0 =foo
         parent/sub d 770 0:0
         parent/sub/foo f 770 0:0 =foo",
        "copy-chmod",
    );
}

const BUSYBOX_ACCOUNTS: &str = "
    etc/passwd f 644 =root:x:0:0:root:/root:/bin/sh\\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\\nnobody:x:65534:65534:nobody:/home:/bin/false\\n
    etc/group f 644 =root:x:0:\\ndaemon:x:1:\\nnobody:x:65534:\\n
";

#[test]
fn copy_chown() {
    let (_c, ctx) = context("foo f 600 =foo\nbar d 700\nbar/sub f 600 =sub");
    let dest = tree(BUSYBOX_ACCOUNTS);
    let names = |u: &str, g: Option<&str>| Some(Owner::Names { user: u.into(), group: g.map(Into::into) });
    run(
        dest.path(),
        &[ctx],
        vec![
            with(cp("foo", "/"), |a| a.owner = names("daemon", None)),
            with(cp("bar", "/baz"), |a| a.owner = names("1000", Some("nobody"))),
            with(cp("foo", "/foobis"), |a| a.owner = names("1000", Some("nobody"))),
        ],
    );
    let owner = |p: &str| fileop_support::stat(&dest.path().join(p));
    assert_eq!(owner("foo"), (0o600, 1, 1));
    assert_eq!(owner("baz/sub"), (0o600, 1000, 65534));
    assert_eq!(owner("foobis"), (0o600, 1000, 65534));
}

#[test]
fn copy_chown_existing_dir() {
    let stage = tree(
        "file f 644 100:200 =
         dir d 755 100:200
         dir/subdir d 755 101:201
         dir/subdir/nestedfile f 644 102:202 =",
    );
    let base = "existingdir d 755 500:600
                existingdir/existingsubdir d 755 501:601
                existingdir/existingfile f 644 501:601 =";
    let variants: &[(Option<Owner>, &str)] = &[
        (
            None,
            "dir d 755 0:0
             dir/subdir d 755 101:201
             dir/subdir/nestedfile f 644 102:202 =
             existingdir d 755 500:600
             existingdir/existingfile f 644 501:601 =
             existingdir/existingsubdir d 755 501:601
             existingdir/subdir d 755 101:201
             existingdir/subdir/nestedfile f 644 102:202 =
             file f 644 100:200 =",
        ),
        (
            Some(Owner::Ids { uid: 300, gid: 400 }),
            "dir d 755 300:400
             dir/subdir d 755 300:400
             dir/subdir/nestedfile f 644 300:400 =
             existingdir d 755 500:600
             existingdir/existingfile f 644 501:601 =
             existingdir/existingsubdir d 755 501:601
             existingdir/subdir d 755 300:400
             existingdir/subdir/nestedfile f 644 300:400 =
             file f 644 300:400 =",
        ),
    ];
    for (owner, want) in variants {
        let dest = tree(base);
        let o = |a: CopyAction| with(a, |a| a.owner = owner.clone());
        run(
            dest.path(),
            &[SourceRoot::new(stage.path())],
            vec![o(cp("/file", "/")), o(cp("/dir", "/dir")), o(cp("/dir/.", "/existingdir"))],
        );
        assert_tree(dest.path(), want, &format!("copy-chown-existing-dir {owner:?}"));
    }
}

#[test]
fn copy_relative_workdir() {
    // Destinations as the frontend resolves them against each WORKDIR.
    let (_c, ctx) = context("Dockerfile f 600 =x\nfoo f 600 =hello");
    let dest = tree("test1/test2 d 755");
    run(
        dest.path(),
        &[ctx],
        vec![
            cp("foo", "/test1/test2/"),
            with(add("foo", "/test1/test2/bar/baz"), |_| {}),
            cp("foo", "/test1/test2/bar/baz2"),
            cp("foo", "/test1/"),
            cp("foo", "/test3/"),
            cp(".", "/test4/"),
            cp("foo", "/test5/"),
        ],
    );
    for p in [
        "test1/test2/foo",
        "test1/test2/bar/baz",
        "test1/test2/bar/baz2",
        "test1/foo",
        "test3/foo",
        "test4/foo",
        "test5/foo",
    ] {
        assert_eq!(read(dest.path(), p), "hello", "{p}");
    }
}

#[test]
fn copy_empty_and_dot_dest_dirs() {
    // `COPY testfile $empty` (WORKDIR /) and `COPY --link testfile .` (WORKDIR /var/www,
    // onto an empty layer).
    let (_c, ctx) = context("testfile f 600 =contents0");
    for (dest_path, file) in
        [("/", "testfile"), ("/var/www/", "var/www/testfile"), ("/var/www/.", "var/www/testfile")]
    {
        let dest = tree("");
        run(dest.path(), std::slice::from_ref(&ctx), vec![cp("testfile", dest_path)]);
        assert_eq!(read(dest.path(), file), "contents0", "{dest_path}");
    }
}

#[test]
fn copy_through_symlink_multistage() {
    let stage = tree("out/sub/foo f 644 =data\nsub l ->/out/sub\nsub2 l ->out/sub");
    let dest = tree("");
    run(dest.path(), &[SourceRoot::new(stage.path())], vec![cp("/sub/foo", "/"), cp("/sub2/foo", "/bar")]);
    assert_tree(dest.path(), "bar f 644 0:0 =data\nfoo f 644 0:0 =data", "copy-through-symlink-multistage");
}

#[test]
fn dockerignore() {
    let c = tree(
        "Dockerfile f 600 =x
         foo f 600 =foo-contents
         bar f 600 =bar-contents
         baz f 600 =baz-contents
         bay f 600 =bay-contents
         .dockerignore f 600 =ba*\\nDockerfile\\n!bay\\n.dockerignore",
    );
    let ignore = ["ba*", "Dockerfile", "!bay", ".dockerignore"].map(String::from).to_vec();
    let dest = tree("");
    run(dest.path(), &[SourceRoot::context(c.path(), ignore)], vec![cp(".", "/")]);
    assert_eq!(listing(dest.path()), "bay f 600 0:0 =bay-contents\nfoo f 600 0:0 =foo-contents\n");
}

#[test]
fn copy_heredoc() {
    // The frontend writes each heredoc with mkfile (0644) into an empty layer and copies it
    // from there; the destination here is the build stage (WORKDIR /dest).
    let heredoc = |name: &str, data: &str| {
        let dir = tree("");
        let mkfile = FileAction::Mkfile {
            path: format!("/{name}"),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
            owner: None,
            timestamp: None,
        };
        fileop::apply(dir.path(), &[], &[mkfile]).unwrap();
        let root = SourceRoot::new(dir.path());
        (dir, root)
    };
    let (_a, single) = heredoc("EOF", "single file\n");
    let (_b, first) = heredoc("EOF", "first file\n");
    let (_c, second) = heredoc("EOF2", "second file\n");
    let (_d, dummy) = heredoc("EOF", "dummy content\n");
    let dest = tree("etc d 755\ndest d 755\npermfiles d 755");
    std::fs::write(
        dest.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dest.path().join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
    let sources = [single, first, second, dummy];
    let from = |i: usize, src: &str, dest: &str| CopyAction::new(i, src, dest);
    let actions = vec![
        from(0, "/EOF", "/dest/single"),
        from(1, "/EOF", "/dest/double/"),
        from(2, "/EOF2", "/dest/double/"),
        with(from(3, "/EOF", "/permfiles/all"), |a| a.mode = Some(Mode::Octal(0o777))),
        with(from(3, "/EOF", "/permfiles/rw"), |a| a.mode = Some(Mode::parse("0644").unwrap())),
        with(from(3, "/EOF", "/permfiles/owned"), |a| {
            a.owner = Some(Owner::Names { user: "user".into(), group: Some("user".into()) })
        }),
    ];
    run(dest.path(), &sources, actions);
    assert_eq!(read(dest.path(), "dest/single"), "single file\n");
    assert_eq!(read(dest.path(), "dest/double/EOF"), "first file\n");
    assert_eq!(read(dest.path(), "dest/double/EOF2"), "second file\n");
    let stat = |p: &str| fileop_support::stat(&dest.path().join(p));
    assert_eq!(stat("permfiles/all").0, 0o777);
    assert_eq!(stat("permfiles/rw").0, 0o644);
    assert_eq!(stat("permfiles/owned"), (0o644, 1000, 1000));
}
