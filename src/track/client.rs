//! The HTTP client: TLS (rustls), Basic auth, timeouts, redirects, one request at a time.

use super::error::{classify, Answer};
use crate::secret::Credentials;
use bytes::Bytes;
use std::path::Path;
use std::time::Duration;

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `--ca-cert` cannot be read.
    #[error("--ca-cert {path}: cannot read: {source}")]
    CaCertRead {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `--ca-cert` holds no PEM certificate.
    #[error("--ca-cert {path}: not a PEM certificate: {source}")]
    CaCertPem {
        /// The file.
        path: String,
        /// What the TLS stack said.
        source: reqwest::Error,
    },
    /// The HTTP stack refused the settings.
    #[error("cannot set up the HTTP client: {0}")]
    Http(reqwest::Error),
}

/// One request to make: a method, a path under the base URL, and a JSON body. Built by a
/// [`super::Wire`] from an operation or a packed batch; the engine only hands it back.
#[derive(Clone, Debug)]
pub struct Request {
    /// `PUT` for v1 identify, `POST` for batch.
    pub method: reqwest::Method,
    /// The path, already percent-encoded.
    pub path: String,
    /// The JSON body.
    pub body: Bytes,
    /// For a batch, how many operations the body carries (so a 207 can be checked against it).
    pub batch_ops: Option<usize>,
}

/// A Track API client bound to one base URL and one set of credentials.
#[derive(Clone)]
pub struct TrackClient {
    http: reqwest::Client,
    base: String,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for TrackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackClient")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Hosts a redirect may lead to while the Authorization header is attached.
fn redirect_allowed(url: &reqwest::Url, origin_host: &str) -> bool {
    match url.host_str() {
        Some(h) => h == origin_host || h == "customer.io" || h.ends_with(".customer.io"),
        None => false,
    }
}

impl TrackClient {
    /// Builds a client. `ca_cert` adds a trusted root (a PEM file) on top of the usual ones.
    pub fn new(
        base: &reqwest::Url,
        credentials: Option<Credentials>,
        timeout: Duration,
        pool: usize,
        ca_cert: Option<&Path>,
    ) -> Result<TrackClient, ConnectError> {
        Ok(TrackClient {
            http: http_client(base, timeout, pool, ca_cert)?,
            base: base.as_str().trim_end_matches('/').to_string(),
            credentials,
        })
    }

    /// Sends one request and classifies the result. Never panics, never returns the key.
    pub async fn send(&self, req: &Request) -> Answer {
        let url = format!("{}{}", self.base, req.path);
        let mut rb = self
            .http
            .request(req.method.clone(), url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(req.body.clone());
        if let Some(c) = &self.credentials {
            rb = rb.basic_auth(&c.site_id, Some(c.api_key.expose()));
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return transport_error(e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match resp.bytes().await {
            Ok(body) => classify(status, retry_after.as_deref(), &body, req.batch_ops),
            Err(e) if (200..300).contains(&status) => {
                // The server acknowledged but the body broke off: the status is what counts
                // (and a 207's unread errors make it an unknown outcome).
                tracing::debug!(
                    "body of a {status} answer could not be read: {}",
                    e.without_url()
                );
                classify(status, None, &[], req.batch_ops)
            }
            Err(e) => transport_error(e),
        }
    }
}

/// The HTTP client every destination uses: rustls, `timeout` per request, redirects only
/// within Customer.io's hosts (the Authorization header never leaves them), `ca_cert` trusted
/// on top of the usual roots. Shared by the Track API and the App API clients.
pub fn http_client(
    base: &reqwest::Url,
    timeout: Duration,
    pool: usize,
    ca_cert: Option<&Path>,
) -> Result<reqwest::Client, ConnectError> {
    let origin_host = base.host_str().unwrap_or_default().to_string();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if redirect_allowed(attempt.url(), &origin_host) {
            attempt.follow()
        } else {
            // Never carry the credentials off Customer.io's hosts.
            attempt.error("redirect to a host outside customer.io refused")
        }
    });
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .redirect(policy)
        .user_agent(concat!("cio-import/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_cert {
        let shown = || path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| ConnectError::CaCertRead {
            path: shown(),
            source,
        })?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|source| ConnectError::CaCertPem {
                path: shown(),
                source,
            })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(ConnectError::Http)
}

/// How the message of an attempt that could not connect at all begins.
const CONNECT_FAILED: &str = "could not connect";

pub(crate) fn transport_error(e: reqwest::Error) -> Answer {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        CONNECT_FAILED
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "connection error"
    };
    let fatal = e.is_redirect() || e.is_builder();
    let connect = e.is_connect();
    let e = e.without_url();
    let mut message = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        src = s.source();
    }
    if fatal {
        return Answer::Fatal { status: 0, message };
    }
    if message.contains("certificate") || message.contains("UnknownIssuer") {
        // Retrying will not make a certificate trusted.
        message.push_str(
            ": the server's TLS certificate is not trusted; if you are behind a TLS-inspecting \
proxy (or use the sandbox's --tls), pass its root certificate with --ca-cert",
        );
        return Answer::Fatal { status: 0, message };
    }
    if connect {
        return Answer::Unreachable { message };
    }
    Answer::Retry {
        status: None,
        retry_after: None,
        message,
    }
}
