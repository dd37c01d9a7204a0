//! mkdir, mkfile and rm: one table of (destination tree, actions) → tree or error.

mod fileop_support;

use cache::fileop::{self, FileAction, Owner};
use fileop_support::{assert_tree, tree};
use std::os::unix::fs::MetadataExt;

fn mkdir(path: &str, mode: u32, parents: bool) -> FileAction {
    FileAction::Mkdir { path: path.into(), mode, make_parents: parents, owner: None, timestamp: None }
}

fn mkfile(path: &str, mode: u32, data: &str) -> FileAction {
    FileAction::Mkfile {
        path: path.into(),
        mode,
        data: data.as_bytes().to_vec(),
        owner: None,
        timestamp: None,
    }
}

fn rm(path: &str, allow_not_found: bool, allow_wildcard: bool) -> FileAction {
    FileAction::Rm { path: path.into(), allow_not_found, allow_wildcard }
}

fn owned(mut a: FileAction, owner: Owner) -> FileAction {
    match &mut a {
        FileAction::Mkdir { owner: o, .. } | FileAction::Mkfile { owner: o, .. } => *o = Some(owner),
        _ => unreachable!("only mkdir and mkfile have owners"),
    }
    a
}

/// (name, destination before, actions, resulting tree or error text)
type OpsCase = (&'static str, &'static str, Vec<FileAction>, Result<&'static str, &'static str>);

