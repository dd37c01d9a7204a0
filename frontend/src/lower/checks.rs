//! The build checks that need build-time knowledge, run while lowering, with BuildKit's rule
//! names and messages: `UndefinedVar` (variables neither set by ENV/ARG nor in the base
//! image's environment, never for RUN, whose text is the shell's business),
//! `UndefinedArgInFrom`, `InvalidBaseImagePlatform` and `CopyIgnoredFile`.
//!
//! Every warning, file-level or build-time, is filtered by the `# check=` directive, which the
//! `BUILDKIT_DOCKERFILE_CHECK` build argument replaces when given (as in BuildKit).

use super::stage::{Base, Lowering, StageState};
use crate::instructions::{Command, Dockerfile, Instruction, Stage};
use crate::lint::{self, LintConfig, Warning, rules};
use crate::shell::{Env, EnvList};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// The build argument that overrides the `# check=` directive.
const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// The build-check settings of a build: the `BUILDKIT_DOCKERFILE_CHECK` build argument when
/// given, else the `# check=` directive. An invalid value checks everything.
pub fn lint_config(df: &Dockerfile, build_args: &BTreeMap<String, String>) -> LintConfig {
    build_args
        .get(CHECK_BUILD_ARG)
        .map(String::as_str)
        .or_else(|| df.directive("check"))
        .and_then(|v| LintConfig::parse(v).ok())
        .unwrap_or_default()
}

/// An environment that remembers the names looked up and not found.
struct Recording<'a> {
    env: &'a dyn Env,
    missing: RefCell<BTreeSet<String>>,
}

impl Env for Recording<'_> {
    fn get(&self, name: &str) -> Option<String> {
        let v = self.env.get(name);
        if v.is_none() {
            self.missing.borrow_mut().insert(name.to_string());
        }
        v
    }

    fn keys(&self) -> Vec<String> {
        self.env.keys()
    }
}

fn names(env: &EnvList) -> Vec<String> {
    env.iter().map(|(k, _)| k.to_string()).collect()
}

impl Lowering<'_> {
    /// `UndefinedArgInFrom` for the base name and `--platform` of `stage`: variables that no
    /// global ARG declares (with or without a value) and that are not automatic.
    pub(crate) fn check_from_args(&mut self, stage: &Stage) {
        let mut declared: BTreeSet<String> = names(&self.global_args).into_iter().collect();
        for inst in &self.df.meta_args {
            if let Command::Arg(defs) = &inst.command {
                declared.extend(defs.iter().map(|d| d.key.clone()));
            }
        }
        let options: Vec<&str> = declared.iter().map(String::as_str).collect();
        let mut found = Vec::new();
        for word in std::iter::once(&stage.base).chain(stage.platform.as_ref()) {
            let Ok(processed) = self.lexer.process_word_with_matches(word, &self.global_args) else {
                continue;
            };
            for var in processed.unmatched.iter().filter(|v| !declared.contains(*v)) {
                let suggestion = lint::closest(var, &options);
                found.push(Warning::new(
                    rules::UNDEFINED_ARG_IN_FROM,
                    rules::undefined_arg_in_from(var, suggestion.as_deref()),
                    stage.span,
                ));
            }
        }
        self.warnings.extend(found);
    }

    /// `UndefinedVar` for `inst` expanded in `state` (RUN is never checked). The expansion
    /// itself happens again in dispatch; this one only records the misses.
    pub(crate) fn check_undefined_vars(&mut self, state: &StageState, inst: &Instruction) {
        if matches!(inst.command, Command::Run(_)) {
            return;
        }
        let recording = Recording { env: &state.env, missing: RefCell::default() };
        // An expansion error is reported by dispatch, with its own message.
        let _ = inst.command.expand(&self.lexer, &recording);
        let declared: BTreeSet<&str> = state.build_args.iter().map(|(k, _)| k.as_str()).collect();
        let options = names(&state.env);
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        for var in recording.missing.into_inner() {
            if declared.contains(var.as_str()) {
                continue;
            }
            let suggestion = lint::closest(&var, &options);
            self.warnings.push(Warning::new(
                rules::UNDEFINED_VAR,
                rules::undefined_var(&var, suggestion.as_deref()),
                inst.span,
            ));
        }
    }

    /// `InvalidBaseImagePlatform`: the base image's config names another OS or architecture
    /// than the stage builds for.
    pub(crate) fn check_base_platform(&mut self, i: usize, state: &StageState) {
        if !matches!(self.stages[i].base, Base::Image(_)) {
            return;
        }
        let image = &state.image;
        if image.os.is_empty() || image.architecture.is_empty() {
            return;
        }
        let expected = &state.platform;
        if expected.os == image.os && expected.architecture == image.architecture {
            return;
        }
        let stage = &self.df.stages[i];
        // The name as the FROM line gives it once expanded, as BuildKit reports it.
        let name =
            self.lexer.process_word(&stage.base, &self.global_args).unwrap_or_else(|_| stage.base.clone());
        let message =
            rules::invalid_base_image_platform(&name, &expected.to_string(), &image.platform().to_string());
        self.warnings.push(Warning::new(rules::INVALID_BASE_IMAGE_PLATFORM, message, stage.span));
    }

    /// `CopyIgnoredFile`: a COPY/ADD source from the build context that `.dockerignore`
    /// excludes. Like BuildKit, nothing is checked when the patterns have `!` exceptions
    /// (whether a file is excluded then depends on what the directory holds).
    pub(crate) fn check_copy_ignored(&mut self, inst: &Instruction, is_add: bool, src: &str) {
        let patterns = &self.opts.dockerignore;
        if patterns.is_empty() || patterns.iter().any(|p| p.starts_with('!')) {
            return;
        }
        let Ok(matcher) = cache::patterns::PatternMatcher::new(patterns) else { return };
        let cleaned = cache::patterns::clean(src);
        if matcher.matches(&cleaned) {
            let command = if is_add { "Add" } else { "Copy" };
            self.warnings.push(Warning::new(
                rules::COPY_IGNORED_FILE,
                rules::copy_ignored_file(command, &cleaned),
                inst.span,
            ));
        }
    }

    /// Every warning of the build (file-level ones and those found while lowering, which
    /// were appended to the file's own list), filtered by the build's check settings and
    /// ordered by line; and BuildKit's error when `error=true` and any remains.
    pub(crate) fn finish_warnings(&mut self) -> (Vec<Warning>, Option<String>) {
        let cfg = lint_config(self.df, &self.opts.build_args);
        let build_time = self.warnings.split_off(self.df.warnings.len().min(self.warnings.len()));
        let mut all = lint::lint_unfiltered(self.df);
        let mut seen = BTreeSet::new();
        for w in build_time {
            if seen.insert((w.rule, w.message.clone(), w.span.start)) {
                all.push(w);
            }
        }
        let mut all = cfg.filter(all);
        all.sort_by_key(|w| (w.span.start_line, w.span.start));
        let error = cfg.error_for(&all);
        (all, error)
    }
}

