//! Parallel, deterministic gzip in the style of pigz.
//!
//! The input is cut into independent 128 KiB blocks. Each block is deflated on a worker
//! thread with the last 32 KiB of the previous block as preset dictionary and ends with a
//! sync flush (an empty stored block that byte-aligns the output); the final block ends the
//! stream instead. The deflate outputs are concatenated in order into a single gzip member
//! whose CRC-32 is combined from the per-block CRCs.
//!
//! Every block's compressed bytes depend only on its own bytes, the 32 KiB before it and the
//! level, so the output is the same whatever the number of threads, and the same as long as
//! the deflate implementation (zlib-rs, pinned in the workspace) does not change.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use registry::{Digest, Hasher};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Uncompressed bytes per independently compressed block (pigz's default).
pub const BLOCK_SIZE: usize = 128 * 1024;
/// The deflate window: how much of the previous block serves as dictionary.
const WINDOW: usize = 32 * 1024;
/// Blocks in flight per worker: enough to keep workers busy while the collector writes.
const IN_FLIGHT_PER_WORKER: usize = 4;

/// What a finished compression saw of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// sha256 of the uncompressed bytes (a layer's diff ID).
    pub uncompressed_digest: Digest,
    /// Number of uncompressed bytes.
    pub uncompressed_size: u64,
}

struct Job {
    seq: u64,
    data: Arc<Vec<u8>>,
    dict: Option<Arc<Vec<u8>>>,
    last: bool,
}

struct Done {
    seq: u64,
    data: Arc<Vec<u8>>,
    deflated: io::Result<Vec<u8>>,
    crc: Crc,
    last: bool,
}

/// A [`Write`] that gzips what it is given on several threads into `W`.
///
/// Call [`ParallelGzip::finish`] to complete the stream and get `W` back; dropping the
/// writer instead abandons the stream (the threads stop and `W` is dropped).
pub struct ParallelGzip<W: Write + Send + 'static> {
    block: Vec<u8>,
    prev: Option<Arc<Vec<u8>>>,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    tokens: Receiver<()>,
    workers: Vec<JoinHandle<()>>,
    collector: Option<JoinHandle<io::Result<(W, StreamSummary)>>>,
}

impl<W: Write + Send + 'static> ParallelGzip<W> {
    /// Starts compressing into `out` at `level` (0–9) with `threads` workers (0: one per
    /// available core).
    pub fn new(out: W, level: u32, threads: usize) -> ParallelGzip<W> {
        let threads =
            if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let level = level.min(9);
        let in_flight = threads * IN_FLIGHT_PER_WORKER;
        let (job_tx, job_rx) = sync_channel::<Job>(in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = channel::<Done>();
        let (token_tx, token_rx) = sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            // Cannot fail: the channel has exactly this capacity and its receiver is alive.
            let _ = token_tx.send(());
        }
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                std::thread::spawn(move || worker(&rx, &tx, level))
            })
            .collect();
        drop(done_tx);
        let collector = std::thread::spawn(move || collect(out, &done_rx, &token_tx, level));
        ParallelGzip {
            block: Vec::with_capacity(BLOCK_SIZE),
            prev: None,
            seq: 0,
            jobs: Some(job_tx),
            tokens: token_rx,
            workers,
            collector: Some(collector),
        }
    }

    fn send_block(&mut self, last: bool) -> io::Result<()> {
        let data = Arc::new(std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE)));
        let dict = self.prev.replace(Arc::clone(&data));
        let job = Job { seq: self.seq, data, dict, last };
        self.seq += 1;
        let sent = self.tokens.recv().is_ok() && self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if sent { Ok(()) } else { Err(self.stopped()) }
    }

    /// The pipeline stopped early: report the collector's error if it has one.
    fn stopped(&mut self) -> io::Error {
        self.jobs = None;
        match self.collector.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("gzip compression stopped unexpectedly"),
        }
    }

    /// Compresses what is left, writes the gzip trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<(W, StreamSummary)> {
        self.send_block(true)?;
        self.jobs = None;
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                return Err(io::Error::other("gzip worker panicked"));
            }
        }
        match self.collector.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("gzip collector panicked")),
        }
    }
}

impl<W: Write + Send + 'static> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            // A full block is only sent once more data arrives, so that the final block
            // (sent by `finish`) is never empty unless the whole stream is.
            if self.block.len() == BLOCK_SIZE {
                self.send_block(false)?;
            }
            let n = (BLOCK_SIZE - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing mid-stream would change block boundaries and so the output bytes.
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
    }
}

fn worker(jobs: &Mutex<Receiver<Job>>, done: &Sender<Done>, level: u32) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let dict = job.dict.as_deref().map(|d| &d[d.len().saturating_sub(WINDOW)..]);
        let deflated = deflate_block(level, &job.data, dict, job.last);
        let mut crc = Crc::new();
        crc.update(&job.data);
        let out = Done { seq: job.seq, data: job.data, deflated, crc, last: job.last };
        if done.send(out).is_err() {
            return;
        }
    }
}

/// Bits of entropy per byte above which a block is stored rather than compressed: at this
/// point deflate saves well under 1% and costs as much CPU as on any other data.
const STORE_ABOVE_ENTROPY: f64 = 7.95;

