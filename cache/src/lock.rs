//! The store lock: one process at a time owns a store root.
//!
//! redb opens its file for one process only, and crash recovery (removing uncommitted layers,
//! detaching stale mounts) is only safe when nobody else uses the root. So [`crate::Store`]
//! holds an exclusive `flock` on `<root>/lock` for its whole life; a second process waits.
//! The holder writes its pid into the file so the waiter can say whom it waits for. The
//! kernel drops the lock when the holder exits, however it exits.

use crate::error::{StoreError, io_err};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Roots this process holds: a second `flock` from the same process on a new file
/// description would block forever, so that case is an error instead.
static OPEN_ROOTS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The held lock; released on drop.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
    root: PathBuf,
}

impl StoreLock {
    /// Takes the lock on `root` (canonical path), waiting for another process if needed.
    /// `on_wait` is called once, before waiting, with the holder's pid when known.
    pub(crate) fn acquire(
        root: &Path,
        on_wait: &mut dyn FnMut(Option<u32>),
    ) -> Result<StoreLock, StoreError> {
        {
            let mut open = OPEN_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
            if !open.insert(root.to_path_buf()) {
                return Err(StoreError::AlreadyOpen { root: root.to_path_buf() });
            }
        }
        // From here on the registration must be undone on every error path: StoreLock's
        // Drop does that, so build a value first and let `?` drop it.
        let path = root.join("lock");
        let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
            Ok(f) => f,
            Err(e) => {
                unregister(root);
                return Err(io_err("open store lock", &path)(e));
            }
        };
        let mut lock = StoreLock { _file: file, root: root.to_path_buf() };
        match lock._file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait(read_pid(&mut lock._file));
                lock._file.lock().map_err(io_err("lock", &path))?;
            }
            Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
        }
        write_pid(&mut lock._file).map_err(io_err("write pid into", &path))?;
        Ok(lock)
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        unregister(&self.root);
    }
}

fn unregister(root: &Path) {
    OPEN_ROOTS.lock().unwrap_or_else(|e| e.into_inner()).remove(root);
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    Read::by_ref(file).take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Writes our pid over the previous holder's, padded to a fixed width, so that a process
/// reading the file meanwhile sees one pid or the other, never an emptied file (truncating
/// first left a window in which a waiter could not say whom it waits for).
fn write_pid(file: &mut File) -> std::io::Result<()> {
    let line = format!("{:<20}\n", std::process::id());
    file.seek(SeekFrom::Start(0))?;
    file.write_all(line.as_bytes())?;
    file.set_len(line.len() as u64)?;
    file.flush()
}
