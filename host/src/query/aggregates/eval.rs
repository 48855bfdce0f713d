//! Evaluation: granularity choice, the grid, fill and overlap, then the
//! operations over the grid's columns (reference §1.7).

use super::{
    BinaryOp, CrossBase, Fill, MetricRef, Operation, Options, Output, Point, QueryError, Source,
    UnaryOp,
};
use crate::rollup::{BucketScratch, aggregate, floor};

/// Evaluates `op` over the series `source` gives, as Gnocchi's
/// `POST /v1/aggregates` with `options` as its query string.
///
/// ```text
/// granularities = options.granularity, or those every referenced
///                 (NAME, AGG) shares
/// for g, coarsest first:
///   grid   = series × union of their timestamps in [floor(start, g), stop)
///   fill   = options.fill (numeric, ffill, bfill, full_*), or, without
///            fill, the overlap check and trim
///   result = the operations over the grid's columns
/// ```
///
/// # Errors
/// Every [`QueryError`] but [`QueryError::Syntax`] and
/// [`QueryError::UnknownOperator`]; the [`Source`]'s errors pass through.
pub fn evaluate(
    op: &Operation,
    source: &dyn Source,
    options: &Options,
) -> Result<Output, QueryError> {
    if !(0.0..=100.0).contains(&options.needed_overlap) {
        return Err(QueryError::InvalidOption {
            option: "needed_overlap",
            message: format!("{} is not a percent in 0..100", options.needed_overlap),
        });
    }
    if let Some(g) = options.granularity.filter(|g| *g <= 0) {
        return Err(QueryError::InvalidOption {
            option: "granularity",
            message: format!("{g} ns is not positive"),
        });
    }
    let mut refs = Vec::new();
    collect_refs(op, &mut refs);
    if refs.is_empty() {
        return Err(QueryError::NotASeries {
            message: "the operations reference no metric; expected a (metric NAME AGG)".into(),
        });
    }
    let granularities = choose_granularities(&refs, source, options)?;

    let mut aggregated = Vec::new();
    // (label, aggregation) → [(granularity, points)], first appearance first.
    type Granular = (i64, Vec<Point>);
    let mut per_series: Vec<((String, String), Vec<Granular>)> = Vec::new();
    let mut is_aggregated = false;
    for g in granularities {
        let grid = build_grid(&refs, source, options, g)?;
        let result = match eval(op, &grid)? {
            Value::Series(s) => s,
            Value::Number(_) => {
                return Err(QueryError::NotASeries {
                    message: "the operations give a number, not a series".into(),
                });
            }
        };
        is_aggregated |= result.aggregated;
        let points = |values: &[f64]| -> Vec<Point> {
            result
                .timestamps
                .iter()
                .zip(values)
                .filter(|(_, v)| !options.fill.drops_non_finite() || v.is_finite())
                .map(|(t, v)| (*t, *v))
                .collect()
        };
        if result.aggregated {
            // Gnocchi's "aggregated" output is the first column.
            let first = result.columns.first().map(|c| points(&c.values));
            aggregated.push((result.granularity, first.unwrap_or_default()));
        } else {
            for column in &result.columns {
                let key = column.label.clone().unwrap_or_default();
                let entry = (result.granularity, points(&column.values));
                match per_series.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push(entry),
                    None => per_series.push((key, vec![entry])),
                }
            }
        }
    }
    Ok(if is_aggregated {
        Output::Aggregated(aggregated)
    } else {
        Output::PerSeries(
            per_series
                .into_iter()
                .flat_map(|((label, agg), list)| {
                    list.into_iter()
                        .map(move |(g, points)| (label.clone(), agg.clone(), g, points))
                })
                .collect(),
        )
    })
}

/// The distinct `(name, aggregation)`s of the tree, in order.
fn collect_refs(op: &Operation, refs: &mut Vec<MetricRef>) {
    match op {
        Operation::Metric(list) => {
            for r in list {
                if !refs.contains(r) {
                    refs.push(r.clone());
                }
            }
        }
        Operation::Aggregate { operand, .. }
        | Operation::Resample { operand, .. }
        | Operation::Rolling { operand, .. }
        | Operation::Unary { operand, .. }
        | Operation::RateOfChange(operand)
        | Operation::RateOfChangeSec(operand) => collect_refs(operand, refs),
        Operation::Binary { left, right, .. } => {
            collect_refs(left, refs);
            collect_refs(right, refs);
        }
        Operation::Clip { operand, min, max } => {
            collect_refs(operand, refs);
            collect_refs(min, refs);
            collect_refs(max, refs);
        }
        Operation::Number(_) => {}
    }
}

