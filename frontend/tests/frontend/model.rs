//! The typed model `parse` returns.

use frontend::instructions::{Healthcheck, MountType, NetworkMode};
use frontend::shell::EnvList;
use frontend::{Command, CommandLine};

const SRC: &str = r#"# syntax=docker/dockerfile:1
# base sets the image
ARG base=alpine
FROM --platform=$BUILDPLATFORM ${base} AS Builder
WORKDIR /src
RUN --mount=type=cache,target=/root/.cache,id=$CACHE --network=none \
    <<EOF sh
echo building
EOF
COPY --from=alpine:3 --chown=1:1 --chmod=0644 <<-'EOT' a.txt /out/
	literal $X
	EOT
HEALTHCHECK --interval=30s --retries=3 CMD ["true"]
ONBUILD COPY . /app

FROM builder
ENV A=1 B="two words"
EXPOSE 80/tcp $PORT
CMD ["/bin/app"]
"#;

#[test]
fn stages_and_commands() {
    let df = frontend::parse(SRC, "Dockerfile").unwrap();
    assert_eq!(df.directive("syntax"), Some("docker/dockerfile:1"));
    assert_eq!(df.meta_args.len(), 1);
    let Command::Arg(args) = &df.meta_args[0].command else { panic!() };
    assert_eq!(args[0].comment.as_deref(), Some("sets the image"));
    assert_eq!(df.stages.len(), 2);
    let s0 = &df.stages[0];
    assert_eq!((s0.name.as_deref(), s0.base.as_str()), (Some("Builder"), "${base}"));
    assert_eq!(s0.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(df.stage_index("BUILDER"), Some(0));
    assert_eq!(df.stage_dependencies(1), vec![0]);

    let Command::Run(run) = &s0.instructions[1].command else { panic!() };
    assert_eq!(run.cmd, CommandLine::Shell("<<EOF sh".into()));
    assert_eq!(run.heredocs[0].content, "echo building\n");
    assert_eq!(run.network, NetworkMode::None);
    assert_eq!(run.flags_used, ["mount", "network"]);
    assert_eq!(s0.instructions[1].span.start_line, 6);
    assert_eq!(s0.instructions[1].span.end_line, 9);
    assert!(s0.instructions[1].source_text.starts_with("RUN --mount=type=cache"));

    let Command::Copy(copy) = &s0.instructions[2].command else { panic!() };
    assert_eq!(copy.from.as_deref(), Some("alpine:3"));
    assert_eq!(copy.heredoc_sources[0].data, "literal $X\n");
    assert!(!copy.heredoc_sources[0].expand);
    assert_eq!(copy.sources, ["a.txt"]);

    let Command::Healthcheck(Healthcheck::Check(h)) = &s0.instructions[3].command else { panic!() };
    assert_eq!((h.interval, h.retries), (30_000_000_000, 3));
    assert_eq!(h.test, ["CMD", "true"]);

    let Command::Onbuild(o) = &s0.instructions[4].command else { panic!() };
    assert_eq!(o.expression, "COPY . /app");
    assert!(matches!(o.trigger.as_ref().map(|t| &t.command), Some(Command::Copy(_))));
}

#[test]
fn expansion_at_build_time() {
    let df = frontend::parse(SRC, "Dockerfile").unwrap();
    let lexer = df.lexer();
    let env = EnvList::from_pairs([
        ("CACHE", "pip"),
        ("PORT", "8080"),
        ("base", "alpine"),
        ("BUILDPLATFORM", "linux/amd64"),
    ]);

    let from = df.stages[0].from.expand(&lexer, &env).unwrap();
    let Command::From(f) = from.command else { panic!() };
    assert_eq!((f.base.as_str(), f.platform.as_deref()), ("alpine", Some("linux/amd64")));

    let run = df.stages[0].instructions[1].expand(&lexer, &env).unwrap();
    let Command::Run(run) = run.command else { panic!() };
    let m = &run.mounts[0];
    assert_eq!(
        (m.kind, m.id.as_deref(), m.target.as_deref()),
        (MountType::Cache, Some("pip"), Some("/root/.cache"))
    );

    let env_inst = df.stages[1].instructions[0].expand(&lexer, &env).unwrap();
    let Command::Env(kvs) = env_inst.command else { panic!() };
    assert_eq!(kvs[1].value, "two words");

    let expose = df.stages[1].instructions[1].expand(&lexer, &env).unwrap();
    assert_eq!(expose.command, Command::Expose(vec!["8080".into(), "80/tcp".into()]));
}

#[test]
fn expansion_errors_carry_the_instruction() {
    let src = "FROM alpine\nWORKDIR ${DIR:?must be set}\n";
    let df = frontend::parse(src, "Dockerfile").unwrap();
    let err = df.stages[0].instructions[0].expand(&df.lexer(), &EnvList::new()).unwrap_err();
    assert_eq!(err.message, "failed to process \"${DIR:?must be set}\": DIR: must be set");
    let report = err.into_dockerfile_error("Dockerfile", src);
    assert_eq!((report.line, report.column), (2, 1));
}

#[test]
fn backtick_escape() {
    let src = "# escape=`\nFROM windows\nRUN dir c:\\ `\n  && echo ok\nCOPY a`$b /x\n";
    let df = frontend::parse(src, "Dockerfile").unwrap();
    assert_eq!(df.escape, '`');
    let Command::Run(run) = &df.stages[0].instructions[0].command else { panic!() };
    assert_eq!(run.cmd, CommandLine::Shell("dir c:\\   && echo ok".into()));
    let copy = df.stages[0].instructions[1].expand(&df.lexer(), &EnvList::new()).unwrap();
    let Command::Copy(c) = copy.command else { panic!() };
    assert_eq!(c.sources, ["a$b"]);
}
