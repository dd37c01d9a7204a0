//! Golden files under `tests/e2e/golden/`: output is masked where it legitimately varies
//! between runs ([`mask`]), then compared with the stored file ([`check`]).
//! `UPDATE_GOLDEN=1` (or the project-wide `RBUILD_BLESS=1`) rewrites the files instead; a
//! reviewer reads the diff.

use regex::Regex;
use std::path::PathBuf;
use std::sync::OnceLock;

/// What varies between runs, in the order it is masked: `(pattern, replacement)`. Earlier
/// rows run first, so digests are masked before anything could match inside them.
const MASKS: &[(&str, &str)] = &[
    // Digests and image IDs (a short 12-hex form too, as `rbuild images` prints).
    (r"sha256:[0-9a-f]{64}", "<digest>"),
    // Short digests of layers (`sha256 6f7b82de89a6 1.2MB done`): base image layers carry
    // the time they were made.
    (r"\b[0-9a-f]{12}\b", "<short>"),
    // The test registry's port.
    (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
    // Temporary folders made by the harness or by tempfile.
    (r"/tmp/(?:rbuild-e2e-[a-z]+-|\.tmp)[A-Za-z0-9]+", "<tmp>"),
    // Plain progress: the time stamp of an output line (`#5 0.123 hello`).
    (r"(?m)^(#\d+) \d+\.\d{3} ", "$1 <t> "),
    // Durations: `DONE 0.3s`, `cpu=0.01s`, `cpu 0.0s`, `Building 1.2s`, tty timers (`  2s`).
    (r"\b\d+(?:\.\d+)?(?:ms|s)\b", "<t>"),
    // Byte sizes: `mem=1.23MB`, `mem 412kB`, `4.10kB done`.
    (r"\b\d+(?:\.\d+)?(?:B|kB|MB|GB|TB)\b", "<size>"),
    // JSON numbers that are times, sizes or CPU use in `--metadata-file`.
    (r#"("(?:seconds|peak_memory_bytes|cpu_usec|size)": )[0-9.e+-]+"#, "$1<n>"),
    // indicatif's spinner frames (braille dots) in a tty capture.
    (r"[\u{2800}-\u{28FF}]", "*"),
];

fn masks() -> &'static [(Regex, &'static str)] {
    static COMPILED: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        MASKS.iter().map(|(re, to)| (Regex::new(re).expect("mask pattern compiles"), *to)).collect()
    })
}

/// `text` with every varying part replaced by a placeholder (see [`MASKS`]) and trailing
/// blanks removed from each line (a terminal capture pads lines).
pub fn mask(text: &str) -> String {
    let mut out = text.to_string();
    for (re, to) in masks() {
        out = re.replace_all(&out, *to).into_owned();
    }
    let mut lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut joined = lines.join("\n");
    joined.push('\n');
    joined
}

/// Whether this run rewrites golden files instead of comparing with them.
pub fn updating() -> bool {
    ["UPDATE_GOLDEN", "RBUILD_BLESS"].iter().any(|k| std::env::var_os(k).is_some_and(|v| v == "1"))
}

/// The path of golden file `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/golden").join(name)
}

/// Compares `actual` (already masked) with golden file `name`, or rewrites the file when
/// [`updating`]. Returns a readable difference instead of panicking, so that a test can
/// report every mismatching file at once.
pub fn compare(name: &str, actual: &str) -> Result<(), String> {
    let file = path(name);
    if updating() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        return std::fs::write(&file, actual).map_err(|e| format!("{}: {e}", file.display()));
    }
    let expected = std::fs::read_to_string(&file)
        .map_err(|e| format!("{}: {e} (UPDATE_GOLDEN=1 writes it)", file.display()))?;
    if expected == actual {
        return Ok(());
    }
    Err(format!(
        "{} differs (UPDATE_GOLDEN=1 to rewrite it; - golden, + actual):\n{}",
        file.display(),
        diff(&expected, actual)
    ))
}

/// Panics with the differences unless every `(name, actual)` matches its golden file.
#[track_caller]
pub fn check_all(files: &[(&str, &str)]) {
    let errors: Vec<String> = files.iter().filter_map(|(name, actual)| compare(name, actual).err()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
}

/// A line diff good enough for short files: the longest common subsequence, printed with
/// `-`/`+`/` ` prefixes.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_what_varies() {
        let text = "#3 0.412 hi 2s\n#3 DONE 1.2s cpu=0.01s mem=1.23MB   \n\
                    image sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
                    FROM 127.0.0.1:40123/lab/busybox in /tmp/rbuild-e2e-ctx-Ab12Cd\n\n";
        assert_eq!(
            mask(text),
            "#3 <t> hi <t>\n#3 DONE <t> cpu=<t> mem=<size>\nimage <digest>\n\
             FROM 127.0.0.1:<port>/lab/busybox in <tmp>\n"
        );
    }
}
