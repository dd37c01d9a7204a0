//! `Source::Http`: `ADD https://…`, as BuildKit's HTTP source does it.
//!
//! The download lands in the content store and becomes a one-file layer: the file is named
//! by the op (the frontend takes the URL path's last element), has the op's mode (`0600`
//! unless the frontend asked otherwise) and the `Last-Modified` time (the epoch without one).
//! Remote archives are never unpacked here; `ADD --unpack` is the COPY's business.
//!
//! Cache keys: with `--checksum` the op itself is the key, so a rebuild downloads nothing.
//! Without one the key is the content's digest: the first key computation downloads the
//! file, and remembers the response's ETag beside the digest it had; the next build asks the
//! server with `If-None-Match` (first a `HEAD`, as some servers answer that better, then a
//! conditional `GET`) and a `304` or a known ETag pins the digest without a download.
//!
//! The client is the process's own: `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` of rbuild's
//! environment apply, build args never do (like BuildKit, whose daemon transport is used).

use super::{LocalWorker, Ref, store_err};
use crate::error::SolveError;
use crate::ir::{HttpSource, Op, Source, Vertex};
use crate::progress::{Event, ProgressSink};
use crate::scheduler::Step;
use registry::Digest;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

/// Key-value namespace of the remembered ETags (key: [`url_key`]).
const ETAG_NAMESPACE: &str = "http-etag";

/// How many ETags of one URL are remembered (a server alternating between versions).
const MAX_REMEMBERED: usize = 16;

/// Errors of HTTP sources.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The HTTP client could not be made (TLS set-up).
    #[error("cannot create the http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request failed before a response arrived, or while reading the body.
    #[error("{url}: {cause}")]
    Request {
        /// The URL.
        url: String,
        /// The innermost cause.
        cause: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status that is not a success.
    #[error("{url}: invalid response status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// A `304 Not Modified` for an ETag that was never sent.
    #[error("{url}: invalid not-modified ETag: {etag}")]
    UnknownEtag {
        /// The URL.
        url: String,
        /// The ETag of the response.
        etag: String,
    },
    /// The content is not what `--checksum` (or the digest pinned while computing keys) says.
    #[error("digest mismatch for {url}: {actual} (expected: {expected})")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// What was expected.
        expected: Digest,
        /// What was downloaded.
        actual: Digest,
    },
    /// The op names no usable file.
    #[error("{url}: invalid file name {filename:?}")]
    Filename {
        /// The URL.
        url: String,
        /// The name.
        filename: String,
    },
    /// Storing the download failed.
    #[error("{url}: {source}")]
    Content {
        /// The URL.
        url: String,
        /// The content store's error.
        #[source]
        source: cache::ContentError,
    },
    /// Writing the layer failed.
    #[error("{url}: writing {path}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a download was pinned to while the keys were computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Pin {
    digest: Digest,
    last_modified: Option<String>,
}

/// One remembered response of a URL.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Remembered {
    etag: String,
    #[serde(flatten)]
    pin: Pin,
}

fn step_err(name: &str, e: HttpError) -> SolveError {
    SolveError::step(name, e.to_string(), e)
}

/// The innermost message of an error chain.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn request_err(url: &str, source: reqwest::Error) -> HttpError {
    let cause = root_cause(&source);
    HttpError::Request { url: url.to_string(), cause, source }
}

/// The ETags of a URL are remembered per URL and per file it makes (BuildKit's `urlHash`).
fn url_key(src: &HttpSource) -> String {
    let form = serde_json::json!({ "url": src.url, "filename": src.filename, "mode": src.mode });
    Digest::of_bytes(form.to_string().as_bytes()).to_string()
}

