//! The assertions of `expect.files` and `expect.image`, each returning what is wrong.

use super::spec::{FileExpect, HistoryExpect, ImageExpect};
use crate::harness::Image;
use crate::harness::image::{Entry, clean_path, keys, strings};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What a successful build produced, as far as the expectations need it.
pub struct Produced<'a> {
    /// The local exporter's folder.
    pub local: Option<&'a Path>,
    /// The tar exporter's entries.
    pub tar: Option<&'a BTreeMap<String, Entry>>,
    /// The run's (prepared) context folder.
    pub context: &'a Path,
}

/// Checks one file expectation; `Err` says what differs.
pub fn file(f: &FileExpect, out: &Produced) -> Result<(), String> {
    let rel = clean_path(&f.path);
    let fail = |what: String| Err(format!("{}: {what}", f.path));
    if f.needs_local() {
        let root = out.local.ok_or("no local output")?;
        let p = root.join(&rel);
        let stat = std::fs::metadata(&p);
        if let Some(want) = f.exists {
            let exists = stat.is_ok();
            if exists != want {
                return fail(format!("exists is {exists}, want {want}"));
            }
        }
        if let Some(kind) = &f.kind {
            let Ok(m) = &stat else { return fail("does not exist".into()) };
            let actual = if m.is_dir() {
                "dir"
            } else if m.is_file() {
                "file"
            } else {
                "other"
            };
            if actual != kind {
                return fail(format!("is a {actual}, want {kind}"));
            }
        }
        if f.empty_dir == Some(true) {
            let entries =
                std::fs::read_dir(&p).map_err(|e| format!("{}: not a readable dir: {e}", f.path))?;
            let names: Vec<String> =
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect();
            if !names.is_empty() {
                return fail(format!("not empty: {names:?}"));
            }
        }
        let read = || std::fs::read(&p).map_err(|e| format!("{}: cannot read: {e}", f.path));
        if let Some(want) = &f.content {
            let got = read()?;
            if got != want.as_bytes() {
                return fail(format!("content {:?}, want {want:?}", String::from_utf8_lossy(&got)));
            }
        }
        if let Some(want) = &f.contains {
            let got = String::from_utf8_lossy(&read()?).into_owned();
            if !got.contains(want.as_str()) {
                return fail(format!("content {got:?} lacks {want:?}"));
            }
        }
        if let Some(unwanted) = &f.not_contains {
            let got = String::from_utf8_lossy(&read()?).into_owned();
            if got.contains(unwanted.as_str()) {
                return fail(format!("content {got:?} contains {unwanted:?}"));
            }
        }
        if let Some(other) = &f.content_same_as_context_file {
            let want =
                std::fs::read(out.context.join(other)).map_err(|e| format!("context file {other}: {e}"))?;
            if read()? != want {
                return fail(format!("differs from context file {other}"));
            }
        }
        if let Some(want) = &f.link_target {
            let lstat = p.symlink_metadata().map_err(|e| format!("{}: {e}", f.path))?;
            let got = if lstat.file_type().is_symlink() {
                std::fs::read_link(&p).map_err(|e| e.to_string())?.to_string_lossy().into_owned()
            } else {
                String::from_utf8_lossy(&read()?).into_owned()
            };
            if &got != want {
                return fail(format!("link target {got:?}, want {want:?}"));
            }
        }
        if let Some(other) = &f.same_file_as {
            let a = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", f.path))?;
            let b = std::fs::metadata(root.join(clean_path(other))).map_err(|e| format!("{other}: {e}"))?;
            if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
                return fail(format!("not the same file as {other} (not a hard link)"));
            }
        }
    }
    if f.needs_tar() {
        let tar = out.tar.ok_or("no tar output")?;
        let e = tar.get(&rel).ok_or_else(|| format!("{}: not in the tar output", f.path))?;
        if let Some(want) = f.uid
            && e.uid != want
        {
            return fail(format!("uid {}, want {want}", e.uid));
        }
        if let Some(want) = f.gid
            && e.gid != want
        {
            return fail(format!("gid {}, want {want}", e.gid));
        }
    }
    Ok(())
}

