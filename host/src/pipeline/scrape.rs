//! Scraping: a collector whose plugin is a decoder. The host fetches the
//! collector's `url` on every tick (its only network grant: the plugin has
//! none) and hands the body to the decoder; the scrape's health goes out
//! as Prometheus's `up`, `scrape_duration_seconds` and
//! `scrape_samples_scraped` samples.
//!
//! | metric                    | unit | type  | resource        | attributes   |
//! |---------------------------|------|-------|-----------------|--------------|
//! | `up`                      | `1`  | gauge | target host:port | `job` = stage |
//! | `scrape_duration_seconds` | `s`  | gauge | target host:port | `job` = stage |
//! | `scrape_samples_scraped`  | `1`  | gauge | target host:port | `job` = stage |
//!
//! `up` is 1 when the fetch succeeded and the decoder accepted the body
//! (lenient decoders accept a body with some bad lines), 0 otherwise.
//!
//! Credentials (`basic_auth`, `authorization`) go with every request, a
//! `_file` secret read afresh each time; `tls_config`'s files are read
//! when the stage starts ([`Scraper::new`], where a bad one fails the
//! start) and again before every scrape: changed files make a new client.

use std::time::Duration;

use super::telemetry::Builder;
use crate::batch::Samples;
use crate::bindings::SampleType;
use crate::config::{ScrapeAuth, ScrapeProxy, ScrapeTarget, Secret, TlsConfig, TlsVersion};

