//! Stage references: which stages a stage needs (`FROM <stage>`, `COPY --from`,
//! `RUN --mount=from=`), and BuildKit's check for circular dependencies.

use std::collections::HashMap;

use super::{Command, Dockerfile};

impl Dockerfile {
    /// Lower-cased stage name to the index of the first stage with that name.
    fn stage_names(&self) -> HashMap<String, usize> {
        let mut names = HashMap::new();
        for (i, s) in self.stages.iter().enumerate() {
            if let Some(n) = s.normalized_name() {
                names.entry(n).or_insert(i);
            }
        }
        names
    }

    /// For each stage, the earlier stage its FROM names, if any.
    pub(crate) fn stage_parents(&self) -> Vec<Option<usize>> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut parents = Vec::with_capacity(self.stages.len());
        for (i, s) in self.stages.iter().enumerate() {
            parents.push(seen.get(&s.base.to_lowercase()).copied());
            if let Some(n) = s.normalized_name() {
                seen.entry(n).or_insert(i);
            }
        }
        parents
    }

    /// The stage a `--from` / `FROM` value names: a stage name (case-insensitive) or, for
    /// `--from`, a stage index. `None` means an image or named context.
    pub fn resolve_stage(&self, reference: &str, allow_index: bool) -> Option<usize> {
        if let Some(i) = reference.parse::<usize>().ok().filter(|_| allow_index) {
            return (i < self.stages.len()).then_some(i);
        }
        self.stage_index(reference)
    }

    /// Indexes of the stages stage `index` depends on, in order of first use.
    pub fn stage_dependencies(&self, index: usize) -> Vec<usize> {
        self.dependencies_with(index, &self.stage_names(), self.stage_parents().get(index).copied().flatten())
    }

    fn dependencies_with(
        &self,
        index: usize,
        names: &HashMap<String, usize>,
        parent: Option<usize>,
    ) -> Vec<usize> {
        let Some(stage) = self.stages.get(index) else {
            return vec![];
        };
        let resolve = |r: &str| match r.parse::<usize>() {
            Ok(i) => (i < self.stages.len()).then_some(i),
            Err(_) => names.get(&r.to_lowercase()).copied(),
        };
        let mut deps = Vec::new();
        let mut add = |d: Option<usize>| {
            if let Some(d) = d.filter(|d| !deps.contains(d)) {
                deps.push(d);
            }
        };
        // FROM may only name a stage defined before it.
        add(parent);
        for inst in &stage.instructions {
            match &inst.command {
                Command::Copy(c) => add(c.from.as_deref().and_then(resolve)),
                Command::Run(r) => {
                    for m in &r.mounts {
                        add(m.from.as_deref().and_then(resolve));
                    }
                }
                _ => {}
            }
        }
        deps
    }

    /// The first stage (in file order) from which a dependency cycle can be reached.
    pub(crate) fn find_cycle(&self) -> Option<usize> {
        let n = self.stages.len();
        let names = self.stage_names();
        let parents = self.stage_parents();
        let deps: Vec<Vec<usize>> = (0..n).map(|i| self.dependencies_with(i, &names, parents[i])).collect();
        let mut visited = vec![false; n];
        let mut on_path = vec![false; n];
        for start in 0..n {
            if visited[start] {
                continue;
            }
            // Iterative depth-first search: (stage, next dependency to look at).
            let mut stack = vec![(start, 0usize)];
            visited[start] = true;
            on_path[start] = true;
            while let Some(&mut (s, ref mut next)) = stack.last_mut() {
                if let Some(&d) = deps[s].get(*next) {
                    *next += 1;
                    if on_path[d] {
                        return Some(start);
                    }
                    if !visited[d] {
                        visited[d] = true;
                        on_path[d] = true;
                        stack.push((d, 0));
                    }
                } else {
                    on_path[s] = false;
                    stack.pop();
                }
            }
        }
        None
    }
}
