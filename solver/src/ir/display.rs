//! Text and Graphviz renderings of a graph (`rbuild debug ir`).

use super::{FileAction, Graph, MountKind, Op, Source, Vertex};
use std::fmt::Write as _;

/// One line per vertex: id, short digest, kind, summary, inputs and name.
pub fn to_text(graph: &Graph) -> String {
    let mut out = String::new();
    for (id, v) in graph.vertices() {
        let inputs: Vec<String> = v.inputs.iter().map(|i| format!("v{}", i.0)).collect();
        let _ = write!(out, "v{} {} {:<5} {}", id.0, &v.digest.hex()[..12], v.op.kind(), summary(v));
        if !inputs.is_empty() {
            let _ = write!(out, " <- {}", inputs.join(", "));
        }
        if !v.meta.name.is_empty() {
            let _ = write!(out, "  # {}", v.meta.name);
        }
        out.push('\n');
    }
    out
}

/// A Graphviz `digraph`, edges from input to consumer.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::from("digraph rbuild {\n  rankdir=BT;\n  node [shape=box, fontname=monospace];\n");
    for (id, v) in graph.vertices() {
        let label = if v.meta.name.is_empty() { summary(v) } else { v.meta.name.clone() };
        let _ = writeln!(out, "  v{} [label={:?}];", id.0, format!("{}\n{}", label, &v.digest.hex()[..12]));
        for input in &v.inputs {
            let _ = writeln!(out, "  v{} -> v{};", input.0, id.0);
        }
    }
    out.push_str("}\n");
    out
}

fn summary(v: &Vertex) -> String {
    match &v.op {
        Op::Source(Source::Image(i)) => format!("{} ({})", i.reference, i.platform),
        Op::Source(Source::Local(l)) => {
            if l.excludes.is_empty() {
                format!("local://{}", l.name)
            } else {
                format!("local://{} excludes={:?}", l.name, l.excludes)
            }
        }
        Op::Source(Source::Http(h)) => h.url.clone(),
        Op::Source(Source::Git(g)) => g.remote.clone(),
        Op::Exec(e) => {
            let mounts: Vec<String> = e
                .mounts
                .iter()
                .skip(1)
                .map(|m| {
                    let kind = match &m.kind {
                        MountKind::Layer => "layer",
                        MountKind::Bind => "bind",
                        MountKind::Cache { .. } => "cache",
                        MountKind::Tmpfs { .. } => "tmpfs",
                        MountKind::Secret { .. } => "secret",
                        MountKind::Ssh { .. } => "ssh",
                    };
                    format!("{kind}:{}", m.dest)
                })
                .collect();
            let mut s = format!("{:?} cwd={} user={:?}", e.args, e.cwd, e.user);
            if !mounts.is_empty() {
                let _ = write!(s, " mounts=[{}]", mounts.join(" "));
            }
            s
        }
        Op::File(f) => {
            let actions: Vec<String> = f
                .actions
                .iter()
                .map(|a| match a {
                    FileAction::Mkdir(m) => format!("mkdir {}", m.path),
                    FileAction::Mkfile(m) => format!("mkfile {}", m.path),
                    FileAction::Rm(r) => format!("rm {}", r.path),
                    FileAction::Copy(c) => format!("copy #{}:{} {}", c.source, c.src, c.dest),
                })
                .collect();
            actions.join("; ")
        }
        Op::Merge => format!("merge of {} inputs", v.inputs.len()),
        Op::Diff => "diff".to_string(),
    }
}
