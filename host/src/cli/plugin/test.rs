//! `wasmeter plugin test`: one plugin, one call, outside any pipeline.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use crate::batch;
use crate::bindings::WitBatch;
use crate::bindings::alarm_rule::wasmeter::plugin::alarm::{Evaluation, SeriesAggregates, State};
use crate::cli::{Failure, key_value, now_ns};
use crate::plugin::{
    AlarmRule, CallStats, Collector, Decoder, Grants, Limits, Plugin, PluginSource, Runtime,
    Transformer, World,
};
use crate::samples;

/// Arguments of `wasmeter plugin test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// A `.wasm` component file, or `builtin:NAME`.
    pub plugin: String,
    /// The input: a samples file (CSV, JSON lines or Arrow IPC; see the
    /// README) for a transformer or an alarm rule (one series of
    /// aggregates per distinct series), the document to decode for a
    /// decoder. A collector takes none.
    #[arg(long, short = 'i')]
    pub input: Option<PathBuf>,
    /// The expected output: a samples file (transformer, collector,
    /// decoder), or JSON lines as printed by `--format jsonl` (alarm rule).
    /// Samples must match in order, values bit for bit (any NaN matches any
    /// NaN).
    #[arg(long, short = 'e')]
    pub expect: Option<PathBuf>,
    /// A setting passed to `init` (repeatable, in order).
    #[arg(long = "setting", short = 's', value_name = "KEY=VALUE", value_parser = key_value)]
    pub settings: Vec<(String, String)>,
    /// An alarm rule's parameter (repeatable), e.g. `threshold=90`.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE", value_parser = key_value)]
    pub params: Vec<(String, String)>,
    /// The `now` a collector or decoder is called with: RFC 3339, epoch
    /// seconds, or relative (`now`, `-1h`).
    #[arg(long, default_value = "now")]
    pub now: String,
    /// The content type a decoder is told (a scrape's `Content-Type`).
    #[arg(long, default_value = "")]
    pub content_type: String,
    /// A directory granted read-only (repeatable), as `grants.read_dirs`.
    #[arg(long = "read-dir", value_name = "DIR")]
    pub read_dirs: Vec<PathBuf>,
    /// An environment variable the plugin may read (repeatable).
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// A host the plugin may send HTTP requests to (repeatable).
    #[arg(long = "http-host", value_name = "HOST[:PORT]")]
    pub http_hosts: Vec<String>,
    /// Memory cap of the instance, e.g. `64MiB`.
    #[arg(long, default_value = "256MiB", value_parser = byte_size)]
    pub memory: usize,
    /// Wall-time budget of each call, e.g. `2s`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub call_timeout: Duration,
    /// Keep compiled components in this directory (keyed by content hash
    /// and engine), so the next test of the same plugin does not recompile.
    #[arg(long, env = "WASMETER_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How to print the output on stdout.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: Format,
}

/// Output format of `plugin test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// CSV, readable back as `--input` or `--expect` (not for alarm rules).
    Csv,
    /// JSON lines, readable back as `--input` or `--expect`.
    Jsonl,
    /// Nothing (the summary and the comparison still go to stderr).
    None,
}

fn byte_size(s: &str) -> Result<usize, String> {
    crate::config::parse_byte_size(s)
        .filter(|b| *b >= 1 << 20)
        .ok_or_else(|| format!("{s:?}: expected bytes ≥ 1MiB, e.g. 64MiB or 1GiB"))
}

/// What one call produced.
enum Output {
    Samples {
        input: Option<usize>,
        batch: WitBatch,
        rejected: Vec<(u32, String)>,
    },
    Evaluations(Vec<(crate::bindings::WitSeries, Evaluation)>),
}

