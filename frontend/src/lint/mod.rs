//! Build checks (BuildKit's linter): the rules that can be decided from the Dockerfile alone,
//! the `# check=` directive, and the names and messages of the rules that need build-time
//! knowledge (`UndefinedVar`, `UndefinedArgInFrom`, `InvalidBaseImagePlatform`; see
//! [`rules`]).

mod checks;
pub mod rules;

use serde::Serialize;

pub use rules::Rule;

use crate::error::Span;
use crate::instructions::Dockerfile;
use crate::syntax::RawDockerfile;

/// One build-check finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The rule name (`StageNameCasing`, ...).
    pub rule: &'static str,
    /// What was found, in BuildKit's words.
    pub message: String,
    /// The rule's description.
    pub description: &'static str,
    /// The rule's documentation link.
    pub url: &'static str,
    /// Where.
    pub span: Span,
}

impl Warning {
    /// A warning of `rule` at `span`.
    pub fn new(rule: Rule, message: String, span: Span) -> Warning {
        Warning { rule: rule.name, message, description: rule.description, url: rule.url, span }
    }
}

/// Settings from `# check=skip=...;error=true;experimental=...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// Rules named in `skip=`.
    pub skip: Vec<String>,
    /// `error=true`: warnings fail the build.
    pub error: bool,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// Rules named in `experimental=`.
    pub experimental: Vec<String>,
}

/// An invalid `# check=` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LintConfigError(pub String);

fn rule_list(v: &str) -> (bool, Vec<String>) {
    let v = v.trim();
    if v == "all" { (true, vec![]) } else { (false, v.split(',').map(|r| r.trim().to_string()).collect()) }
}

impl LintConfig {
    /// Parses the value of a `# check=` directive (or of the `BUILDKIT_DOCKERFILE_CHECK`
    /// build argument).
    pub fn parse(value: &str) -> Result<LintConfig, LintConfigError> {
        let value = value.trim();
        let mut cfg = LintConfig::default();
        if value.is_empty() {
            return Ok(cfg);
        }
        for part in value.splitn(3, ';') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(LintConfigError(format!(
                    "invalid check option {}",
                    crate::syntax::go_quote(part)
                )));
            };
            match k.trim() {
                "skip" => (cfg.skip_all, cfg.skip) = rule_list(v),
                "experimental" => (cfg.experimental_all, cfg.experimental) = rule_list(v),
                "error" => {
                    cfg.error = crate::instructions::go_parse_bool(v.trim()).ok_or_else(|| {
                        LintConfigError(format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                            crate::syntax::go_quote(part),
                            crate::syntax::go_quote(v.trim())
                        ))
                    })?;
                }
                k => {
                    return Err(LintConfigError(format!(
                        "invalid check option {}",
                        crate::syntax::go_quote(k)
                    )));
                }
            }
        }
        Ok(cfg)
    }

    /// Whether warnings of `rule` are reported.
    pub fn enabled(&self, rule: &str) -> bool {
        if self.skip_all || self.skip.iter().any(|s| s == rule) {
            return false;
        }
        match rules::by_name(rule) {
            Some(r) if r.experimental => self.experimental_all || self.experimental.iter().any(|e| e == rule),
            _ => true,
        }
    }

    /// The warnings that are reported.
    pub fn filter(&self, warnings: Vec<Warning>) -> Vec<Warning> {
        warnings.into_iter().filter(|w| self.enabled(w.rule)).collect()
    }

    /// With `error=true` and any warning, BuildKit's error message
    /// (`lint violation found for rules: ...`).
    pub fn error_for(&self, warnings: &[Warning]) -> Option<String> {
        if !self.error || warnings.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = warnings.iter().map(|w| w.rule).collect();
        names.sort();
        names.dedup();
        Some(format!("lint violation found for rules: {}", names.join(", ")))
    }
}

/// The option closest to `value` (edit distance below 3, case-sensitive), for the
/// "did you mean" part of `UndefinedVar` and `UndefinedArgInFrom`.
pub fn closest(value: &str, options: &[&str]) -> Option<String> {
    crate::suggest::search(value, options, true)
}

/// The parser's own warnings as build-check warnings.
pub(crate) fn parser_warnings(raw: &RawDockerfile) -> Vec<Warning> {
    raw.warnings
        .iter()
        .map(|w| Warning::new(rules::NO_EMPTY_CONTINUATION, rules::no_empty_continuation(), w.span))
        .collect()
}

/// All warnings of the file-level rules, before `# check=` filtering.
pub(crate) fn lint_unfiltered(df: &Dockerfile) -> Vec<Warning> {
    let mut out = df.parser_warnings.clone();
    out.extend(checks::run(df));
    out.sort_by_key(|w| (w.span.start_line, w.span.start));
    out
}

/// The file-level build checks of `df`, filtered by its `# check=` directive (the same list
/// [`crate::parse`] stores in [`Dockerfile::warnings`]).
pub fn lint(df: &Dockerfile) -> Vec<Warning> {
    let cfg = df.directive("check").and_then(|c| LintConfig::parse(c).ok()).unwrap_or_default();
    cfg.filter(lint_unfiltered(df))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_directive() {
        let cfg = LintConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert!(cfg.error);
        assert!(!cfg.enabled("StageNameCasing"));
        assert!(cfg.enabled("FromAsCasing"));
        assert!(!cfg.enabled("CopyIgnoredFile"));
        assert!(LintConfig::parse("skip=all").unwrap().skip_all);
        assert!(LintConfig::parse("bogus").is_err());
        assert!(LintConfig::parse("error=maybe").is_err());
    }

    #[test]
    fn closest_names() {
        assert_eq!(closest("FOOO", &["FOO", "BAR"]).as_deref(), Some("FOO"));
        assert_eq!(closest("XYZ", &["FOO"]), None);
    }
}
