//! The archive read back by independent readers (DuckDB and pandas from
//! PyPI, installed by `tests/python/setup.sh`), on real input: NAB's
//! machine temperature series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use wasmeter::archive::{ArchiveSink, ArchiveWriter, Clock};
use wasmeter::batch;
use wasmeter::bindings::SampleType;
use wasmeter::config::PipelineConfig;
use wasmeter::pipeline::Sink;
use wasmeter::rollup::RollupEngine;

use crate::support::{data_dir, series, wit_batch};

/// The Python of the test virtual environment, created on first use.
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let venv = root.join("target/python");
        let status = Command::new("bash")
            .arg(root.join("tests/python/setup.sh"))
            .arg(&venv)
            .status()
            .expect("run tests/python/setup.sh");
        assert!(status.success(), "tests/python/setup.sh failed");
        venv.join("bin/python")
    })
    .clone()
}

/// Runs a Python script in `cwd`; returns its stdout.
pub(crate) fn run_python(cwd: &Path, script: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        script,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// NAB's machine temperature: (ns since the epoch, value), timestamps read
/// as UTC.
fn nab() -> Vec<(i64, f64)> {
    let text = std::fs::read_to_string(
        data_dir().join("nab/data/realKnownCause/machine_temperature_system_failure.csv"),
    )
    .unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let (t, v) = l.split_once(',').unwrap();
            let t = humantime::parse_rfc3339(&format!("{}Z", t.replace(' ', "T"))).unwrap();
            (
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64,
                v.parse().unwrap(),
            )
        })
        .collect()
}

const CONFIG: &str = r#"
[archive]
root = "wasmeter-data/archive"
data_dir = "wasmeter-data"

[[archive_policy]]
name = "nab"
aggregation_methods = ["mean", "max", "count", "95pct"]
definition = [{ granularity = "1h", timespan = "400d" }]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "nab"
"#;

/// Writes NAB through the rollup engine into `dir/wasmeter-data/archive`,
/// in batches of 500 samples, as the pipeline's sink would.
fn write_archive(dir: &Path) -> Vec<(i64, f64)> {
    let path = dir.join("wasmeter.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let config = PipelineConfig::parse(&path, CONFIG).unwrap();
    let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
    let writer = ArchiveWriter::new(
        &config.archive.root,
        config.policies.clone().into(),
        BTreeMap::new(),
    );
    let mut sink = ArchiveSink::new(engine, writer, &config.archive, Clock::EventTime).unwrap();
    let data = nab();
    for chunk in data.chunks(500) {
        let rows: Vec<(u32, i64, f64)> = chunk.iter().map(|&(t, v)| (0, t, v)).collect();
        let b = batch::Samples::from_wit(wit_batch(
            vec![series(
                "machine.temperature",
                "machine-1",
                "[degF]",
                SampleType::Gauge,
            )],
            &rows,
        ))
        .unwrap();
        sink.write("import", &b);
    }
    sink.finish();
    data
}

/// Hourly (bucket start ns, mean, max, count) computed here from the CSV,
/// without the engine: sequential sums, as Gnocchi; a timestamp repeated
/// within one 500-sample batch keeps its smallest value, a later batch
/// replaces it (Gnocchi's code, reference §1.3). The file repeats
/// 2014-01-07 02:00–02:55 (a clock going back 55 min).
fn hourly(data: &[(i64, f64)]) -> BTreeMap<i64, (f64, f64, f64)> {
    let mut deduped: BTreeMap<i64, f64> = BTreeMap::new();
    for chunk in data.chunks(500) {
        let mut in_batch: BTreeMap<i64, f64> = BTreeMap::new();
        for &(t, v) in chunk {
            let e = in_batch.entry(t).or_insert(v);
            *e = e.min(v);
        }
        deduped.extend(in_batch);
    }
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, v) in deduped {
        groups
            .entry(t - t.rem_euclid(3_600_000_000_000))
            .or_default()
            .push(v);
    }
    groups
        .into_iter()
        .map(|(h, vs)| {
            let sum = vs.iter().fold(0.0, |a, b| a + b);
            let max = vs.iter().copied().fold(f64::MIN, f64::max);
            (h, (sum / vs.len() as f64, max, vs.len() as f64))
        })
        .collect()
}