/// Runs `wasmeter plugin test`.
pub fn run(args: TestArgs) -> Result<(), Failure> {
    let usage = |m: String| Failure::Usage(format!("error: {m}"));
    let source = PluginSource::parse(&args.plugin, Path::new("."));
    let runtime = match &args.cache_dir {
        Some(dir) => Runtime::with_cache_dir(dir),
        None => Runtime::new(),
    }
    .map_err(|e| Failure::Runtime(e.into()))?;
    let load_start = Instant::now();
    let plugin =
        Arc::new(Plugin::load(&runtime, &args.plugin, &source).map_err(|e| usage(e.to_string()))?);
    let load = load_start.elapsed();
    let world = plugin.world();
    let now = crate::query::time::parse_time(&args.now, now_ns())
        .map_err(|e| usage(format!("--now: {e}")))?;
    let input_needed = !matches!(world, World::Collector);
    match (&args.input, input_needed) {
        (None, true) => return Err(usage(format!("a {world} needs --input FILE"))),
        (Some(_), false) => {
            return Err(usage("a collector takes no --input".into()));
        }
        _ => {}
    }
    if world == World::AlarmRule && args.format == Format::Csv {
        return Err(usage(
            "an alarm rule's evaluations print as a table or JSON lines (--format jsonl), not CSV"
                .into(),
        ));
    }
    if args.call_timeout.is_zero() {
        return Err(usage("--call-timeout: must be more than 0s".into()));
    }
    if !args.params.is_empty() && world != World::AlarmRule {
        return Err(usage(format!(
            "--param is for alarm rules; this plugin is a {world}"
        )));
    }
    let grants = Grants {
        read_dirs: args.read_dirs.clone(),
        env: args.env.clone(),
        http_hosts: args.http_hosts.clone(),
    };
    let limits = Limits {
        memory_bytes: args.memory,
        call_timeout: args.call_timeout,
        recycle_above_bytes: args.memory,
    };
    let name = plugin_label(&args.plugin);
    let samples_input = |p: &Path| samples::read(p).map_err(|e| usage(e.to_string()));
    let failed = |e: crate::plugin::PluginError| Failure::Runtime(anyhow::anyhow!(e));
    let init_start = Instant::now();
    let (output, stats, init) = match world {
        World::Transformer => {
            let path = args.input.as_deref().unwrap();
            let input = samples_input(path)?;
            let rb = batch::Samples::from_wit(input)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            let mut t = Transformer::new(plugin.clone(), &name, &args.settings, &grants, limits)
                .map_err(failed)?;
            let init = init_start.elapsed();
            let out = t.transform_samples(&rb).map_err(failed)?;
            let out = out.to_wit().map_err(|e| Failure::Runtime(e.into()))?;
            let output = Output::Samples {
                input: Some(rb.num_rows()),
                batch: out,
                rejected: Vec::new(),
            };
            (output, t.stats().clone(), init)
        }
        World::Collector => {
            let mut c = Collector::new(plugin.clone(), &name, &args.settings, &grants, limits)
                .map_err(failed)?;
            let init = init_start.elapsed();
            let out = c.collect(now).map_err(failed)?;
            let out = out.to_wit().map_err(|e| Failure::Runtime(e.into()))?;
            let output = Output::Samples {
                input: None,
                batch: out,
                rejected: Vec::new(),
            };
            (output, c.stats().clone(), init)
        }
        World::Decoder => {
            let path = args.input.as_deref().unwrap();
            let bytes =
                std::fs::read(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            let mut d = Decoder::new(plugin.clone(), &name, &args.settings, &grants, limits)
                .map_err(failed)?;
            let init = init_start.elapsed();
            let out = d.decode(&bytes, &args.content_type, now).map_err(failed)?;
            let batch = out.batch.to_wit().map_err(|e| Failure::Runtime(e.into()))?;
            let rejected = out
                .rejected
                .into_iter()
                .map(|r| (r.line, r.reason))
                .collect();
            let output = Output::Samples {
                input: None,
                batch,
                rejected,
            };
            (output, d.stats().clone(), init)
        }
        World::AlarmRule => {
            let input = samples_input(args.input.as_deref().unwrap())?;
            let aggregates = series_aggregates(input);
            let mut a = AlarmRule::new(plugin.clone(), &name, &args.settings, &grants, limits)
                .map_err(failed)?;
            let init = init_start.elapsed();
            let out = a.evaluate(&args.params, &aggregates).map_err(failed)?;
            let evaluations = aggregates.into_iter().map(|s| s.series).zip(out).collect();
            (Output::Evaluations(evaluations), a.stats().clone(), init)
        }
    };
    print_output(&output, args.format).map_err(Failure::Runtime)?;
    let compiled = if runtime.cache_hits() > 0 {
        "from cache"
    } else {
        "compiled"
    };
    summary(&name, world, (load, compiled), init, &stats, &output);
    if let Some(path) = &args.expect {
        match expect(path, &output) {
            Ok(()) => eprintln!("output matches {}", path.display()),
            Err(Mismatch::Unreadable(m)) => return Err(usage(m)),
            Err(Mismatch::Differs(m)) => return Err(Failure::Runtime(anyhow::anyhow!(m))),
        }
    }
    Ok(())
}

/// `builtin:NAME` → `NAME`, a file → its stem.
fn plugin_label(plugin: &str) -> String {
    match plugin.strip_prefix("builtin:") {
        Some(n) => n.to_owned(),
        None => Path::new(plugin)
            .file_stem()
            .map_or_else(|| plugin.to_owned(), |s| s.to_string_lossy().into_owned()),
    }
}

/// One entry per distinct series, in order of first sample; points sorted
/// by time (stable), as the contract wants them oldest first.
fn series_aggregates(input: WitBatch) -> Vec<SeriesAggregates> {
    let mut points: Vec<Vec<(i64, f64)>> = vec![Vec::new(); input.series.len()];
    for ((i, t), v) in input
        .series_index
        .iter()
        .zip(&input.timestamps)
        .zip(&input.values)
    {
        points[*i as usize].push((*t, *v));
    }
    input
        .series
        .into_iter()
        .zip(points)
        .map(|(series, mut p)| {
            p.sort_by_key(|(t, _)| *t);
            SeriesAggregates {
                series,
                timestamps: p.iter().map(|(t, _)| *t).collect(),
                values: p.iter().map(|(_, v)| *v).collect(),
            }
        })
        .collect()
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Ok => "ok",
        State::Alarm => "alarm",
        State::InsufficientData => "insufficient data",
    }
}

