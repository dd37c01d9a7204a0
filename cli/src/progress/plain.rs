//! `--progress plain`: BuildKit's numbered-line format, stable for logs and tests.
//!
//! ```text
//! #3 [2/3] RUN make
//! #3 0.412 compiling...
//! #3 DONE 1.2s
//! ```

use super::{Renderer, human_bytes};
use solver::progress::Event;
use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

struct StepState {
    number: usize,
    started: Instant,
    partial: Vec<u8>,
    last_transfer: HashMap<String, (u64, Option<u64>)>,
}

/// The plain renderer, writing to any writer (stderr in the CLI).
pub struct Plain<W: Write + Send> {
    out: W,
    steps: HashMap<String, StepState>,
    next: usize,
    warnings: Vec<String>,
}

impl<W: Write + Send> Plain<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Plain<W> {
        Plain { out, steps: HashMap::new(), next: 1, warnings: Vec::new() }
    }

    fn number(&mut self, step: &str) -> usize {
        if let Some(s) = self.steps.get(step) {
            return s.number;
        }
        let number = self.next;
        self.next += 1;
        self.steps.insert(
            step.to_string(),
            StepState { number, started: Instant::now(), partial: Vec::new(), last_transfer: HashMap::new() },
        );
        number
    }

    fn flush_partial(&mut self, step: &str) {
        if let Some(s) = self.steps.get_mut(step)
            && !s.partial.is_empty()
        {
            let line = String::from_utf8_lossy(&std::mem::take(&mut s.partial)).into_owned();
            let _ = writeln!(self.out, "#{} {:.3} {}", s.number, s.started.elapsed().as_secs_f64(), line);
        }
    }
}

impl<W: Write + Send> Renderer for Plain<W> {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { step, name, .. } => {
                let n = self.number(step);
                if let Some(s) = self.steps.get_mut(step) {
                    s.started = Instant::now();
                }
                let _ = writeln!(self.out, "\n#{n} {name}");
            }
            Event::Cached { step, name } => {
                let n = self.number(step);
                let _ = writeln!(self.out, "\n#{n} {name}\n#{n} CACHED");
            }
            Event::Log { step, data, .. } => {
                let n = self.number(step);
                let s = self.steps.get_mut(step).expect("numbered above");
                s.partial.extend_from_slice(data);
                while let Some(pos) = s.partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = s.partial.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    let _ = writeln!(self.out, "#{n} {:.3} {}", s.started.elapsed().as_secs_f64(), text);
                }
            }
            Event::Transfer { step, item, current, total } => {
                let n = self.number(step);
                let s = self.steps.get_mut(step).expect("numbered above");
                let done = total.is_some_and(|t| *current >= t);
                let previous = s.last_transfer.insert(item.clone(), (*current, *total));
                let was_done = previous.is_some_and(|(c, t)| t.is_some_and(|t| c >= t));
                // Plain logs show a transfer once when it starts and once when it completes
                // (a pull reports a blob complete again after verifying and unpacking it).
                if done && !was_done {
                    let _ = writeln!(self.out, "#{n} {item} {} done", human_bytes(*current));
                } else if !done && previous.is_none() {
                    let size = total.map(human_bytes).unwrap_or_default();
                    let _ = writeln!(self.out, "#{n} {item} {size}");
                }
            }
            Event::Done { step, seconds, stats, .. } => {
                self.flush_partial(step);
                let n = self.number(step);
                let mut extra = String::new();
                if let Some(cpu) = stats.cpu_usec {
                    extra.push_str(&format!(" cpu={:.2}s", cpu as f64 / 1e6));
                }
                if let Some(mem) = stats.peak_memory_bytes {
                    extra.push_str(&format!(" mem={}", human_bytes(mem)));
                }
                let _ = writeln!(self.out, "#{n} DONE {seconds:.1}s{extra}");
            }
            Event::Failed { step, message, .. } => {
                self.flush_partial(step);
                let n = self.number(step);
                let _ = writeln!(self.out, "#{n} ERROR: {message}");
            }
            Event::Cancelled { step } => {
                self.flush_partial(step);
                let n = self.number(step);
                let _ = writeln!(self.out, "#{n} CANCELED");
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
            Event::Note { message } => {
                let _ = writeln!(self.out, "\nNOTE: {message}");
            }
        }
    }

    fn finish(&mut self) {
        if !self.warnings.is_empty() {
            let _ = writeln!(self.out, "\n{} warning(s) found:", self.warnings.len());
            for w in &self.warnings {
                let _ = writeln!(self.out, " - {w}");
            }
        }
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solver::progress::{LogStream, StepStats};
    use std::time::SystemTime;

    #[test]
    fn numbered_lines_like_buildkit() {
        let mut buf = Vec::new();
        {
            let mut p = Plain::new(&mut buf);
            p.event(&Event::Cached { step: "a".into(), name: "[1/2] FROM base".into() });
            p.event(&Event::Started {
                step: "b".into(),
                name: "[2/2] RUN echo hi".into(),
                at: SystemTime::now(),
            });
            p.event(&Event::Log { step: "b".into(), stream: LogStream::Stdout, data: b"hi\npart".to_vec() });
            p.event(&Event::Done {
                step: "b".into(),
                at: SystemTime::now(),
                seconds: 0.25,
                stats: StepStats::default(),
            });
            p.event(&Event::Warning { message: "careful".into() });
            p.finish();
        }
        let text = String::from_utf8(buf).unwrap();
        let masked: Vec<String> = text
            .lines()
            .map(|l| {
                let mut parts: Vec<&str> = l.splitn(3, ' ').collect();
                if parts.len() == 3 && parts[1].contains('.') && parts[1].parse::<f64>().is_ok() {
                    parts[1] = "T";
                }
                parts.join(" ")
            })
            .collect();
        assert_eq!(
            masked.join("\n"),
            "\n#1 [1/2] FROM base\n#1 CACHED\n\n#2 [2/2] RUN echo hi\n#2 T hi\n#2 T part\n#2 DONE 0.2s\n\n1 warning(s) found:\n - careful"
        );
    }

    #[test]
    fn a_transfer_is_shown_done_once() {
        let mut buf = Vec::new();
        {
            let mut p = Plain::new(&mut buf);
            let t = |current| Event::Transfer {
                step: "a".into(),
                item: "sha256 0123".into(),
                current,
                total: Some(2000),
            };
            for e in [t(0), t(1000), t(2000), t(2000)] {
                p.event(&e);
            }
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "#1 sha256 0123 2.00kB\n#1 sha256 0123 2.00kB done\n");
    }
}
