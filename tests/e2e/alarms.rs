//! Alarms end to end: the real `threshold` component, the rollup engine's
//! recent buckets, Aodh's state machine (reference §2.3, §2.4), webhooks
//! received by a real HTTP server on 127.0.0.1, history read by DuckDB.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use wasmeter::alarm::{
    AlarmEvaluator, AlarmState, Notification, Notifier, NotifierSettings, StateKey,
};
use wasmeter::bindings::SampleType;
use wasmeter::config::PipelineConfig;
use wasmeter::rollup::RollupEngine;

use crate::support::{runtime, series, wasmeter};

const S: i64 = 1_000_000_000;
/// A base time on a 5-minute boundary (2027-01-15T08:00:00Z).
const T0: i64 = 1_800_000_000 * S;

const POLICY: &str = r#"
[archive]
root = "archive"
data_dir = "data"

[[archive_policy]]
name = "test"
back_window = 0
aggregation_methods = ["mean", "max"]
definition = [
  { granularity = "1m", timespan = "1d" },
  { granularity = "5m", timespan = "7d" },
]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "test"
"#;

struct Harness {
    dir: tempfile::TempDir,
    config: PipelineConfig,
    engine: RollupEngine,
    evaluator: AlarmEvaluator,
}

/// `alarms`: `[[alarm]]` TOML; `preset`: (alarm, series, state) written to
/// the state file first, as a previous run would have left it.
fn harness(alarms: &str, preset: &[(&str, &str, &str)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmeter.toml");
    std::fs::write(&path, format!("{POLICY}\n{alarms}")).unwrap();
    let config = PipelineConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    if !preset.is_empty() {
        let states: Vec<Value> = preset
            .iter()
            .map(|(a, s, st)| {
                json!({"alarm_name": a, "series": s, "alarm_id": wasmeter::alarm::alarm_id(a, s),
                       "state": st, "reason": "preset", "reason_data": null,
                       "state_timestamp": "", "evaluate_timestamp": ""})
            })
            .collect();
        std::fs::create_dir_all(&config.archive.data_dir).unwrap();
        std::fs::write(
            config.archive.data_dir.join("alarms.json"),
            json!({"version": 1, "alarms": states}).to_string(),
        )
        .unwrap();
    }
    let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
    let evaluator = AlarmEvaluator::new(&config, &runtime()).unwrap_or_else(|e| panic!("{e}"));
    Harness {
        dir,
        config,
        engine,
        evaluator,
    }
}

impl Harness {
    /// One sample per (seconds after T0, value) of `metric`/`resource`.
    fn feed(&mut self, metric: &str, resource: &str, points: &[(i64, f64)]) {
        let s = [series(metric, resource, "%", SampleType::Gauge)];
        let index = vec![0; points.len()];
        let ts: Vec<i64> = points.iter().map(|p| T0 + p.0 * S).collect();
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        self.engine.ingest_columns(&s, &index, &ts, &values);
        let closed = self.engine.take_closed();
        self.evaluator.observe_closed(&closed);
    }

    /// One value per minute, each 10 s into its minute, from minute 0.
    fn per_minute(&mut self, metric: &str, resource: &str, values: &[f64]) {
        let points: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 60 + 10, *v))
            .collect();
        self.feed(metric, resource, &points);
    }

    fn eval(&mut self, secs_after_t0: i64) -> Vec<Notification> {
        self.evaluator
            .evaluate_due(T0 + secs_after_t0 * S, &mut self.engine)
    }

    fn state(&self, alarm: &str, series: &str) -> (AlarmState, String) {
        let s = &self.evaluator.states()[&StateKey {
            alarm: alarm.into(),
            series: series.into(),
        }];
        (s.state(), s.reason.clone())
    }

    fn history(&self) -> Vec<wasmeter::alarm::HistoryRecord> {
        wasmeter::alarm::read_history(&self.config.archive.root.join("alarm-history.jsonl"))
            .unwrap()
    }
}

const CPU_HIGH: &str = r#"
[[alarm]]
name = "cpu-high"
metric = "cpu.util"
aggregation_method = "mean"
granularity = "1m"
comparison_operator = "gt"
threshold = 80
evaluation_periods = 5
alarm_actions = ["log:"]
ok_actions = ["log:"]
insufficient_data_actions = ["log:"]
"#;

