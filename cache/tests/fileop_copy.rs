//! COPY semantics at the file-operation level: one table of (source tree, destination tree,
//! actions) → resulting destination tree or error.

mod fileop_support;

use cache::fileop::{self, CopyAction, FileAction, Mode, Owner, SourceRoot};
use fileop_support::{assert_tree, build, tree};
use std::os::unix::fs::MetadataExt;

enum Want {
    Tree(&'static str),
    Err(&'static str),
}

struct Case {
    name: &'static str,
    src: &'static str,
    /// True: the source is the build context (owners read as 0:0).
    context: bool,
    ignore: &'static [&'static str],
    dest: &'static str,
    actions: Vec<CopyAction>,
    want: Want,
}

fn cp(src: &str, dest: &str) -> CopyAction {
    CopyAction::new(0, src, dest)
}

fn with(mut a: CopyAction, f: impl FnOnce(&mut CopyAction)) -> CopyAction {
    f(&mut a);
    a
}

const DIR_SRC: &str = "
    foo f 600 =hello
    dir d 700
    dir/a f 644 =a
    dir/sub d 750
    dir/sub/b f 600 =b
    dir/ln l ->../foo
";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "file into dir named with trailing slash creates the dir",
            src: "foo f 600 =hello",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("foo", "/app/")],
            want: Want::Tree("app d 755 0:0\napp/foo f 600 0:0 =hello"),
        },
        Case {
            name: "file to a new name, parents created 0755",
            src: "foo f 640 =hello",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("foo", "/x/y/bar")],
            want: Want::Tree("x d 755 0:0\nx/y d 755 0:0\nx/y/bar f 640 0:0 =hello"),
        },
        Case {
            name: "file onto an existing directory lands inside it",
            src: "foo f 600 =hello",
            context: true,
            ignore: &[],
            dest: "app d 711 5:6",
            actions: vec![cp("foo", "/app")],
            want: Want::Tree("app d 711 5:6\napp/foo f 600 0:0 =hello"),
        },
        Case {
            name: "file over an existing file replaces it",
            src: "foo f 600 =new",
            context: true,
            ignore: &[],
            dest: "foo f 644 7:7 =old",
            actions: vec![cp("foo", "/foo")],
            want: Want::Tree("foo f 600 0:0 =new"),
        },
        Case {
            name: "directory copies its contents; the created destination is 0755 root",
            src: DIR_SRC,
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("dir", "/out")],
            want: Want::Tree(
                "out d 755 0:0
                 out/a f 644 0:0 =a
                 out/ln l 0:0 ->../foo
                 out/sub d 750 0:0
                 out/sub/b f 600 0:0 =b",
            ),
        },
        Case {
            name: "directory contents merge into an existing directory, keeping its metadata",
            src: DIR_SRC,
            context: true,
            ignore: &[],
            dest: "out d 711 5:5\nout/keep f 600 5:5 =k\nout/sub d 700 9:9",
            actions: vec![cp("dir/", "/out")],
            want: Want::Tree(
                "out d 711 5:5
                 out/a f 644 0:0 =a
                 out/keep f 600 5:5 =k
                 out/ln l 0:0 ->../foo
                 out/sub d 750 0:0
                 out/sub/b f 600 0:0 =b",
            ),
        },
        Case {
            name: "without dir_copy_contents the directory itself is copied into an existing one",
            src: DIR_SRC,
            context: true,
            ignore: &[],
            dest: "out d 755",
            actions: vec![with(cp("dir", "/out"), |a| a.dir_copy_contents = false)],
            want: Want::Tree(
                "out d 755 0:0
                 out/dir d 700 0:0
                 out/dir/a f 644 0:0 =a
                 out/dir/ln l 0:0 ->../foo
                 out/dir/sub d 750 0:0
                 out/dir/sub/b f 600 0:0 =b",
            ),
        },
        Case {
            name: "a symlink named as source is followed, links inside trees are not",
            src: "foo f 600 =hello\nlink l ->foo\nd d 755\nd/l l ->/foo",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("link", "/x"), cp("d", "/d")],
            want: Want::Tree("d d 755 0:0\nd/l l 0:0 ->/foo\nx f 600 0:0 =hello"),
        },
        Case {
            name: "without follow_symlinks the named symlink is copied as a link",
            src: "foo f 600 =hello\nlink l ->foo",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("link", "/x"), |a| a.follow_symlinks = false)],
            want: Want::Tree("x l 0:0 ->foo"),
        },
        Case {
            name: "hard links inside a copied tree stay hard links",
            src: "d/a f 644 =same\nd/b h =>d/a\nd/c f 644 =other",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("d", "/o")],
            want: Want::Tree(
                "o d 755 0:0\no/a f 644 0:0 #1 =same\no/b f 644 0:0 #1 =same\no/c f 644 0:0 =other",
            ),
        },
        Case {
            name: "missing source",
            src: "foo f 600",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("missing", "/")],
            want: Want::Err("\"/missing\": not found"),
        },
        Case {
            name: "wildcard without a match is an error unless allowed",
            src: "foo f 600",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("nomatch*", "/"), |a| a.allow_empty_wildcard = false)],
            want: Want::Err("\"/nomatch*\": not found"),
        },
        Case {
            name: "wildcard below a missing directory",
            src: "foo f 600",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("nodir/*.go", "/")],
            want: Want::Err("\"/nodir\": not found"),
        },
        Case {
            name: "a file cannot replace a directory inside a copied tree",
            src: "dir/x f 600 =x",
            context: true,
            ignore: &[],
            dest: "out/x d 755",
            actions: vec![cp("dir", "/out")],
            want: Want::Err("/out/x: cannot replace directory with file"),
        },
        Case {
            name: "a directory cannot replace a file",
            src: "dir/x/y f 600 =y",
            context: true,
            ignore: &[],
            dest: "out/x f 600 =old",
            actions: vec![cp("dir", "/out")],
            want: Want::Err("/out/x: cannot copy directory to non-directory"),
        },
        Case {
            name: "always_replace_existing replaces entries of another type",
            src: "dir/x/y f 600 =y\ndir/z f 600 =z",
            context: true,
            ignore: &[],
            dest: "out/x f 600 =old\nout/z/deep f 600 =old",
            actions: vec![with(cp("dir", "/out"), |a| a.always_replace_existing = true)],
            want: Want::Tree(
                "out d 755 0:0
                 out/x d 755 0:0
                 out/x/y f 600 0:0 =y
                 out/z f 600 0:0 =z",
            ),
        },
        Case {
            name: "create_dest_path off: the parent must exist",
            src: "foo f 600",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("foo", "/nodir/foo"), |a| a.create_dest_path = false)],
            want: Want::Err("stat /nodir/foo"),
        },
        Case {
            name: "create_dest_path off: an existing parent is fine",
            src: "foo f 600 =x",
            context: true,
            ignore: &[],
            dest: "d d 755",
            actions: vec![with(cp("foo", "/d/foo"), |a| a.create_dest_path = false)],
            want: Want::Tree("d d 755 0:0\nd/foo f 600 0:0 =x"),
        },
        Case {
            name: "owners: a stage keeps them, the context gives 0:0, --chown overrides both",
            src: "f f 600 100:200 =x\nd d 700 101:201\nd/g f 600 102:202 =y",
            context: false,
            ignore: &[],
            dest: "",
            actions: vec![
                cp("f", "/keep"),
                cp("d", "/dkeep"),
                with(cp("f", "/chown"), |a| a.owner = Some(Owner::Ids { uid: 7, gid: 8 })),
                with(cp("d", "/dchown/"), |a| a.owner = Some(Owner::Ids { uid: 7, gid: 8 })),
            ],
            want: Want::Tree(
                "chown f 600 7:8 =x
                 dchown d 755 7:8
                 dchown/g f 600 7:8 =y
                 dkeep d 755 0:0
                 dkeep/g f 600 102:202 =y
                 keep f 600 100:200 =x",
            ),
        },
        Case {
            name: "owners of context files read as 0:0",
            src: "f f 600 100:200 =x",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("f", "/f")],
            want: Want::Tree("f f 600 0:0 =x"),
        },
        Case {
            name: "--chown names resolve in the destination's passwd and group",
            src: "foo f 600 =x\nbar d 700\nbar/sub f 600 =s",
            context: true,
            ignore: &[],
            dest: "etc/passwd f 644 =root:x:0:0::/root:/bin/sh\\ndaemon:x:1:1::/:/bin/false\\n
                   etc/group f 644 =root:x:0:\\ndaemon:x:1:\\nnobody:x:65534:\\n",
            actions: vec![
                with(cp("foo", "/"), |a| a.owner = Some(Owner::Names { user: "daemon".into(), group: None })),
                with(cp("bar", "/baz"), |a| {
                    a.owner = Some(Owner::Names { user: "1000".into(), group: Some("nobody".into()) })
                }),
            ],
            want: Want::Tree(
                "baz d 755 1000:65534
                 baz/sub f 600 1000:65534 =s
                 etc d 755 0:0
                 etc/group f 644 0:0 =root:x:0:\\ndaemon:x:1:\\nnobody:x:65534:\\n
                 etc/passwd f 644 0:0 =root:x:0:0::/root:/bin/sh\\ndaemon:x:1:1::/:/bin/false\\n
                 foo f 600 1:1 =x",
            ),
        },
        Case {
            name: "--chown with an unknown user name falls back to root like BuildKit",
            src: "foo f 600 =x",
            context: false,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("foo", "/"), |a| {
                a.owner = Some(Owner::Names { user: "nosuch".into(), group: None })
            })],
            want: Want::Tree("foo f 600 0:0 =x"),
        },
        Case {
            name: "--chmod octal applies to every entry and to created parents",
            src: "d/a f 600 =a\nd/s d 700\nd/s/b f 644 =b",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("d", "/p/q/"), |a| a.mode = Some(Mode::Octal(0o750)))],
            want: Want::Tree(
                "p d 750 0:0
                 p/q d 750 0:0
                 p/q/a f 750 0:0 =a
                 p/q/s d 750 0:0
                 p/q/s/b f 750 0:0 =b",
            ),
        },
        Case {
            name: "--chmod symbolic is applied to each entry's own mode",
            src: "d/a f 600 =a\nd/x f 700 =x\nd/s d 700",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("d", "/o"), |a| a.mode = Some(Mode::Symbolic("go+rX".into())))],
            want: Want::Tree("o d 755 0:0\no/a f 644 0:0 =a\no/s d 755 0:0\no/x f 755 0:0 =x"),
        },
        Case {
            name: "include patterns create only the parents of what they select",
            src: "top d 700\ntop/a d 711\ntop/a/b d 750\ntop/a/b/c f 600 =c\ntop/a/b/d f 600 =d\ntop/a/e f 600 =e\ntop/z f 600 =z",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("top", "/o"), |a| a.include_patterns = vec!["a/*/c".into()])],
            want: Want::Tree("o d 755 0:0\no/a d 711 0:0\no/a/b d 750 0:0\no/a/b/c f 600 0:0 =c"),
        },
        Case {
            name: "exclude patterns with an exception",
            src: "top/a.txt f 600 =a\ntop/keep.txt f 600 =k\ntop/b.bin f 600 =b\ntop/sub/c.txt f 600 =c",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("top", "/o"), |a| {
                a.exclude_patterns = vec!["*.txt".into(), "!keep.txt".into()]
            })],
            want: Want::Tree(
                "o d 755 0:0\no/b.bin f 600 0:0 =b\no/keep.txt f 600 0:0 =k\no/sub d 755 0:0\no/sub/c.txt f 600 0:0 =c",
            ),
        },
        Case {
            name: "excluding a directory skips everything in it",
            src: "top/node_modules/x f 600 =x\ntop/src/main.rs f 600 =m",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("top", "/o"), |a| a.exclude_patterns = vec!["node_modules".into()])],
            want: Want::Tree("o d 755 0:0\no/src d 755 0:0\no/src/main.rs f 600 0:0 =m"),
        },
        Case {
            name: "ignored context files do not exist for COPY",
            src: "foo f 600 =f\nsecret f 600 =s\nlogs d 755\nlogs/a f 600 =a\nlogs/keep f 600 =k",
            context: true,
            ignore: &["secret", "logs", "!logs/keep"],
            dest: "",
            actions: vec![cp(".", "/")],
            want: Want::Tree("foo f 600 0:0 =f\nlogs d 755 0:0\nlogs/keep f 600 0:0 =k"),
        },
        Case {
            name: "copying an ignored file by name is not found",
            src: "secret f 600 =s",
            context: true,
            ignore: &["secret"],
            dest: "",
            actions: vec![cp("secret", "/")],
            want: Want::Err("\"/secret\": not found"),
        },
        Case {
            name: "destination symlinks to / or above resolve inside the destination",
            src: "foo f 600 =x",
            context: true,
            ignore: &[],
            dest: "evil l ->/\nevil2 l ->../../../../..\nrel l ->../../etc",
            actions: vec![cp("foo", "/evil/etc/"), cp("foo", "/evil2/top"), cp("foo", "/rel/r")],
            want: Want::Tree(
                "etc d 755 0:0
                 etc/foo f 600 0:0 =x
                 etc/r f 600 0:0 =x
                 evil l 0:0 ->/
                 evil2 l 0:0 ->../../../../..
                 rel l 0:0 ->../../etc
                 top f 600 0:0 =x",
            ),
        },
        Case {
            name: "source symlinks to absolute paths resolve inside the source",
            src: "etc/passwd f 644 =not-the-host\nesc l ->/etc/passwd\nup l ->../../../../etc",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("esc", "/p"), cp("up/passwd", "/q")],
            want: Want::Tree("p f 644 0:0 =not-the-host\nq f 644 0:0 =not-the-host"),
        },
        Case {
            name: "wildcard matches through a symlinked directory prefix",
            src: "real/a.go f 600 =a\nreal/b.txt f 600 =b\nlinkdir l ->real",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("linkdir/*.go", "/o/")],
            want: Want::Tree("o d 755 0:0\no/a.go f 600 0:0 =a"),
        },
        Case {
            name: "wildcards below a symlink to a host directory list the source, not the host",
            src: "etc/passwd f 644 =mine\nlnk l ->/etc",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("lnk/*", "/o/"), with(cp("lnk/*", "/p/"), |a| a.follow_symlinks = false)],
            want: Want::Tree("o d 755 0:0\no/passwd f 644 0:0 =mine"),
        },
        Case {
            name: "special files are recreated",
            src: "d/fifo p 640",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![cp("d", "/o")],
            want: Want::Tree("o d 755 0:0\no/fifo p 640 0:0"),
        },
        Case {
            name: "--parents keeps the source path",
            src: "a d 700\na/b d 750\na/b/c f 600 =c\na/b/d f 600 =d\na/x f 600 =x",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![
                with(cp("a/b/c", "/one/"), |a| a.parents = true),
                with(cp("a/./b/*", "/two/"), |a| a.parents = true),
            ],
            want: Want::Tree(
                "one d 755 0:0
                 one/a d 700 0:0
                 one/a/b d 750 0:0
                 one/a/b/c f 600 0:0 =c
                 two d 755 0:0
                 two/b d 750 0:0
                 two/b/c f 600 0:0 =c
                 two/b/d f 600 0:0 =d",
            ),
        },
        Case {
            name: "--parents with a missing path",
            src: "a/b f 600",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![with(cp("a/nope", "/"), |a| a.parents = true)],
            want: Want::Err("\"/a/nope\": not found"),
        },
        Case {
            name: "a source index out of range",
            src: "",
            context: true,
            ignore: &[],
            dest: "",
            actions: vec![CopyAction::new(3, "x", "/")],
            want: Want::Err("copy source 3 does not exist"),
        },
    ]
}