fn describe_refs(refs: &[MetricRef]) -> Vec<String> {
    refs.iter()
        .map(|r| format!("{}/{}", r.name, r.aggregation))
        .collect()
}

/// The granularities to evaluate at, coarsest first.
fn choose_granularities(
    refs: &[MetricRef],
    source: &dyn Source,
    options: &Options,
) -> Result<Vec<i64>, QueryError> {
    let mut shared: Option<Vec<i64>> = None;
    for r in refs {
        let available = source.granularities(&r.name, &r.aggregation)?;
        if let Some(g) = options.granularity
            && !available.contains(&g)
        {
            return Err(QueryError::MissingGranularity {
                name: r.name.clone(),
                aggregation: r.aggregation.clone(),
                granularity: g,
            });
        }
        shared = Some(match shared {
            None => available,
            Some(s) => s.into_iter().filter(|g| available.contains(g)).collect(),
        });
    }
    let mut shared = match options.granularity {
        Some(g) => vec![g],
        None => shared.unwrap_or_default(),
    };
    shared.sort_unstable_by(|a, b| b.cmp(a));
    shared.dedup();
    if shared.is_empty() {
        return Err(QueryError::NoCommonGranularity {
            metrics: describe_refs(refs),
        });
    }
    Ok(shared)
}

/// One row of the grid: an input series on the union timestamps.
struct Row {
    /// Index into the distinct refs.
    reference: usize,
    label: String,
    values: Vec<f64>,
}

/// All referenced series at one granularity, aligned.
struct Grid {
    granularity: i64,
    refs: Vec<MetricRef>,
    timestamps: Vec<i64>,
    rows: Vec<Row>,
}

fn build_grid(
    refs: &[MetricRef],
    source: &dyn Source,
    options: &Options,
    g: i64,
) -> Result<Grid, QueryError> {
    let start = options.start.map(|s| floor(s, g));
    let in_range =
        |t: i64| start.is_none_or(|s| t >= s) && options.stop.is_none_or(|stop| t < stop);
    let mut fetched = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        for (label, points) in source.series(&r.name, &r.aggregation, g, start, options.stop)? {
            if points.timestamps.len() != points.values.len() {
                return Err(QueryError::InvalidSeries {
                    message: format!(
                        "{} timestamps but {} values",
                        points.timestamps.len(),
                        points.values.len()
                    ),
                    label,
                });
            }
            let kept: Vec<(i64, f64)> = points
                .timestamps
                .iter()
                .zip(&points.values)
                .filter(|(t, _)| in_range(**t))
                .map(|(t, v)| (*t, *v))
                .collect();
            fetched.push((i, label, kept));
        }
    }
    let mut timestamps: Vec<i64> = fetched
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(t, _)| *t))
        .collect();
    timestamps.sort_unstable();
    timestamps.dedup();
    let filler = match options.fill {
        Fill::Value(v) => v,
        _ => f64::NAN,
    };
    let mut rows: Vec<Row> = fetched
        .into_iter()
        .map(|(reference, label, points)| {
            let mut values = vec![filler; timestamps.len()];
            for (t, v) in points {
                let at = timestamps.binary_search(&t).expect("t is in the union");
                values[at] = v;
            }
            Row {
                reference,
                label,
                values,
            }
        })
        .collect();
    for row in &mut rows {
        match options.fill {
            Fill::Ffill => fill_forward(&mut row.values),
            Fill::Bfill => fill_backward(&mut row.values),
            Fill::FullFfill => {
                fill_forward(&mut row.values);
                fill_backward(&mut row.values);
            }
            Fill::FullBfill => {
                fill_backward(&mut row.values);
                fill_forward(&mut row.values);
            }
            _ => {}
        }
    }
    let mut grid = Grid {
        granularity: g,
        refs: refs.to_vec(),
        timestamps,
        rows,
    };
    if options.fill == Fill::Missing {
        check_overlap(&mut grid, options)?;
    }
    Ok(grid)
}

fn fill_forward(values: &mut [f64]) {
    let mut last = f64::NAN;
    for v in values {
        if v.is_nan() {
            *v = last;
        } else {
            last = *v;
        }
    }
}

