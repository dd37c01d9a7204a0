//! Which entries of a copied tree are selected: include patterns and exclude patterns
//! (relative to the copied source, as fsutil's copier does) and the source's ignore
//! patterns (relative to the source root, as a `.dockerignore` is). Shared by copies and
//! checksums so that a cache key covers exactly what a copy reads.

use crate::patterns::{MatchInfo, PatternError, PatternMatcher};

/// What to do with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Selected.
    Include,
    /// Not selected, but something below it (a directory) may be.
    Descend,
    /// Neither it nor anything below it is selected.
    Prune,
}

/// The compiled patterns of one copy or checksum.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    ignore: Option<PatternMatcher>,
}

/// Pattern results of a directory, handed to its children.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterState {
    include: MatchInfo,
    exclude: MatchInfo,
    ignore: MatchInfo,
}

fn compile(patterns: &[String]) -> Result<Option<PatternMatcher>, PatternError> {
    let m = PatternMatcher::new(patterns)?;
    Ok(if m.is_empty() { None } else { Some(m) })
}

impl Filter {
    pub(crate) fn new(
        include: &[String],
        exclude: &[String],
        ignore: &[String],
    ) -> Result<Filter, PatternError> {
        Ok(Filter { include: compile(include)?, exclude: compile(exclude)?, ignore: compile(ignore)? })
    }

    /// True when the ignore patterns hide `root_rel` (a path relative to the source root).
    /// A directory with `!` exceptions in the ignore file may hold re-included entries, so it
    /// is taken to exist.
    pub(crate) fn ignored(&self, root_rel: &str, is_dir: bool) -> bool {
        match &self.ignore {
            Some(ig) if !root_rel.is_empty() => ig.matches(root_rel) && !(is_dir && ig.exclusions()),
            _ => false,
        }
    }

    /// Decides for an entry at `rel` below the copied source (never empty) whose path from
    /// the source root is `root_rel`. `parent` is the state returned for its directory.
    pub(crate) fn decide(
        &self,
        rel: &str,
        root_rel: &str,
        is_dir: bool,
        parent: &FilterState,
    ) -> (Decision, FilterState) {
        let mut state = FilterState::default();
        let mut decision = Decision::Include;
        if let Some(ig) = &self.ignore {
            let (hit, info) = ig.matches_with_parent(root_rel, &parent.ignore);
            state.ignore = info;
            if hit {
                if !(is_dir && ig.exclusions()) {
                    return (Decision::Prune, state);
                }
                decision = Decision::Descend;
            }
        }
        if let Some(inc) = &self.include {
            let (hit, info) = inc.matches_with_parent(rel, &parent.include);
            state.include = info;
            if !hit {
                decision = Decision::Descend;
            }
        }
        if let Some(exc) = &self.exclude {
            let (hit, info) = exc.matches_with_parent(rel, &parent.exclude);
            state.exclude = info;
            if hit {
                if !exc.exclusions() {
                    return (Decision::Prune, state);
                }
                decision = Decision::Descend;
            }
        }
        if decision == Decision::Descend && !is_dir {
            decision = Decision::Prune;
        }
        (decision, state)
    }
}
