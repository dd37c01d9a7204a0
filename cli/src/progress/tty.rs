//! `--progress tty`: a live view. One spinner line per running step with its timer and the
//! last lines of its output below it; finished steps are printed above the live area with
//! their time, CPU and peak memory; the header counts steps and ends with the totals.
//! Where stderr is not a terminal (a pipe, a file, `TERM=dumb`) nothing could be redrawn,
//! so the same events are printed as `plain` lines instead.

use super::{Plain, Renderer, human_bytes};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use solver::progress::Event;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How many of a running step's last output lines are shown under it (BuildKit shows a few).
const OUTPUT_LINES: usize = 3;

/// An output line is cut to this many characters so that it stays one terminal row.
const OUTPUT_WIDTH: usize = 80;

/// A style from a static `template`, where `{secs}` is the bar's running time as `2.1s` (the
/// precision of the finished steps' times; indicatif's `{elapsed}` says only `2s`).
fn style(template: &'static str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("static template").with_key(
        "secs",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
        },
    )
}

/// The `tty` renderer: the live view on a terminal, plain lines otherwise.
pub enum Tty {
    /// Stderr is a terminal.
    Live(Box<Live>),
    /// Stderr is not a terminal: the live view would show nothing.
    Plain(Plain<std::io::Stderr>),
}

impl Default for Tty {
    fn default() -> Self {
        Tty::new()
    }
}

impl Tty {
    /// The live view when stderr is a terminal that can redraw, else plain lines on stderr.
    pub fn new() -> Tty {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if std::io::stderr().is_terminal() && !dumb {
            Tty::Live(Box::new(Live::new()))
        } else {
            Tty::Plain(Plain::new(std::io::stderr()))
        }
    }
}

impl Renderer for Tty {
    fn event(&mut self, event: &Event) {
        match self {
            Tty::Live(live) => live.event(event),
            Tty::Plain(plain) => plain.event(event),
        }
    }

    fn finish(&mut self) {
        match self {
            Tty::Live(live) => live.finish(),
            Tty::Plain(plain) => plain.finish(),
        }
    }
}

/// One running step: its spinner line, name, output not yet split into lines, and its last
/// output lines.
struct Running {
    bar: ProgressBar,
    name: String,
    partial: Vec<u8>,
    last_lines: Vec<String>,
}

/// Totals over the finished steps, shown in the header at the end.
#[derive(Default)]
struct Totals {
    cpu_usec: u64,
    peak_memory_bytes: Option<u64>,
}

/// The live view on stderr.
pub struct Live {
    multi: MultiProgress,
    header: ProgressBar,
    bars: HashMap<String, Running>,
    next: usize,
    done: usize,
    started: Instant,
    warnings: Vec<String>,
    color: bool,
    totals: Totals,
}

