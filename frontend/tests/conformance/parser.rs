//! `parser/`: testfiles with `result` dumps, negative testfiles and the inline cases.

use frontend::syntax::{
    self, DirectiveParser, JsonArrayError, NOT_STRINGS_MESSAGE, chomp_heredoc_content, detect_syntax,
    heredocs_from_line, parse_directive, parse_heredoc, parse_json_array, parse_words,
};
use serde_json::Value;

use super::{Report, conformance_dir, expect_eq, read_json, strings};

/// All parser cases pass.
const FLOOR: usize = 117;

#[test]
fn parser_conformance() {
    let Some(root) = conformance_dir("parser") else {
        return;
    };
    let dir = root.join("parser");
    let mut report = Report::new("parser");

    let mut cases: Vec<_> =
        std::fs::read_dir(dir.join("testfiles")).unwrap().flatten().map(|e| e.path()).collect();
    cases.sort();
    for case in cases {
        let id = format!("testfiles/{}", case.file_name().unwrap().to_string_lossy());
        let src = std::fs::read(case.join("Dockerfile")).unwrap();
        let want = std::fs::read_to_string(case.join("result")).unwrap();
        let result = match String::from_utf8(src) {
            Err(_) => Err("Dockerfile is not UTF-8".to_string()),
            Ok(src) => match syntax::parse_raw(&src, "Dockerfile") {
                Ok(raw) => expect_eq("dump", raw.dump() + "\n", want),
                Err(e) => Err(format!("parse failed: {e}")),
            },
        };
        report.check(id, result);
    }

    let mut negatives: Vec<_> =
        std::fs::read_dir(dir.join("testfiles-negative")).unwrap().flatten().map(|e| e.path()).collect();
    negatives.sort();
    for case in negatives {
        let id = format!("testfiles-negative/{}", case.file_name().unwrap().to_string_lossy());
        let src = String::from_utf8_lossy(&std::fs::read(case.join("Dockerfile")).unwrap()).into_owned();
        let result = match syntax::parse_raw(&src, "Dockerfile") {
            Ok(raw) => Err(format!("parsed, want an error: {}", raw.dump())),
            Err(_) => Ok(()),
        };
        report.check(id, result);
    }

    for case in read_json(&dir.join("inline-cases.json")).as_array().unwrap() {
        let id = case["id"].as_str().unwrap().to_string();
        let result = inline_case(case);
        report.check(id, result);
    }
    report.finish(FLOOR);
}

fn inline_case(case: &Value) -> Result<(), String> {
    let input = case["input"].as_str().unwrap_or_default();
    let want = &case["expected"];
    match case["kind"].as_str().unwrap_or_default() {
        "heredocs" => heredocs(input, want),
        "heredoc_word" => {
            let got = parse_heredoc(input);
            if want["error"] == Value::Bool(true) {
                return if got.is_err() { Ok(()) } else { Err(format!("want an error, got {got:?}")) };
            }
            let got = got.map_err(|e| e.to_string())?;
            expect_eq("is_heredoc", got.is_some(), want["is_heredoc"].as_bool().unwrap_or(false))?;
            if let Some(name) = want["name"].as_str() {
                expect_eq("name", got.map(|h| h.name).unwrap_or_default().as_str(), name)?;
            }
            Ok(())
        }
        "heredocs_from_line" => {
            let got = heredocs_from_line(input).map_err(|e| e.to_string())?;
            expect_eq("names", got.into_iter().map(|h| h.name).collect(), strings(&want["heredoc_names"]))
        }
        "heredoc_chomp" => {
            expect_eq("chomp", chomp_heredoc_content(input).as_str(), want.as_str().unwrap_or_default())
        }
        "parse_words" => expect_eq("words", parse_words(input, '\\'), strings(want)),
        "line_numbers" => {
            let raw = syntax::parse_raw(input, "Dockerfile").map_err(|e| e.to_string())?;
            let first = raw.instructions.first().map(|i| i.span.start_line).unwrap_or(0);
            let last = raw.instructions.last().map(|i| i.span.end_line).unwrap_or(0);
            expect_eq("root start", first as u64, want["root"]["start_line"].as_u64().unwrap_or(0))?;
            expect_eq("root end", last as u64, want["root"]["end_line"].as_u64().unwrap_or(0))?;
            let got: Vec<Vec<u64>> = raw
                .instructions
                .iter()
                .map(|i| vec![i.span.start_line as u64, i.span.end_line as u64])
                .collect();
            let want: Vec<Vec<u64>> = want["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect())
                .collect();
            expect_eq("children", got, want)
        }
        "warnings" => warnings(input, want),
        "error" => match syntax::parse_raw(input, "Dockerfile") {
            Ok(_) => Err("parsed, want an error".into()),
            Err(e) => expect_eq("message", e.message.as_str(), want["error"].as_str().unwrap_or_default()),
        },
        "json_array" => {
            let got = parse_json_array(input);
            match want.get("values") {
                Some(values) => expect_eq("values", got.map_err(|e| format!("{e:?}")), Ok(strings(values))),
                None => {
                    let msg = match got {
                        Err(JsonArrayError::NotStrings) => NOT_STRINGS_MESSAGE.to_string(),
                        other => format!("{other:?}"),
                    };
                    expect_eq("error", msg.as_str(), want["error"].as_str().unwrap_or_default())
                }
            }
        }
        "name_val" => {
            let got = syntax::parse_raw(&format!("ENV {input}"), "Dockerfile");
            match want.get("node_values") {
                Some(values) => {
                    let raw = got.map_err(|e| e.to_string())?;
                    expect_eq("values", raw.instructions[0].arg_strings(), strings(values))
                }
                None => match got {
                    Ok(raw) => Err(format!("parsed, want an error: {}", raw.dump())),
                    Err(e) => {
                        expect_eq("error", e.message.as_str(), want["error"].as_str().unwrap_or_default())
                    }
                },
            }
        }
        "directives" => {
            let got = DirectiveParser::new().parse_all(input)?;
            let got: Vec<(String, String)> = got.into_iter().map(|d| (d.name, d.value)).collect();
            let want: Vec<(String, String)> = want["directives"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["name"].as_str().unwrap().to_string(), d["value"].as_str().unwrap().to_string()))
                .collect();
            expect_eq("directives", got, want)
        }
        "detect_syntax" => found_directive(detect_syntax(input), want, "ref"),
        "parse_directive" => found_directive(parse_directive("check", input), want, "value"),
        other => Err(format!("unknown case kind {other}")),
    }
}

