//! `--progress tty`: a live view. One spinner line per running step with its timer and last
//! output line; finished steps are printed above the live area with their time.

use super::{Renderer, human_bytes};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use solver::progress::Event;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The live renderer (stderr).
pub struct Tty {
    multi: MultiProgress,
    header: ProgressBar,
    bars: HashMap<String, (usize, ProgressBar, String, Vec<u8>)>,
    next: usize,
    done: usize,
    started: Instant,
    warnings: Vec<String>,
    color: bool,
}

impl Default for Tty {
    fn default() -> Self {
        Tty::new()
    }
}

impl Tty {
    /// A live view on stderr, redrawn at most 10 times a second.
    pub fn new() -> Tty {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(ProgressStyle::with_template("{msg}").expect("static template"));
        header.enable_steady_tick(Duration::from_millis(100));
        let color = std::env::var_os("NO_COLOR").is_none();
        Tty {
            multi,
            header,
            bars: HashMap::new(),
            next: 1,
            done: 0,
            started: Instant::now(),
            warnings: Vec::new(),
            color,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn update_header(&self) {
        let msg = format!(
            "[+] Building {:.1}s ({}/{})",
            self.started.elapsed().as_secs_f64(),
            self.done,
            self.next - 1
        );
        self.header.set_message(msg);
    }

    fn finish_step(&mut self, step: &str, line: String) {
        if let Some((_, bar, _, _)) = self.bars.remove(step) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.done += 1;
        let _ = self.multi.println(line);
        self.update_header();
    }
}

impl Renderer for Tty {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { step, name, .. } => {
                let n = self.next;
                self.next += 1;
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(" {spinner} {prefix} {elapsed:>4} {msg:.dim}")
                        .expect("static template"),
                );
                bar.set_prefix(format!("#{n} {name}"));
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bars.insert(step.clone(), (n, bar, name.clone(), Vec::new()));
            }
            Event::Cached { name, .. } => {
                self.next += 1;
                self.done += 1;
                let line = format!(" => {} {}", self.paint("34", "CACHED"), name);
                let _ = self.multi.println(line);
            }
            Event::Log { step, data, .. } => {
                if let Some((_, bar, _, partial)) = self.bars.get_mut(step) {
                    partial.extend_from_slice(data);
                    if let Some(pos) = partial.iter().rposition(|b| *b == b'\n') {
                        let complete: Vec<u8> = partial.drain(..=pos).collect();
                        if let Some(last) = complete.split(|b| *b == b'\n').rev().find(|l| !l.is_empty()) {
                            let text: String = String::from_utf8_lossy(last).chars().take(60).collect();
                            bar.set_message(text);
                        }
                    }
                }
            }
            Event::Transfer { step, item, current, total } => {
                if let Some((_, bar, _, _)) = self.bars.get(step) {
                    let total = total.map(|t| format!(" / {}", human_bytes(t))).unwrap_or_default();
                    bar.set_message(format!("{item} {}{total}", human_bytes(*current)));
                }
            }
            Event::Done { step, seconds, stats, .. } => {
                let name = self.bars.get(step).map(|b| b.2.clone()).unwrap_or_default();
                let mut extra = String::new();
                if let Some(cpu) = stats.cpu_usec {
                    extra.push_str(&format!(" cpu {:.1}s", cpu as f64 / 1e6));
                }
                if let Some(mem) = stats.peak_memory_bytes {
                    extra.push_str(&format!(" mem {}", human_bytes(mem)));
                }
                let line = format!(" => {name} {}{}", self.paint("32", &format!("{seconds:.1}s")), extra);
                self.finish_step(step, line);
            }
            Event::Failed { step, message, .. } => {
                let name = self.bars.get(step).map(|b| b.2.clone()).unwrap_or_default();
                let line = format!(" => {} {name}: {message}", self.paint("31", "ERROR"));
                self.finish_step(step, line);
            }
            Event::Cancelled { step } => {
                let name = self.bars.get(step).map(|b| b.2.clone()).unwrap_or_default();
                let line = format!(" => {} {name}", self.paint("33", "CANCELED"));
                self.finish_step(step, line);
            }
            Event::Warning { message } => self.warnings.push(message.clone()),
            Event::Note { message } => {
                let line = format!(" {} {message}", self.paint("36", "NOTE:"));
                let _ = self.multi.println(line);
            }
        }
    }

    fn finish(&mut self) {
        self.update_header();
        self.header.finish();
        for (_, (_, bar, _, _)) in self.bars.drain() {
            bar.finish_and_clear();
        }
        for w in &self.warnings {
            let _ = self.multi.println(format!(" {} {w}", self.paint("33", "WARN:")));
        }
    }
}