impl Live {
    /// A live view on stderr, redrawn at most 10 times a second.
    fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let header = multi.add(ProgressBar::new_spinner());
        // The header's timer ticks with the spinner, not only when an event arrives.
        header.set_style(style("[+] Building {secs} {msg}"));
        header.enable_steady_tick(Duration::from_millis(100));
        // https://no-color.org: set and not empty means no colour.
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Live {
            multi,
            header,
            bars: HashMap::new(),
            next: 1,
            done: 0,
            started: Instant::now(),
            warnings: Vec::new(),
            color,
            totals: Totals::default(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    /// `(3/5)`: steps finished of steps seen, after the header's timer.
    fn update_header(&self) {
        self.header.set_message(format!("({}/{})", self.done, self.next - 1));
    }

    /// The last header: `[+] Building 4.1s (5/5) FINISHED`, then the CPU time and the largest
    /// peak memory of the steps that ran.
    fn final_header(&self) -> String {
        let mut msg = format!(
            "[+] Building {:.1}s ({}/{}) FINISHED",
            self.started.elapsed().as_secs_f64(),
            self.done,
            self.next - 1
        );
        if self.totals.cpu_usec > 0 {
            msg.push_str(&format!(", cpu {:.1}s", self.totals.cpu_usec as f64 / 1e6));
        }
        if let Some(peak) = self.totals.peak_memory_bytes {
            msg.push_str(&format!(", peak mem {}", human_bytes(peak)));
        }
        msg
    }

    fn finish_step(&mut self, step: &str, line: String) {
        if let Some(running) = self.bars.remove(step) {
            running.bar.finish_and_clear();
            self.multi.remove(&running.bar);
        }
        self.done += 1;
        let _ = self.multi.println(line);
        self.update_header();
    }

    fn name(&self, step: &str) -> String {
        self.bars.get(step).map(|r| r.name.clone()).unwrap_or_default()
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { step, name, .. } => {
                let n = self.next;
                self.next += 1;
                let bar = self.multi.add(ProgressBar::new_spinner());
                // The message holds the output lines, each starting with a newline.
                let template = if self.color {
                    " {spinner} {prefix} {secs}{msg:.dim}"
                } else {
                    " {spinner} {prefix} {secs}{msg}"
                };
                bar.set_style(style(template));
                bar.set_prefix(format!("#{n} {name}"));
                bar.enable_steady_tick(Duration::from_millis(100));
                let running =
                    Running { bar, name: name.clone(), partial: Vec::new(), last_lines: Vec::new() };
                self.bars.insert(step.clone(), running);
                self.update_header();
            }
            Event::Cached { name, .. } => {
                self.next += 1;
                self.done += 1;
                let line = format!(" => {} {}", self.paint("34", "CACHED"), name);
                let _ = self.multi.println(line);
                self.update_header();
            }
            Event::Log { step, data, .. } => {
                if let Some(running) = self.bars.get_mut(step) {
                    running.partial.extend_from_slice(data);
                    if let Some(pos) = running.partial.iter().rposition(|b| *b == b'\n') {
                        let complete: Vec<u8> = running.partial.drain(..=pos).collect();
                        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                            let text = String::from_utf8_lossy(line);
                            // Control characters (a `\r` progress bar, colours) would move
                            // the cursor under the redraw.
                            let text: String = text
                                .chars()
                                .map(|c| if c.is_control() { ' ' } else { c })
                                .take(OUTPUT_WIDTH)
                                .collect();
                            running.last_lines.push(text);
                        }
                        let skip = running.last_lines.len().saturating_sub(OUTPUT_LINES);
                        running.last_lines.drain(..skip);
                        let msg: String = running.last_lines.iter().map(|l| format!("\n   > {l}")).collect();
                        running.bar.set_message(msg);
                    }
                }
            }
            Event::Transfer { step, item, current, total } => {
                if let Some(running) = self.bars.get(step) {
                    let total = total.map(|t| format!(" / {}", human_bytes(t))).unwrap_or_default();
                    running.bar.set_message(format!(" {item} {}{total}", human_bytes(*current)));
                }
            }
            Event::Done { step, seconds, stats, .. } => {
                let name = self.name(step);
                let mut extra = String::new();
                if let Some(cpu) = stats.cpu_usec {
                    extra.push_str(&format!(" cpu {:.1}s", cpu as f64 / 1e6));
                    self.totals.cpu_usec += cpu;
                }
                if let Some(mem) = stats.peak_memory_bytes {
                    extra.push_str(&format!(" mem {}", human_bytes(mem)));
                    self.totals.peak_memory_bytes = Some(self.totals.peak_memory_bytes.unwrap_or(0).max(mem));
                }
                let line = format!(" => {name} {}{}", self.paint("32", &format!("{seconds:.1}s")), extra);
                self.finish_step(step, line);
            }
            Event::Failed { step, message, .. } => {
                let name = self.name(step);
                let line = format!(" => {} {name}: {message}", self.paint("31", "ERROR"));
                self.finish_step(step, line);
            }
            Event::Cancelled { step } => {
                let name = self.name(step);
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
        for (_, running) in self.bars.drain() {
            running.bar.finish_and_clear();
            self.multi.remove(&running.bar);
        }
        // The live area is cleared and the last header printed as a plain line, so that
        // whatever the program prints next starts on a line of its own.
        self.header.finish_and_clear();
        self.multi.remove(&self.header);
        let _ = self.multi.println(self.final_header());
        for w in &self.warnings {
            let _ = self.multi.println(format!(" {} {w}", self.paint("33", "WARN:")));
        }
    }
}
