//! The main jobs on real input: `wasmeter run` on this machine's `/proc`,
//! `wasmeter import` of NAB's CSV, both read back through DuckDB.

use std::collections::BTreeMap;

use crate::archive::run_python;
use crate::support::{data_dir, wasmeter};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `/proc/meminfo`'s MemTotal, in bytes.
fn mem_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024.0
}

#[test]
fn run_on_the_real_proc_archives_cpu_utilisation_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmeter.toml");
    // The main job's chain (examples/host.toml) with 1-second collection
    // and rollups, so rows close within the run.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/host.toml"
    ))
    .unwrap();
    let stages =
        &example[example.find("[[collector]]").unwrap()..example.find("[[alarm]]").unwrap()];
    let stages = stages
        .replace("interval = \"10s\"", "interval = \"1s\"")
        // Keep memory in bytes, to compare with /proc/meminfo exactly.
        .replace("meters = [\"memory.*\"]", "meters = [\"memory.none\"]");
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
aggregation_methods = ["mean", "min", "max", "count"]
definition = [{{ granularity = "1s", timespan = "1h" }}]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "fast"

{stages}"#
        ),
    )
    .unwrap();
    let out = wasmeter()
        .args(["run", "--duration", "6s"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = run_python(
        dir.path(),
        r#"
import duckdb
q = lambda m: duckdb.sql(f"SELECT count(*), min(min), max(max), min(mean), max(mean) FROM read_parquet('archive/policy=fast/**/*.parquet', hive_partitioning=true) WHERE metric = '{m}'").fetchall()[0]
print(q('cpu.util'))
print(q('memory.total'))
print(duckdb.sql("SELECT DISTINCT unit FROM read_parquet('archive/policy=fast/**/*.parquet', hive_partitioning=true) WHERE metric = 'cpu.util'").fetchall())
"#,
    );
    let lines: Vec<&str> = got.lines().collect();
    let nums = |l: &str| -> Vec<f64> {
        l.trim_matches(|c| c == '(' || c == ')')
            .split(", ")
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let cpu = nums(lines[0]);
    assert!(
        cpu[0] >= 2.0,
        "at least two seconds of CPU utilisation rows: {got}"
    );
    assert!(
        cpu[1] >= 0.0 && cpu[2] <= 100.0,
        "CPU utilisation within 0..100 %: {got}"
    );
    let mem = nums(lines[1]);
    assert!(mem[0] >= 3.0, "{got}");
    let total = mem_total_bytes();
    assert_eq!(
        (mem[1], mem[2], mem[3], mem[4]),
        (total, total, total, total)
    );
    assert_eq!(lines[2], "[('%',)]");
}

#[test]
fn import_of_nab_gives_the_exact_hourly_mean() {
    // Laid out as the repository, for the README's snippet.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    std::fs::create_dir_all(dir.path().join("tests/data/nab/labels")).unwrap();
    std::fs::copy(
        data_dir().join("nab/labels/combined_windows.json"),
        dir.path()
            .join("tests/data/nab/labels/combined_windows.json"),
    )
    .unwrap();
    let config = dir.path().join("examples/nab.toml");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/nab.toml"))
            .unwrap();
    std::fs::write(&config, example).unwrap();
    let csv = data_dir().join("nab/data/realKnownCause/machine_temperature_system_failure.csv");
    let out = wasmeter()
        .args([
            "import",
            "--metric",
            "machine.temperature",
            "--resource-id",
            "machine-1",
            "--config",
        ])
        .arg(&config)
        .arg(&csv)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // NAB's file repeats the hour 2014-01-07 02:00–02:55 (lines 10151 to
    // 10162): those 12 rows step back in time and are dropped, counted.
    assert!(
        err.contains("22695 lines, 22683 samples imported as machine.temperature; dropped: 0 bad lines, 12 backward, 0 nonexistent local times"),
        "{err}"
    );

    // The hour 2013-12-16 17:00 (in the second anomaly window), computed
    // here from the CSV: sequential sum / count, as Gnocchi's mean.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut hours: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let (t, v) = line.split_once(',').unwrap();
        hours.entry(&t[..13]).or_default().push(v.parse().unwrap());
    }
    let values = &hours["2013-12-16 17"];
    assert_eq!(values.len(), 12);
    let mean = values.iter().fold(0.0, |a, v| a + v) / values.len() as f64;
    let got = run_python(
        dir.path(),
        "import duckdb\nprint(repr(duckdb.sql(\"SELECT mean, count FROM read_parquet('examples/nab-data/archive/policy=nab/**/*.parquet', hive_partitioning=true) WHERE granularity = 3600 AND timestamp = TIMESTAMPTZ '2013-12-16 17:00:00+00'\").fetchall()))",
    );
    assert_eq!(got.trim(), format!("[({mean:?}, 12.0)]"));

    // The alarm fired, in event time, inside three of NAB's four labelled
    // anomaly windows.
    let hist = wasmeter()
        .args(["alarm", "history", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let fired: Vec<String> = String::from_utf8(hist.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["state"] == "alarm")
        .map(|r| r["timestamp"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fired,
        [
            "2013-12-10T11:00:00Z",
            "2013-12-16T10:00:00Z",
            "2014-02-03T11:00:00Z",
            "2014-02-07T23:00:00Z"
        ]
    );

    // The README's snippet, run as written.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let snippet = readme.split("<!-- tested: nab-snippet -->").nth(1).unwrap();
    let snippet = snippet
        .split_once("```python\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let printed = run_python(dir.path(), snippet);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            "2013-12-10 11:00 in ['2013-12-10 06:25:00.000000', '2013-12-12 05:35:00.000000']",
            "2013-12-16 10:00 in ['2013-12-15 17:50:00.000000', '2013-12-17 17:00:00.000000']",
            "2014-02-03 11:00 in no window",
            "2014-02-07 23:00 in ['2014-02-07 14:55:00.000000', '2014-02-09 14:05:00.000000']",
        ]
    );
}

/// The README's config examples (pipeline and alarms) are valid as written.
#[test]
fn readme_config_examples_are_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = |title: &str| {
        let s = readme.split(title).nth(1).unwrap();
        s.split_once("```toml\n")
            .unwrap()
            .1
            .split_once("```")
            .unwrap()
            .0
            .to_owned()
    };
    let text = format!(
        "{}\n{}",
        section("## Pipeline config"),
        section("## Alarms")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readme.toml");
    let config =
        wasmeter::config::PipelineConfig::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.alarms.len(), 2);
    assert_eq!(config.notifier.retries, 3);
}
