//! BuildKit's own end-to-end build scenarios (`../shared/conformance/builds`, read in place):
//! every case is copied to a temporary folder, repaired (modes, symlinks), its placeholders
//! replaced by the lab's base image and by images built from its `prebuild/` folders, and each
//! run is built on one store per case and checked against every `expect` key of the README.
//!
//! One test runs all cases, prints `conformance builds: N/60 cases passed (M/75 builds)` and a
//! line per failing case, and fails only when fewer cases pass than [`MIN_PASSING_CASES`].

mod checks;
mod prepare;
mod spec;

use crate::harness::{self, Rbuild, image, require_lab};
use spec::{CaseSpec, RunSpec};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Ratchet: the number of cases that pass today. Raise it when more pass; never lower it to
/// hide a regression.
const MIN_PASSING_CASES: usize = 60;

/// Cases built at the same time (the machine has 2 cores; builds are mostly I/O and waiting).
const PARALLEL_CASES: usize = 2;

/// One build may not take longer than this.
const BUILD_TIMEOUT: Duration = Duration::from_secs(90);

/// Where the corpus is: `$RBUILD_CONFORMANCE_DIR/builds` or `../../shared/conformance/builds`.
fn corpus_dir() -> PathBuf {
    let root = std::env::var_os("RBUILD_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"));
    root.join("builds")
}

/// The outcome of one case.
struct CaseResult {
    id: String,
    runs_passed: usize,
    runs_total: usize,
    /// `None` when every run passed; else the first reason, one line.
    failure: Option<String>,
    seconds: f64,
}

