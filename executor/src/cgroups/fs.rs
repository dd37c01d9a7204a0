//! Reading and writing cgroup interface files, with the path in every error.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::CgroupError;

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::io("read", path, source))
}

/// Reads a file when it exists; kernels differ in which interface files they offer.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::io("read", path, source)),
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    // cgroup files take one value per write(2); std::fs::write issues exactly one for
    // these short strings.
    std::fs::write(path, value).map_err(|source| CgroupError::io("write", path, source))
}

pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let value = text.trim();
    value.parse().map_err(|_| CgroupError::Parse { path: path.to_path_buf(), value: value.to_owned() })
}

pub(crate) fn read_u64_optional(path: &Path) -> Result<Option<u64>, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_u64(path, &text).map(Some),
        None => Ok(None),
    }
}

/// Parses "key value" lines (memory.events, cpu.stat, memory.oom_control, cpuacct.stat).
pub(crate) fn parse_keyed(path: &Path, text: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else { continue };
        out.insert(key.to_owned(), parse_u64(path, value)?);
    }
    Ok(out)
}

pub(crate) fn read_keyed_optional(path: &Path) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    match read_optional(path)? {
        Some(text) => parse_keyed(path, &text).map(Some),
        None => Ok(None),
    }
}

/// Process ids listed in a `cgroup.procs` file.
pub(crate) fn read_pids(path: &Path) -> Result<Vec<u32>, CgroupError> {
    let text = match read_optional(path)? {
        Some(text) => text,
        None => return Ok(Vec::new()),
    };
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| parse_u64(path, l).map(|p| p as u32)).collect()
}

/// Process ids in a cgroup and every cgroup below it.
pub(crate) fn read_pids_recursive(dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let mut pids = read_pids(&dir.join("cgroup.procs"))?;
    for child in child_dirs(dir) {
        pids.extend(read_pids_recursive(&child)?);
    }
    Ok(pids)
}

pub(crate) fn create_dir_all(path: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(path).map_err(|source| CgroupError::io("create", path, source))
}

/// Removes a cgroup directory, retrying (for up to about two seconds) while the kernel
/// still counts exiting tasks in it.
pub(crate) fn remove_dir_retrying(path: &Path) -> Result<(), CgroupError> {
    let mut delay = std::time::Duration::from_micros(200);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY: tasks that just exited are still leaving the cgroup (that usually
            // takes well under a millisecond, so start with short naps), or the run made
            // child cgroups (possible in insecure runs), which go first.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && waited < std::time::Duration::from_secs(2) => {
                for child in child_dirs(path) {
                    remove_dir_retrying(&child)?;
                }
                std::thread::sleep(delay);
                waited += delay;
                delay = (delay * 2).min(std::time::Duration::from_millis(50));
            }
            Err(source) => return Err(CgroupError::io("remove", path, source)),
        }
    }
}

fn child_dirs(path: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else { return Vec::new() };
    entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let p = Path::new("memory.events");
        let map = parse_keyed(p, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(map["oom_kill"], 1);
        assert_eq!(map["max"], 12);
        assert!(parse_keyed(p, "oom_kill x\n").is_err());
    }

    #[test]
    fn pids_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cgroup.procs");
        std::fs::write(&path, "12\n34\n").unwrap();
        assert_eq!(read_pids(&path).unwrap(), vec![12, 34]);
        assert!(read_pids(&dir.path().join("missing")).unwrap().is_empty());
    }
}
