//! `wasmeter measures`, `wasmeter aggregates` and `wasmeter query`: reading
//! the archive without writing code.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::{Failure, now_ns};
use crate::config::PipelineConfig;
use crate::query::measures::{MeasuresQuery, Resample, measures};
use crate::query::reader::SeriesPoints;
use crate::query::time::{
    CalendarGroup, format_seconds, format_time, parse_granularity, parse_time,
};
use crate::rollup::AggregationMethod;

/// Output format of the query commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table for people.
    Table,
    /// JSON (see each command).
    Json,
    /// CSV with a header line.
    Csv,
}

/// Where the archive is: a config's `[archive] root`, or a folder.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The pipeline config file (TOML) whose archive to read.
    #[arg(long, short, env = "WASMETER_CONFIG", conflicts_with = "archive")]
    pub config: Option<PathBuf>,
    /// The archive's root folder (the one holding `policy=…/`), instead of
    /// a config.
    #[arg(long)]
    pub archive: Option<PathBuf>,
}

impl ArchiveArgs {
    /// The archive root.
    ///
    /// # Errors
    /// `Usage` when neither is given or the config does not load.
    pub fn root(&self) -> Result<PathBuf, Failure> {
        match (&self.archive, &self.config) {
            (Some(root), _) => Ok(root.clone()),
            (None, Some(config)) => Ok(PipelineConfig::load(config)
                .map_err(|e| Failure::Usage(e.to_string()))?
                .archive
                .root),
            (None, None) => Err(Failure::Usage(
                "error: give the archive: --config CONFIG (or WASMETER_CONFIG) or --archive DIR"
                    .into(),
            )),
        }
    }
}

/// Arguments of `wasmeter measures`.
#[derive(Debug, Args)]
pub struct MeasuresArgs {
    /// Where the archive is.
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// The metric.
    #[arg(long)]
    pub metric: String,
    /// Only resources whose id matches this glob (e.g. `web-*`).
    #[arg(long)]
    pub resource: Option<String>,
    /// The aggregation method: `mean`, `max`, `95pct`, `rate:mean`, …
    #[arg(long, default_value = "mean")]
    pub aggregation: String,
    /// Only this granularity (`60`, `1m`); default: every one, coarsest
    /// first.
    #[arg(long)]
    pub granularity: Option<String>,
    /// From this time (floored to the granularity): RFC 3339, ISO 8601 in
    /// UTC, epoch seconds, or relative (`-1h`).
    #[arg(long, allow_hyphen_values = true)]
    pub start: Option<String>,
    /// Until this time, exclusive; same forms as `--start`.
    #[arg(long, allow_hyphen_values = true)]
    pub stop: Option<String>,
    /// Re-apply the method into buckets of this width, or into calendar
    /// groups: `Y`, `H` (half-year), `Q`, `M`, `W` (weeks from Sunday), UTC
    /// (needs `--granularity`).
    #[arg(long)]
    pub resample: Option<String>,
    /// Output format: a table, JSON (an array of series, each with its
    /// `measures` as Gnocchi's `[timestamp, granularity, value]`), or CSV.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

fn usage(flag: &str) -> impl Fn(String) -> Failure + '_ {
    move |e| Failure::Usage(format!("error: {flag}: {e}"))
}

/// Parses `--resource` into a glob matcher.
pub(super) fn resource_glob(
    pattern: Option<&str>,
) -> Result<Option<globset::GlobMatcher>, Failure> {
    pattern
        .map(|p| {
            globset::Glob::new(p)
                .map(|g| g.compile_matcher())
                .map_err(|e| Failure::Usage(format!("error: --resource: {e}")))
        })
        .transpose()
}

/// Runs `wasmeter measures`.
pub fn measures_cmd(args: MeasuresArgs) -> Result<(), Failure> {
    let root = args.archive.root()?;
    let now = now_ns();
    let aggregation = AggregationMethod::parse(&args.aggregation).ok_or_else(|| {
        Failure::Usage(format!(
            "error: --aggregation: {:?} is not an aggregation method (mean, sum, count, min, max, first, last, std, median, 1pct…99pct, rate:X)",
            args.aggregation
        ))
    })?;
    let q = MeasuresQuery {
        metric: args.metric.clone(),
        resource: resource_glob(args.resource.as_deref())?,
        aggregation,
        granularity: args
            .granularity
            .as_deref()
            .map(parse_granularity)
            .transpose()
            .map_err(usage("--granularity"))?,
        start: args
            .start
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
            .map_err(usage("--start"))?,
        stop: args
            .stop
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
            .map_err(usage("--stop"))?,
        resample: args
            .resample
            .as_deref()
            .map(|r| match CalendarGroup::parse(r.trim()) {
                Some(group) => Ok(Resample::Calendar(group)),
                None => parse_granularity(r)
                    .map(Resample::Width)
                    .map_err(|e| format!("{e}, or a calendar group (Y, H, Q, M, W)")),
            })
            .transpose()
            .map_err(usage("--resample"))?,
    };
    let (series, stats) = measures(&root, &q).map_err(|e| match e {
        crate::query::measures::MeasuresError::Read(crate::query::reader::ReadError::Archive(
            e,
        )) => Failure::Runtime(e),
        other => Failure::Usage(format!("error: {other}")),
    })?;
    tracing::debug!(
        files = stats.files,
        row_groups_read = stats.row_groups_read,
        row_groups_total = stats.row_groups_total,
        rows = stats.rows_read,
        "archive scan"
    );
    print_series(&series, args.format).map_err(Failure::Runtime)
}