#[test]
fn buildkit_build_scenarios() {
    require_lab!();
    let dir = corpus_dir();
    if !dir.join("README.md").is_file() {
        eprintln!("notice: no conformance corpus at {} (set RBUILD_CONFORMANCE_DIR); skipped", dir.display());
        return;
    }
    let mut ids: Vec<String> = std::fs::read_dir(&dir)
        .expect("read corpus")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("expect.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    let specs: Vec<CaseSpec> = ids
        .iter()
        .map(|id| {
            let text = std::fs::read_to_string(dir.join(id).join("expect.json")).expect("read expect.json");
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{id}/expect.json does not match the README: {e}"))
        })
        .collect();
    let lab = harness::lab();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_CASES {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(spec) = specs.get(i) else { break };
                    let r = run_case(lab, &dir.join(&spec.id), spec);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by(|a, b| a.id.cmp(&b.id));

    let cases_passed = results.iter().filter(|r| r.failure.is_none()).count();
    let runs_passed: usize = results.iter().map(|r| r.runs_passed).sum();
    let runs_total: usize = results.iter().map(|r| r.runs_total).sum();
    let mut report = format!(
        "conformance builds: {cases_passed}/{} cases passed ({runs_passed}/{runs_total} builds) in {:.0}s\n",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    for r in &results {
        match &r.failure {
            Some(why) => report.push_str(&format!("FAIL {}: {why}\n", r.id)),
            None => report.push_str(&format!("ok   {} ({:.1}s)\n", r.id, r.seconds)),
        }
    }
    println!("{report}");
    let _ = std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-builds.txt"), &report);
    assert!(
        cases_passed >= MIN_PASSING_CASES,
        "only {cases_passed} cases pass, the floor is {MIN_PASSING_CASES}:\n{report}"
    );
}

fn run_case(lab: &harness::Lab, src: &Path, spec: &CaseSpec) -> CaseResult {
    let start = Instant::now();
    let mut result = CaseResult {
        id: spec.id.clone(),
        runs_passed: 0,
        runs_total: spec.runs.len(),
        failure: None,
        seconds: 0.0,
    };
    let tmp = harness::tempdir();
    let case = tmp.path().join("case");
    let rb = Rbuild::new();
    let outcome = (|| -> Result<(), String> {
        prepare::copy_case(src, &case, spec)?;
        let mut replacements = vec![("{{BASE}}".to_string(), lab.base.clone())];
        prepare::substitute(&case, &replacements)?;
        for pre in &spec.prebuild {
            let reference =
                lab.registry.image(&format!("conformance/{}/{}:latest", spec.id, pre.name.to_lowercase()));
            let o = rb
                .build(&case.join(&pre.context))
                .arg("-f")
                .arg(case.join(&pre.dockerfile))
                .args(["-t", &reference, "--push"])
                .timeout(BUILD_TIMEOUT)
                .run();
            if o.code != Some(0) {
                return Err(format!("prebuild {}: {}", pre.name, error_line(&o)));
            }
            replacements.push((pre.placeholder.clone(), reference));
            prepare::substitute(&case, &replacements)?;
        }
        let mut first_failure = None;
        let mut previous_ok = true;
        for run in &spec.runs {
            let outcome = if run.depends_on_previous_run_cache && !previous_ok {
                Err("not run: it expects the cache of the previous run, which failed".to_string())
            } else {
                run_one(lab, &rb, &case, run, &replacements)
            };
            previous_ok = outcome.is_ok();
            match outcome {
                Ok(()) => result.runs_passed += 1,
                Err(why) => {
                    if first_failure.is_none() {
                        first_failure = Some(format!("run {:?}: {why}", run.name));
                    }
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    })();
    if let Err(why) = outcome {
        let failed_runs = result.runs_total - result.runs_passed;
        let why = one_line(&why, 400);
        result.failure = Some(if result.runs_total > 1 {
            format!("{failed_runs}/{} runs failed; {why}", result.runs_total)
        } else {
            why
        });
    }
    result.seconds = start.elapsed().as_secs_f64();
    result
}

/// Builds one run and checks its expectations.
fn run_one(
    lab: &harness::Lab,
    rb: &Rbuild,
    case: &Path,
    run: &RunSpec,
    replacements: &[(String, String)],
) -> Result<(), String> {
    let context = case.join(&run.context);
    let out = harness::tempdir();
    let mut cmd = rb.build(&context).arg("-f").arg(case.join(&run.dockerfile)).timeout(BUILD_TIMEOUT);
    if let Some(t) = &run.target {
        cmd = cmd.args(["--target", t]);
    }
    if let Some(p) = &run.platform {
        cmd = cmd.args(["--platform", p]);
    }
    for (k, v) in &run.build_args {
        cmd = cmd.arg("--build-arg").arg(format!("{k}={}", prepare::substitute_str(v, replacements)));
    }
    for (k, v) in &run.labels {
        cmd = cmd.arg("--label").arg(format!("{k}={v}"));
    }
    let expect = &run.expect;
    let local = out.path().join("local");
    let tar = out.path().join("fs.tar");
    let oci = out.path().join("image.tar");
    let want_local = expect.success && expect.files.iter().any(|f| f.needs_local());
    let want_tar = expect.success && expect.files.iter().any(|f| f.needs_tar());
    let want_oci = expect.success && expect.image.is_some();
    if want_local {
        cmd = cmd.arg("-o").arg(format!("type=local,dest={}", local.display()));
    }
    if want_tar {
        cmd = cmd.arg("-o").arg(format!("type=tar,dest={}", tar.display()));
    }
    if want_oci {
        cmd = cmd.arg("-o").arg(format!("type=oci,dest={}", oci.display()));
    }
    let o = cmd.run();
    if o.timed_out {
        return Err(format!("build timed out after {BUILD_TIMEOUT:?}"));
    }
    if o.stderr.contains("panicked at") {
        return Err(format!("rbuild panicked: {}", error_line(&o)));
    }
    if !expect.success {
        if o.code == Some(0) {
            return Err(format!("build succeeded, want failure with {:?}", expect.error_contains));
        }
        let message = o.error_text();
        let missing: Vec<&String> =
            expect.error_contains.iter().filter(|s| !message.contains(s.as_str())).collect();
        if !missing.is_empty() {
            return Err(format!("error lacks {missing:?}: {}", error_line(&o)));
        }
        return Ok(());
    }
    if o.code != Some(0) {
        return Err(format!("build failed: {}", error_line(&o)));
    }
    let tar_entries = want_tar.then(|| image::tar_file_entries(&tar));
    let img = want_oci.then(|| harness::Image::from_oci_archive(&oci));
    let produced = checks::Produced {
        local: want_local.then_some(local.as_path()),
        tar: tar_entries.as_ref(),
        context: &context,
    };
    let problems: Vec<String> =
        expect.files.iter().filter_map(|f| checks::file(f, &produced).err()).collect();
    if let Some(first) = problems.first() {
        let more =
            if problems.len() > 1 { format!(" (+{} more)", problems.len() - 1) } else { String::new() };
        return Err(format!("files: {first}{more}"));
    }
    if let (Some(want), Some(img)) = (&expect.image, &img) {
        checks::image(want, img, lab.base_config()).map_err(|e| format!("image: {e}"))?;
    }
    Ok(())
}

/// The most telling line of a failed command: its first `error` line, else its last line.
fn error_line(o: &harness::Outcome) -> String {
    let line = o
        .stderr
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("error"))
        .or_else(|| o.stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no output)");
    let code = o.code.map_or("timeout".into(), |c| c.to_string());
    format!("[exit {code}] {}", one_line(line, 300))
}

/// `s` on one line, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}