#[test]
fn ok_to_alarm_with_81_to_85() {
    let mut h = harness(CPU_HIGH, &[("cpu-high", "vm-1", "ok")]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    // 12:04:30 with the last bucket still open, as Aodh reads it.
    let notes = h.eval(4 * 60 + 30);
    assert_eq!(notes.len(), 1);
    let n = &notes[0];
    assert_eq!((n.previous, n.current), (AlarmState::Ok, AlarmState::Alarm));
    assert_eq!(
        n.reason,
        "Transition to alarm due to 5 samples outside threshold, most recent: 85.0"
    );
    assert_eq!(
        n.reason_data,
        json!({"type": "threshold", "disposition": "outside", "count": 5, "most_recent": 85.0})
    );
    assert_eq!(n.series, "vm-1");
    let hist = h.history();
    assert_eq!(hist.len(), 1);
    assert_eq!(
        (hist[0].previous.as_str(), hist[0].state.as_str()),
        ("ok", "alarm")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&hist[0].detail).unwrap(),
        json!({"state": "alarm", "transition_reason": n.reason})
    );
}

#[test]
fn alarm_to_ok_with_80_down_to_76() {
    let mut h = harness(CPU_HIGH, &[("cpu-high", "vm-1", "alarm")]);
    h.per_minute("cpu.util", "vm-1", &[80.0, 79.0, 78.0, 77.0, 76.0]);
    let notes = h.eval(4 * 60 + 30);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].current, AlarmState::Ok);
    assert_eq!(
        notes[0].reason,
        "Transition to ok due to 5 samples inside threshold, most recent: 76.0"
    );
}

#[test]
fn equivocal_from_ok_changes_nothing() {
    let mut h = harness(CPU_HIGH, &[("cpu-high", "vm-1", "ok")]);
    h.per_minute("cpu.util", "vm-1", &[80.0, 81.0, 82.0, 83.0, 84.0]);
    assert_eq!(h.eval(4 * 60 + 30), vec![]);
    assert_eq!(
        h.state("cpu-high", "vm-1"),
        (AlarmState::Ok, "preset".into())
    );
    assert!(h.history().is_empty());
}

#[test]
fn from_insufficient_data_to_alarm_then_too_few_points() {
    let mut h = harness(CPU_HIGH, &[]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    let notes = h.eval(4 * 60 + 30);
    assert_eq!(notes[0].previous, AlarmState::InsufficientData);
    assert_eq!(notes[0].current, AlarmState::Alarm);
    // Three minutes later only the last 3 buckets are in the window
    // [now − 6 min, now): 5 datapoints are unknown.
    let notes = h.eval(9 * 60 + 30);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].current, AlarmState::InsufficientData);
    assert_eq!(notes[0].reason, "5 datapoints are unknown");
    assert_eq!(
        notes[0].reason_data,
        json!({"type": "threshold", "disposition": "unknown", "count": 5, "most_recent": 85.0})
    );
}

#[test]
fn empty_result_moves_to_insufficient_data() {
    let mut h = harness(CPU_HIGH, &[("cpu-high", "vm-1", "ok")]);
    let notes = h.eval(0);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].previous, notes[0].current),
        (AlarmState::Ok, AlarmState::InsufficientData)
    );
    assert_eq!(notes[0].reason, "No datapoint for granularity 60");
}

#[test]
fn each_series_has_its_own_state() {
    let mut h = harness(CPU_HIGH, &[]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    h.per_minute("cpu.util", "vm-2", &[1.0, 2.0, 3.0, 4.0, 5.0]);
    h.per_minute("cpu.util", "db-1", &[99.0; 5]);
    h.per_minute("memory.used", "vm-1", &[99.0; 5]);
    let notes = h.eval(4 * 60 + 30);
    let got: Vec<(&str, AlarmState)> = notes
        .iter()
        .map(|n| (n.series.as_str(), n.current))
        .collect();
    assert_eq!(
        got,
        vec![
            ("db-1", AlarmState::Alarm),
            ("vm-1", AlarmState::Alarm),
            ("vm-2", AlarmState::Ok)
        ]
    );
    // A resource glob narrows the selection.
    let mut h = harness(
        &CPU_HIGH.replace("threshold = 80", "threshold = 80\nresource_id = \"vm-*\""),
        &[],
    );
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    h.per_minute("cpu.util", "db-1", &[99.0; 5]);
    let notes = h.eval(4 * 60 + 30);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].series, "vm-1");
}

