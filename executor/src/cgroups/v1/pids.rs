//! v1 pids controller: task limit (fork-bomb containment).

use std::path::Path;

use super::super::{CgroupError, fs};
use crate::spec::Limits;

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    if let Some(max) = limits.pids {
        fs::write(&dir.join("pids.max"), &max.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pids_max() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &Limits { pids: Some(5), ..Limits::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("pids.max")).unwrap(), "5");
    }
}
