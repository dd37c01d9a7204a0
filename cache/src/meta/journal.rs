//! The metadata journal `<root>/meta.journal`: what a build records between two durable
//! commits of the database, so that a killed process loses none of it without paying a disk
//! flush per step.
//!
//! A step's records (its layer, its cache record, its blobs) are committed to the database
//! without a flush and appended to this file with one `write`. A `write` reaches the page
//! cache, which outlives the process: after a SIGKILL the next open finds every line and
//! replays them. A power failure can lose lines, but it also loses the layers they name
//! (those are flushed once, at the end of the build), so a journal written in an earlier
//! boot is discarded, like the unflushed layers themselves. Every durable commit empties
//! the journal, since it makes everything before it durable.
//!
//! Format: a header line `rbuild-meta-journal 1 <boot id>`, then one line per operation,
//! `<FNV-1a 64 of the JSON, 16 hex digits> <JSON>`. A line cut short by a kill mid-`write`
//! fails its checksum and ends the replay.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use registry::Digest;
use serde::{Deserialize, Serialize};

use super::records::{CacheRecord, LayerBlob, LayerRecord};
use crate::layer::LayerId;

const MAGIC: &str = "rbuild-meta-journal 1";

/// One logged write of [`super::Meta`], replayed through the same code that applied it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    InsertLayer { id: LayerId, record: LayerRecord, import_key: Option<String>, boot_id: String },
    PutCache { key: Digest, record: CacheRecord },
    SetLayerBlob { id: LayerId, blob: LayerBlob },
    SetLayerCreated { id: LayerId, created_unix: i64 },
}

/// The open journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    boot_id: String,
    file: Option<File>,
    /// Bytes in the file (0: empty, the header is written with the first operation).
    len: u64,
}

impl Journal {
    /// The journal next to the database `db_path` (`meta.redb` → `meta.journal`).
    pub(crate) fn new(db_path: &Path, boot_id: &str) -> Journal {
        Journal { path: db_path.with_extension("journal"), boot_id: boot_id.to_string(), file: None, len: 0 }
    }

    /// The file's path.
    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    /// The operations a killed process of this boot left behind, in order (none when the
    /// journal is missing, empty, or from another boot). The caller replays them, commits
    /// durably, then calls [`Journal::clear`].
    pub(crate) fn pending(&mut self) -> io::Result<Vec<Op>> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        self.len = text.len() as u64;
        let text = String::from_utf8_lossy(&text);
        let mut lines = text.split_inclusive('\n');
        let header = lines.next().unwrap_or_default();
        let same_boot = header
            .strip_suffix('\n')
            .and_then(|h| h.strip_prefix(MAGIC))
            .and_then(|h| h.strip_prefix(' '))
            .is_some_and(|boot| !boot.is_empty() && boot == self.boot_id);
        if !same_boot {
            return Ok(Vec::new());
        }
        let mut ops = Vec::new();
        for line in lines {
            let Some(line) = line.strip_suffix('\n') else { break };
            let Some((sum, json)) = line.split_once(' ') else { break };
            if sum != format!("{:016x}", fnv1a(json.as_bytes())) {
                break;
            }
            match serde_json::from_str::<Op>(json) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Ok(ops)
    }

    /// Appends one operation with a single `write` (the header too, when the journal is
    /// empty).
    pub(crate) fn append(&mut self, op: &Op) -> io::Result<()> {
        let json = serde_json::to_string(op).map_err(io::Error::other)?;
        let mut buf = String::new();
        if self.len == 0 {
            buf.push_str(&format!("{MAGIC} {}\n", self.boot_id));
        }
        buf.push_str(&format!("{:016x} {json}\n", fnv1a(json.as_bytes())));
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                self.file.insert(OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?)
            }
        };
        file.write_all(buf.as_bytes())?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Empties the journal (everything in it is durable in the database now).
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        match &self.file {
            Some(f) => f.set_len(0)?,
            None => match OpenOptions::new().write(true).open(&self.path) {
                Ok(f) => f.set_len(0)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        self.len = 0;
        Ok(())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(n: i64) -> Op {
        Op::SetLayerCreated { id: "0123456789abcdef0123456789abcdef".parse().unwrap(), created_unix: n }
    }

    fn created(ops: &[Op]) -> Vec<i64> {
        ops.iter()
            .map(|o| match o {
                Op::SetLayerCreated { created_unix, .. } => *created_unix,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn replays_what_this_boot_wrote_up_to_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("meta.redb");
        let mut j = Journal::new(&db, "boot-a");
        for n in 1..=3 {
            j.append(&op(n)).unwrap();
        }
        assert_eq!(created(&Journal::new(&db, "boot-a").pending().unwrap()), [1, 2, 3]);
        assert!(
            Journal::new(&db, "boot-b").pending().unwrap().is_empty(),
            "another boot's journal is dropped"
        );

        // A kill in the middle of a write leaves part of a line.
        let text = std::fs::read_to_string(j.path()).unwrap();
        let cut: Vec<&str> = text.split_inclusive('\n').collect();
        let torn = format!("{}{}{}", cut[0], cut[1], &cut[2][..cut[2].len() / 2]);
        std::fs::write(j.path(), &torn).unwrap();
        assert_eq!(created(&Journal::new(&db, "boot-a").pending().unwrap()), [1]);
        // A damaged line ends the replay too.
        let damaged = format!("{}{}{}", cut[0], cut[1].replacen('1', "7", 1), cut[2]);
        std::fs::write(j.path(), damaged).unwrap();
        assert!(Journal::new(&db, "boot-a").pending().unwrap().is_empty());

        let mut j = Journal::new(&db, "boot-a");
        j.pending().unwrap();
        j.clear().unwrap();
        assert_eq!(std::fs::metadata(j.path()).unwrap().len(), 0);
        j.append(&op(9)).unwrap();
        assert_eq!(created(&Journal::new(&db, "boot-a").pending().unwrap()), [9]);
    }
}