/// The order-0 entropy of `data` in bits per byte (8.0 for uniformly random bytes).
fn entropy(data: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for b in data {
        counts[*b as usize] += 1;
    }
    let n = data.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| *c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// Deflate "stored" blocks holding `data` verbatim. The stream is byte-aligned at every block
/// boundary (previous blocks end with a sync flush or are stored), so each stored block's
/// 3-bit header plus padding is one byte; the last one sets BFINAL when `last`.
fn stored_blocks(data: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 10);
    let mut chunks = data.chunks(65535).peekable();
    while let Some(chunk) = chunks.next() {
        let final_block = last && chunks.peek().is_none();
        out.push(u8::from(final_block));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Raw-deflates one block: with `dict` as preset dictionary, ending in a sync flush or,
/// for the last block, the end of the stream. Blocks that look incompressible (already
/// compressed or random content, common in layers) are stored instead, which is what
/// deflate would mostly end up emitting for them anyway, at a fraction of the CPU.
pub(crate) fn deflate_block(level: u32, data: &[u8], dict: Option<&[u8]>, last: bool) -> io::Result<Vec<u8>> {
    if level > 0 && !data.is_empty() && entropy(data) > STORE_ABOVE_ENTROPY {
        return Ok(stored_blocks(data, last));
    }
    // A fresh compressor per block: zlib-rs' reset() does not give output identical to a
    // new stream, and the output must not depend on which worker compressed what before.
    let mut c = Compress::new(Compression::new(level), false);
    if let Some(d) = dict {
        c.set_dictionary(d).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 64);
    let mut consumed = 0usize;
    loop {
        if out.len() == out.capacity() {
            out.reserve(64 * 1024);
        }
        let before = c.total_in();
        let status = c.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        consumed += usize::try_from(c.total_in() - before).map_err(io::Error::other)?;
        let all_in = consumed == data.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // zlib's rule: a flush is complete once the call left output space unused.
            Status::Ok | Status::BufError if !last && all_in && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

fn gzip_header(level: u32) -> [u8; 10] {
    // No name, no mtime (0), OS "unknown" (255); XFL as Go's compress/gzip sets it.
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

fn collect<W: Write>(
    mut out: W,
    done: &Receiver<Done>,
    tokens: &SyncSender<()>,
    level: u32,
) -> io::Result<(W, StreamSummary)> {
    out.write_all(&gzip_header(level))?;
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    let mut crc = Crc::new();
    let mut hasher = Hasher::new();
    loop {
        let Ok(d) = done.recv() else {
            return Err(io::Error::other("gzip compression stopped before the end of the stream"));
        };
        pending.insert(d.seq, d);
        while let Some(d) = pending.remove(&next) {
            out.write_all(&d.deflated?)?;
            hasher.update(&d.data);
            crc.combine(&d.crc);
            next += 1;
            // The producer may be gone already; then nobody needs the token.
            let _ = tokens.send(());
            if d.last {
                let size = hasher.len();
                out.write_all(&crc.sum().to_le_bytes())?;
                // ISIZE is the length modulo 2^32 by definition.
                out.write_all(&(size as u32).to_le_bytes())?;
                out.flush()?;
                return Ok((
                    out,
                    StreamSummary { uncompressed_digest: hasher.finish(), uncompressed_size: size },
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivially: a repeating text with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the sample text {}\n", i % 97).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gzip(data: &[u8], level: u32, threads: usize, chunk: usize) -> (Vec<u8>, StreamSummary) {
        let mut w = ParallelGzip::new(Vec::new(), level, threads);
        for c in data.chunks(chunk.max(1)) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_independent_of_threads_and_write_sizes() {
        let cases = [0usize, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 12345];
        for len in cases {
            let data = sample(len);
            let (one, sum) = gzip(&data, 6, 1, 7919);
            for (threads, chunk) in [(2, 1 << 20), (3, 4096), (8, 1)] {
                if chunk == 1 && len > BLOCK_SIZE {
                    continue;
                }
                assert_eq!(gzip(&data, 6, threads, chunk).0, one, "len {len} threads {threads}");
            }
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "len {len}");
            assert_eq!(sum.uncompressed_size, len as u64);
            assert_eq!(sum.uncompressed_digest, Digest::of_bytes(&data));
        }
    }

    #[test]
    fn all_levels_decode() {
        let data = sample(2 * BLOCK_SIZE + 5);
        for level in 0..=9 {
            let (gz, _) = gzip(&data, level, 2, 65536);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "level {level}");
        }
    }

    #[test]
    fn incompressible_blocks_are_stored_and_round_trip() {
        let mut x: u64 = 0x243f_6a88_85a3_08d3;
        let random: Vec<u8> = (0..3 * BLOCK_SIZE + 777)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(entropy(&random) > STORE_ABOVE_ENTROPY);
        assert!(entropy(&sample(BLOCK_SIZE)) < STORE_ABOVE_ENTROPY);
        // Random blocks between compressible ones: each kind is encoded its own way.
        let mut mixed = sample(BLOCK_SIZE + 10);
        mixed.extend_from_slice(&random);
        mixed.extend_from_slice(&sample(BLOCK_SIZE));
        for data in [random.clone(), mixed] {
            let (gz, _) = gzip(&data, 6, 2, 65536);
            assert!(gz.len() < data.len() + data.len() / 100, "stored blocks add little: {}", gz.len());
            assert_eq!(gzip(&data, 6, 3, 4096).0, gz, "independent of threads");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
            let mut pigz = std::process::Command::new("gzip")
                .args(["-dc"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn();
            if let Ok(child) = pigz.as_mut() {
                let mut stdin = child.stdin.take().unwrap();
                let input = gz.clone();
                let feeder = std::thread::spawn(move || stdin.write_all(&input));
                let mut out = Vec::new();
                child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
                feeder.join().unwrap().unwrap();
                assert!(child.wait().unwrap().success(), "GNU gzip rejects the stream");
                assert_eq!(out, data, "GNU gzip decodes other bytes");
            }
        }
    }

    #[test]
    fn dropping_midway_stops_threads() {
        let mut w = ParallelGzip::new(Vec::new(), 6, 2);
        w.write_all(&sample(5 * BLOCK_SIZE)).unwrap();
        drop(w);
    }
}