const BY_METRICS: &str = r#"
[[alarm]]
name = "disk-low"
metric = "disk.free"
aggregation_method = "max"
aggregate_series = "max"
granularity = "5m"
comparison_operator = "le"
threshold = 10
evaluation_periods = 4
repeat_actions = REPEAT
alarm_actions = ["log:"]
ok_actions = ["log:"]
"#;

/// Two disks whose per-bucket maximum is `max` (one sample per 5 min).
fn two_disks(h: &mut Harness, max: &[f64]) {
    let a: Vec<(i64, f64)> = max
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64 * 300 + 5, *v))
        .collect();
    let b: Vec<(i64, f64)> = (0..max.len()).map(|i| (i as i64 * 300 + 7, 1.0)).collect();
    h.feed("disk.free", "disk-a", &a);
    h.feed("disk.free", "disk-b", &b);
}

#[test]
fn by_metrics_only_the_last_four_of_six() {
    let mut h = harness(
        &BY_METRICS.replace("REPEAT", "false"),
        &[("disk-low", "", "ok")],
    );
    two_disks(&mut h, &[11.0, 10.0, 9.0, 8.0, 7.0, 6.0]);
    let notes = h.eval(5 * 300 + 10);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].current, AlarmState::Alarm);
    assert_eq!(
        notes[0].reason,
        "Transition to alarm due to 4 samples outside threshold, most recent: 6.0"
    );
    assert_eq!(notes[0].series_detail["series"], 2);
}

#[test]
fn by_metrics_repeat_actions_mixed_remains_ok() {
    let mut h = harness(
        &BY_METRICS.replace("REPEAT", "true"),
        &[("disk-low", "", "ok")],
    );
    two_disks(&mut h, &[11.0, 10.0, 9.0, 8.0]);
    let notes = h.eval(3 * 300 + 10);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].previous, notes[0].current),
        (AlarmState::Ok, AlarmState::Ok)
    );
    assert_eq!(
        notes[0].reason,
        "Remaining as ok due to 1 samples inside threshold, most recent: 8.0"
    );
    // A repeat notification is no transition: no history, state unchanged.
    assert!(h.history().is_empty());
    assert_eq!(h.state("disk-low", "").1, "preset");
}

#[test]
fn by_metrics_repeat_actions_remains_alarm() {
    let mut h = harness(
        &BY_METRICS.replace("REPEAT", "true"),
        &[("disk-low", "", "alarm")],
    );
    two_disks(&mut h, &[10.0, 9.0, 8.0, 7.0]);
    let notes = h.eval(3 * 300 + 10);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].reason,
        "Remaining as alarm due to 4 samples outside threshold, most recent: 7.0"
    );
    assert!(h.history().is_empty());
}

const COMPOSITE: &str = r#"
[[alarm]]
name = "busy-and-full"
alarm_actions = ["log:"]
composite_rule = { and = [
  { metric = "cpu.util", aggregation_method = "mean", granularity = "1m", comparison_operator = "gt", threshold = 80 },
  { or = [
    { metric = "memory.used", aggregation_method = "max", granularity = "1m", comparison_operator = "gt", threshold = 90 },
    { metric = "swap.used", aggregation_method = "max", granularity = "1m", comparison_operator = "gt", threshold = 0 },
  ] },
] }
"#;