#[test]
fn duckdb_reads_exact_hourly_aggregates_of_nab() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_archive(dir.path());
    let expected = hourly(&data);
    let out = run_python(
        dir.path(),
        r#"
import duckdb, json
rows = duckdb.sql("""
    SELECT epoch_us(timestamp) AS t, granularity, metric, resource_id, unit, mean, max, count, pct95, policy, date
    FROM read_parquet('wasmeter-data/archive/policy=*/granularity=*/date=*/*.parquet', hive_partitioning = true)
    ORDER BY t
""").fetchall()
print(json.dumps([list(map(str, r[:5])) + [repr(x) for x in r[5:9]] + [r[9], str(r[10])] for r in rows]))
"#,
    );
    let rows: Vec<Vec<String>> = serde_json::from_str(&out).unwrap();
    // Every complete hour is archived; the last hour is still open (and
    // saved in the open-bucket state).
    assert_eq!(rows.len(), expected.len() - 1);
    for (row, (&hour, &(mean, max, count))) in rows.iter().zip(&expected) {
        assert_eq!(row[0], (hour / 1000).to_string());
        assert_eq!(
            &row[1..5],
            ["3600", "machine.temperature", "machine-1", "[degF]"]
        );
        assert_eq!(
            row[5].parse::<f64>().unwrap().to_bits(),
            mean.to_bits(),
            "mean of hour {}",
            row[0]
        );
        assert_eq!(row[6].parse::<f64>().unwrap(), max);
        assert_eq!(row[7].parse::<f64>().unwrap(), count);
        assert_eq!(row[9], "nab");
    }
    // Known hours, by hand: 2013-12-02 22:00 UTC has 12 five-minute values;
    // 2014-01-07 02:00, whose 12 timestamps come twice, still counts 12.
    for (t, date) in [
        (1_386_021_600_000_000i64, "2013-12-02"),
        (1_389_060_000_000_000, "2014-01-07"),
    ] {
        let r = rows.iter().find(|r| r[0] == t.to_string()).unwrap();
        assert_eq!(r[7], "12.0");
        assert_eq!(r[10], date);
    }
}

#[test]
fn duckdb_from_the_csv_agrees_with_the_archive_pct95() {
    // DuckDB computes the 95th percentile from the raw CSV on its own; the
    // archive's pct95 must agree (to rounding).
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path());
    let csv = data_dir().join("nab/data/realKnownCause/machine_temperature_system_failure.csv");
    let out = run_python(
        dir.path(),
        &format!(
            r#"
import duckdb
d = duckdb.sql("""
    WITH raw AS (
        SELECT time_bucket(INTERVAL 1 hour, timestamp::TIMESTAMP) AS h, quantile_cont(value, 0.95) AS p
        FROM read_csv('{csv}') GROUP BY h),
    arch AS (
        SELECT timezone('UTC', timestamp) AS h, pct95 FROM read_parquet('wasmeter-data/archive/**/*.parquet'))
    SELECT count(*), max(abs(p - pct95)) FROM raw JOIN arch USING (h)
    -- the hour the file repeats: DuckDB keeps both copies, Gnocchi one
    WHERE h <> TIMESTAMP '2014-01-07 02:00:00'
""").fetchall()[0]
print(d[0], d[1])
"#,
            csv = csv.display()
        ),
    );
    let mut it = out.split_whitespace();
    let joined: usize = it.next().unwrap().parse().unwrap();
    let diff: f64 = it.next().unwrap().parse().unwrap();
    assert!(joined > 1800, "{out}");
    assert!(diff < 1e-9, "largest pct95 difference {diff}");
}

/// The README's analyst snippets, run as written from the folder that holds
/// `wasmeter-data/` (where `wasmeter run examples/…` would leave it).
#[test]
fn readme_snippets_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let snippets: Vec<&str> = readme
        .split("<!-- tested: archive-snippet -->")
        .skip(1)
        .map(|s| {
            let code = s.split_once("```python\n").unwrap().1;
            code.split_once("```").unwrap().0
        })
        .collect();
    assert_eq!(
        snippets.len(),
        2,
        "the README has a DuckDB and a pandas snippet"
    );
    for s in snippets {
        let out = run_python(dir.path(), s);
        assert!(out.contains("machine.temperature"), "{s}\n{out}");
    }
}

