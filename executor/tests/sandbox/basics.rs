//! Exit status, output streaming, environment, working directory, user, hostname.

use executor::{ExecutorError, ExitStatus, OutputStream};
use tokio_util::sync::CancellationToken;

use crate::harness::Sandbox;
use crate::require_root;

#[tokio::test]
async fn exit_status_is_exact() {
    require_root!();
    let sb = Sandbox::new();
    let cases = [
        ("true", ExitStatus::Code(0)),
        ("exit 3", ExitStatus::Code(3)),
        ("exit 255", ExitStatus::Code(255)),
        ("kill -KILL $$", ExitStatus::Signal(9)),
        ("kill -TERM $$", ExitStatus::Signal(15)),
    ];
    for (script, want) in cases {
        let ran = sb.run(sb.spec(script)).await;
        assert_eq!(ran.outcome().exit, want, "{script}");
    }
}

#[tokio::test]
async fn output_is_streamed_while_running() {
    require_root!();
    let sb = Sandbox::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = sb.spec("echo first; echo oops >&2; sleep 2; echo second");
    let run = sb.executor.run(spec, tx, CancellationToken::new());
    tokio::pin!(run);
    // "first" must arrive long before the command ends (stderr may come before it: the
    // two pipes are read independently).
    let mut early = Vec::new();
    while !early.iter().any(|(s, d): &(OutputStream, Vec<u8>)| *s == OutputStream::Stdout && d == b"first\n")
    {
        tokio::select! {
            chunk = rx.recv() => { let c = chunk.unwrap(); early.push((c.stream, c.data)); }
            _ = &mut run => panic!("run ended before streaming anything"),
        }
    }
    let outcome = run.await.unwrap();
    assert!(outcome.exit.success());
    let mut rest: Vec<(OutputStream, String)> =
        early.into_iter().map(|(s, d)| (s, String::from_utf8(d).unwrap())).collect();
    while let Ok(c) = rx.try_recv() {
        rest.push((c.stream, String::from_utf8(c.data).unwrap()));
    }
    assert!(rest.contains(&(OutputStream::Stderr, "oops\n".to_owned())), "{rest:?}");
    assert!(rest.contains(&(OutputStream::Stdout, "second\n".to_owned())), "{rest:?}");
}

#[tokio::test]
async fn stdin_is_dev_null_and_sigpipe_is_default() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.sh("cat; echo eof; yes | head -n 2").await;
    assert_eq!(out, "eof\ny\ny\n");
    // Checked on the command itself: busybox sh ignores SIGQUIT for its children.
    let mut spec = sb.spec("");
    spec.args = vec!["/bin/grep".into(), "SigIgn".into(), "/proc/self/status".into()];
    assert_eq!(sb.run(spec).await.ok(), "SigIgn:\t0000000000000000\n");
}

#[tokio::test]
async fn env_and_cwd() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("pwd; echo $FOO; echo $HOME; ls -ld . | cut -c1-10");
    spec.env.push("FOO=bar baz".into());
    spec.cwd = "/work/dir".into();
    let out = sb.run(spec).await.ok().to_owned();
    assert_eq!(out, "/work/dir\nbar baz\n/root\ndrwxr-xr-x\n");
    // The created working directory is kept in the layer, like BuildKit's WORKDIR.
    assert!(sb.path("upper/work/dir").is_dir());
}

#[tokio::test]
async fn users_resolve_against_the_rootfs() {
    require_root!();
    let sb = Sandbox::new();
    let cases = [
        ("", "0 0 0 10 /root"),
        ("root", "0 0 0 10 /root"),
        ("app", "1000 1000 1000 10 29 /home/app"),
        ("1000", "1000 1000 1000 10 29 /home/app"),
        ("app:wheel", "1000 10 10 /home/app"),
        ("1000:4242", "1000 4242 4242 /home/app"),
        ("4242:4343", "4242 4343 4343 /"),
    ];
    for (user, want) in cases {
        let mut spec = sb.spec("echo $(id -u) $(id -g) $(id -G) $HOME");
        spec.user = user.into();
        let out = sb.run(spec).await.ok().to_owned();
        assert_eq!(out.trim(), want, "user {user:?}");
    }
    let mut spec = sb.spec("true");
    spec.user = "nobody".into();
    match sb.run(spec).await.result {
        Err(ExecutorError::User { user, reason }) => {
            assert_eq!(user, "nobody");
            assert!(reason.contains("no matching entries"), "{reason}");
        }
        other => panic!("expected a user error, got {other:?}"),
    }
}

#[tokio::test]
async fn hostname_and_hosts() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("hostname; cat /etc/hostname; cat /etc/hosts");
    spec.hostname = "builder".into();
    spec.extra_hosts = vec![("db.local".into(), "10.1.2.3".into())];
    let out = sb.run(spec).await.ok().to_owned();
    assert_eq!(
        out,
        "builder\nbuilder\n127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tdb.local\n"
    );
    assert_eq!(sb.sh("hostname").await, "buildkitsandbox\n");
    // Read-only, as in BuildKit (the generated files are shared between runs).
    assert_eq!(sb.sh("echo x >> /etc/hosts 2>/dev/null; echo $?").await, "1\n");
}

#[tokio::test]
async fn missing_command_is_an_exec_error() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("");
    spec.args = vec!["no-such-tool".into()];
    match sb.run(spec).await.result {
        Err(ExecutorError::Exec { command, reason }) => {
            assert_eq!(command, "no-such-tool");
            assert!(reason.contains("executable file not found"), "{reason}");
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
    let mut spec = sb.spec("");
    spec.args = vec!["/etc/passwd".into()];
    assert!(matches!(sb.run(spec).await.result, Err(ExecutorError::Exec { .. })));
}

#[tokio::test]
async fn a_standalone_init_is_used_only_when_it_speaks_the_same_protocol() {
    require_root!();
    let sb = Sandbox::new();
    let other = sb.path("other-init");
    std::fs::write(&other, "#!/bin/sh\necho 0.0.0-0000000000000000\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let matching = crate::harness::init_program();
    let broken = std::path::PathBuf::from("/bin/false");
    // (init_program, standalone_init, whether a run succeeds): a run through /bin/false
    // fails, so success shows which program started it.
    let cases = [
        (broken.clone(), Some(matching.clone()), true),
        (matching.clone(), Some(other.clone()), true),
        (broken.clone(), Some(other.clone()), false),
        (matching.clone(), None, true),
    ];
    for (init_program, standalone_init, works) in cases {
        let mut config = sb.executor.config().clone();
        config.init_program = init_program.clone();
        config.standalone_init = standalone_init.clone();
        let executor = executor::Executor::new(config).unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let result = executor.run(sb.spec("true"), tx, CancellationToken::new()).await;
        assert_eq!(result.is_ok(), works, "{init_program:?} {standalone_init:?}: {result:?}");
    }
}
