//! v1 freezer controller: stops the tree so it can be killed without racing forks.

use std::path::Path;
use std::time::{Duration, Instant};

use super::super::{CgroupError, fs};

/// Freezes the cgroup and waits (up to a second) until the kernel reports FROZEN.
pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    let state = dir.join("freezer.state");
    fs::write(&state, "FROZEN")?;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        // FREEZING means some task has not stopped yet; writing again retries the freeze.
        if fs::read(&state)?.trim() == "FROZEN" || Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
        fs::write(&state, "FROZEN")?;
    }
}

/// Thaws the cgroup so that killed tasks can run their exit path.
pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    fs::write(&dir.join("freezer.state"), "THAWED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_then_thaw() {
        let dir = tempfile::tempdir().unwrap();
        // A plain file echoes what was written, like a freezer that froze at once.
        freeze(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("freezer.state")).unwrap(), "FROZEN");
        thaw(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("freezer.state")).unwrap(), "THAWED");
    }
}
