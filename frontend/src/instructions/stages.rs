//! Stage references: which stages a stage needs (`FROM <stage>`, `COPY --from`,
//! `RUN --mount=from=`), and BuildKit's check for circular dependencies.

use super::{Command, Dockerfile};

impl Dockerfile {
    /// The stage a `--from` / `FROM` value names: a stage name (case-insensitive) or, for
    /// `--from`, a stage index. `None` means an image or named context.
    pub fn resolve_stage(&self, reference: &str, allow_index: bool) -> Option<usize> {
        if allow_index {
            if let Ok(i) = reference.parse::<usize>() {
                return (i < self.stages.len()).then_some(i);
            }
        }
        self.stage_index(reference)
    }

    /// Indexes of the stages stage `index` depends on, in order of first use.
    pub fn stage_dependencies(&self, index: usize) -> Vec<usize> {
        let Some(stage) = self.stages.get(index) else {
            return vec![];
        };
        let mut deps = Vec::new();
        let mut add = |d: Option<usize>| {
            if let Some(d) = d.filter(|d| !deps.contains(d)) {
                deps.push(d);
            }
        };
        // FROM may only name a stage defined before it.
        add(self.stage_index(&stage.base).filter(|d| *d < index));
        for inst in &stage.instructions {
            match &inst.command {
                Command::Copy(c) => add(c.from.as_deref().and_then(|f| self.resolve_stage(f, true))),
                Command::Run(r) => {
                    for m in &r.mounts {
                        add(m.from.as_deref().and_then(|f| self.resolve_stage(f, true)));
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
        let deps: Vec<Vec<usize>> = (0..n).map(|i| self.stage_dependencies(i)).collect();
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
