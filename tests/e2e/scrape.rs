//! Scraping: `wasmeter run` with collectors whose plugin is the
//! `openmetrics` decoder, against HTTP targets this test serves on
//! 127.0.0.1, read back from the archive through DuckDB.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::Full;
use hyper::body::Bytes;

use crate::archive::run_python;
use crate::support::{data_dir, wasmeter};

/// An HTTP target on 127.0.0.1 answering every GET with `body` and
/// `content_type`; records the `Accept` header of the last request.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) hits: Arc<AtomicU64>,
    accept: Arc<std::sync::Mutex<String>>,
}

pub(crate) fn serve(
    rt: &tokio::runtime::Runtime,
    body: Vec<u8>,
    content_type: &'static str,
) -> Target {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let hits: Arc<AtomicU64> = Arc::default();
    let accept: Arc<std::sync::Mutex<String>> = Arc::default();
    let (h, a) = (hits.clone(), accept.clone());
    let body = Bytes::from(body);
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (h, a, body) = (h.clone(), a.clone(), body.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (h, a, body) = (h.clone(), a.clone(), body.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            *a.lock().unwrap() = req
                                .headers()
                                .get("accept")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let mut resp = hyper::Response::new(Full::new(body));
                            resp.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static(content_type),
                            );
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
    Target { url, hits, accept }
}

/// A URL nothing listens on.
fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", l.local_addr().unwrap());
    drop(l);
    url
}

/// The sample names of a Prometheus text document, read independently of
/// the decoder: the token before `{` or the first space of every line that
/// is not a comment or blank.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let end = l.find(['{', ' ']).unwrap();
            l[..end].to_owned()
        })
        .collect()
}

#[test]
fn scrapes_a_real_237_family_target_keeps_bad_lines_out_and_reports_a_dead_target() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let scrape = std::fs::read_to_string(
        data_dir().join("prometheus-textparse-testdata/alltypes.237mfs.prom.txt"),
    )
    .unwrap();
    let good = serve(
        &rt,
        scrape.clone().into_bytes(),
        "text/plain; version=0.0.4; charset=utf-8",
    );
    // Lines 2 and 4 are bad; lines 1, 3 and 5 are kept.
    let bad_body = "# TYPE jobs_total counter\njobs_total{queue=\"a\"} one\njobs_total{queue=\"b\"} 7\njobs_total{queue=\"c\" 8\ntemperature_celsius -3.5\n";
    let bad = serve(
        &rt,
        bad_body.as_bytes().to_vec(),
        "text/plain; version=0.0.4",
    );
    let dead = refused_url();

    let dir = tempfile::tempdir().unwrap();
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
aggregation_methods = ["mean", "min", "max", "count", "last"]
definition = [{{ granularity = "1s", timespan = "1h" }}]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "fast"

[[collector]]
name = "go-service"
plugin = "builtin:openmetrics"
interval = "1s"
url = "{good}"

[[collector]]
name = "mixed"
plugin = "builtin:openmetrics"
interval = "1s"
url = "{bad}"
settings = {{ resource_id = "batch-host" }}