/// Samples of one bucket split across a stop and a start of the sink end up
/// in one archive row with exact values.
#[test]
fn a_bucket_split_across_a_restart_is_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmeter.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let config = PipelineConfig::parse(&path, CONFIG).unwrap();
    let sink = || {
        let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
        let writer = ArchiveWriter::new(
            &config.archive.root,
            config.policies.clone().into(),
            BTreeMap::new(),
        );
        ArchiveSink::new(engine, writer, &config.archive, Clock::EventTime).unwrap()
    };
    let h = 1_388_534_400_000_000_000i64; // 2014-01-01T00:00Z
    let min = 60_000_000_000i64;
    let send = |s: &mut ArchiveSink, rows: &[(i64, f64)]| {
        let rows: Vec<(u32, i64, f64)> = rows.iter().map(|&(t, v)| (0, t, v)).collect();
        s.write(
            "import",
            &batch::Samples::from_wit(wit_batch(
                vec![series("m", "r", "1", SampleType::Gauge)],
                &rows,
            ))
            .unwrap(),
        );
    };
    let mut first = sink();
    send(&mut first, &[(h, 1.0), (h + 10 * min, 5.0)]);
    first.finish();
    let mut second = sink();
    send(&mut second, &[(h + 20 * min, 3.0), (h + 65 * min, 100.0)]);
    second.finish();
    let out = run_python(
        dir.path(),
        "import duckdb\nfor r in duckdb.sql(\"SELECT epoch_us(timestamp), mean, max, count, pct95 FROM read_parquet('wasmeter-data/archive/**/*.parquet')\").fetchall(): print(*r)",
    );
    // pct95 of [1, 3, 5]: index 1.9 -> 3 + 0.9 × 2.
    assert_eq!(out, format!("{} 3.0 5.0 3.0 4.8\n", h / 1000));
}

/// A config of `wasmeter run` in `dir`: the procfs fixture collected every
/// 200 ms, rolled up into 1 s buckets (`count`, `last`) of policy `second`
/// with a back window of 2 s (a batch that reaches the rollup up to 2 s
/// after its timestamp is not late), open buckets checkpointed every
/// `checkpoint_interval`.
fn procfs_per_second(dir: &Path, checkpoint_interval: &str) -> PathBuf {
    let proc_dir = data_dir()
        .join("node_exporter-fixtures/proc")
        .canonicalize()
        .unwrap();
    let config = dir.join("wasmeter.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[archive]
root = "archive"
checkpoint_interval = "{checkpoint_interval}"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "200ms"
settings = {{ root = "{p}", resource_id = "fixture" }}
grants = {{ read_dirs = ["{p}"] }}

[[archive_policy]]
name = "second"
back_window = 2
aggregation_methods = ["count", "last"]
definition = [{{ granularity = "1s", timespan = "1h" }}]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "second"
"#,
            p = proc_dir.display()
        ),
    )
    .unwrap();
    config
}