/// Prints series points: a table or CSV with one row per point, or JSON.
pub(super) fn print_series(series: &[SeriesPoints], format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                "metric",
                "resource_id",
                "attributes",
                "timestamp",
                "granularity",
                "value",
            ]);
            for s in series {
                for (ts, v) in s.timestamps.iter().zip(&s.values) {
                    t.add_row(vec![
                        s.key.metric.clone(),
                        s.key.resource_id.clone(),
                        attributes_text(&s.key.attributes),
                        format_time(*ts),
                        granularity_text(s),
                        format!("{v:?}"),
                    ]);
                }
            }
            writeln!(out, "{t}")?;
        }
        OutputFormat::Json => {
            let doc: Vec<serde_json::Value> = series
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "metric": s.key.metric,
                        "resource_id": s.key.resource_id,
                        "attributes": s.key.attributes.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<String, serde_json::Value>>(),
                        "unit": s.unit,
                        "measures": s.timestamps.iter().zip(&s.values).map(|(t, v)| {
                            let g = match s.calendar {
                                // As Gnocchi: the group's letter.
                                Some(group) => serde_json::Value::from(group.letter()),
                                None => serde_json::Value::from(s.granularity as f64 / 1e9),
                            };
                            serde_json::json!([format_time(*t), g, json_number(*v)])
                        }).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "metric",
                "resource_id",
                "attributes",
                "timestamp",
                "granularity",
                "value",
            ])?;
            for s in series {
                for (ts, v) in s.timestamps.iter().zip(&s.values) {
                    w.write_record([
                        s.key.metric.as_str(),
                        s.key.resource_id.as_str(),
                        &attributes_text(&s.key.attributes),
                        &format_time(*ts),
                        &granularity_text(s),
                        &format!("{v:?}"),
                    ])?;
                }
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// A value as JSON: a number, or (JSON has no NaN nor infinities) the
/// string `"NaN"`, `"inf"` or `"-inf"`.
pub(super) fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or_else(
        || serde_json::Value::String(format!("{v}")),
        serde_json::Value::Number,
    )
}

/// The granularity column: seconds, or a calendar group's letter.
fn granularity_text(s: &SeriesPoints) -> String {
    match s.calendar {
        Some(group) => group.letter().to_owned(),
        None => format_seconds(s.granularity),
    }
}

