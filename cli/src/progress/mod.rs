//! Rendering the solver's progress events: `plain` (BuildKit-style numbered lines), `tty`
//! (a live view), `rawjson` (one event per line) and `quiet`.

mod plain;
mod trace;
mod tty;

pub use plain::Plain;
pub use trace::Trace;
pub use tty::Tty;

use solver::progress::Event;
use std::io::Write;

/// Something that shows progress events.
pub trait Renderer: Send {
    /// Shows one event.
    fn event(&mut self, event: &Event);
    /// Called once after the last event.
    fn finish(&mut self);
}

/// `--progress rawjson`: the event stream as JSON lines on stderr.
pub struct RawJson;

impl Renderer for RawJson {
    fn event(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
    fn finish(&mut self) {}
}

/// `--progress quiet`: nothing (errors are printed by main).
pub struct Quiet;

impl Renderer for Quiet {
    fn event(&mut self, _event: &Event) {}
    fn finish(&mut self) {}
}

/// Human-readable size.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n}B") } else { format!("{v:.2}{}", UNITS[unit]) }
}