fn found_directive(got: Option<syntax::FoundDirective>, want: &Value, value_key: &str) -> Result<(), String> {
    expect_eq("found", got.is_some(), want["found"].as_bool().unwrap_or(false))?;
    if let Some(v) = want[value_key].as_str() {
        expect_eq(value_key, got.as_ref().map(|g| g.value.as_str()).unwrap_or(""), v)?;
    }
    if let Some(v) = want["cmdline"].as_str() {
        expect_eq("cmdline", got.as_ref().map(|g| g.cmdline.as_str()).unwrap_or(""), v)?;
    }
    if let Some(v) = want["line"].as_u64() {
        expect_eq("line", got.as_ref().map(|g| g.line as u64).unwrap_or(0), v)?;
    }
    Ok(())
}

fn heredocs(input: &str, want: &Value) -> Result<(), String> {
    let raw = syntax::parse_raw(input, "Dockerfile").map_err(|e| e.to_string())?;
    for child in want["children"].as_array().unwrap() {
        let index = child["index"].as_u64().unwrap() as usize;
        let Some(inst) = raw.instructions.get(index) else {
            return Err(format!("no instruction {index}"));
        };
        let got: Vec<Value> = inst
            .heredocs
            .iter()
            .map(|h| {
                serde_json::json!({
                    "Name": h.name, "Content": h.content, "Expand": h.expand,
                    "Chomp": h.chomp, "FileDescriptor": h.file_descriptor,
                })
            })
            .collect();
        let want_docs = child["heredocs"].as_array().cloned().unwrap_or_default();
        expect_eq(&format!("heredocs of instruction {index} ({})", inst.original), got, want_docs)?;
    }
    Ok(())
}

fn warnings(input: &str, want: &Value) -> Result<(), String> {
    let raw = syntax::parse_raw(input, "Dockerfile").map_err(|e| e.to_string())?;
    let df = frontend::parse(input, "Dockerfile").map_err(|e| e.to_string())?;
    let lints: Vec<_> = df.warnings.iter().filter(|w| w.rule == "NoEmptyContinuation").collect();
    let count = want["warning_count"].as_u64().unwrap_or(0) as usize;
    expect_eq("warning count", raw.warnings.len(), count)?;
    expect_eq("NoEmptyContinuation count", lints.len(), count)?;
    for (i, w) in want["warnings"].as_array().unwrap().iter().enumerate() {
        let got = &raw.warnings[i];
        for s in strings(&w["short_contains"]) {
            if !got.short.contains(&s) {
                return Err(format!("warning {i}: {:?} does not contain {s:?}", got.short));
            }
        }
        if let Some(d) = w["detail_contains"].as_str()
            && !got.detail.contains(d)
        {
            return Err(format!("warning {i}: detail {:?} does not contain {d:?}", got.detail));
        }
        if let Some(line) = w["line"].as_u64() {
            expect_eq("line", lints[i].span.start_line as u64, line)?;
            expect_eq("rule", lints[i].rule, w["rule"].as_str().unwrap_or_default())?;
            expect_eq("detail", lints[i].message.as_str(), w["detail"].as_str().unwrap_or_default())?;
            expect_eq("description", lints[i].description, w["description"].as_str().unwrap_or_default())?;
        }
    }
    Ok(())
}