fn attributes_text(attributes: &[(String, String)]) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Arguments of `wasmeter query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL (DataFusion's dialect). Each archive policy is a table, with
    /// the archive's columns and `date` (the Hive partition, `YYYY-MM-DD`).
    pub sql: String,
    /// Where the archive is.
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// Output format: a table, JSON (an array of row objects) or CSV.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

/// Runs `wasmeter query`.
pub fn query_cmd(args: QueryArgs) -> Result<(), Failure> {
    let root = args.archive.root()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.into()))?;
    let batches = rt
        .block_on(crate::query::sql::sql(&root, &args.sql))
        .map_err(|e| match e {
            crate::query::sql::SqlError::Query { .. } => Failure::Usage(format!("error: {e}")),
            crate::query::sql::SqlError::Archive(m) => Failure::Runtime(anyhow::anyhow!(m)),
        })?;
    print_batches(&batches, args.format).map_err(Failure::Runtime)
}

/// Prints Arrow batches as a table, a JSON array of objects, or CSV.
fn print_batches(
    batches: &[arrow::array::RecordBatch],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(batches)?
            )?;
        }
        OutputFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            drop(w);
            writeln!(out)?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
    }
    Ok(())
}

/// Arguments of `wasmeter aggregates`.
#[derive(Debug, Args)]
pub struct AggregatesArgs {
    /// Gnocchi's operations, as an s-expression
    /// (`(aggregate mean (metric (cpu.util mean) (mem.util mean)))`) or its
    /// JSON list form. `(metric NAME AGG)` takes every series of metric
    /// NAME (see `--resource`).
    pub operations: String,
    /// Where the archive is.
    #[command(flatten)]
    pub archive: ArchiveArgs,
    /// Only series whose resource id matches this glob.
    #[arg(long)]
    pub resource: Option<String>,
    /// From this time (floored to the granularity); same forms as
    /// `measures --start`.
    #[arg(long, allow_hyphen_values = true)]
    pub start: Option<String>,
    /// Until this time, exclusive.
    #[arg(long, allow_hyphen_values = true)]
    pub stop: Option<String>,
    /// Only this granularity (`60`, `1m`); default: every granularity all
    /// referenced series share.
    #[arg(long)]
    pub granularity: Option<String>,
    /// Missing cells: a number, `null`, `dropna`, `ffill`, `bfill`,
    /// `full_ffill` or `full_bfill`; default: none, with the overlap check.
    #[arg(long, allow_hyphen_values = true)]
    pub fill: Option<String>,
    /// Percent of timestamps where every series must have a value
    /// (without `--fill`).
    #[arg(long, default_value = "100")]
    pub needed_overlap: f64,
    /// Output format: a table, JSON (Gnocchi's `{"aggregated": …}` or
    /// `{series: {aggregation: …}}`), or CSV.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

/// `(series label, aggregation, granularity ns, points)`; label and
/// aggregation are empty for an aggregated result.
type SeriesRows = (String, String, i64, Vec<(i64, f64)>);

/// Runs `wasmeter aggregates`.
pub fn aggregates_cmd(args: AggregatesArgs) -> Result<(), Failure> {
    use crate::query::aggregates::{self, Fill, Options, Output};
    let root = args.archive.root()?;
    let now = now_ns();
    let op = aggregates::parse(&args.operations)
        .map_err(|e| Failure::Usage(format!("error: operations: {e}")))?;
    let time = |flag: &'static str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_time(s, now))
            .transpose()
            .map_err(usage(flag))
    };
    let options = Options {
        start: time("--start", &args.start)?,
        stop: time("--stop", &args.stop)?,
        granularity: args
            .granularity
            .as_deref()
            .map(parse_granularity)
            .transpose()
            .map_err(usage("--granularity"))?,
        needed_overlap: args.needed_overlap,
        fill: match &args.fill {
            Some(f) => Fill::parse(f).map_err(|e| Failure::Usage(format!("error: --fill: {e}")))?,
            None => Fill::Missing,
        },
    };
    let source = crate::query::ArchiveSource::new(
        &root,
        resource_glob(args.resource.as_deref())?,
        options.start,
        options.stop,
    );
    let output = aggregates::evaluate(&op, &source, &options).map_err(|e| match e {
        aggregates::QueryError::Source(e) => Failure::Runtime(anyhow::anyhow!("{e}")),
        other => Failure::Usage(format!("error: {other}")),
    })?;
    // (series label, aggregation) — empty for an aggregated result.
    let rows: Vec<SeriesRows> = match output {
        Output::Aggregated(parts) => parts
            .into_iter()
            .map(|(g, points)| (String::new(), String::new(), g, points))
            .collect(),
        Output::PerSeries(parts) => parts,
    };
    let aggregated = rows.iter().all(|r| r.0.is_empty());
    let mut out = std::io::stdout().lock();
    let result: anyhow::Result<()> = (|| {
        match args.format {
            OutputFormat::Table => {
                let mut t = Table::new();
                let mut header = vec!["timestamp", "granularity", "value"];
                if !aggregated {
                    header.splice(0..0, ["series", "aggregation"]);
                }
                t.load_preset(UTF8_BORDERS_ONLY).set_header(header);
                for (label, agg, g, points) in &rows {
                    for (ts, v) in points {
                        let mut row = vec![format_time(*ts), format_seconds(*g), format!("{v:?}")];
                        if !aggregated {
                            row.splice(0..0, [label.clone(), agg.clone()]);
                        }
                        t.add_row(row);
                    }
                }
                writeln!(out, "{t}")?;
            }
            OutputFormat::Json => {
                let triples = |g: i64, points: &[(i64, f64)]| -> Vec<serde_json::Value> {
                    points
                        .iter()
                        .map(|(t, v)| {
                            serde_json::json!([format_time(*t), g as f64 / 1e9, json_number(*v)])
                        })
                        .collect()
                };
                let doc = if aggregated {
                    let all: Vec<serde_json::Value> = rows
                        .iter()
                        .flat_map(|(_, _, g, p)| triples(*g, p))
                        .collect();
                    serde_json::json!({ "aggregated": all })
                } else {
                    let mut doc = serde_json::Map::new();
                    for (label, agg, g, points) in &rows {
                        let entry = doc
                            .entry(label.clone())
                            .or_insert_with(|| serde_json::json!({}));
                        let list = entry
                            .as_object_mut()
                            .expect("an object")
                            .entry(agg.clone())
                            .or_insert_with(|| serde_json::json!([]));
                        list.as_array_mut()
                            .expect("an array")
                            .extend(triples(*g, points));
                    }
                    serde_json::Value::Object(doc)
                };
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            }
            OutputFormat::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                if aggregated {
                    w.write_record(["timestamp", "granularity", "value"])?;
                } else {
                    w.write_record(["series", "aggregation", "timestamp", "granularity", "value"])?;
                }
                for (label, agg, g, points) in &rows {
                    for (ts, v) in points {
                        let (t, g, v) = (format_time(*ts), format_seconds(*g), format!("{v:?}"));
                        if aggregated {
                            w.write_record([t, g, v])?;
                        } else {
                            w.write_record([label.clone(), agg.clone(), t, g, v])?;
                        }
                    }
                }
                w.flush()?;
            }
        }
        Ok(())
    })();
    result.map_err(Failure::Runtime)
}
