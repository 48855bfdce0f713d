//! Alarm notifications: `log:` lines and JSON webhooks (reference §2.5).
//!
//! Every webhook delivery runs as its own tokio task, so a slow or failing
//! receiver never delays the evaluation of any alarm. A delivery is tried
//! `1 + retries` times at most, with an exponential back-off between
//! attempts; a connection error, a timeout, HTTP 429 or a 5xx answer is
//! retried, any other non-2xx answer is not. Failures are logged with the
//! alarm and URL, and counted ([`NotifierCounters`]); they never change an
//! alarm's state. (Aodh retries 0 times by default, without back-off.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Action, AlarmState, Severity};

/// Webhook delivery settings (`[notifier]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierSettings {
    /// Per attempt, connection included (default 5 s).
    pub timeout: Duration,
    /// Attempts after the first (default 3).
    pub retries: u32,
    /// Wait before the first retry; doubled before each next one (default
    /// 1 s).
    pub backoff: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// One notification of one alarm (state), for the actions of its new
/// state.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Where it goes.
    pub actions: Vec<Action>,
    /// The alarm's name.
    pub alarm_name: String,
    /// The alarm's (per series) id.
    pub alarm_id: String,
    /// The series (`resource_id{k=v,…}`), `""` for aggregated and
    /// composite alarms.
    pub series: String,
    /// The series' metric and resource, as JSON (`null` for composites).
    pub series_detail: Value,
    /// Severity.
    pub severity: Severity,
    /// The state before.
    pub previous: AlarmState,
    /// The state after.
    pub current: AlarmState,
    /// Aodh's reason string.
    pub reason: String,
    /// Aodh's reason data.
    pub reason_data: Value,
    /// Evaluation time, ns since the Unix epoch, UTC.
    pub timestamp: i64,
}

impl Notification {
    /// The webhook body: Aodh's payload (`alarm_name`, `alarm_id`,
    /// `severity`, `previous`, `current`, `reason`, `reason_data`) plus
    /// `series` and `timestamp` (RFC 3339).
    pub fn body(&self) -> Value {
        json!({
            "alarm_name": self.alarm_name,
            "alarm_id": self.alarm_id,
            "severity": self.severity.as_str(),
            "previous": self.previous.as_str(),
            "current": self.current.as_str(),
            "reason": self.reason,
            "reason_data": self.reason_data,
            "series": self.series_detail,
            "timestamp": super::time_constraint::rfc3339(self.timestamp),
        })
    }
}

/// Delivery counters, totals since start.
#[derive(Debug, Default)]
pub struct NotifierCounters {
    /// `log:` lines written.
    pub logged: AtomicU64,
    /// Webhooks delivered (a 2xx answer).
    pub delivered: AtomicU64,
    /// Webhooks given up after every attempt failed.
    pub failed: AtomicU64,
    /// HTTP attempts made (first tries and retries).
    pub attempts: AtomicU64,
    /// Deliveries still in progress.
    pub in_flight: AtomicU64,
}

/// Deliveries in flight at most; more are dropped and counted as failed.
pub const MAX_IN_FLIGHT: u64 = 1024;

/// Sends notifications. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    webhooks: bool,
    client: reqwest::Client,
    settings: NotifierSettings,
    counters: Arc<NotifierCounters>,
    handle: tokio::runtime::Handle,
}

impl Notifier {
    /// A notifier spawning its deliveries on `handle`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(settings: NotifierSettings, handle: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("wasmeter/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier {
            webhooks: true,
            client,
            settings,
            counters: Arc::default(),
            handle,
        })
    }

    /// Only `log:` actions, no webhook (`wasmeter import` by default: a
    /// backfill must not page anyone about the past).
    pub fn log_only(mut self) -> Self {
        self.webhooks = false;
        self
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<NotifierCounters> {
        &self.counters
    }

    /// Sends `n` to each of its actions: `log:` now, webhooks in the
    /// background.
    pub fn dispatch(&self, n: &Notification) {
        let mut body: Option<Arc<Value>> = None;
        for action in &n.actions {
            match action {
                Action::Log => {
                    self.counters.logged.fetch_add(1, Ordering::Relaxed);
                    if n.current == AlarmState::Alarm {
                        tracing::warn!(target: "wasmeter::alarm", alarm = %n.alarm_name, series = %n.series, previous = %n.previous, current = %n.current, severity = n.severity.as_str(), "{}", n.reason);
                    } else {
                        tracing::info!(target: "wasmeter::alarm", alarm = %n.alarm_name, series = %n.series, previous = %n.previous, current = %n.current, severity = n.severity.as_str(), "{}", n.reason);
                    }
                }
                Action::Webhook(_) if !self.webhooks => {}
                Action::Webhook(url) => {
                    if self.counters.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                        // Receivers that never answer must not pile up tasks.
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(alarm = %n.alarm_name, url, "webhook notification dropped: {MAX_IN_FLIGHT} deliveries already in flight");
                        continue;
                    }
                    let body = body.get_or_insert_with(|| Arc::new(n.body())).clone();
                    let (client, settings, counters) =
                        (self.client.clone(), self.settings, self.counters.clone());
                    let (url, alarm) = (url.clone(), n.alarm_name.clone());
                    counters.in_flight.fetch_add(1, Ordering::Relaxed);
                    self.handle.spawn(async move {
                        deliver(&client, settings, &counters, &url, &alarm, &body).await;
                        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
        }
    }

    /// Blocks this (non-runtime) thread until every delivery has finished
    /// or `limit` has passed; returns the deliveries still in flight.
    pub fn wait_idle(&self, limit: Duration) -> u64 {
        let start = Instant::now();
        loop {
            let n = self.counters.in_flight.load(Ordering::Relaxed);
            if n == 0 || start.elapsed() >= limit {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    settings: NotifierSettings,
    counters: &NotifierCounters,
    url: &str,
    alarm: &str,
    body: &Value,
) {
    let mut wait = settings.backoff;
    for attempt in 0..=settings.retries {
        if attempt > 0 {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let result = client
            .post(url)
            .header("x-openstack-request-id", &request_id)
            .json(body)
            .send()
            .await;
        let retryable = match result {
            Ok(resp) if resp.status().is_success() => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(alarm, url, status = %resp.status(), "webhook delivered");
                return;
            }
            Ok(resp) => {
                let status = resp.status();
                tracing::warn!(alarm, url, %status, attempt = attempt + 1, "webhook answered with an error");
                status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(e) => {
                let cause = if e.is_timeout() {
                    format!("no answer within {:?}", settings.timeout)
                } else if e.is_connect() {
                    format!("cannot connect: {e}")
                } else {
                    e.to_string()
                };
                tracing::warn!(alarm, url, attempt = attempt + 1, "webhook failed: {cause}");
                true
            }
        };
        if !retryable {
            break;
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(alarm, url, "webhook notification given up");
}