#[test]
fn copy_table() {
    for case in cases() {
        let src = tree(case.src);
        let dest = tree(case.dest);
        let source = SourceRoot {
            root: src.path().to_path_buf(),
            excludes: case.ignore.iter().map(|s| s.to_string()).collect(),
            reset_owner: case.context,
        };
        let actions: Vec<FileAction> = case.actions.into_iter().map(FileAction::Copy).collect();
        let result = fileop::apply(dest.path(), &[source], &actions);
        match (case.want, result) {
            (Want::Tree(want), Ok(())) => assert_tree(dest.path(), want, case.name),
            (Want::Err(want), Err(e)) => {
                assert!(
                    e.to_string().contains(want),
                    "case {}: error {:?} does not contain {want:?}",
                    case.name,
                    e.to_string()
                )
            }
            (Want::Tree(_), Err(e)) => panic!("case {}: unexpected error {e}", case.name),
            (Want::Err(want), Ok(())) => panic!("case {}: expected error {want:?}, got success", case.name),
        }
    }
}

#[test]
fn times_are_kept_or_overridden() {
    let src = tree("d/a f 600 =a");
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 1_000_000, tv_nsec: 5 },
        last_modification: rustix::fs::Timespec { tv_sec: 2_000_000, tv_nsec: 7 },
    };
    for p in ["d/a", "d"] {
        rustix::fs::utimensat(rustix::fs::CWD, src.path().join(p), &old, rustix::fs::AtFlags::empty())
            .unwrap();
    }
    let dest = tree("");
    let ctx = SourceRoot::context(src.path(), vec![]);
    let mut stamped = CopyAction::new(0, "d", "/t");
    stamped.timestamp = Some(1_700_000_000);
    fileop::apply(
        dest.path(),
        &[ctx],
        &[FileAction::Copy(CopyAction::new(0, "d", "/k")), FileAction::Copy(stamped)],
    )
    .unwrap();
    let m = std::fs::metadata(dest.path().join("k/a")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec(), m.atime()), (2_000_000, 7, 1_000_000));
    // The destination directory takes the source directory's times after its contents.
    assert_eq!(std::fs::metadata(dest.path().join("k")).unwrap().mtime(), 2_000_000);
    for p in ["t", "t/a"] {
        let m = std::fs::metadata(dest.path().join(p)).unwrap();
        assert_eq!((m.mtime(), m.atime()), (1_700_000_000, 1_700_000_000), "{p}");
    }
}