fn fill_backward(values: &mut [f64]) {
    let mut next = f64::NAN;
    for v in values.iter_mut().rev() {
        if v.is_nan() {
            *v = next;
        } else {
            next = *v;
        }
    }
}

/// Without `fill`: the timestamps where every series has a value; the trim
/// to them where `start`/`stop` are open; the `needed_overlap` check.
fn check_overlap(grid: &mut Grid, options: &Options) -> Result<(), QueryError> {
    let overlap: Vec<usize> = (0..grid.timestamps.len())
        .filter(|&i| grid.rows.iter().all(|r| !r.values[i].is_nan()))
        .collect();
    if overlap.is_empty() && options.needed_overlap > 0.0 {
        return Err(QueryError::NoOverlap {
            metrics: describe_refs(&grid.refs),
        });
    }
    if grid.timestamps.is_empty() {
        return Ok(());
    }
    let (mut begin, mut end) = (0, grid.timestamps.len());
    if let (Some(first), Some(last)) = (overlap.first(), overlap.last()) {
        if options.stop.is_none() {
            end = last + 1;
        }
        if options.start.is_none() {
            begin = *first;
        }
    }
    grid.timestamps = grid.timestamps[begin..end].to_vec();
    for row in &mut grid.rows {
        row.values = row.values[begin..end].to_vec();
    }
    let percent = overlap.len() as f64 * 100.0 / grid.timestamps.len() as f64;
    if percent < options.needed_overlap {
        return Err(QueryError::NotEnoughOverlap {
            percent,
            needed: options.needed_overlap,
        });
    }
    Ok(())
}

/// A value during evaluation.
enum Value {
    Number(f64),
    Series(Series),
}

/// Columns on shared timestamps.
#[derive(Clone)]
struct Series {
    granularity: i64,
    timestamps: Vec<i64>,
    columns: Vec<Column>,
    /// An `aggregate` or a series-on-series operation was applied.
    aggregated: bool,
}

#[derive(Clone)]
struct Column {
    /// `(label, aggregation)` of the input series; `None` once combined.
    label: Option<(String, String)>,
    values: Vec<f64>,
}

impl Series {
    fn map_columns(mut self, f: impl Fn(&[f64]) -> Vec<f64>) -> Series {
        for c in &mut self.columns {
            c.values = f(&c.values);
        }
        self
    }
}

fn series(value: Value, operation: &str) -> Result<Series, QueryError> {
    match value {
        Value::Series(s) => Ok(s),
        Value::Number(n) => Err(QueryError::NotASeries {
            message: format!("`{operation}` needs a series, found the number {n}"),
        }),
    }
}

