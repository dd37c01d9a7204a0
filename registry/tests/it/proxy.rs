//! A fault-injecting HTTP proxy in front of a real registry: it forwards every request and,
//! when told to, answers with an error status, corrupts or cuts a blob body, swallows the
//! answer to an upload chunk, or redirects blob downloads. The registry behind it is real;
//! only the transport is disturbed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Answer `status` to requests matching `method` and `path_contains`, `times` times.
pub struct FailRule {
    pub method: Method,
    pub path_contains: String,
    pub status: u16,
    pub times: u32,
    pub retry_after: Option<u32>,
}

/// What to disturb. Changed by tests while the proxy runs.
#[derive(Default)]
pub struct Faults {
    pub fail: Vec<FailRule>,
    /// Flip one byte of the body of GETs of this blob.
    pub corrupt_blob: Option<String>,
    /// Break the connection after this many body bytes of GETs of this blob, `times` times.
    pub cut_blob: Option<(String, usize, u32)>,
    /// Forward this many PATCH requests but answer 502 to the client.
    pub swallow_patches: u32,
    /// Redirect blob GETs to the registry itself (another origin).
    pub redirect_blobs: bool,
    /// Hold every request this long before answering.
    pub delay: Option<std::time::Duration>,
}

/// A request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub range: Option<String>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            faults: Mutex::new(Faults::default()),
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { addr, state, task }
    }

    /// Changes the faults.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.faults.lock().unwrap());
    }

    /// The requests seen so far with `method` whose path contains `part`.
    pub fn seen(&self, method: Method, part: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path.contains(part))
            .cloned()
            .collect()
    }

    /// The most requests the proxy was handling at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// `<proxy>/<repo>:<tag>`.
    pub fn reference(&self, repo_tag: &str) -> registry::Reference {
        format!("{}/{repo_tag}", self.addr).parse().unwrap()
    }
}

fn status_response(status: u16, retry_after: Option<u32>) -> Response {
    let mut r = Response::new(Body::from(format!(
        "{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"fault {status}\"}}]}}"
    )));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(s) = retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&s.to_string()).unwrap());
    }
    r
}

async fn handle(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = st.faults.lock().unwrap().delay;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let response = forward(&st, req).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn forward(st: &ProxyState, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_q = req.uri().path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    st.seen.lock().unwrap().push(Seen { method: method.clone(), path: path_q.clone(), range });

    let is_blob_get = method == Method::GET && path.contains("/blobs/sha256:");
    let (injected, redirect, corrupt, cut) = {
        let mut f = st.faults.lock().unwrap();
        let injected = f
            .fail
            .iter_mut()
            .find(|r| r.method == method && path.contains(&r.path_contains) && r.times > 0)
            .map(|r| {
                r.times -= 1;
                (r.status, r.retry_after)
            });
        let corrupt = is_blob_get && f.corrupt_blob.as_ref().is_some_and(|d| path.ends_with(d.as_str()));
        let mut cut = None;
        if let Some((d, after, times)) = &mut f.cut_blob
            && is_blob_get
            && path.ends_with(d.as_str())
            && *times > 0
        {
            *times -= 1;
            cut = Some(*after);
        }
        (injected, is_blob_get && f.redirect_blobs, corrupt, cut)
    };
    if let Some((status, retry_after)) = injected {
        return status_response(status, retry_after);
    }
    if redirect {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let to = format!("http://{}{path_q}", st.upstream);
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&to).unwrap());
        return r;
    }

    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap_or_default();
    let mut rb = st.http.request(method.clone(), format!("http://{}{path_q}", st.upstream));
    for (k, v) in &headers {
        if k != header::HOST && k != header::CONTENT_LENGTH {
            rb = rb.header(k, v);
        }
    }
    let upstream = match rb.body(body).send().await {
        Ok(r) => r,
        Err(_) => return status_response(502, None),
    };
    if method == Method::PATCH {
        let mut f = st.faults.lock().unwrap();
        if f.swallow_patches > 0 {
            f.swallow_patches -= 1;
            return status_response(502, None);
        }
    }
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (k, v) in upstream.headers() {
        if k != header::TRANSFER_ENCODING && k != header::CONNECTION {
            response = response.header(k, v);
        }
    }
    let ok = upstream.status().is_success();
    let mut flipped = false;
    let mut passed = 0usize;
    let stream = upstream.bytes_stream().map(move |chunk| {
        let mut chunk: Vec<u8> = chunk.map_err(std::io::Error::other)?.to_vec();
        if ok && corrupt && !flipped && !chunk.is_empty() {
            chunk[0] ^= 0xff;
            flipped = true;
        }
        if let Some(after) = cut.filter(|_| ok)
            && passed + chunk.len() > after
        {
            return Err(std::io::Error::other("injected connection cut"));
        }
        passed += chunk.len();
        Ok::<_, std::io::Error>(Bytes::from(chunk))
    });
    response.body(Body::from_stream(stream)).unwrap()
}