#[test]
fn xattrs_are_copied() {
    let src = tree("f f 600 =x");
    let file = src.path().join("f");
    if let Err(e) = rustix::fs::setxattr(&file, "user.rbuild", b"v1", rustix::fs::XattrFlags::empty()) {
        println!("skipping: file system without user xattrs ({e})");
        return;
    }
    let dest = tree("");
    fileop::apply(
        dest.path(),
        &[SourceRoot::context(src.path(), vec![])],
        &[FileAction::Copy(CopyAction::new(0, "f", "/g"))],
    )
    .unwrap();
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(dest.path().join("g"), "user.rbuild", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v1");
}

#[test]
fn setuid_bits_survive_chown() {
    let src = tree("bin f 4755 =x\nshared d 2775");
    let dest = tree("");
    let mut a = CopyAction::new(0, ".", "/");
    a.owner = Some(Owner::Ids { uid: 3, gid: 4 });
    fileop::apply(dest.path(), &[SourceRoot::new(src.path())], &[FileAction::Copy(a)]).unwrap();
    assert_eq!(fileop_support::stat(&dest.path().join("bin")), (0o4755, 3, 4));
    assert_eq!(fileop_support::stat(&dest.path().join("shared")), (0o2775, 3, 4));
}

#[test]
fn copy_into_nested_existing_tree_from_two_sources() {
    let ctx = tree("app.js f 644 =js");
    let stage = tree("usr/lib/lib.so f 755 3:3 =elf");
    let dest = tree("usr d 755\nusr/lib d 755");
    build(dest.path(), "app d 700");
    let sources = [SourceRoot::context(ctx.path(), vec![]), SourceRoot::new(stage.path())];
    let mut from_stage = CopyAction::new(1, "/usr/lib/lib.so", "/usr/lib/");
    from_stage.follow_symlinks = true;
    fileop::apply(
        dest.path(),
        &sources,
        &[FileAction::Copy(CopyAction::new(0, "app.js", "/app/")), FileAction::Copy(from_stage)],
    )
    .unwrap();
    assert_tree(
        dest.path(),
        "app d 700 0:0
         app/app.js f 644 0:0 =js
         usr d 755 0:0
         usr/lib d 755 0:0
         usr/lib/lib.so f 755 3:3 =elf",
        "two sources",
    );
}

#[test]
fn copying_a_stage_tree_matches_cp_a() {
    // From another stage (owners kept), COPY of a whole tree gives what `cp -a` gives:
    // same types, modes, owners, link targets, hard links and modification times.
    let src = tree(
        "bin d 755
         bin/tool f 4755 =t
         bin/alias l ->tool
         bin/hard h =>bin/tool
         etc d 750 1:2
         etc/conf f 640 1:2 =c
         etc/dangling l ->/nowhere
         tmp d 1777
         var/fifo p 600 3:4
         var/empty d 700",
    );
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 1_000, tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: 2_000, tv_nsec: 0 },
    };
    rustix::fs::utimensat(rustix::fs::CWD, src.path().join("etc/conf"), &old, rustix::fs::AtFlags::empty())
        .unwrap();
    let by_cp = tree("");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(src.path().join("."))
        .arg(by_cp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let by_copy = tree("");
    fileop::apply(
        by_copy.path(),
        &[SourceRoot::new(src.path())],
        &[FileAction::Copy(CopyAction::new(0, "/", "/"))],
    )
    .unwrap();
    assert_eq!(fileop_support::listing(by_copy.path()), fileop_support::listing(by_cp.path()));
    let mtime = |root: &std::path::Path| std::fs::metadata(root.join("etc/conf")).unwrap().mtime();
    assert_eq!((mtime(by_copy.path()), mtime(by_cp.path())), (2_000, 2_000));
}