/// An ETag as compared: weak ones match their strong form, as in BuildKit.
fn etag_value(v: &str) -> &str {
    v.trim().trim_start_matches("W/")
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

impl LocalWorker {
    fn http(&self) -> Result<&reqwest::Client, HttpError> {
        if let Some(c) = self.remote.http.get() {
            return Ok(c);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(HttpError::Client)?;
        Ok(self.remote.http.get_or_init(|| client))
    }

    fn remembered(&self, src: &HttpSource) -> Vec<Remembered> {
        self.store
            .meta()
            .get_kv(ETAG_NAMESPACE, &url_key(src))
            .ok()
            .flatten()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default()
    }

    fn remember(&self, src: &HttpSource, etag: &str, pin: &Pin) -> Result<(), cache::StoreError> {
        let mut list = self.remembered(src);
        list.retain(|r| r.etag != etag);
        list.insert(0, Remembered { etag: etag.to_string(), pin: pin.clone() });
        list.truncate(MAX_REMEMBERED);
        let bytes = serde_json::to_vec(&list).expect("remembered etags serialize");
        self.store.meta().put_kv(ETAG_NAMESPACE, &url_key(src), &bytes)
    }
}

/// The op pinned to the content the URL has now (see the module docs); `None` when the op
/// carries a checksum and is its own key.
pub(super) async fn pin(
    w: &LocalWorker,
    vertex: &Vertex,
    src: &HttpSource,
    progress: &ProgressSink,
) -> Result<Option<Op>, SolveError> {
    if src.checksum.is_some() {
        return Ok(None);
    }
    let name = &vertex.meta.name;
    let pin = resolve(w, vertex, src, progress).await.map_err(|e| step_err(name, e))?;
    w.remote.http_pins.lock().expect("pins lock").insert(vertex.digest.clone(), pin.clone());
    let pinned = HttpSource { checksum: Some(pin.digest), ..src.clone() };
    Ok(Some(Op::Source(Source::Http(pinned))))
}

async fn resolve(
    w: &LocalWorker,
    vertex: &Vertex,
    src: &HttpSource,
    progress: &ProgressSink,
) -> Result<Pin, HttpError> {
    let client = w.http()?;
    let known = w.remembered(src);
    let etags: Vec<&str> = known.iter().map(|r| r.etag.as_str()).collect();
    let only = if etags.len() == 1 { Some(etags[0]) } else { None };
    let lookup = |etag: &str| known.iter().find(|r| r.etag == etag).map(|r| r.pin.clone());
    if !etags.is_empty() {
        let head = client.head(&src.url).header("If-None-Match", etags.join(", ")).send().await;
        if let Ok(resp) = head
            && matches!(resp.status().as_u16(), 200 | 304)
        {
            let mut etag = header(&resp, reqwest::header::ETAG).map(|e| etag_value(&e).to_string());
            if etag.is_none() && resp.status().as_u16() == 304 {
                etag = only.map(str::to_string);
            }
            if let Some(pin) = etag.as_deref().and_then(lookup) {
                return Ok(pin);
            }
        }
    }
    let mut request = client.get(&src.url);
    if !etags.is_empty() {
        request = request.header("If-None-Match", etags.join(", "));
    }
    let resp = request.send().await.map_err(|e| request_err(&src.url, e))?;
    let status = resp.status().as_u16();
    if status == 304 {
        let etag = header(&resp, reqwest::header::ETAG)
            .map(|e| etag_value(&e).to_string())
            .or_else(|| only.map(str::to_string))
            .unwrap_or_default();
        return lookup(&etag).ok_or(HttpError::UnknownEtag { url: src.url.clone(), etag });
    }
    let etag = header(&resp, reqwest::header::ETAG).map(|e| etag_value(&e).to_string());
    let step = format!("resolve:{}", vertex.digest);
    progress.started(&step, &format!("[internal] download {}", src.url));
    let start = std::time::Instant::now();
    let pin = match save(w, &step, src, resp, progress, None, None).await {
        Ok(pin) => pin,
        Err(e) => {
            progress.failed(&step, e.to_string());
            return Err(e);
        }
    };
    progress.done(&step, start, Default::default());
    if let Some(etag) = etag {
        // Only an optimisation: a build whose ETag could not be recorded just downloads again.
        let _ = w.remember(src, &etag, &pin);
    }
    Ok(pin)
}

/// Streams a response into the content store, checking `expected` when given.
async fn save(
    w: &LocalWorker,
    step: &str,
    src: &HttpSource,
    mut resp: reqwest::Response,
    progress: &ProgressSink,
    expected: Option<&Digest>,
    cancel: Option<&tokio_util::sync::CancellationToken>,
) -> Result<Pin, HttpError> {
    let url = &src.url;
    let status = resp.status().as_u16();
    if !(200..400).contains(&status) {
        return Err(HttpError::Status { url: url.clone(), status });
    }
    let last_modified = header(&resp, reqwest::header::LAST_MODIFIED);
    let total = resp.content_length();
    let content = |source| HttpError::Content { url: url.clone(), source };
    let mut writer = w.store.content().writer().map_err(content)?;
    loop {
        let chunk = match cancel {
            Some(token) => tokio::select! {
                c = resp.chunk() => c,
                _ = token.cancelled() => return Err(HttpError::Io {
                    url: url.clone(),
                    path: src.filename.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"),
                }),
            },
            None => resp.chunk().await,
        };
        let Some(bytes) = chunk.map_err(|e| request_err(url, e))? else { break };
        writer.write_all(&bytes).map_err(|source| HttpError::Io {
            url: url.clone(),
            path: src.filename.clone(),
            source,
        })?;
        progress.send(Event::Transfer {
            step: step.to_string(),
            item: src.filename.clone(),
            current: writer.len(),
            total,
        });
    }
    let actual = writer.current_digest();
    if let Some(expected) = expected
        && *expected != actual
    {
        return Err(HttpError::DigestMismatch { url: url.clone(), expected: expected.clone(), actual });
    }
    let digest = writer.commit(None).map_err(content)?;
    Ok(Pin { digest, last_modified })
}

/// Runs the op: the pinned download (fetched again if the store lost it) as a layer.
pub(super) async fn fetch(
    w: &LocalWorker,
    step: &Step,
    vertex: &Vertex,
    src: &HttpSource,
) -> Result<Ref, SolveError> {
    let err = |e| step_err(&step.name, e);
    if !safe_filename(&src.filename) {
        return Err(err(HttpError::Filename { url: src.url.clone(), filename: src.filename.clone() }));
    }
    let pinned = w.remote.http_pins.lock().expect("pins lock").get(&vertex.digest).cloned();
    let pin = match pinned {
        Some(p) if w.store.content().contains(&p.digest) => p,
        other => {
            let expected = other.map(|p| p.digest).or_else(|| src.checksum.clone());
            let client = w.http().map_err(err)?;
            let request = client.get(&src.url).send();
            let resp = tokio::select! {
                r = request => r.map_err(|e| err(request_err(&src.url, e)))?,
                _ = step.cancel.cancelled() => return Err(SolveError::Cancelled),
            };
            let saved =
                save(w, &step.id, src, resp, &step.progress, expected.as_ref(), Some(&step.cancel)).await;
            if step.cancel.is_cancelled() {
                return Err(SolveError::Cancelled);
            }
            saved.map_err(err)?
        }
    };
    let store = w.store.clone();
    let src = src.clone();
    let name = step.name.clone();
    tokio::task::spawn_blocking(move || -> Result<Ref, SolveError> {
        let layer = store.new_layer().map_err(|e| store_err(&name, e))?;
        let path = layer.diff_dir().join(&src.filename);
        write_file(&store, &pin, &src, &path).map_err(|source| {
            step_err(&name, HttpError::Io { url: src.url.clone(), path: src.filename.clone(), source })
        })?;
        let id = layer.commit().map_err(|e| store_err(&name, e))?;
        Ok(Ref::Chain(vec![id]))
    })
    .await
    .map_err(|e| SolveError::Internal(format!("http layer task: {e}")))?
}

fn write_file(
    store: &cache::Store,
    pin: &Pin,
    src: &HttpSource,
    path: &std::path::Path,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(store.content().path(&pin.digest), path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(src.mode & 0o7777))?;
    let secs = pin.last_modified.as_deref().and_then(parse_http_date).unwrap_or(0);
    let mtime = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_times(std::fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))?;
    Ok(())
}

/// A single path element that is neither `.` nor `..`.
fn safe_filename(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Seconds since the epoch of an HTTP date in any of the three forms HTTP/1.1 allows
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`,
/// `Sun Nov  6 08:49:37 1994`), like Go's `http.ParseTime`.
pub(super) fn parse_http_date(s: &str) -> Option<i64> {
    let month = |m: &str| {
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .iter()
            .position(|x| *x == m)
            .map(|i| i as u32 + 1)
    };
    let clock = |t: &str| -> Option<(u32, u32, u32)> {
        let mut it = t.split(':').map(|p| p.parse::<u32>().ok());
        let (h, m, s) = (it.next()??, it.next()??, it.next()??);
        (h < 24 && m < 60 && s < 61 && it.next().is_none()).then_some((h, m, s))
    };
    let words: Vec<&str> = s.split_whitespace().collect();
    let (year, mon, day, time) = match words.as_slice() {
        // IMF-fixdate.
        [_, d, m, y, t, "GMT"] if words[0].ends_with(',') => {
            (y.parse::<i64>().ok()?, month(m)?, d.parse().ok()?, *t)
        }
        // RFC 850: two-digit years are 19xx, as Go reads them for this layout.
        [_, dmy, t, "GMT"] if words[0].ends_with(',') => {
            let mut p = dmy.split('-');
            let (d, m, y) = (p.next()?, p.next()?, p.next()?);
            let y: i64 = y.parse().ok()?;
            (if y < 100 { 1900 + y } else { y }, month(m)?, d.parse().ok()?, *t)
        }
        // asctime.
        [_, m, d, t, y] => (y.parse::<i64>().ok()?, month(m)?, d.parse().ok()?, *t),
        _ => return None,
    };
    let (h, mi, se) = clock(time)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, mon, day) * 86400 + i64::from(h * 3600 + mi * 60 + se))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_in_all_three_forms() {
        let cases = [
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(784111777)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(784111777)),
            ("Sun Nov  6 08:49:37 1994", Some(784111777)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Tue, 29 Feb 2000 12:00:00 GMT", Some(951825600)),
            ("yesterday", None),
            ("Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 25:49:37 GMT", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_http_date(text), want, "{text:?}");
        }
    }

    #[test]
    fn etags_and_file_names() {
        assert_eq!(etag_value("W/\"abc\""), "\"abc\"");
        assert_eq!(etag_value("\"abc\""), "\"abc\"");
        for (name, ok) in [("a.txt", true), ("", false), ("..", false), (".", false), ("a/b", false)] {
            assert_eq!(safe_filename(name), ok, "{name:?}");
        }
    }
}
