//! Build checks decided from the Dockerfile alone, with BuildKit's rule names and messages.

use frontend::lint::LintConfig;

/// (Dockerfile, expected (rule, line) pairs in report order).
const CASES: &[(&str, &[(&str, usize)])] = &[
    ("FROM alpine AS Build\n", &[("StageNameCasing", 1)]),
    ("FROM alpine as build\n", &[("FromAsCasing", 1)]),
    ("from alpine AS build\n", &[("FromAsCasing", 1)]),
    ("FROM alpine\nrun true\nRUN true\nRUN true\n", &[("ConsistentInstructionCasing", 2)]),
    ("FROM alpine AS a\nFROM alpine AS A\n", &[("StageNameCasing", 2), ("DuplicateStageName", 2)]),
    ("FROM alpine AS scratch\n", &[("ReservedStageName", 1)]),
    ("FROM alpine\nCMD echo hi\n", &[("JSONArgsRecommended", 2)]),
    ("FROM alpine\nSHELL [\"/bin/sh\", \"-c\"]\nCMD echo hi\n", &[]),
    ("FROM alpine AS base\nSHELL [\"/bin/sh\", \"-c\"]\nFROM base\nENTRYPOINT echo hi\n", &[]),
    ("FROM alpine\nMAINTAINER me\n", &[("MaintainerDeprecated", 2)]),
    ("FROM alpine\nWORKDIR app\nWORKDIR other\n", &[("WorkdirRelativePath", 2)]),
    ("FROM alpine\nWORKDIR /app\nWORKDIR other\n", &[]),
    ("FROM alpine\nCMD [\"a\"]\nCMD [\"b\"]\nENTRYPOINT [\"c\"]\n", &[("MultipleInstructionsDisallowed", 2)]),
    ("FROM alpine\nENV A b\nLABEL k v\n", &[("LegacyKeyValueFormat", 2), ("LegacyKeyValueFormat", 3)]),
    (
        "ARG API_KEY\nFROM alpine\nENV DB_PASSWORD=x PUBLIC_KEY=y\n",
        &[("SecretsUsedInArgOrEnv", 1), ("SecretsUsedInArgOrEnv", 3)],
    ),
    ("FROM --platform=linux/amd64 alpine\n", &[("FromPlatformFlagConstDisallowed", 1)]),
    ("FROM --platform=linux/amd64 alpine AS build-amd64\n", &[]),
    ("FROM --platform=$TARGETPLATFORM alpine\n", &[("RedundantTargetPlatform", 1)]),
    ("FROM --platform=$BUILDPLATFORM alpine\n", &[]),
    ("ARG TAG\nFROM alpine:${TAG}\n", &[("InvalidDefaultArgInFrom", 2)]),
    ("ARG TAG=3.20\nFROM alpine:${TAG}\n", &[]),
    ("FROM alpine\nEXPOSE 80/TcP 127.0.0.1:80:80\n", &[("ExposeInvalidFormat", 2), ("ExposeProtoCasing", 2)]),
    ("FROM alpine\nRUN a \\\n\n  b\n", &[("NoEmptyContinuation", 4)]),
];

#[test]
fn rules_fire_where_buildkit_fires_them() {
    for (src, want) in CASES {
        let df = frontend::parse(src, "Dockerfile").unwrap_or_else(|e| panic!("{src:?}: {e}"));
        let mut got: Vec<(&str, usize)> = df.warnings.iter().map(|w| (w.rule, w.span.start_line)).collect();
        let mut want = want.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{src:?}: {:#?}", df.warnings);
        assert_eq!(frontend::lint(&df), df.warnings, "{src:?}");
    }
}

#[test]
fn messages_are_buildkits() {
    let src = "FROM alpine AS Build\nCMD echo\nENV A b\nWORKDIR app\nFROM alpine\nCMD [\"x\"]\ncmd [\"y\"]\n";
    let df = frontend::parse(src, "Dockerfile").unwrap();
    let got: Vec<(&str, &str)> = df.warnings.iter().map(|w| (w.rule, w.message.as_str())).collect();
    let want = [
        ("StageNameCasing", "Stage name 'Build' should be lowercase"),
        (
            "JSONArgsRecommended",
            "JSON arguments recommended for CMD to prevent unintended behavior related to OS signals",
        ),
        (
            "LegacyKeyValueFormat",
            "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
        ),
        (
            "WorkdirRelativePath",
            "Relative workdir \"app\" can have unexpected results if the base image changes",
        ),
        (
            "MultipleInstructionsDisallowed",
            "Multiple cmd instructions should not be used in the same stage because only the last one will be used",
        ),
        (
            "ConsistentInstructionCasing",
            "Command 'cmd' should match the case of the command majority (uppercase)",
        ),
    ];
    for w in want {
        assert!(got.contains(&w), "missing {w:?} in {got:#?}");
    }
    let url = df.warnings.iter().find(|w| w.rule == "StageNameCasing").unwrap().url;
    assert_eq!(url, "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/");
}

#[test]
fn check_directive_skips_and_errors() {
    let src = "# check=skip=StageNameCasing;error=true\nFROM alpine AS Build\nMAINTAINER me\n";
    let df = frontend::parse(src, "Dockerfile").unwrap();
    let rules: Vec<&str> = df.warnings.iter().map(|w| w.rule).collect();
    assert_eq!(rules, ["MaintainerDeprecated"]);
    let cfg = LintConfig::parse(df.directive("check").unwrap()).unwrap();
    assert_eq!(
        cfg.error_for(&df.warnings).as_deref(),
        Some("lint violation found for rules: MaintainerDeprecated")
    );
    let all = frontend::parse("# check=skip=all\nFROM a AS B\n", "Dockerfile").unwrap();
    assert!(all.warnings.is_empty());
}

#[test]
fn dispatch_time_rules_have_messages() {
    use frontend::lint::rules;
    assert_eq!(
        rules::undefined_var("FOO", Some("FOOBAR")),
        "Usage of undefined variable '$FOO' (did you mean $FOOBAR?)"
    );
    assert_eq!(rules::undefined_arg_in_from("TAG", None), "FROM argument 'TAG' is not declared");
    assert_eq!(
        rules::invalid_base_image_platform("alpine", "linux/arm64", "linux/amd64"),
        "Base image alpine was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build"
    );
    assert_eq!(rules::UNDEFINED_VAR.url, "https://docs.docker.com/go/dockerfile/rule/undefined-var/");
}