[[collector]]
name = "gone"
plugin = "builtin:openmetrics"
interval = "1s"
url = "{dead}"
scrape_timeout = "500ms"
"#,
            good = good.url,
            bad = bad.url,
        ),
    )
    .unwrap();
    let out = wasmeter()
        .args(["run", "--duration", "5s"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(good.hits.load(Ordering::SeqCst) >= 3, "{err}");
    assert!(
        good.accept
            .lock()
            .unwrap()
            .starts_with("application/openmetrics-text;version=1.0.0"),
        "{}",
        good.accept.lock().unwrap()
    );
    assert!(
        err.contains("line rejected: bad value \"one\"")
            && err.contains("stage=\"mixed\"")
            && err.contains(&format!("source=\"{}\" line=2", bad.url))
            && err.contains("line=4"),
        "{err}"
    );
    assert!(err.contains("scrape failed"), "{err}");

    let good_instance = good
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let got = run_python(
        dir.path(),
        &format!(
            r#"
import duckdb
t = "read_parquet('archive/policy=fast/**/*.parquet', hive_partitioning=true)"
names = duckdb.sql(f"SELECT DISTINCT metric FROM {{t}} WHERE resource_id = '{good_instance}' AND metric NOT IN ('up', 'scrape_duration_seconds', 'scrape_samples_scraped') ORDER BY metric").fetchall()
print(",".join(n for (n,) in names))
print(duckdb.sql(f"SELECT min(min), max(max) FROM {{t}} WHERE metric = 'up' AND resource_id = '{good_instance}'").fetchall())
print(duckdb.sql(f"SELECT DISTINCT last, unit FROM {{t}} WHERE metric = 'scrape_samples_scraped' AND resource_id = '{good_instance}'").fetchall())
print(duckdb.sql(f"SELECT DISTINCT attributes['job'] FROM {{t}} WHERE metric = 'up' AND resource_id = '{good_instance}'").fetchall())
print(duckdb.sql(f"SELECT DISTINCT last FROM {{t}} WHERE metric = 'go_memstats_heap_inuse_bytes'").fetchall())
print(duckdb.sql(f"SELECT DISTINCT last FROM {{t}} WHERE metric = 'go_gc_duration_seconds' AND attributes['quantile'] = '0.75'").fetchall())
print(duckdb.sql(f"SELECT metric, attributes['queue'], last FROM {{t}} WHERE resource_id = 'batch-host' AND metric <> 'up' AND metric NOT LIKE 'scrape_%' GROUP BY ALL ORDER BY ALL").fetchall())
print(duckdb.sql(f"SELECT DISTINCT last FROM {{t}} WHERE metric = 'up' AND attributes['job'] = 'mixed'").fetchall())
print(duckdb.sql(f"SELECT DISTINCT last FROM {{t}} WHERE metric = 'up' AND resource_id LIKE '127.0.0.1:%' AND attributes['job'] = 'gone'").fetchall())
"#
        ),
    );
    let lines: Vec<&str> = got.lines().collect();
    // Every sample name of the file made it into the archive.
    let expected: Vec<String> = sample_names(&scrape).into_iter().collect();
    assert_eq!(expected.len(), 291);
    assert_eq!(lines[0], expected.join(","), "{got}");
    assert_eq!(lines[1], "[(1.0, 1.0)]", "{got}");
    let sample_lines = scrape
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(lines[2], format!("[({}.0, '1')]", sample_lines), "{got}");
    assert_eq!(lines[3], "[('go-service',)]", "{got}");
    // Values as written in the file.
    let value_of = |prefix: &str| -> f64 {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(
        lines[4],
        format!("[({:?},)]", value_of("go_memstats_heap_inuse_bytes ")),
        "{got}"
    );
    assert_eq!(
        lines[5],
        format!(
            "[({:?},)]",
            value_of("go_gc_duration_seconds{quantile=\"0.75\"} ")
        ),
        "{got}"
    );
    assert_eq!(
        lines[6], "[('jobs_total', 'b', 7.0), ('temperature_celsius', None, -3.5)]",
        "{got}"
    );
    assert_eq!(
        lines[7], "[(1.0,)]",
        "a body with bad lines is still up: {got}"
    );
    assert_eq!(lines[8], "[(0.0,)]", "{got}");
}

#[test]
fn a_url_needs_a_decoder_and_a_decoder_needs_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmeter.toml");
    std::fs::write(
        &config,
        r#"
[[collector]]
name = "node"
plugin = "builtin:openmetrics"
interval = "15s"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "15s"
url = "http://127.0.0.1:9100/metrics"

[[collector]]
name = "bad-url"
plugin = "builtin:openmetrics"
interval = "15s"
url = "ftp://example.org/metrics"
"#,
    )
    .unwrap();
    let out = wasmeter().arg("check").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "collector[2].url: \"ftp://example.org/metrics\": expected an http:// or https:// URL with a host (scheme \"ftp\")"
        ),
        "{err}"
    );
    // With the URL fixed, the world mismatches are reported at load.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("ftp://example.org", "http://127.0.0.1:9"),
    )
    .unwrap();
    let out = wasmeter().arg("check").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stage node: plugin builtin:openmetrics: load: the plugin is a decoder: give the collector a `url` to scrape"),
        "{err}"
    );
    assert!(
        err.contains("stage host: plugin builtin:procfs: load: `url` needs a decoder plugin, this one is a collector"),
        "{err}"
    );
    // A scrape ends before the next starts; the decoder gets no grants.
    std::fs::write(
        &config,
        r#"
[[collector]]
name = "node"
plugin = "builtin:openmetrics"
interval = "15s"
url = "http://127.0.0.1:9100/metrics"
scrape_timeout = "30s"
grants = { env = ["HOME"] }
"#,
    )
    .unwrap();
    let out = wasmeter().arg("check").arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("collector[0].scrape_timeout: 30s is longer than the interval 15s"),
        "{err}"
    );
    assert!(
        err.contains("collector[0].grants: a scraping collector's decoder gets no grants"),
        "{err}"
    );
}

#[test]
fn the_environments_proxy_is_used_only_by_a_collector_with_proxy_from_environment() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = b"# TYPE up_test gauge\nup_test 1\n".to_vec();
    let direct = serve(&rt, body.clone(), "text/plain; version=0.0.4");
    let via_env = serve(&rt, body.clone(), "text/plain; version=0.0.4");
    // A "proxy" answering whatever it is asked for with the same body.
    let proxy = serve(&rt, body, "text/plain; version=0.0.4");
    let proxy_url = proxy.url.trim_end_matches("/metrics").to_owned();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmeter.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[archive]
root = "archive"
data_dir = "data"

[[collector]]
name = "direct"
plugin = "builtin:openmetrics"
interval = "1s"
url = "{direct}"

[[collector]]
name = "via-env"
plugin = "builtin:openmetrics"
interval = "1s"
url = "{via_env}"
proxy_from_environment = true
"#,
            direct = direct.url,
            via_env = via_env.url,
        ),
    )
    .unwrap();
    let mut run = wasmeter();
    run.args(["run", "--duration", "5s"]).arg(&config);
    // REQUEST_METHOD set (CGI) makes reqwest ignore HTTP_PROXY.
    for name in [
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
        "REQUEST_METHOD",
    ] {
        run.env_remove(name);
    }
    let out = run
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("scrape failed"), "{err}");
    // As Prometheus: the environment's proxy only where asked for.
    let (d, v, p) = (
        direct.hits.load(Ordering::SeqCst),
        via_env.hits.load(Ordering::SeqCst),
        proxy.hits.load(Ordering::SeqCst),
    );
    assert!(d >= 3, "direct target scraped {d} times: {err}");
    assert_eq!(v, 0, "{err}");
    assert!(p >= 3, "proxy asked {p} times: {err}");
}