fn eval(op: &Operation, grid: &Grid) -> Result<Value, QueryError> {
    Ok(match op {
        Operation::Number(n) => Value::Number(*n),
        Operation::Metric(list) => {
            let mut columns = Vec::new();
            for r in list {
                let index = grid.refs.iter().position(|g| g == r).expect("collected");
                columns.extend(
                    grid.rows
                        .iter()
                        .filter(|row| row.reference == index)
                        .map(|row| Column {
                            label: Some((row.label.clone(), r.aggregation.clone())),
                            values: row.values.clone(),
                        }),
                );
            }
            Value::Series(Series {
                granularity: grid.granularity,
                timestamps: grid.timestamps.clone(),
                columns,
                aggregated: false,
            })
        }
        Operation::Aggregate { method, operand } => {
            let s = series(eval(operand, grid)?, "aggregate")?;
            let mut row = Vec::with_capacity(s.columns.len());
            let values: Vec<f64> = (0..s.timestamps.len())
                .map(|i| {
                    row.clear();
                    row.extend(s.columns.iter().map(|c| c.values[i]));
                    cross(method.base, &row)
                })
                .collect();
            let out = Series {
                granularity: s.granularity,
                timestamps: s.timestamps,
                columns: vec![Column {
                    label: None,
                    values,
                }],
                aggregated: true,
            };
            Value::Series(if method.rate { rate(out) } else { out })
        }
        Operation::Rolling {
            method,
            window,
            operand,
        } => {
            let s = series(eval(operand, grid)?, "rolling")?;
            let w = *window;
            if w > s.timestamps.len() {
                return Err(QueryError::RollingWindowTooLarge {
                    window: w,
                    length: s.timestamps.len(),
                });
            }
            let timestamps = s.timestamps[w - 1..].to_vec();
            let base = method.base;
            let mut out = s.map_columns(|v| v.windows(w).map(|win| cross(base, win)).collect());
            out.timestamps = timestamps;
            Value::Series(if method.rate { rate(out) } else { out })
        }
        Operation::Resample {
            method,
            granularity,
            operand,
        } => {
            let s = series(eval(operand, grid)?, "resample")?;
            let g = *granularity;
            // Buckets of consecutive grid indices sharing floor(t, g).
            let mut buckets: Vec<(i64, std::ops::Range<usize>)> = Vec::new();
            for (i, t) in s.timestamps.iter().enumerate() {
                let b = floor(*t, g);
                match buckets.last_mut() {
                    Some((last, range)) if *last == b => range.end = i + 1,
                    _ => buckets.push((b, i..i + 1)),
                }
            }
            let mut scratch = BucketScratch::default();
            let mut reduce = |values: &[f64]| {
                scratch.reset();
                aggregate(*method, values, &mut scratch)
            };
            // Every column has the same bucket sizes, so a bucket without a
            // point (std of one value) is absent from all of them.
            let mut columns: Vec<Column> = s
                .columns
                .iter()
                .map(|c| Column {
                    label: c.label.clone(),
                    values: Vec::new(),
                })
                .collect();
            let mut timestamps = Vec::new();
            for (b, range) in &buckets {
                let results: Vec<Option<f64>> = s
                    .columns
                    .iter()
                    .map(|c| reduce(&c.values[range.clone()]))
                    .collect();
                if results.iter().all(Option::is_none) && !results.is_empty() {
                    continue;
                }
                timestamps.push(*b);
                for (col, r) in columns.iter_mut().zip(results) {
                    col.values.push(r.unwrap_or(f64::NAN));
                }
            }
            if s.columns.is_empty() {
                timestamps = buckets.iter().map(|(b, _)| *b).collect();
            }
            Value::Series(Series {
                granularity: g,
                timestamps,
                columns,
                aggregated: s.aggregated,
            })
        }
        Operation::Binary { op, left, right } => {
            let l = eval(left, grid)?;
            let r = eval(right, grid)?;
            binary(*op, l, r)?
        }
        Operation::Clip { operand, min, max } => {
            let x = eval(operand, grid)?;
            let lo = eval(min, grid)?;
            let hi = eval(max, grid)?;
            binary(BinaryOp::ClipMax, binary(BinaryOp::ClipMin, x, lo)?, hi)?
        }
        Operation::Unary { op, operand } => match eval(operand, grid)? {
            Value::Number(n) => Value::Number(unary(*op, n)),
            Value::Series(s) => {
                Value::Series(s.map_columns(|v| v.iter().map(|x| unary(*op, *x)).collect()))
            }
        },
        Operation::RateOfChange(operand) => {
            Value::Series(rate(series(eval(operand, grid)?, "rateofchange")?))
        }
        Operation::RateOfChangeSec(operand) => {
            let s = series(eval(operand, grid)?, "rateofchangesec")?;
            let t = s.timestamps.clone();
            Value::Series(s.map_columns(|v| {
                (0..v.len())
                    .map(|i| {
                        if i == 0 {
                            f64::NAN
                        } else {
                            (v[i] - v[i - 1]) / ((t[i] - t[i - 1]) as f64 / 1e9)
                        }
                    })
                    .collect()
            }))
        }
    })
}

/// Differences to the previous point, stamped with the later timestamp;
/// the first timestamp is dropped.
fn rate(s: Series) -> Series {
    let timestamps = s.timestamps.get(1..).unwrap_or_default().to_vec();
    let mut out = s.map_columns(|v| v.windows(2).map(|w| w[1] - w[0]).collect());
    out.timestamps = timestamps;
    out
}

