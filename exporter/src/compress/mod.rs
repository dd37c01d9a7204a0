//! Layer compression: parallel gzip, zstd and none, each hashing the uncompressed stream on
//! the way (the diff ID) while the compressed bytes go to the blob writer.

mod gzip;

pub use gzip::{BLOCK_SIZE as GZIP_BLOCK_SIZE, ParallelGzip, StreamSummary};

use registry::{Compression, Hasher};
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// gzip level when none is given (Go's `gzip.DefaultCompression`, which BuildKit uses).
pub const GZIP_DEFAULT_LEVEL: u32 = 6;
/// zstd level when none is given (BuildKit's default).
pub const ZSTD_DEFAULT_LEVEL: u32 = 3;

/// Why compression options are rejected.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The level is outside what the algorithm accepts.
    #[error("compression level {level} is out of range for {algorithm} (valid: {valid})")]
    Level {
        /// The requested level.
        level: u32,
        /// `gzip` or `zstd`.
        algorithm: &'static str,
        /// The accepted range.
        valid: &'static str,
    },
}

/// The level actually used for `compression` when the user asked for `level`.
pub fn effective_level(compression: Compression, level: Option<u32>) -> Result<u32, CompressionError> {
    match (compression, level) {
        (Compression::Uncompressed, _) => Ok(0),
        (Compression::Gzip, None) => Ok(GZIP_DEFAULT_LEVEL),
        (Compression::Gzip, Some(l)) if l <= 9 => Ok(l),
        (Compression::Gzip, Some(level)) => {
            Err(CompressionError::Level { level, algorithm: "gzip", valid: "0-9" })
        }
        (Compression::Zstd, None | Some(0)) => Ok(ZSTD_DEFAULT_LEVEL),
        (Compression::Zstd, Some(l)) if l <= 22 => Ok(l),
        (Compression::Zstd, Some(level)) => {
            Err(CompressionError::Level { level, algorithm: "zstd", valid: "0-22" })
        }
    }
}

/// A writer that compresses into `W` and remembers the digest of what it was given.
pub(crate) enum LayerSink<W: Write + Send + 'static> {
    /// No compression: the blob is the tar.
    Plain { out: BufWriter<W>, hasher: Hasher },
    /// Parallel gzip.
    Gzip(ParallelGzip<W>),
    /// zstd on a helper thread, so that reading files overlaps compressing them.
    Zstd(ZstdStage<W>),
}

impl<W: Write + Send + 'static> LayerSink<W> {
    /// A sink for `compression` at an already validated `level`.
    pub fn new(out: W, compression: Compression, level: u32, threads: usize) -> io::Result<LayerSink<W>> {
        Ok(match compression {
            Compression::Uncompressed => {
                LayerSink::Plain { out: BufWriter::with_capacity(1 << 20, out), hasher: Hasher::new() }
            }
            Compression::Gzip => LayerSink::Gzip(ParallelGzip::new(out, level, threads)),
            Compression::Zstd => LayerSink::Zstd(ZstdStage::new(out, level)?),
        })
    }

    /// Ends the stream and returns the inner writer with what went in.
    pub fn finish(self) -> io::Result<(W, StreamSummary)> {
        match self {
            LayerSink::Plain { out, hasher } => {
                let out = out.into_inner().map_err(|e| e.into_error())?;
                let uncompressed_size = hasher.len();
                Ok((out, StreamSummary { uncompressed_digest: hasher.finish(), uncompressed_size }))
            }
            LayerSink::Gzip(g) => g.finish(),
            LayerSink::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for LayerSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LayerSink::Plain { out, hasher } => {
                let n = out.write(buf)?;
                hasher.update(&buf[..n]);
                Ok(n)
            }
            LayerSink::Gzip(g) => g.write(buf),
            LayerSink::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LayerSink::Plain { out, .. } => out.flush(),
            LayerSink::Gzip(g) => g.flush(),
            LayerSink::Zstd(z) => z.flush(),
        }
    }
}

const ZSTD_CHUNK: usize = 1 << 20;

/// zstd compression on its own thread, fed in 1 MiB chunks.
pub(crate) struct ZstdStage<W: Write + Send + 'static> {
    chunk: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<io::Result<(W, StreamSummary)>>>,
}

impl<W: Write + Send + 'static> ZstdStage<W> {
    fn new(out: W, level: u32) -> io::Result<ZstdStage<W>> {
        let level = i32::try_from(level).map_err(io::Error::other)?;
        let mut enc = zstd::stream::write::Encoder::new(out, level)?;
        // A frame header that states no content size keeps the output independent of how
        // the stream is fed; the checksum lets readers detect corruption.
        enc.include_checksum(true)?;
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let handle = std::thread::spawn(move || {
            let mut hasher = Hasher::new();
            for chunk in rx {
                hasher.update(&chunk);
                enc.write_all(&chunk)?;
            }
            let out = enc.finish()?;
            let uncompressed_size = hasher.len();
            Ok((out, StreamSummary { uncompressed_digest: hasher.finish(), uncompressed_size }))
        });
        Ok(ZstdStage { chunk: Vec::with_capacity(ZSTD_CHUNK), tx: Some(tx), handle: Some(handle) })
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(ZSTD_CHUNK));
        if self.tx.as_ref().is_some_and(|tx| tx.send(chunk).is_ok()) {
            return Ok(());
        }
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(io::Error::other("zstd compression stopped unexpectedly")),
        }
    }

    fn finish(mut self) -> io::Result<(W, StreamSummary)> {
        if !self.chunk.is_empty() {
            self.send()?;
        }
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("zstd compressor panicked")),
        }
    }
}

impl<W: Write + Send + 'static> Write for ZstdStage<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (ZSTD_CHUNK - self.chunk.len()).min(buf.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == ZSTD_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for ZstdStage<W> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