/// `wasmeter query SQL` over the archive of `dir`'s config, as CSV rows
/// (the header left out), each split at its commas.
fn query_rows(dir: &Path, sql: &str) -> Vec<Vec<String>> {
    let out = crate::support::wasmeter()
        .current_dir(dir)
        .args(["query", sql, "-c", "wasmeter.toml", "--format", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// Runs `wasmeter run CONFIG --duration 3s`, asserting success; its stderr.
fn run_for_3s(config: &Path) -> String {
    let out = crate::support::wasmeter()
        .arg("run")
        .arg(config)
        .args(["--duration", "3s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// `wasmeter run` killed with SIGKILL after a checkpoint, while buckets
/// it had open at the checkpoint were written since, then started again:
/// every bucket is in the archive once.
#[test]
fn a_run_killed_after_a_checkpoint_writes_no_bucket_twice_when_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = procfs_per_second(dir.path(), "3s");
    let state = dir.path().join("wasmeter-data/open-buckets.arrow");
    let mut first = crate::support::wasmeter()
        .arg("run")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first checkpoint, then two or so ticks writing buckets it held
    // open, then SIGKILL: no clean stop, no save.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !state.exists() {
        assert!(std::time::Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // (a 1 s bucket is written 2 s after its end: the back window).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    first.kill().unwrap();
    first.wait().unwrap();
    run_for_3s(&config);
    // memory.total has no attributes: one series.
    let rows = query_rows(
        dir.path(),
        "SELECT count(*) AS n, count(DISTINCT timestamp) AS buckets FROM second WHERE metric = 'memory.total'",
    );
    let counts: Vec<u64> = rows[0].iter().map(|v| v.parse().unwrap()).collect();
    assert!(counts[0] >= 4, "{rows:?}");
    assert_eq!(counts[0], counts[1], "a bucket written twice: {rows:?}");
}

/// `wasmeter run --print` killed with SIGKILL before its first
/// checkpoint, then started again: every sample it printed is in the
/// archive, from the write-ahead log.
#[test]
fn a_run_killed_with_no_checkpoint_loses_no_sample_it_printed() {
    use std::io::BufRead;
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint before the kill: only the write-ahead log has them.
    let config = procfs_per_second(dir.path(), "1h");
    let mut first = crate::support::wasmeter()
        .arg("run")
        .arg(&config)
        .arg("--print")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let memory_total = |line: &str| line.split(' ').nth(1) == Some("memory.total");
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap()).lines();
    let mut printed = 0usize;
    while printed < 8 {
        let line = lines.next().expect("wasmeter run ended early").unwrap();
        printed += usize::from(memory_total(&line));
    }
    first.kill().unwrap();
    let killed_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    // What it printed up to the kill, each line written after its batch
    // was logged.
    printed += lines
        .map_while(Result::ok)
        .filter(|l| memory_total(l))
        .count();
    first.wait().unwrap();
    // The second run starts a whole second after the kill's: its samples
    // fall in buckets of their own.
    let cut = killed_at.as_secs() + 1;
    let start = Duration::from_secs(cut + 1);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(start.saturating_sub(now));
    let stderr = run_for_3s(&config);
    assert!(stderr.contains("replayed the write-ahead log"), "{stderr}");
    let rows = query_rows(
        dir.path(),
        &format!(
            "SELECT count(*), count(DISTINCT timestamp), sum(\"count\") FROM second \
             WHERE metric = 'memory.total' AND to_unixtime(timestamp) < {cut}"
        ),
    );
    // `count` is a Float64 column like every aggregate.
    let got: Vec<usize> = rows[0]
        .iter()
        .map(|v| v.parse::<f64>().unwrap() as usize)
        .collect();
    assert_eq!(got[0], got[1], "a bucket written twice: {rows:?}");
    // Every sample printed; one more if the kill came between logging a
    // batch and printing it.
    assert!(
        got[2] == printed || got[2] == printed + 1,
        "archived {} of the first run's {printed} memory.total samples",
        got[2]
    );
}

/// `wasmeter import` of a config whose `run` is running is refused at
/// start, naming the run's pid; once the run stops it goes through.
#[test]
fn an_import_beside_a_running_run_of_the_same_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = procfs_per_second(dir.path(), "5m");
    let lock = dir.path().join("wasmeter-data/lock");
    let mut run = crate::support::wasmeter()
        .arg("run")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = format!("{}\n", run.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&lock).ok().as_deref() != Some(pid.as_str()) {
        assert!(std::time::Instant::now() < deadline, "run took no lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let csv = dir.path().join("m.csv");
    std::fs::write(&csv, "timestamp,value\n2014-01-01 00:00:00,1\n").unwrap();
    let import = || {
        crate::support::wasmeter()
            .args(["import", "-c"])
            .arg(&config)
            .args(["--metric", "m", "--resource-id", "r"])
            .arg(&csv)
            .output()
            .unwrap()
    };
    let out = import();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the data directory {} is in use by another wasmeter run or import (pid {}): stop it first",
            dir.path().join("wasmeter-data").display(),
            run.id()
        )),
        "{err}"
    );
    run.kill().unwrap();
    run.wait().unwrap();
    // The kernel let the lock go with the killed process.
    let out = import();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
