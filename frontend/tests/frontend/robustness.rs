//! No input makes the parser, the lexer or expansion panic, and parsing stays linear.

use std::time::{Duration, Instant};

use frontend::shell::{EnvList, Lexer};
use proptest::prelude::*;

/// Runs everything the frontend does with a text; only panics matter.
fn exercise(text: &str) {
    let _ = frontend::syntax::parse_raw(text, "Dockerfile");
    let env = EnvList::from_pairs([("A", "x y"), ("EMPTY", "")]);
    for escape in ['\\', '`'] {
        let lex = Lexer::new(escape);
        let _ = lex.process_word(text, &env);
        let _ = lex.process_words(text, &env);
    }
    let _ = frontend::dockerignore::parse(text);
    match frontend::parse(text, "Dockerfile") {
        Ok(df) => {
            let lexer = df.lexer();
            let stages = df.stages.iter().flat_map(|s| std::iter::once(&s.from).chain(&s.instructions));
            for inst in df.meta_args.iter().chain(stages) {
                let _ = inst.expand(&lexer, &env);
            }
            let _ = frontend::lint(&df);
        }
        Err(e) => {
            let _ = e.render(text);
        }
    }
}

/// Dockerfile-shaped text: keywords, flags, quotes, escapes, variables, heredocs, JSON.
fn dockerfile_like() -> impl Strategy<Value = String> {
    let fixed = [
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "SHELL ",
        "EXPOSE ",
        "--mount=type=cache,target=/x ",
        "--from=",
        "--chmod=",
        "<<EOF",
        "<<-'E'",
        "EOF",
        "${A:-x}",
        "${A#*}",
        "${A//a/b}",
        "$",
        "{",
        "}",
        "\"",
        "'",
        "\\",
        "`",
        "[\"a\", ",
        "]",
        "\n",
        " ",
        "\t",
        "# escape=`\n",
        "#",
        "=",
    ];
    let token = prop_oneof![
        3 => prop::sample::select(fixed.to_vec()).prop_map(str::to_string),
        1 => "[a-z0-9/.:-]{1,6}",
        1 => any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn dockerfile_like_text_never_panics(text in dockerfile_like()) {
        exercise(&text);
    }
}

fn time(text: &str) -> Duration {
    let start = Instant::now();
    exercise(text);
    start.elapsed()
}

#[test]
fn pathological_inputs_stay_fast() {
    let limit = if cfg!(debug_assertions) { Duration::from_secs(5) } else { Duration::from_millis(500) };
    let cases = [
        format!("FROM a\nRUN {}x\n", "\\\n".repeat(50_000)),
        format!("FROM a\nRUN x {}\n", "\\\n\n".repeat(20_000)),
        format!("FROM a\nCMD {}\n", "[".repeat(50_000)),
        format!("FROM a\nENV A={}\n", "${B:-".repeat(5_000)),
        format!("FROM a\nRUN {}\n", "<<E ".repeat(2_000)),
        format!("FROM a\nRUN {}\n", "\"".repeat(60_000)),
        format!("FROM a\nLABEL {}\n", "a=b ".repeat(16_000)),
        "FROM a\n".repeat(20_000),
    ];
    for text in cases {
        let took = time(&text);
        assert!(took < limit, "took {took:?} for input starting {:?}", &text[..40.min(text.len())]);
    }
}

#[test]
fn ten_thousand_lines_parse_quickly() {
    let mut text = String::from("FROM alpine AS base\n");
    for i in 0..9_999 {
        text.push_str(&match i % 5 {
            0 => format!("RUN echo {i} && \\\n    true\n"),
            1 => format!("ENV V{i}=value{i}\n"),
            2 => format!("COPY --chown=1:1 src/{i} /dst/{i}\n"),
            3 => format!("LABEL l{i}=\"x\"\n"),
            _ => format!("ARG A{i}=default\n"),
        });
    }
    // Best of five runs, so that a busy machine does not fail the budget.
    let mut took = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let df = frontend::parse(&text, "Dockerfile").unwrap();
        took = took.min(start.elapsed());
        assert_eq!(df.stages[0].instructions.len(), 9_999);
    }
    println!("parsed 10,000 lines in {took:?}");
    // The budget is 50 ms in release builds; debug builds are much slower.
    let limit = if cfg!(debug_assertions) { Duration::from_millis(3_000) } else { Duration::from_millis(50) };
    assert!(took < limit, "parsing 10,000 lines took {took:?}");
}
