//! Turning a case folder (read in place, possibly read-only, symlinks possibly flattened by a
//! copy) into a buildable temporary copy: modes and symlinks from `contexts`, placeholders
//! substituted in every text file.

use super::spec::CaseSpec;
use crate::harness::Cmd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Copies the case folder `src` to `dst` (which must not exist) and repairs what git lost.
pub fn copy_case(src: &Path, dst: &Path, spec: &CaseSpec) -> Result<(), String> {
    Cmd::tool("cp").arg("-a").arg(src).arg(dst).expect_ok();
    // The corpus may be read-only; the copy must be writable for the substitutions.
    Cmd::tool("chmod").args(["-R", "u+w"]).arg(dst).expect_ok();
    for (ctx, entries) in &spec.contexts {
        let base = dst.join(ctx);
        // Symlinks first, so that modes below apply to what the links point at only when asked.
        for e in entries.iter().filter(|e| e.kind == "symlink") {
            let p = base.join(&e.path);
            let target = e.target.as_deref().ok_or_else(|| format!("symlink {} without target", e.path))?;
            let ok = std::fs::read_link(&p).is_ok_and(|t| t == Path::new(target));
            if !ok {
                if p.symlink_metadata().is_ok() {
                    std::fs::remove_file(&p).map_err(|err| format!("remove {}: {err}", p.display()))?;
                }
                std::os::unix::fs::symlink(target, &p)
                    .map_err(|err| format!("symlink {}: {err}", p.display()))?;
            }
        }
        // Files before folders, deepest folders first, so that a folder made read-only or
        // traversable only by its owner does not hide entries still to be changed.
        let mut with_mode: Vec<_> =
            entries.iter().filter(|e| e.kind != "symlink" && e.mode.is_some()).collect();
        with_mode.sort_by_key(|e| (e.kind == "dir", std::cmp::Reverse(e.path.matches('/').count())));
        for e in with_mode {
            let p = base.join(&e.path);
            let text = e.mode.as_deref().unwrap_or_default();
            let mode =
                u32::from_str_radix(text, 8).map_err(|_| format!("bad mode {text:?} for {}", e.path))?;
            let meta = p.symlink_metadata().map_err(|err| format!("{}: {err}", p.display()))?;
            let is_dir = meta.is_dir();
            if is_dir != (e.kind == "dir") {
                return Err(format!("{} is listed as {} but is not", e.path, e.kind));
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|err| format!("chmod {}: {err}", p.display()))?;
        }
    }
    Ok(())
}

/// Replaces every `(placeholder, value)` in every UTF-8 regular file under `dir` (symlinks are
/// left alone; binary files such as archives are never touched).
pub fn substitute(dir: &Path, replacements: &[(String, String)]) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| e.to_string())?;
        if ty.is_dir() {
            substitute(&path, replacements)?;
        } else if ty.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
            let Ok(text) = String::from_utf8(bytes) else { continue };
            if !text.contains("{{") {
                continue;
            }
            let mut new = text.clone();
            for (from, to) in replacements {
                new = new.replace(from.as_str(), to);
            }
            if new != text {
                // Keep the mode: writing through the existing file does.
                std::fs::write(&path, new).map_err(|e| format!("write {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Replaces the placeholders in one string (build-arg values).
pub fn substitute_str(s: &str, replacements: &[(String, String)]) -> String {
    replacements.iter().fold(s.to_string(), |acc, (from, to)| acc.replace(from.as_str(), to))
}