#[test]
fn composite_and_of_or() {
    let mut h = harness(COMPOSITE, &[("busy-and-full", "", "ok")]);
    h.feed("cpu.util", "vm-1", &[(10, 95.0)]);
    h.feed("memory.used", "vm-1", &[(10, 50.0)]);
    h.feed("swap.used", "vm-1", &[(10, 3.0)]);
    let notes = h.eval(30);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].current, AlarmState::Alarm);
    assert_eq!(
        notes[0].reason,
        "Composite rule alarm with composition form: (rule1 and (rule2 or rule3)) transition to alarm, due to rules: rule1, rule3 outside their threshold."
    );
    assert_eq!(
        notes[0].reason_data["causative_rules"]["rule3"]["metric"],
        "swap.used"
    );
    // cpu drops: `and` is ok as soon as one child is ok.
    h.feed("cpu.util", "vm-1", &[(70, 10.0)]);
    let notes = h.eval(90);
    assert_eq!(h.state("busy-and-full", "").0, AlarmState::Ok);
    assert!(notes.is_empty(), "no ok_actions configured");
    // A leaf with no data: `unknown and …` is insufficient data.
    let notes = h.eval(600);
    assert_eq!(notes.len(), 0);
    let (state, reason) = h.state("busy-and-full", "");
    assert_eq!(state, AlarmState::InsufficientData);
    assert_eq!(
        reason,
        "Composite rule alarm with composition form: (rule1 and (rule2 or rule3)) transition to insufficient data, due to rules: rule1, rule2, rule3 state evaluated to unknown."
    );
}

#[test]
fn time_constraints_skip_the_alarm_entirely() {
    // 2027-01-15T08:00Z is a Friday; the window opens at 09:00 Paris
    // time (08:00Z) for 2 minutes.
    let constrained = CPU_HIGH.replace(
        "threshold = 80",
        "threshold = 80\ntime_constraints = [{ name = \"morning\", start = \"0 9 * * *\", duration = 120, timezone = \"Europe/Paris\" }]",
    );
    let mut h = harness(&constrained, &[("cpu-high", "vm-1", "ok")]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    // 08:04:30Z: outside, nothing at all (the preset state stays).
    assert!(h.eval(4 * 60 + 30).is_empty());
    assert_eq!(h.evaluator.report().skipped, 1);
    assert_eq!(h.state("cpu-high", "vm-1").1, "preset");
    // The same data seen at 08:01:30Z, inside: evaluated.
    let mut h = harness(&constrained, &[("cpu-high", "vm-1", "ok")]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0]);
    let notes = h.eval(90);
    assert_eq!(notes[0].reason, "5 datapoints are unknown");
}

#[test]
fn state_survives_a_restart_and_a_rule_change() {
    let mut h = harness(CPU_HIGH, &[]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    h.eval(4 * 60 + 30);
    assert_eq!(h.state("cpu-high", "vm-1").0, AlarmState::Alarm);
    // A new evaluator (a restart) reads the state back.
    let again = AlarmEvaluator::new(&h.config, &runtime()).unwrap();
    let key = StateKey {
        alarm: "cpu-high".into(),
        series: "vm-1".into(),
    };
    assert_eq!(again.states()[&key].state(), AlarmState::Alarm);
    // A reload that changes the threshold keeps the state.
    let path = h.dir.path().join("wasmeter.toml");
    std::fs::write(
        &path,
        format!(
            "{POLICY}\n{}",
            CPU_HIGH.replace("threshold = 80", "threshold = 90")
        ),
    )
    .unwrap();
    let new = PipelineConfig::load(&path).unwrap();
    h.evaluator.reconfigure(&new).unwrap();
    assert_eq!(h.state("cpu-high", "vm-1").0, AlarmState::Alarm);
    // Evaluated under the new rule, the same points are inside: ok.
    let notes = h.eval(5 * 60);
    assert_eq!(notes[0].current, AlarmState::Ok);
    assert_eq!(
        notes[0].reason,
        "Transition to ok due to 5 samples inside threshold, most recent: 85.0"
    );
}

#[test]
fn bad_alarms_are_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = format!(
        "{POLICY}\n{}",
        r#"
[[alarm]]
name = "a"
metric = "cpu.util"
aggregation_method = "95pct"
granularity = "1m"
threshold = 1

[[alarm]]
name = "b"
metric = "cpu.util"
aggregation_method = "mean"
granularity = "10m"
comparison_operator = "gte"
threshold = 1
alarm_actions = ["mailto:ops@example.com"]
"#
    );
    std::fs::write(&path, text).unwrap();
    let e = PipelineConfig::load(&path).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    let file = path.display();
    assert_eq!(
        lines,
        vec![
            format!(
                "error: {file}:21:1: alarm[0]: aggregation method 95pct is not in archive policy \"test\" of metric \"cpu.util\" (methods: mean, max)"
            ),
            format!(
                "error: {file}:33:1: alarm[1].comparison_operator: \"gte\" is not one of lt, le, eq, ne, ge, gt"
            ),
            format!(
                "error: {file}:35:1: alarm[1].alarm_actions[0]: action \"mailto:ops@example.com\": unknown scheme \"mailto\" (expected log:, http:// or https://)"
            ),
        ]
    );
}