/// Unset, `null`, `[]`, `""` and `{}` all count as "unset/empty".
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Checks the image expectations; `base_config` is the base image's config blob (for the
/// `*_added` keys).
pub fn image(want: &ImageExpect, img: &Image, base_config: &Value) -> Result<(), String> {
    let cfg = &img.config["config"];
    for (key, expected) in &want.config {
        match key.as_str() {
            "ExposedPorts" => {
                let mut w = strings(expected);
                w.sort();
                let got = keys(&cfg["ExposedPorts"]);
                if got != w {
                    return Err(format!("config.ExposedPorts {got:?}, want {w:?}"));
                }
            }
            "Labels_include" => {
                for (k, v) in expected.as_object().into_iter().flatten() {
                    let got = &cfg["Labels"][k];
                    if got != v {
                        return Err(format!("config.Labels[{k}] is {got}, want {v}"));
                    }
                }
            }
            "Env_contains" => {
                let env = strings(&cfg["Env"]);
                for w in strings(expected) {
                    if !env.contains(&w) {
                        return Err(format!("config.Env {env:?} lacks {w:?}"));
                    }
                }
            }
            "Env_has_prefix" => {
                let env = strings(&cfg["Env"]);
                for w in strings(expected) {
                    if !env.iter().any(|e| e.starts_with(&w)) {
                        return Err(format!("config.Env {env:?} has no entry starting with {w:?}"));
                    }
                }
            }
            "WorkingDir_nonempty" => {
                let nonempty = !is_empty(&cfg["WorkingDir"]);
                if Some(nonempty) != expected.as_bool() {
                    return Err(format!(
                        "config.WorkingDir is {}, want nonempty={expected}",
                        cfg["WorkingDir"]
                    ));
                }
            }
            plain => {
                let got = &cfg[plain];
                let equal = if expected.is_null() { is_empty(got) } else { got == expected };
                if !equal {
                    return Err(format!("config.{plain} is {got}, want {expected}"));
                }
            }
        }
    }
    for (flag, field) in [(want.os_nonempty, "os"), (want.architecture_nonempty, "architecture")] {
        if let Some(w) = flag
            && is_empty(&img.config[field]) == w
        {
            return Err(format!("{field} is {}, want nonempty={w}", img.config[field]));
        }
    }
    if let Some(w) = &want.rootfs_type
        && img.config["rootfs"]["type"].as_str() != Some(w.as_str())
    {
        return Err(format!("rootfs.type is {}, want {w}", img.config["rootfs"]["type"]));
    }
    let diff_ids = img.diff_ids().len();
    if let Some(w) = want.diff_ids_count
        && diff_ids != w
    {
        return Err(format!("{diff_ids} diff_ids, want {w}"));
    }
    if let Some(w) = want.diff_ids_added {
        let base = strings(&base_config["rootfs"]["diff_ids"]).len();
        if diff_ids.checked_sub(base) != Some(w) {
            return Err(format!(
                "{diff_ids} diff_ids = base {base} + {}, want base + {w}",
                diff_ids as i64 - base as i64
            ));
        }
    }
    let layers = img.manifest["layers"].as_array().map_or(img.layers.len(), Vec::len);
    if let Some(w) = want.layers_count
        && layers != w
    {
        return Err(format!("{layers} layers in the manifest, want {w}"));
    }
    let history = img.history();
    if let Some(w) = want.history_count
        && history.len() != w
    {
        return Err(format!("{} history entries, want {w}: {}", history.len(), created_bys(&history)));
    }
    if let Some(w) = &want.history {
        history_entries(&history, w, 0)?;
    }
    if let Some(w) = &want.history_added {
        let base = base_config["history"].as_array().map_or(0, Vec::len);
        if history.len() != base + w.len() {
            return Err(format!(
                "{} history entries = base {base} + {}, want base + {}: {}",
                history.len(),
                history.len() as i64 - base as i64,
                w.len(),
                created_bys(&history)
            ));
        }
        history_entries(&history, w, base)?;
    }
    if let Some(w) = want.created_unix {
        let got = img.config["created"].as_str().and_then(unix_seconds);
        if got != Some(w) {
            return Err(format!("created is {}, want unix {w}", img.config["created"]));
        }
    }
    if let Some(w) = want.all_history_created_unix {
        for (i, h) in history.iter().enumerate() {
            if h["created"].as_str().and_then(unix_seconds) != Some(w) {
                return Err(format!("history[{i}].created is {}, want unix {w}", h["created"]));
            }
        }
    }
    Ok(())
}

fn created_bys(history: &[Value]) -> String {
    let list: Vec<&str> = history.iter().map(|h| h["created_by"].as_str().unwrap_or("")).collect();
    format!("{list:?}")
}

fn history_entries(history: &[Value], want: &[HistoryExpect], offset: usize) -> Result<(), String> {
    for (i, w) in want.iter().enumerate() {
        let idx = offset + i;
        let h = history.get(idx).ok_or_else(|| format!("no history[{idx}]: {}", created_bys(history)))?;
        let created_by = h["created_by"].as_str().unwrap_or_default();
        if let Some(c) = &w.created_by_contains
            && !created_by.contains(c.as_str())
        {
            return Err(format!("history[{idx}].created_by {created_by:?} lacks {c:?}"));
        }
        if let Some(e) = w.empty_layer {
            let got = h["empty_layer"].as_bool().unwrap_or(false);
            if got != e {
                return Err(format!("history[{idx}] ({created_by:?}).empty_layer is {got}, want {e}"));
            }
        }
        if let Some(c) = w.created_set {
            let got = !is_empty(&h["created"]);
            if got != c {
                return Err(format!("history[{idx}] ({created_by:?}) created set is {got}, want {c}"));
            }
        }
    }
    Ok(())
}

/// Seconds since the epoch of an RFC 3339 time (`2023-11-14T22:13:21Z`, fractions and offsets
/// allowed).
pub fn unix_seconds(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d, h, mi, se) =
        (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[test]
fn rfc3339_to_unix() {
    for (text, want) in [
        ("1970-01-01T00:00:00Z", Some(0)),
        ("2023-11-14T22:13:21Z", Some(1_700_000_001)),
        ("2023-11-14T22:13:21.123456789Z", Some(1_700_000_001)),
        ("2023-11-15T00:13:21+02:00", Some(1_700_000_001)),
        ("2000-02-29T00:00:00Z", Some(951_782_400)),
        ("not a time", None),
    ] {
        assert_eq!(unix_seconds(text), want, "{text}");
    }
}