/// What the scraper asks for: OpenMetrics first, then Prometheus text, then
/// anything (as Prometheus's own scraper does).
pub const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A body larger than this is refused (Prometheus's `body_size_limit`).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Redirects followed in one scrape, at most (`follow_redirects`).
pub(super) const MAX_REDIRECTS: usize = 10;

/// One collector's target and its HTTP client.
pub(super) struct Scraper {
    target: ScrapeTarget,
    /// The client and the `tls_config` files it was made from.
    client: std::sync::Mutex<(reqwest::Client, TlsMaterial)>,
    /// `host:port`, the resource of the `up` samples.
    instance: String,
    /// The URL without its password, for logs.
    shown: String,
}

/// A fetched body and its declared media type ("" when none).
pub(super) struct Body {
    pub(super) bytes: Vec<u8>,
    pub(super) content_type: String,
}

impl Scraper {
    /// The scraper of `target`, its TLS files read.
    ///
    /// # Errors
    /// A one-line reason naming the `tls_config` field and file: it cannot
    /// be read, holds no PEM certificate, or the client certificate and
    /// key do not make an identity (e.g. a key of another certificate).
    pub(super) fn new(target: &ScrapeTarget) -> Result<Self, String> {
        let material = TlsMaterial::read(&target.tls)?;
        let client = client(target, &material)?;
        Ok(Scraper {
            instance: target.instance(),
            shown: target.shown_url(),
            target: target.clone(),
            client: std::sync::Mutex::new((client, material)),
        })
    }

    /// The target URL as logs show it: its password, if any, as `***`.
    pub(super) fn shown_url(&self) -> &str {
        &self.shown
    }

    /// GETs the target within its timeout.
    ///
    /// # Errors
    /// A one-line reason: a secret file that cannot be read, connection
    /// refused, a TLS failure (e.g. an unknown issuer), timeout, an HTTP
    /// status other than 2xx, a body over [`MAX_BODY_BYTES`].
    pub(super) async fn fetch(&self) -> Result<Body, String> {
        // Inside the deadline: files on a stuck mount are bounded too.
        let fetch = async {
            let client = match self.current_client() {
                Some(client) => client,
                None => self.renew_client().await,
            };
            // Redirects are followed here, not by reqwest: each hop is a
            // request of its own, with the target's credentials (as
            // Prometheus, whatever the host) and the proxy credentials of
            // its own destination.
            let mut url = self.target.url.clone();
            let mut hops = 0;
            let response = loop {
                let response = self.send(&client, &url).await?;
                match self.redirect(&url, &response, hops)? {
                    Some(next) => (url, hops) = (next, hops + 1),
                    None => break response,
                }
            };
            read_body(response).await
        };
        // reqwest's timeout covers the body too; this guards a slow trickle.
        match tokio::time::timeout(self.target.timeout + Duration::from_millis(50), fetch).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {:?}", self.target.timeout)),
        }
    }

    /// One GET of `url` with the target's headers and credentials.
    async fn send(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Result<reqwest::Response, String> {
        let request = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", self.target.timeout.as_secs_f64()),
            );
        let request = self.authorize(request).await?;
        // Without the URL: a hop's query may hold a token (the log names
        // the target).
        request.send().await.map_err(|e| reason(&e.without_url()))
    }

    /// Where `response` (to a GET of `url`, after `hops` redirects)
    /// redirects to, if it is a redirect (301, 302, 303, 307, 308 with a
    /// `Location`): `Location` resolved against `url`, carrying the
    /// target URL's credentials.
    ///
    /// # Errors
    /// The redirect cannot be followed: `follow_redirects` is false, it
    /// would be hop [`MAX_REDIRECTS`] + 1, or its `Location` is not an
    /// http(s) URL.
    fn redirect(
        &self,
        url: &reqwest::Url,
        response: &reqwest::Response,
        hops: usize,
    ) -> Result<Option<reqwest::Url>, String> {
        let status = response.status();
        let Some(to) = response
            .headers()
            .get(reqwest::header::LOCATION)
            .filter(|_| matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308))
        else {
            return Ok(None);
        };
        let next = std::str::from_utf8(to.as_bytes())
            .ok()
            .and_then(|to| url.join(to).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(mut next) = next else {
            return Err(format!(
                "HTTP status {status}, a redirect to an unreadable or non-HTTP Location"
            ));
        };
        // The collector's credentials go to every hop: those of its URL
        // too (reqwest sends a URL's as Basic), never a Location's own.
        let _ = next.set_username(self.target.url.username());
        let _ = next.set_password(self.target.url.password());
        // Shown without credentials, query or fragment (a pre-signed
        // URL's token).
        let mut shown = next.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.set_fragment(None);
        if !self.target.follow_redirects {
            return Err(format!(
                "HTTP status {status}, a redirect to \"{shown}\" (not followed: follow_redirects = false)"
            ));
        }
        if hops >= MAX_REDIRECTS {
            return Err(format!(
                "HTTP status {status}: more than {MAX_REDIRECTS} redirects, the last to \"{shown}\""
            ));
        }
        Ok(Some(next))
    }

    /// The client, when the target has no `tls_config` files to re-read.
    fn current_client(&self) -> Option<reqwest::Client> {
        let tls = &self.target.tls;
        let none = tls.ca_file.is_none() && tls.cert_file.is_none() && tls.key_file.is_none();
        none.then(|| self.client.lock().expect("not poisoned").0.clone())
    }

    /// The client after re-reading the `tls_config` files: a new one when
    /// they changed (a renewed certificate is used from that scrape on);
    /// the old one, with a warning, when they cannot be used.
    async fn renew_client(&self) -> reqwest::Client {
        let tls = self.target.tls.clone();
        let read = tokio::task::spawn_blocking(move || TlsMaterial::read(&tls)).await;
        let read = read.unwrap_or_else(|e| Err(format!("reading the tls_config files: {e}")));
        let mut current = self.client.lock().expect("not poisoned");
        match read {
            Ok(material) if material == current.1 => {}
            Ok(material) => match client(&self.target, &material) {
                Ok(client) => {
                    tracing::info!(url = %self.shown, "tls_config files changed: scraping with them");
                    *current = (client, material);
                }
                Err(reason) => {
                    tracing::warn!(url = %self.shown, "{reason}; scraping with the files as they were")
                }
            },
            Err(reason) => {
                tracing::warn!(url = %self.shown, "{reason}; scraping with the files as they were")
            }
        }
        current.0.clone()
    }

    /// `request` with the target's credentials, a `_file` secret read now.
    async fn authorize(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, String> {
        match &self.target.auth {
            None => {}
            Some(ScrapeAuth::Basic { username, password }) => {
                let username = reveal(username, "basic_auth.username_file").await?;
                let password = reveal(password, "basic_auth.password_file").await?;
                request = request.basic_auth(username, Some(password));
            }
            Some(ScrapeAuth::Authorization {
                scheme,
                credentials,
            }) => {
                let field = match credentials {
                    Secret::Inline(_) => "authorization.credentials",
                    Secret::File(_) => "authorization.credentials_file",
                };
                let credentials = reveal(credentials, field).await?;
                let mut value = reqwest::header::HeaderValue::from_str(&format!(
                    "{scheme} {credentials}"
                ))
                .map_err(|_| {
                    format!(
                        "{field}: the credentials hold a character not allowed in an HTTP header"
                    )
                })?;
                value.set_sensitive(true);
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
        }
        Ok(request)
    }

    /// The scrape's health samples at `tick`.
    pub(super) fn health(
        &self,
        job: &str,
        tick: i64,
        up: bool,
        took: Duration,
        samples: usize,
    ) -> Option<Samples> {
        let mut b = Builder::default();
        let job = [("job", job)];
        let i = self.instance.as_str();
        b.push(
            "up",
            i,
            "1",
            SampleType::Gauge,
            &job,
            tick,
            if up { 1.0 } else { 0.0 },
        );
        b.push(
            "scrape_duration_seconds",
            i,
            "s",
            SampleType::Gauge,
            &job,
            tick,
            took.as_secs_f64(),
        );
        b.push(
            "scrape_samples_scraped",
            i,
            "1",
            SampleType::Gauge,
            &job,
            tick,
            samples as f64,
        );
        Samples::from_wit(b.finish())
            .map_err(|e| tracing::error!("scrape health batch: {e}"))
            .ok()
    }
}

/// The body of a final `response`, with its declared media type.
///
/// # Errors
/// A status other than 2xx, a body over [`MAX_BODY_BYTES`], a read error.
async fn read_body(mut response: reqwest::Response) -> Result<Body, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| reason(&e))? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        content_type,
    })
}