#[test]
fn ops_table() {
    let ids = |uid, gid| Owner::Ids { uid, gid };
    let cases: Vec<OpsCase> = vec![
        (
            "mkdir with parents, exact modes",
            "",
            vec![mkdir("/a/b/c", 0o777, true)],
            Ok("a d 777 0:0\na/b d 777 0:0\na/b/c d 777 0:0"),
        ),
        (
            "mkdir without parents",
            "a d 755",
            vec![mkdir("/a/b", 0o700, false)],
            Ok("a d 755 0:0\na/b d 700 0:0"),
        ),
        ("mkdir without parents, missing parent", "", vec![mkdir("/a/b", 0o700, false)], Err("mkdir /a/b")),
        (
            "mkdir of an existing path is fine",
            "a f 600 =x",
            vec![mkdir("/a", 0o700, false)],
            Ok("a f 600 0:0 =x"),
        ),
        (
            "mkdir -p through a file",
            "a f 600 =x",
            vec![mkdir("/a/b", 0o700, true)],
            Err("/a: not a directory"),
        ),
        (
            "mkdir owner on every created dir",
            "x d 755",
            vec![owned(mkdir("/x/y/z", 0o750, true), ids(5, 6))],
            Ok("x d 755 0:0\nx/y d 750 5:6\nx/y/z d 750 5:6"),
        ),
        (
            "mkdir through an absolute symlink",
            "l l ->/real\nreal d 755",
            vec![mkdir("/l/sub", 0o755, false)],
            Ok("l l 0:0 ->/real\nreal d 755 0:0\nreal/sub d 755 0:0"),
        ),
        ("mkfile", "d d 755", vec![mkfile("/d/f", 0o640, "hi")], Ok("d d 755 0:0\nd/f f 640 0:0 =hi")),
        ("mkfile relative path", "", vec![mkfile("f", 0o600, "x")], Ok("f f 600 0:0 =x")),
        ("mkfile owner", "", vec![owned(mkfile("/f", 0o600, "x"), ids(9, 9))], Ok("f f 600 9:9 =x")),
        (
            "mkfile replaces a file",
            "f f 777 4:4 =old",
            vec![mkfile("/f", 0o644, "new")],
            Ok("f f 644 0:0 =new"),
        ),
        (
            "mkfile replaces a fifo without writing into it",
            "f p 644",
            vec![mkfile("/f", 0o644, "new")],
            Ok("f f 644 0:0 =new"),
        ),
        (
            "mkfile through a symlink writes the target",
            "l l ->/t\nt f 600 =old",
            vec![mkfile("/l", 0o600, "new")],
            Ok("l l 0:0 ->/t\nt f 600 0:0 =new"),
        ),
        ("mkfile missing parent", "", vec![mkfile("/no/f", 0o600, "x")], Err("create /no/f")),
        ("mkfile at the root", "", vec![mkfile("/", 0o600, "x")], Err("invalid path")),
        ("mkfile onto a directory", "d d 755", vec![mkfile("/d", 0o600, "x")], Err("rename /d")),
        ("rm a file", "a f 600 =x\nb f 600 =y", vec![rm("/a", false, false)], Ok("b f 600 0:0 =y")),
        ("rm a tree", "d/e/f f 600 =x\nk f 600 =k", vec![rm("/d", false, false)], Ok("k f 600 0:0 =k")),
        ("rm missing", "", vec![rm("/nope", false, false)], Err("\"/nope\": not found")),
        ("rm missing allowed", "", vec![rm("/nope", true, false)], Ok("")),
        (
            "rm removes the link, not its target",
            "t d 755\nt/f f 600 =x\nl l ->/t",
            vec![rm("/l", false, false)],
            Ok("t d 755 0:0\nt/f f 600 0:0 =x"),
        ),
        (
            "rm a dangling link needs allow_not_found",
            "l l ->/nowhere",
            vec![rm("/l", false, false)],
            Err("not found"),
        ),
        ("rm a dangling link", "l l ->/nowhere", vec![rm("/l", true, false)], Ok("")),
        (
            "rm through a symlinked parent",
            "t/f f 600 =x\nl l ->t",
            vec![rm("/l/f", false, false)],
            Ok("l l 0:0 ->t\nt d 755 0:0"),
        ),
        (
            "rm through an escaping symlink stays inside",
            "up l ->../../..\nf f 600 =x",
            vec![rm("/up/f", false, false)],
            Ok("up l 0:0 ->../../.."),
        ),
        (
            "rm wildcard",
            "a.log f 600 =1\nb.log f 600 =2\nc.txt f 600 =3\nd/e.log f 600 =4",
            vec![rm("/*.log", false, true)],
            Ok("c.txt f 600 0:0 =3\nd d 755 0:0\nd/e.log f 600 0:0 =4"),
        ),
        ("rm wildcard without matches", "a f 600 =1", vec![rm("/*.log", false, true)], Ok("a f 600 0:0 =1")),
        ("rm the root", "a f 600 =1", vec![rm("/", true, false)], Err("cannot remove the root")),
    ];
    for (name, before, actions, want) in cases {
        let dest = tree(before);
        match (want, fileop::apply(dest.path(), &[], &actions)) {
            (Ok(want), Ok(())) => assert_tree(dest.path(), want, name),
            (Err(want), Err(e)) => assert!(e.to_string().contains(want), "case {name}: {e}"),
            (want, got) => panic!("case {name}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn timestamps() {
    let dest = tree("");
    fileop::apply(
        dest.path(),
        &[],
        &[
            FileAction::Mkdir {
                path: "/d/e".into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                timestamp: Some(1_000),
            },
            FileAction::Mkfile {
                path: "/f".into(),
                mode: 0o644,
                data: b"x".to_vec(),
                owner: None,
                timestamp: Some(2_000),
            },
        ],
    )
    .unwrap();
    // "/d" got e created inside it after its time was set, like BuildKit.
    assert_eq!(std::fs::metadata(dest.path().join("d/e")).unwrap().mtime(), 1_000);
    assert_eq!(std::fs::metadata(dest.path().join("f")).unwrap().mtime(), 2_000);
}

#[test]
fn mkdir_owner_by_name() {
    let dest = tree("etc/passwd f 644 =app:x:10:20::/:/bin/sh\\n\netc/group f 644 =grp:x:30:\\n");
    let names =
        |user: &str, group: Option<&str>| Owner::Names { user: user.into(), group: group.map(Into::into) };
    fileop::apply(
        dest.path(),
        &[],
        &[
            owned(mkdir("/a", 0o755, false), names("app", None)),
            owned(mkfile("/b", 0o600, ""), names("app", Some("grp"))),
        ],
    )
    .unwrap();
    assert_eq!(fileop_support::stat(&dest.path().join("a")), (0o755, 10, 20));
    assert_eq!(fileop_support::stat(&dest.path().join("b")), (0o600, 10, 30));
}