#[cfg(test)]
mod tests {
    use crate::lower::{BaseImage, ImageRequest, LowerError, LowerOptions, lower};
    use registry::{ContainerConfig, ImageConfig, Platform, Reference};

    fn opts(text: &str) -> LowerOptions {
        LowerOptions {
            build_platform: "linux/amd64".parse().unwrap(),
            allow_http_sources: true,
            ..LowerOptions::for_test(text)
        }
    }

    /// Lowers `text`, resolving every image as one with `env` for `image_platform`.
    fn warnings_of(text: &str, tweak: impl Fn(&mut LowerOptions), image_platform: &str) -> Vec<String> {
        let df = crate::parse(text, "Dockerfile").unwrap();
        let mut o = opts(text);
        tweak(&mut o);
        let platform: Platform = image_platform.parse().unwrap();
        for _ in 0..4 {
            match lower(&df, &o) {
                Ok(l) => {
                    let mut out: Vec<String> =
                        l.warnings.iter().map(|w| format!("{}: {}", w.rule, w.message)).collect();
                    if let Some(e) = l.lint_error {
                        out.push(format!("error: {e}"));
                    }
                    return out;
                }
                Err(LowerError::NeedImages(reqs)) => {
                    for r in reqs {
                        let config = ImageConfig {
                            architecture: platform.architecture.clone(),
                            os: platform.os.clone(),
                            config: ContainerConfig {
                                env: Some(vec!["PATH=/bin".into(), "FROM_IMAGE=1".into()]),
                                ..Default::default()
                            },
                            ..Default::default()
                        };
                        let pinned: Reference =
                            format!("{}@sha256:{}", r.reference, "a".repeat(64)).parse().unwrap();
                        o.images.insert(
                            ImageRequest { reference: r.reference, platform: r.platform },
                            BaseImage { pinned, config },
                        );
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("images never resolved")
    }

    #[test]
    fn build_time_rules() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            (
                "FROM busybox\nENV A=$FROM_IMAGE\nENV B=$FROM_IMAG\nRUN echo $NOPE\nARG C\nENV D=$C\n",
                vec!["UndefinedVar: Usage of undefined variable '$FROM_IMAG' (did you mean $FROM_IMAGE?)"],
            ),
            (
                "ARG VERSION=1\nFROM ${VERSIO:-busybox}\nFROM busybox:$VERSION AS b\n",
                vec!["UndefinedArgInFrom: FROM argument 'VERSIO' is not declared (did you mean VERSION?)"],
            ),
            ("ARG TAG\nFROM busybox:${TAG:-latest}\nFROM busybox:$TARGETARCH\n", vec![]),
            ("# check=skip=UndefinedVar\nFROM busybox\nWORKDIR $NOWHERE\n", vec![]),
            (
                "# check=error=true\nFROM busybox\nUSER $WHO\n",
                vec![
                    "UndefinedVar: Usage of undefined variable '$WHO'",
                    "error: lint violation found for rules: UndefinedVar",
                ],
            ),
        ];
        for (text, want) in cases {
            let got = warnings_of(text, |_| {}, "linux/amd64");
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn experimental_copy_ignored_file_and_platform_mismatch() {
        let text = "# check=experimental=CopyIgnoredFile\nFROM busybox\nCOPY secret.txt /\n";
        let got = warnings_of(text, |o| o.dockerignore = vec!["secret.txt".into()], "linux/amd64");
        assert_eq!(
            got,
            vec!["CopyIgnoredFile: Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore"]
        );
        let got =
            warnings_of(text, |o| o.dockerignore = vec!["*.txt".into(), "!keep.txt".into()], "linux/amd64");
        assert!(got.is_empty(), "exceptions disable the check: {got:?}");
        let got = warnings_of("FROM busybox\n", |_| {}, "linux/arm64");
        assert_eq!(
            got,
            vec![
                "InvalidBaseImagePlatform: Base image busybox was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build"
            ]
        );
        let overridden = warnings_of(
            "# check=skip=all\nFROM busybox\nUSER $WHO\n",
            |o| {
                o.build_args.insert("BUILDKIT_DOCKERFILE_CHECK".into(), "error=true".into());
            },
            "linux/amd64",
        );
        assert_eq!(overridden.len(), 2, "the build arg replaces the directive: {overridden:?}");
    }
}