/// Sets up `target`'s HTTP client as a scraping stage's start does, for
/// `wasmeter check`.
///
/// # Errors
/// As [`Scraper::new`]: a `tls_config` file that cannot be used, named.
pub fn check_scrape_target(target: &ScrapeTarget) -> Result<(), String> {
    Scraper::new(target).map(drop)
}

/// The contents of a target's `tls_config` files (`None` where the config
/// names none).
#[derive(Default, PartialEq, Eq)]
struct TlsMaterial {
    ca: Option<Vec<u8>>,
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
}

impl TlsMaterial {
    /// Reads the files `config` names.
    fn read(config: &TlsConfig) -> Result<Self, String> {
        let read = |field: &str, path: &Option<std::path::PathBuf>| {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p).map_err(|e| {
                        format!("tls_config.{field} {}: cannot read: {e}", p.display())
                    })
                })
                .transpose()
        };
        Ok(TlsMaterial {
            ca: read("ca_file", &config.ca_file)?,
            cert: read("cert_file", &config.cert_file)?,
            key: read("key_file", &config.key_file)?,
        })
    }
}

/// The HTTP client of `target` with `material`: its CA certificates
/// (replacing the built-in roots, as Prometheus), client identity and
/// verification.
fn client(target: &ScrapeTarget, material: &TlsMaterial) -> Result<reqwest::Client, String> {
    let config = &target.tls;
    let mut builder = reqwest::Client::builder()
        .timeout(target.timeout)
        .user_agent(concat!("wasmeter/", env!("CARGO_PKG_VERSION")))
        // Followed by `Scraper::fetch`, hop by hop.
        .redirect(reqwest::redirect::Policy::none());
    builder = match &target.proxy {
        // reqwest reads the environment's proxy unless told not to.
        ScrapeProxy::Direct => builder.no_proxy(),
        ScrapeProxy::FromEnvironment => builder,
        ScrapeProxy::Url { url, no_proxy } => {
            let proxy = reqwest::Proxy::all(url.clone())
                .map_err(|e| format!("proxy_url: {}", reason(&e.without_url())))?
                .no_proxy(reqwest::NoProxy::from_string(no_proxy));
            builder.proxy(proxy)
        }
    };
    if let (Some(path), Some(pem)) = (&config.ca_file, &material.ca) {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("tls_config.ca_file {}: {}", path.display(), reason(&e)))?;
        if certificates.is_empty() {
            return Err(format!(
                "tls_config.ca_file {}: no PEM certificate in it",
                path.display()
            ));
        }
        builder = builder.tls_built_in_root_certs(false);
        for c in certificates {
            builder = builder.add_root_certificate(c);
        }
    }
    let identity_error = |e: &reqwest::Error| match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => format!(
            "tls_config.cert_file {} and key_file {}: {}",
            cert.display(),
            key.display(),
            reason(e)
        ),
        _ => format!("cannot make the scrape's HTTP client: {}", reason(e)),
    };
    if let (Some(cert), Some(key)) = (&material.cert, &material.key) {
        let mut pem = cert.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| identity_error(&e))?;
        builder = builder.identity(identity);
    }
    builder
        .danger_accept_invalid_certs(config.insecure_skip_verify)
        .min_tls_version(match config.min_version {
            TlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
            TlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
        })
        // rustls checks the identity here: e.g. a key of another certificate.
        .build()
        .map_err(|e| identity_error(&e))
}

