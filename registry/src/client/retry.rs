//! When and how long to wait before trying a request again.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bounded exponential backoff. Retries happen only on idempotent steps.
#[derive(Clone, Debug)]
pub(crate) struct RetryPolicy {
    /// Total attempts, the first one included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub base: Duration,
    /// Upper bound of the exponential delay.
    pub cap: Duration,
    /// Upper bound of a server's `Retry-After`, so a hostile or confused server cannot park
    /// a build for hours.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            retry_after_cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1-based). `retry_after` from the
    /// server wins when given.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.retry_after_cap);
        }
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.cap);
        // Up to 25% jitter so that parallel transfers that failed together do not retry in
        // lock step.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let jitter = exp.mul_f64(f64::from(nanos % 1000) / 4000.0);
        exp + jitter
    }

    /// True when another attempt is allowed after `attempts` attempts.
    pub fn allows_another(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

/// Statuses worth retrying: throttling and server-side failures (not 501, which is final).
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (status >= 500 && status != 501)
}

/// `Retry-After` as seconds (the HTTP-date form is rare for registries and is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// Transport errors worth retrying: the request may not have reached the server, or the
/// connection broke.
pub(crate) fn retryable_transport(error: &reqwest::Error) -> bool {
    (error.is_connect() || error.is_timeout() || error.is_request() || error.is_body())
        && !is_tls_failure(error)
}

/// TLS handshake failures (untrusted or mismatched certificate, a plain-HTTP server) surface
/// as `InvalidData` I/O errors under the connect error; trying again cannot fix them.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
            // `io::Error::source` skips the wrapped error itself; look into it.
            if let Some(inner) = io.get_ref() {
                source = Some(inner);
                continue;
            }
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        let d1 = p.delay(1, None);
        let d3 = p.delay(3, None);
        assert!(d1 >= Duration::from_millis(200) && d1 <= Duration::from_millis(250), "{d1:?}");
        assert!(d3 >= Duration::from_millis(800) && d3 <= Duration::from_millis(1000), "{d3:?}");
        assert!(p.delay(30, None) <= Duration::from_millis(6250));
        assert_eq!(p.delay(2, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(p.delay(2, Some(Duration::from_secs(3600))), Duration::from_secs(30));
    }

    #[test]
    fn statuses() {
        for (s, want) in [(500, true), (502, true), (503, true), (429, true), (501, false), (404, false)] {
            assert_eq!(retryable_status(s), want, "{s}");
        }
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }
}
