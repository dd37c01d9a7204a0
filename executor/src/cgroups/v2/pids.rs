//! v2 pids controller: `pids.max`.

use std::path::Path;

use super::super::{CgroupError, fs};
use crate::spec::Limits;

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    match limits.pids {
        Some(max) => fs::write(&dir.join("pids.max"), &max.to_string()),
        None => Ok(()),
    }
}
