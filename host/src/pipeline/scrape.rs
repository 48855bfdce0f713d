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

use std::time::Duration;

use super::telemetry::Builder;
use crate::batch::Samples;
use crate::bindings::SampleType;
use crate::config::ScrapeTarget;

/// What the scraper asks for: OpenMetrics first, then Prometheus text, then
/// anything (as Prometheus's own scraper does).
pub const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A body larger than this is refused (Prometheus's `body_size_limit`).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// One collector's target and its HTTP client.
pub(super) struct Scraper {
    target: ScrapeTarget,
    client: reqwest::Client,
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
    pub(super) fn new(target: &ScrapeTarget) -> Self {
        let client = reqwest::Client::builder()
            .timeout(target.timeout)
            .user_agent(concat!("wasmeter/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                // Only a broken TLS backend fails here; the default client
                // still scrapes, with the outer timeout of `fetch`.
                tracing::error!("scrape client: {e}; using the default client");
                reqwest::Client::new()
            });
        let mut shown = target.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        Scraper {
            instance: target.instance(),
            shown: shown.to_string(),
            target: target.clone(),
            client,
        }
    }

    /// The target URL as logs show it: its password, if any, as `***`.
    pub(super) fn shown_url(&self) -> &str {
        &self.shown
    }

    /// GETs the target within its timeout.
    ///
    /// # Errors
    /// A one-line reason: connection refused, timeout, an HTTP status other
    /// than 2xx, a body over [`MAX_BODY_BYTES`].
    pub(super) async fn fetch(&self) -> Result<Body, String> {
        let fetch = async {
            let mut response = self
                .client
                .get(self.target.url.clone())
                .header(reqwest::header::ACCEPT, ACCEPT)
                .header(
                    "X-Prometheus-Scrape-Timeout-Seconds",
                    format!("{}", self.target.timeout.as_secs_f64()),
                )
                .send()
                .await
                .map_err(|e| reason(&e))?;
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
        };
        // reqwest's timeout covers the body too; this guards a slow trickle.
        match tokio::time::timeout(self.target.timeout + Duration::from_millis(50), fetch).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {:?}", self.target.timeout)),
        }
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
