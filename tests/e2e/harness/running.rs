//! A command running in the background: its output so far, signals, and waiting for it.
//! Used to interrupt or kill rbuild at a chosen moment of a build.

use super::rbuild::Outcome;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A started command; killed with its whole process group if dropped while still running.
pub struct Running {
    child: Child,
    cmdline: String,
    timeout: Duration,
    started: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    finished: bool,
}

impl Running {
    pub(super) fn new(mut child: Child, cmdline: String, timeout: Duration) -> Running {
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), stdout.clone()),
            collect(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), stderr.clone()),
        ];
        Running { child, cmdline, timeout, started: Instant::now(), stdout, stderr, readers, finished: false }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the process has exited (it is reaped then).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends `signal` (`KILL`, `INT`, `TERM`) to the process alone, not to its group: a
    /// sandbox left running must be rbuild's failure to notice, not hidden by this kill.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {signal} {} failed", self.pid());
    }

    /// Waits until `ready` returns true (polled every few milliseconds); panics with the
    /// output so far after `limit`, or if the command ends first.
    #[track_caller]
    pub fn wait_until(&mut self, what: &str, limit: Duration, mut ready: impl FnMut(&Running) -> bool) {
        let start = Instant::now();
        loop {
            if ready(self) {
                return;
            }
            if self.exited() {
                panic!("{} ended before {what}:\n{}", self.cmdline, self.stderr());
            }
            if start.elapsed() > limit {
                panic!("no {what} after {limit:?}: {}\n{}", self.cmdline, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for the process to end (killing its group after the command's timeout) and
    /// returns what it did.
    pub fn wait(mut self) -> Outcome {
        let (code, timed_out) = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    break (status.code().or_else(|| status.signal().map(|s| 128 + s)), false);
                }
                Ok(None) if self.started.elapsed() > self.timeout => {
                    self.kill_group();
                    let _ = self.child.wait();
                    break (None, true);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("waiting for {}: {e}", self.cmdline),
            }
        };
        self.finished = true;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let take = |s: &Arc<Mutex<String>>| std::mem::take(&mut *s.lock().unwrap_or_else(|e| e.into_inner()));
        Outcome {
            cmdline: self.cmdline.clone(),
            code,
            timed_out,
            stdout: take(&self.stdout),
            stderr: take(&self.stderr),
        }
    }

    fn kill_group(&self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.pid())]).status();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished && !self.exited() {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// Appends everything read from `pipe` to `into`, as it arrives.
fn collect(pipe: Option<Box<dyn Read + Send>>, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut pipe) = pipe else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}