/// A cross-series (or window) method over `values`, skipping NaN.
fn cross(method: CrossBase, values: &[f64]) -> f64 {
    let present = || values.iter().copied().filter(|v| !v.is_nan());
    let n = present().count();
    if n == 0 {
        return match method {
            CrossBase::Sum | CrossBase::Count => 0.0,
            _ => f64::NAN,
        };
    }
    let sum = || present().fold(0.0, |acc, v| acc + v);
    let var = || {
        let mean = sum() / n as f64;
        present().fold(0.0, |acc, v| acc + (v - mean) * (v - mean)) / n as f64
    };
    match method {
        CrossBase::Mean => sum() / n as f64,
        CrossBase::Sum => sum(),
        CrossBase::Count => n as f64,
        CrossBase::Min => present().fold(f64::INFINITY, f64::min),
        CrossBase::Max => present().fold(f64::NEG_INFINITY, f64::max),
        CrossBase::Var => var(),
        CrossBase::Std => var().sqrt(),
        CrossBase::Median => {
            let mut sorted: Vec<f64> = present().collect();
            sorted.sort_by(f64::total_cmp);
            if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            }
        }
    }
}

fn unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Abs => x.abs(),
        UnaryOp::Neg => -x,
        UnaryOp::Cos => x.cos(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
    }
}

/// NaN if either side is NaN, as NumPy's `maximum`/`minimum` (what `clip`
/// uses).
fn nan_or(a: f64, b: f64, f: fn(f64, f64) -> f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        f(a, b)
    }
}

/// NumPy's float `mod`: the remainder takes the divisor's sign.
fn numpy_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m == 0.0 {
        0.0_f64.copysign(b)
    } else if (b < 0.0) != (m < 0.0) {
        m + b
    } else {
        m
    }
}

fn apply(op: BinaryOp, a: f64, b: f64) -> f64 {
    let truth = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Mod => numpy_mod(a, b),
        BinaryOp::Eq => truth(a == b),
        BinaryOp::Ne => truth(a != b),
        BinaryOp::Lt => truth(a < b),
        BinaryOp::Gt => truth(a > b),
        BinaryOp::Le => truth(a <= b),
        BinaryOp::Ge => truth(a >= b),
        BinaryOp::ClipMin => nan_or(a, b, f64::max),
        BinaryOp::ClipMax => nan_or(a, b, f64::min),
        BinaryOp::Max => a.max(b),
    }
}

fn binary(op: BinaryOp, left: Value, right: Value) -> Result<Value, QueryError> {
    Ok(match (left, right) {
        (Value::Number(a), Value::Number(b)) => Value::Number(apply(op, a, b)),
        (Value::Series(s), Value::Number(b)) => {
            Value::Series(s.map_columns(|v| v.iter().map(|a| apply(op, *a, b)).collect()))
        }
        (Value::Number(a), Value::Series(s)) => {
            Value::Series(s.map_columns(|v| v.iter().map(|b| apply(op, a, *b)).collect()))
        }
        (Value::Series(l), Value::Series(r)) => Value::Series(combine(op, l, r)?),
    })
}

/// Series ⊗ series: same granularity; the timestamps both have; columns
/// pairwise, or one column against each of the other side's.
fn combine(op: BinaryOp, l: Series, r: Series) -> Result<Series, QueryError> {
    if l.granularity != r.granularity {
        return Err(QueryError::IncompatibleSeries {
            message: format!(
                "different granularities {}s <> {}s",
                crate::query::time::format_seconds(l.granularity),
                crate::query::time::format_seconds(r.granularity)
            ),
        });
    }
    let (n, m) = (l.columns.len(), r.columns.len());
    if n != m && n != 1 && m != 1 && n != 0 && m != 0 {
        return Err(QueryError::IncompatibleSeries {
            message: format!("{n} series against {m} series; expected the same count, or one"),
        });
    }
    // Index pairs of the shared timestamps (both sides ascending).
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < l.timestamps.len() && j < r.timestamps.len() {
        match l.timestamps[i].cmp(&r.timestamps[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                pairs.push((i, j));
                i += 1;
                j += 1;
            }
        }
    }
    let count = if n == 0 || m == 0 { 0 } else { n.max(m) };
    let columns = (0..count)
        .map(|k| {
            let a = &l.columns[if n == 1 { 0 } else { k }];
            let b = &r.columns[if m == 1 { 0 } else { k }];
            Column {
                label: if n >= m {
                    a.label.clone()
                } else {
                    b.label.clone()
                },
                values: pairs
                    .iter()
                    .map(|(i, j)| apply(op, a.values[*i], b.values[*j]))
                    .collect(),
            }
        })
        .collect();
    Ok(Series {
        granularity: l.granularity,
        timestamps: pairs.iter().map(|(i, _)| l.timestamps[*i]).collect(),
        columns,
        aggregated: true,
    })
}
