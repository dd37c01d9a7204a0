//! `shell/`: `envVarTest`, `wordsTest` and the inline lexer cases.

use frontend::shell::{Env, EnvList, Lexer};
use serde_json::Value;

use super::{Report, conformance_dir, expect_eq, read_json, strings};

/// All A/U lines of envVarTest (228), all wordsTest lines (24), all inline cases (63).
const FLOOR: usize = 315;

#[test]
fn shell_conformance() {
    let Some(root) = conformance_dir("shell") else {
        return;
    };
    let dir = root.join("shell");
    let mut report = Report::new("shell");
    let lex = Lexer::new('\\');

    let env = EnvList::from_pairs([("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")]);
    let text = std::fs::read_to_string(dir.join("envVarTest")).unwrap();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        let id = format!("envVarTest:{}", n + 1);
        if fields.len() != 3 {
            report.check(id, Err(format!("bad line {line:?}")));
            continue;
        }
        let (platform, source, want) = (fields[0], fields[1], fields[2]);
        if platform == "W" {
            continue;
        }
        let got = lex.process_word(source, &env);
        let result = if want == "error" {
            match got {
                Err(_) => Ok(()),
                Ok(v) => Err(format!("{source:?}: got {v:?}, want an error")),
            }
        } else {
            expect_eq(source, got.map_err(|e| e.to_string()), Ok(want.to_string()))
        };
        report.check(id, result);
    }

    let text = std::fs::read_to_string(dir.join("wordsTest")).unwrap();
    let mut env = EnvList::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let entry = rest.trim_start_matches(' ');
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            env.set(k, v);
            continue;
        }
        let id = format!("wordsTest:{}", n + 1);
        let Some((input, want)) = line.split_once('|') else {
            report.check(id, Err(format!("bad line {line:?}")));
            continue;
        };
        let input = input.trim();
        let want: Vec<String> = want.trim_start_matches(' ').split(',').map(str::to_string).collect();
        let got = lex.process_words(input, &env).unwrap_or_else(|_| vec!["error".to_string()]);
        report.check(id, expect_eq(input, got, want));
    }

    for case in read_json(&dir.join("inline-cases.json")).as_array().unwrap() {
        let id = case["id"].as_str().unwrap().to_string();
        report.check(id, inline_case(case));
    }
    report.finish(FLOOR);
}

fn env_of(v: &Value) -> EnvList {
    let mut env = EnvList::new();
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            env.set(k.clone(), v.as_str().unwrap_or_default());
        }
    }
    env
}

fn inline_case(case: &Value) -> Result<(), String> {
    let lex = Lexer::new(case["escape"].as_str().and_then(|s| s.chars().next()).unwrap_or('\\'));
    let input = case["input"].as_str().unwrap_or_default();
    match case["function"].as_str().unwrap_or_default() {
        "getEnv (internal)" => {
            let env = EnvList::from_kv_strings(strings(&case["env_list"]));
            let name = case["name"].as_str().unwrap_or_default();
            expect_eq(
                "value",
                env.get(name).unwrap_or_default().as_str(),
                case["expected"].as_str().unwrap_or_default(),
            )
        }
        function => {
            let env = env_of(&case["env"]);
            let got = lex.process_word_with_matches(input, &env);
            if case["expect_error"].as_bool().unwrap_or(false) {
                return match got {
                    Ok(v) => Err(format!("got {:?}, want an error", v.value)),
                    Err(e) => match case["error_contains"].as_str() {
                        Some(s) if !e.to_string().contains(s) => {
                            Err(format!("error {e} does not contain {s:?}"))
                        }
                        _ => Ok(()),
                    },
                };
            }
            let got = got.map_err(|e| e.to_string())?;
            expect_eq("value", got.value.as_str(), case["expected"].as_str().unwrap_or_default())?;
            if function == "ProcessWordWithMatches" {
                if case["matched"].is_array() {
                    let mut want = strings(&case["matched"]);
                    want.sort();
                    expect_eq("matched", got.matched.into_iter().collect::<Vec<_>>(), want)?;
                }
                if case["unmatched"].is_array() {
                    let mut want = strings(&case["unmatched"]);
                    want.sort();
                    expect_eq("unmatched", got.unmatched.into_iter().collect::<Vec<_>>(), want)?;
                }
            }
            Ok(())
        }
    }
}