/// An evaluation as one JSON object (the `--format jsonl` line and what
/// `--expect` compares).
fn evaluation_json(series: &crate::bindings::WitSeries, e: &Evaluation) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = series
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "metric": series.metric,
        "resource_id": series.resource_id,
        "attributes": attributes,
        "state": state_name(e.state),
        "equivocal": e.equivocal,
        "points": e.points,
        "outside": e.outside,
        "most_recent": e.most_recent.map(samples::format_value),
        "reason": e.reason,
    })
}

fn print_output(output: &Output, format: Format) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match (output, format) {
        (_, Format::None) => {}
        (Output::Samples { batch, .. }, Format::Csv) => samples::write_csv(batch, &mut out)?,
        (Output::Samples { batch, .. }, Format::Jsonl) => samples::write_jsonl(batch, &mut out)?,
        (Output::Samples { batch, .. }, Format::Table) => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                "timestamp",
                "metric",
                "resource_id",
                "attributes",
                "unit",
                "type",
                "value",
            ]);
            for row in samples::rows(batch) {
                let attrs: Vec<String> = row
                    .series
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                t.add_row(vec![
                    samples::format_timestamp(row.timestamp),
                    row.series.metric.clone(),
                    row.series.resource_id.clone(),
                    attrs.join(","),
                    row.series.unit.clone(),
                    batch::sample_type_name(row.series.type_).to_owned(),
                    samples::format_value(row.value),
                ]);
            }
            writeln!(out, "{t}")?;
        }
        (Output::Evaluations(evals), Format::Jsonl | Format::Csv) => {
            for (s, e) in evals {
                writeln!(out, "{}", evaluation_json(s, e))?;
            }
        }
        (Output::Evaluations(evals), Format::Table) => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                "metric",
                "resource_id",
                "state",
                "equivocal",
                "points",
                "outside",
                "most recent",
                "reason",
            ]);
            for (s, e) in evals {
                t.add_row(vec![
                    s.metric.clone(),
                    s.resource_id.clone(),
                    state_name(e.state).to_owned(),
                    e.equivocal.to_string(),
                    e.points.to_string(),
                    e.outside.to_string(),
                    e.most_recent.map(samples::format_value).unwrap_or_default(),
                    e.reason.clone(),
                ]);
            }
            writeln!(out, "{t}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The summary on stderr: world, times, calls, peak memory, counts.
fn summary(
    name: &str,
    world: World,
    (load, compiled): (Duration, &str),
    init: Duration,
    stats: &CallStats,
    output: &Output,
) {
    let counts = match output {
        Output::Samples {
            input,
            batch,
            rejected,
        } => {
            let mut c = String::new();
            if let Some(n) = input {
                c.push_str(&format!("{n} samples in, "));
            }
            c.push_str(&format!(
                "{} samples in {} series out",
                batch.values.len(),
                batch.series.len()
            ));
            if !rejected.is_empty() {
                c.push_str(&format!(", {} lines rejected", rejected.len()));
            }
            for (line, reason) in rejected {
                eprintln!("rejected line {line}: {reason}");
            }
            c
        }
        Output::Evaluations(e) => format!("{} series evaluated", e.len()),
    };
    eprintln!(
        "{name} ({world}): load {} ({compiled}), init {}, call {}, peak memory {:.1} MiB; {counts}",
        ms(load),
        ms(init),
        ms(stats.busy),
        stats.peak_memory_bytes as f64 / f64::from(1 << 20),
    );
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

enum Mismatch {
    Unreadable(String),
    Differs(String),
}

/// Most differences printed before "… and N more".
const SHOWN_DIFFERENCES: usize = 10;

fn expect(path: &Path, output: &Output) -> Result<(), Mismatch> {
    match output {
        Output::Samples { batch, .. } => {
            let expected = samples::read(path).map_err(|e| Mismatch::Unreadable(e.to_string()))?;
            let diffs = samples::compare(&expected, batch);
            if diffs.is_empty() {
                return Ok(());
            }
            let mut m = format!(
                "output differs from {}: {} differences (expected {} samples, got {})",
                path.display(),
                diffs.len(),
                expected.values.len(),
                batch.values.len()
            );
            for d in diffs.iter().take(SHOWN_DIFFERENCES) {
                m.push_str(&format!("\n{d}"));
            }
            if diffs.len() > SHOWN_DIFFERENCES {
                m.push_str(&format!("\n… and {} more", diffs.len() - SHOWN_DIFFERENCES));
            }
            Err(Mismatch::Differs(m))
        }
        Output::Evaluations(evals) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Mismatch::Unreadable(format!("{}: {e}", path.display())))?;
            let mut expected = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    Mismatch::Unreadable(format!("{}:{}: not JSON: {e}", path.display(), n + 1))
                })?;
                expected.push(v);
            }
            let actual: Vec<serde_json::Value> =
                evals.iter().map(|(s, e)| evaluation_json(s, e)).collect();
            if expected == actual {
                return Ok(());
            }
            let mut m = format!("output differs from {}", path.display());
            for i in 0..expected.len().max(actual.len()) {
                let (e, a) = (expected.get(i), actual.get(i));
                if e != a {
                    let show = |v: Option<&serde_json::Value>| {
                        v.map_or_else(|| "(none)".to_owned(), ToString::to_string)
                    };
                    m.push_str(&format!(
                        "\nevaluation {}:\n  expected {}\n  actual   {}",
                        i + 1,
                        show(e),
                        show(a)
                    ));
                }
            }
            Err(Mismatch::Differs(m))
        }
    }
}