// ---- webhooks ---------------------------------------------------------------

/// How a test receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    Never,
}

/// An HTTP server on 127.0.0.1 that records every JSON body it receives.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<(Value, String)>>>,
    hits: Arc<AtomicU64>,
}

fn receiver(rt: &tokio::runtime::Runtime, answer: Answer) -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<Vec<(Value, String)>>> = Arc::default();
    let hits: Arc<AtomicU64> = Arc::default();
    let (b, h) = (bodies.clone(), hits.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (b, h) = (b.clone(), h.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (b, h) = (b.clone(), h.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            let request_id = req
                                .headers()
                                .get("x-openstack-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            b.lock()
                                .unwrap()
                                .push((serde_json::from_slice(&body).unwrap(), request_id));
                            let status = match answer {
                                Answer::Status(s) => s,
                                Answer::Never => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    200
                                }
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Receiver { url, bodies, hits }
}

/// A URL nothing listens on (connection refused).
fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    drop(l);
    url
}

fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn webhook_receives_aodhs_json_body() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook = receiver(&rt, Answer::Status(200));
    let alarm = CPU_HIGH
        .replace(
            "alarm_actions = [\"log:\"]",
            &format!(
                "alarm_actions = [\"log:\", \"{}\", \"{}\"]",
                hook.url, hook.url
            ),
        )
        .replace("threshold = 80", "threshold = 80\nseverity = \"critical\"");
    let mut h = harness(&alarm, &[("cpu-high", "vm-1", "ok")]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    let notes = h.eval(4 * 60 + 30);
    let notifier = Notifier::new(NotifierSettings::default(), rt.handle().clone()).unwrap();
    for n in &notes {
        notifier.dispatch(n);
    }
    assert_eq!(notifier.wait_idle(Duration::from_secs(10)), 0);
    let bodies = hook.bodies.lock().unwrap().clone();
    // Duplicate actions are removed, as Aodh does.
    assert_eq!(bodies.len(), 1);
    let (body, request_id) = &bodies[0];
    assert!(
        request_id.starts_with("req-") && request_id.len() == 40,
        "{request_id}"
    );
    let id = wasmeter::alarm::alarm_id("cpu-high", "vm-1");
    assert_eq!(
        *body,
        json!({
            "alarm_name": "cpu-high",
            "alarm_id": id,
            "severity": "critical",
            "previous": "ok",
            "current": "alarm",
            "reason": "Transition to alarm due to 5 samples outside threshold, most recent: 85.0",
            "reason_data": {"type": "threshold", "disposition": "outside", "count": 5, "most_recent": 85.0},
            "series": {"metric": "cpu.util", "resource_id": "vm-1", "attributes": {}},
            "timestamp": "2027-01-15T08:04:30Z",
        })
    );
    let c = notifier.counters();
    assert_eq!(
        (
            c.delivered.load(Ordering::SeqCst),
            c.logged.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
}

#[test]
fn failing_webhooks_are_retried_and_counted_while_other_alarms_go_on() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let good = receiver(&rt, Answer::Status(204));
    let broken = receiver(&rt, Answer::Status(500));
    let silent = receiver(&rt, Answer::Never);
    let refused = refused_url();
    let alarms = format!(
        r#"
[[alarm]]
name = "flaky"
metric = "cpu.util"
aggregation_method = "mean"
granularity = "1m"
comparison_operator = "gt"
threshold = 80
alarm_actions = ["{refused}", "{}", "{}"]

[[alarm]]
name = "steady"
metric = "cpu.util"
aggregation_method = "mean"
granularity = "1m"
comparison_operator = "gt"
threshold = 80
repeat_actions = true
alarm_actions = ["{}"]
"#,
        broken.url, silent.url, good.url
    );
    let mut h = harness(&alarms, &[]);
    let settings = NotifierSettings {
        timeout: Duration::from_millis(500),
        retries: 2,
        backoff: Duration::from_millis(100),
    };
    let notifier = Notifier::new(settings, rt.handle().clone()).unwrap();
    h.per_minute("cpu.util", "vm-1", &[90.0]);
    for n in h.eval(30) {
        notifier.dispatch(&n);
    }
    let c = notifier.counters().clone();
    wait_for(
        "the first steady notification",
        Duration::from_secs(10),
        || good.bodies.lock().unwrap().len() == 1,
    );
    // The next evaluation of `steady` happens on schedule while the
    // flaky alarm's deliveries are still being retried.
    h.feed("cpu.util", "vm-1", &[(70, 95.0)]);
    let notes = h.eval(90);
    assert!(
        c.in_flight.load(Ordering::SeqCst) > 0,
        "flaky deliveries still in flight"
    );
    let names: Vec<&str> = notes.iter().map(|n| n.alarm_name.as_str()).collect();
    assert_eq!(
        names,
        vec!["steady"],
        "repeat_actions re-notifies steady only"
    );
    for n in &notes {
        notifier.dispatch(n);
    }
    wait_for(
        "the second steady notification",
        Duration::from_secs(10),
        || good.bodies.lock().unwrap().len() == 2,
    );
    assert!(c.in_flight.load(Ordering::SeqCst) > 0);
    assert_eq!(notifier.wait_idle(Duration::from_secs(20)), 0);
    // 1 + 2 retries for each of the three failing receivers.
    assert_eq!(broken.hits.load(Ordering::SeqCst), 3);
    assert_eq!(silent.hits.load(Ordering::SeqCst), 3);
    assert_eq!(c.failed.load(Ordering::SeqCst), 3);
    assert_eq!(c.delivered.load(Ordering::SeqCst), 2);
    assert_eq!(c.attempts.load(Ordering::SeqCst), 3 * 3 + 2);
    let second = &good.bodies.lock().unwrap()[1].0;
    assert_eq!(
        second["reason"],
        "Remaining as alarm due to 1 samples outside threshold, most recent: 95.0"
    );
}

// ---- the whole run ------------------------------------------------------------

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn wasmeter_run_alarms_on_real_samples_and_keeps_history() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook = receiver(&rt, Answer::Status(200));
    let dir = tempfile::tempdir().unwrap();
    let fixtures = crate::support::data_dir().join("node_exporter-fixtures/proc");
    let config = dir.path().join("wasmeter.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[archive]
root = "archive"
data_dir = "data"

[[archive_policy]]
name = "fast"
back_window = 0
aggregation_methods = ["mean"]
definition = [{{ granularity = "1s", timespan = "1h" }}]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "fast"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "1s"
settings = {{ root = "{root}", resource_id = "fixture" }}
grants = {{ read_dirs = ["{root}"] }}

[[alarm]]
name = "load"
metric = "load.1m"
aggregation_method = "mean"
granularity = "1s"
comparison_operator = "gt"
threshold = 0.2
evaluation_periods = 2
severity = "moderate"
alarm_actions = ["log:", "{url}"]
"#,
            root = fixtures.display(),
            url = hook.url
        ),
    )
    .unwrap();
    let out = wasmeter()
        .args(["run", "--duration", "5s"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The fixture's load average is 0.21 > 0.2.
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}\n{stderr}");
    let body = &bodies[0].0;
    assert_eq!(body["alarm_name"], "load");
    assert_eq!(body["previous"], "insufficient data");
    assert_eq!(body["current"], "alarm");
    assert_eq!(
        body["reason"],
        "Transition to alarm due to 2 samples outside threshold, most recent: 0.21"
    );
    assert!(
        stderr.contains("Transition to alarm due to 2 samples outside threshold"),
        "{stderr}"
    );

    let list = wasmeter()
        .args(["alarm", "list", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(list.status.success());
    let rows: Vec<Value> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["series"].as_str(), rows[0]["state"].as_str()),
        (Some("fixture"), Some("alarm"))
    );
    assert_eq!(rows[0]["severity"], "moderate");

    let history = wasmeter()
        .args(["alarm", "history", "load", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let table = String::from_utf8(history.stdout).unwrap();
    assert!(history.status.success());
    assert!(
        table.contains("insufficient data") && table.contains("alarm"),
        "{table}"
    );
    let unknown = wasmeter()
        .args(["alarm", "history", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no alarm named \"nope\""));

    // DuckDB reads the history file as it is.
    let hist = dir.path().join("archive/alarm-history.jsonl");
    assert_eq!(read(&hist).lines().count(), 1);
    let got = crate::archive::run_python(
        dir.path(),
        "import duckdb\nprint(duckdb.sql(\"SELECT alarm_name, previous, state, severity, reason_data.count FROM read_json_auto('archive/alarm-history.jsonl')\").fetchall())",
    );
    assert_eq!(
        got.trim(),
        "[('load', 'insufficient data', 'alarm', 'moderate', 2)]"
    );
}

#[test]
fn a_disabled_alarm_is_not_evaluated_and_keeps_its_state() {
    let disabled = CPU_HIGH.replace("threshold = 80", "threshold = 80\nenabled = false");
    let mut h = harness(&disabled, &[("cpu-high", "vm-1", "ok")]);
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    assert!(h.eval(4 * 60 + 30).is_empty());
    assert_eq!(h.evaluator.report().evaluations, 0);
    assert_eq!(
        h.state("cpu-high", "vm-1"),
        (AlarmState::Ok, "preset".into())
    );
}

#[test]
fn after_a_restart_the_alarm_still_sees_the_closed_buckets() {
    let mut h = harness(CPU_HIGH, &[]);
    // Ten minutes of 95 %: minutes 0–4 are closed (the next 5-minute block
    // has begun), 5–9 still open.
    h.per_minute("cpu.util", "vm-1", &[95.0; 10]);
    let notes = h.eval(7 * 60 + 30);
    assert_eq!(notes[0].current, AlarmState::Alarm);
    h.evaluator.persist();
    // A restart: the state file gives the state and the recent closed rows
    // (the engine's open buckets come from its own state file in a run).
    let mut again = AlarmEvaluator::new(&h.config, &runtime()).unwrap();
    // At 8:30 the last five buckets are 4 (closed) to 8 (open): all five
    // are there, so the alarm stays in alarm and says nothing.
    let notes = again.evaluate_due(T0 + (8 * 60 + 30) * S, &mut h.engine);
    assert_eq!(notes, vec![]);
    let key = StateKey {
        alarm: "cpu-high".into(),
        series: "vm-1".into(),
    };
    assert_eq!(again.states()[&key].state(), AlarmState::Alarm);
}

#[test]
fn a_reload_whose_rule_plugin_fails_keeps_the_old_alarms() {
    let mut h = harness(CPU_HIGH, &[]);
    let path = h.dir.path().join("wasmeter.toml");
    std::fs::write(
        &path,
        format!(
            "{POLICY}\n{}",
            CPU_HIGH.replace(
                "threshold = 80",
                "threshold = 80\nplugin = \"missing.wasm\""
            )
        ),
    )
    .unwrap();
    let new = PipelineConfig::load(&path).unwrap();
    let e = h.evaluator.reconfigure(&new).unwrap_err().to_string();
    assert!(e.starts_with("alarm cpu-high: "), "{e}");
    assert!(e.contains("missing.wasm"), "{e}");
    // The old alarm and its plugin still work.
    h.per_minute("cpu.util", "vm-1", &[81.0, 82.0, 83.0, 84.0, 85.0]);
    let notes = h.eval(4 * 60 + 30);
    assert_eq!(notes[0].current, AlarmState::Alarm);
    assert_eq!(h.evaluator.report().rule_failures, 0);
}