/// The value of `secret`: as given, or its file's content without the
/// surrounding whitespace.
async fn reveal(secret: &Secret, field: &str) -> Result<String, String> {
    match secret {
        Secret::Inline(s) => Ok(s.clone()),
        Secret::File(path) => tokio::fs::read_to_string(path)
            .await
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("{field} {}: cannot read: {e}", path.display())),
    }
}

/// reqwest's error with its causes, on one line.
fn reason(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::server::WebPkiClientVerifier;
    use tokio_rustls::rustls::{RootCertStore, ServerConfig};

    use super::*;

    /// What a test server got in one request.
    struct Got {
        /// The request target as the request line has it (a proxy gets
        /// absolute URLs).
        uri: String,
        authorization: Option<String>,
        proxy_authorization: Option<String>,
    }

    /// Every request a test server got, in order.
    type Log = Arc<Mutex<Vec<Got>>>;

    /// The `Authorization` header of every request in `log`.
    fn authorizations(log: &Log) -> Vec<Option<String>> {
        let log = log.lock().unwrap();
        log.iter().map(|g| g.authorization.clone()).collect()
    }

    /// A target on 127.0.0.1 answering `up 1` to every GET, over TLS when
    /// `tls` is given; returns its `host:port` and what it got.
    async fn serve(tls: Option<Arc<ServerConfig>>) -> (String, Log) {
        serve_fn(tls, |_| (200, None, "up 1\n")).await
    }

    /// A server on 127.0.0.1, over TLS when `tls` is given, answering
    /// every request with `answer(request target)`: (status, `Location`,
    /// body). Returns its `host:port` and what it got.
    async fn serve_fn(
        tls: Option<Arc<ServerConfig>>,
        answer: impl Fn(&str) -> (u16, Option<String>, &'static str) + Send + Sync + 'static,
    ) -> (String, Log) {
        let answer = Arc::new(answer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log: Log = Arc::default();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let l = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (l, answer, acceptor) = (l.clone(), answer.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let header = |name| {
                                let v = req.headers().get(name);
                                v.map(|v: &hyper::header::HeaderValue| {
                                    v.to_str().unwrap().to_owned()
                                })
                            };
                            let got = Got {
                                uri: req.uri().to_string(),
                                authorization: header("authorization"),
                                proxy_authorization: header("proxy-authorization"),
                            };
                            let (status, location, body) = answer(&got.uri);
                            l.lock().unwrap().push(got);
                            let mut response = hyper::Response::builder().status(status);
                            if let Some(to) = location {
                                response = response.header("location", to);
                            }
                            let body = http_body_util::Full::new(bytes::Bytes::from(body));
                            async move {
                                Ok::<_, std::convert::Infallible>(response.body(body).unwrap())
                            }
                        },
                    );
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match acceptor {
                        // A failed handshake is the test's point, not an error here.
                        Some(a) => match a.accept(stream).await {
                            Ok(tls) => {
                                let io = hyper_util::rt::TokioIo::new(tls);
                                http.serve_connection(io, service).await
                            }
                            Err(_) => return,
                        },
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            http.serve_connection(io, service).await
                        }
                    };
                });
            }
        });
        (addr, log)
    }

    fn target(url: &str, auth: Option<ScrapeAuth>, tls: TlsConfig) -> ScrapeTarget {
        ScrapeTarget {
            url: url.parse().unwrap(),
            timeout: Duration::from_secs(5),
            auth,
            tls,
            follow_redirects: true,
            proxy: ScrapeProxy::Direct,
        }
    }

    async fn fetch(target: &ScrapeTarget) -> Result<String, String> {
        let body = Scraper::new(target)?.fetch().await?;
        Ok(String::from_utf8(body.bytes).unwrap())
    }

    #[tokio::test]
    async fn a_redirect_is_followed_unless_follow_redirects_is_false() {
        let (addr, got) = serve_fn(None, |uri| match uri {
            "/metrics" => (302, Some("/moved?token=s3cret".into()), ""),
            _ => (200, None, "up 1\n"),
        })
        .await;
        let mut t = target(
            &format!("http://{addr}/metrics"),
            None,
            TlsConfig::default(),
        );
        assert_eq!(fetch(&t).await.unwrap(), "up 1\n");
        let uris = |got: &Log| -> Vec<String> {
            got.lock().unwrap().iter().map(|g| g.uri.clone()).collect()
        };
        assert_eq!(uris(&got), ["/metrics", "/moved?token=s3cret"]);
        t.follow_redirects = false;
        assert_eq!(
            fetch(&t).await.err().unwrap(),
            format!(
                "HTTP status 302 Found, a redirect to \"http://{addr}/moved\" (not followed: follow_redirects = false)"
            )
        );
        assert_eq!(uris(&got), ["/metrics", "/moved?token=s3cret", "/metrics"]);
    }

    #[tokio::test]
    async fn every_hop_of_a_redirect_has_the_credentials_and_ten_is_the_limit() {
        let (direct, seen) = serve(None).await;
        let to = format!("http://{direct}/metrics");
        let (addr, _) = serve_fn(None, move |_| (307, Some(to.clone()), "")).await;
        let t = target(
            &format!("http://{addr}/metrics"),
            Some(ScrapeAuth::Authorization {
                scheme: "Bearer".into(),
                credentials: Secret::Inline("t0k".into()),
            }),
            TlsConfig::default(),
        );
        // Another port (reqwest's own redirects would drop the header).
        assert_eq!(fetch(&t).await.unwrap(), "up 1\n");
        assert_eq!(authorizations(&seen), [Some("Bearer t0k".to_owned())]);
        // Credentials in the URL go along to an absolute Location too.
        let t = target(
            &format!("http://prom:pw@{addr}/metrics"),
            None,
            TlsConfig::default(),
        );
        assert_eq!(fetch(&t).await.unwrap(), "up 1\n");
        assert_eq!(
            authorizations(&seen)[1],
            Some("Basic cHJvbTpwdw==".to_owned())
        );

        let (addr, got) = serve_fn(None, |_| (302, Some("/again?sig=x".into()), "")).await;
        let t = target(
            &format!("http://{addr}/metrics"),
            None,
            TlsConfig::default(),
        );
        assert_eq!(
            fetch(&t).await.err().unwrap(),
            format!(
                "HTTP status 302 Found: more than 10 redirects, the last to \"http://{addr}/again\""
            )
        );
        assert_eq!(got.lock().unwrap().len(), 1 + MAX_REDIRECTS);
    }

    #[tokio::test]
    async fn a_proxy_url_carries_the_scrape_but_to_no_proxy_hosts() {
        let (proxy, through) = serve_fn(None, |_| (200, None, "proxied 1\n")).await;
        let (direct, seen) = serve(None).await;
        // The target's name is never resolved: the proxy is asked for it.
        let mut t = target(
            "http://node.invalid:9100/metrics",
            None,
            TlsConfig::default(),
        );
        t.proxy = ScrapeProxy::Url {
            url: format!("http://u:pw@{proxy}").parse().unwrap(),
            no_proxy: "localhost, 127.0.0.1".into(),
        };
        assert_eq!(fetch(&t).await.unwrap(), "proxied 1\n");
        // A no_proxy host is fetched directly.
        t.url = format!("http://{direct}/metrics").parse().unwrap();
        assert_eq!(fetch(&t).await.unwrap(), "up 1\n");
        let proxied = |log: &Log| -> Vec<(String, Option<String>)> {
            let log = log.lock().unwrap();
            let got = log
                .iter()
                .map(|g| (g.uri.clone(), g.proxy_authorization.clone()));
            got.collect()
        };
        assert_eq!(
            proxied(&through),
            [(
                "http://node.invalid:9100/metrics".to_owned(),
                Some("Basic dTpwdw==".to_owned())
            )]
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
        // Without no_proxy, that one goes through the proxy too.
        t.proxy = ScrapeProxy::Url {
            url: format!("http://{proxy}").parse().unwrap(),
            no_proxy: String::new(),
        };
        assert_eq!(fetch(&t).await.unwrap(), "proxied 1\n");
        assert_eq!(
            proxied(&through)[1],
            (format!("http://{direct}/metrics"), None)
        );
    }

    #[tokio::test]
    async fn a_bearer_token_file_is_read_on_every_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc123\n").unwrap();
        let (addr, seen) = serve(None).await;
        let url = format!("http://{addr}/metrics");
        let t = target(
            &url,
            Some(ScrapeAuth::Authorization {
                scheme: "Bearer".into(),
                credentials: Secret::File(token.clone()),
            }),
            TlsConfig::default(),
        );
        let scraper = Scraper::new(&t).unwrap();
        assert_eq!(scraper.fetch().await.unwrap().bytes, b"up 1\n");
        // Rotated: the next scrape sends the new token.
        std::fs::write(&token, "  def456  ").unwrap();
        scraper.fetch().await.unwrap();
        std::fs::remove_file(&token).unwrap();
        let err = scraper.fetch().await.err().unwrap();
        assert!(
            err.starts_with(&format!(
                "authorization.credentials_file {}: cannot read: ",
                token.display()
            )),
            "{err}"
        );
        // No credentials, no header.
        fetch(&target(&url, None, TlsConfig::default()))
            .await
            .unwrap();
        assert_eq!(
            authorizations(&seen),
            [
                Some("Bearer abc123".to_owned()),
                Some("Bearer def456".to_owned()),
                None
            ]
        );
    }

    #[tokio::test]
    async fn basic_auth_and_another_scheme_send_their_header() {
        let (addr, seen) = serve(None).await;
        let url = format!("http://{addr}/metrics");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("user"), "alice\n").unwrap();
        let basic = ScrapeAuth::Basic {
            username: Secret::File(dir.path().join("user")),
            password: Secret::Inline("open:sesame".into()),
        };
        fetch(&target(&url, Some(basic), TlsConfig::default()))
            .await
            .unwrap();
        let custom = ScrapeAuth::Authorization {
            scheme: "Token".into(),
            credentials: Secret::Inline("t0k3n".into()),
        };
        fetch(&target(&url, Some(custom), TlsConfig::default()))
            .await
            .unwrap();
        let bad = ScrapeAuth::Authorization {
            scheme: "Bearer".into(),
            credentials: Secret::Inline("two\nlines".into()),
        };
        let err = fetch(&target(&url, Some(bad), TlsConfig::default()))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "authorization.credentials: the credentials hold a character not allowed in an HTTP header"
        );
        // base64("alice:open:sesame"), computed apart.
        assert_eq!(
            authorizations(&seen),
            [
                Some("Basic YWxpY2U6b3BlbjpzZXNhbWU=".to_owned()),
                Some("Token t0k3n".to_owned())
            ]
        );
    }

    /// A CA, a server certificate for 127.0.0.1 and a client certificate
    /// it signed, written as PEM files in `dir`; the server's config, which
    /// asks for a client certificate of the CA when `mutual`.
    fn pki(dir: &Path, mutual: bool) -> Arc<ServerConfig> {
        pki_speaking(dir, mutual, tokio_rustls::rustls::ALL_VERSIONS)
    }

    /// As [`pki`], the server speaking only `versions`.
    fn pki_speaking(
        dir: &Path,
        mutual: bool,
        versions: &[&'static tokio_rustls::rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(vec!["wasmeter".to_owned()]).unwrap();
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &ca).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        // As `openssl ecparam -genkey` writes it: the curve (P-256) first.
        let ec_parameters =
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
        let key = format!("{ec_parameters}{}", client_key.serialize_pem());
        std::fs::write(dir.join("client.key"), key).unwrap();
        std::fs::write(
            dir.join("other.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let builder = ServerConfig::builder_with_protocol_versions(versions);
        let builder = if mutual {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap(),
            )
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        Arc::new(
            builder
                .with_single_cert(vec![server.der().clone()], key)
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn an_https_target_is_checked_against_the_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, seen) = serve(Some(pki(dir.path(), false))).await;
        let url = format!("https://{addr}/metrics");
        let with_ca = TlsConfig {
            ca_file: Some(dir.path().join("ca.pem")),
            ..TlsConfig::default()
        };
        assert_eq!(fetch(&target(&url, None, with_ca)).await.unwrap(), "up 1\n");
        // The built-in roots do not know the test's CA.
        let err = fetch(&target(&url, None, TlsConfig::default()))
            .await
            .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
        let skip = TlsConfig {
            insecure_skip_verify: true,
            ..TlsConfig::default()
        };
        assert_eq!(fetch(&target(&url, None, skip)).await.unwrap(), "up 1\n");
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn min_version_tls13_refuses_a_target_of_tls_1_2() {
        let dir = tempfile::tempdir().unwrap();
        let tls12 = [&tokio_rustls::rustls::version::TLS12];
        let (addr, seen) = serve(Some(pki_speaking(dir.path(), false, &tls12))).await;
        let url = format!("https://{addr}/metrics");
        let default = TlsConfig {
            ca_file: Some(dir.path().join("ca.pem")),
            ..TlsConfig::default()
        };
        let tls13 = TlsConfig {
            min_version: TlsVersion::Tls13,
            ..default.clone()
        };
        assert_eq!(fetch(&target(&url, None, default)).await.unwrap(), "up 1\n");
        let err = fetch(&target(&url, None, tls13)).await.unwrap_err();
        assert!(err.starts_with("cannot connect"), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_client_certificate_opens_a_mutual_tls_target() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, seen) = serve(Some(pki(dir.path(), true))).await;
        let url = format!("https://{addr}/metrics");
        let ca_only = TlsConfig {
            ca_file: Some(dir.path().join("ca.pem")),
            ..TlsConfig::default()
        };
        let mutual = TlsConfig {
            cert_file: Some(dir.path().join("client.pem")),
            key_file: Some(dir.path().join("client.key")),
            ..ca_only.clone()
        };
        assert_eq!(fetch(&target(&url, None, mutual)).await.unwrap(), "up 1\n");
        // Without a certificate the server ends the handshake.
        fetch(&target(&url, None, ca_only)).await.unwrap_err();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_renewed_ca_file_is_used_from_the_next_scrape_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (server_dir, other_dir) = (dir.path().join("server"), dir.path().join("other"));
        std::fs::create_dir_all(&server_dir).unwrap();
        std::fs::create_dir_all(&other_dir).unwrap();
        let (addr, seen) = serve(Some(pki(&server_dir, false))).await;
        pki(&other_dir, false);
        // The scraper trusts another CA first.
        let ca_file = dir.path().join("ca.pem");
        std::fs::copy(other_dir.join("ca.pem"), &ca_file).unwrap();
        let tls = TlsConfig {
            ca_file: Some(ca_file.clone()),
            ..TlsConfig::default()
        };
        let scraper = Scraper::new(&target(&format!("https://{addr}/metrics"), None, tls)).unwrap();
        // (Both CAs bear rcgen's default name: the signature is what fails.)
        let err = scraper.fetch().await.err().unwrap();
        assert!(
            err.contains("invalid peer certificate: BadSignature"),
            "{err}"
        );
        // Renewed in place: the next scrape trusts the server's CA.
        std::fs::copy(server_dir.join("ca.pem"), &ca_file).unwrap();
        assert_eq!(scraper.fetch().await.unwrap().bytes, b"up 1\n");
        // Broken, then removed: the client made from the good file goes on.
        std::fs::write(&ca_file, "not a certificate\n").unwrap();
        assert_eq!(scraper.fetch().await.unwrap().bytes, b"up 1\n");
        std::fs::remove_file(&ca_file).unwrap();
        assert_eq!(scraper.fetch().await.unwrap().bytes, b"up 1\n");
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[test]
    fn bad_tls_files_fail_the_start_naming_field_and_file() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path(), false);
        let d = dir.path();
        std::fs::write(d.join("garbage.pem"), "not a certificate\n").unwrap();
        let url = "https://127.0.0.1:1/metrics";
        let start = |tls: TlsConfig| Scraper::new(&target(url, None, tls)).err().unwrap();
        let missing = d.join("missing.pem");
        let err = start(TlsConfig {
            ca_file: Some(missing.clone()),
            ..TlsConfig::default()
        });
        assert!(
            err.starts_with(&format!(
                "tls_config.ca_file {}: cannot read: ",
                missing.display()
            )),
            "{err}"
        );
        let err = start(TlsConfig {
            ca_file: Some(d.join("garbage.pem")),
            ..TlsConfig::default()
        });
        assert_eq!(
            err,
            format!(
                "tls_config.ca_file {}: no PEM certificate in it",
                d.join("garbage.pem").display()
            )
        );
        // A key of another certificate: refused when the client is made.
        let err = start(TlsConfig {
            cert_file: Some(d.join("client.pem")),
            key_file: Some(d.join("other.key")),
            ..TlsConfig::default()
        });
        let files = format!(
            "tls_config.cert_file {} and key_file {}: ",
            d.join("client.pem").display(),
            d.join("other.key").display()
        );
        assert!(err.starts_with(&files), "{err}");
        assert!(err.len() > files.len() + "builder error".len(), "{err}");
        // The certificate twice: no key.
        let err = start(TlsConfig {
            cert_file: Some(d.join("client.pem")),
            key_file: Some(d.join("client.pem")),
            ..TlsConfig::default()
        });
        assert!(
            err.starts_with(&format!(
                "tls_config.cert_file {0} and key_file {0}: ",
                d.join("client.pem").display()
            )),
            "{err}"
        );
    }
}
