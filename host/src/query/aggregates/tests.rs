//! Reference §1.7's worked examples and the rest of the grammar, over an
//! in-memory [`Source`].

use super::*;

const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
/// 2014-01-01 12:00:00 UTC, ns (a multiple of 120 s).
const T0: i64 = 1_388_577_600 * S;

/// `T0 + minutes`.
fn at(minutes: i64) -> i64 {
    T0 + minutes * M
}

/// Series by (name, aggregation, granularity, label).
struct Mem(Vec<(&'static str, &'static str, i64, &'static str, Points)>);

fn points(list: &[(i64, f64)]) -> Points {
    Points {
        timestamps: list.iter().map(|(t, _)| *t).collect(),
        values: list.iter().map(|(_, v)| *v).collect(),
    }
}

impl Source for Mem {
    fn granularities(&self, name: &str, aggregation: &str) -> Result<Vec<i64>, QueryError> {
        let of_name: Vec<_> = self.0.iter().filter(|m| m.0 == name).collect();
        if of_name.is_empty() {
            return Err(QueryError::UnknownMetric { name: name.into() });
        }
        let mut gs: Vec<i64> = of_name
            .iter()
            .filter(|m| m.1 == aggregation)
            .map(|m| m.2)
            .collect();
        if gs.is_empty() {
            return Err(QueryError::UnknownAggregation {
                name: name.into(),
                aggregation: aggregation.into(),
            });
        }
        gs.sort_unstable();
        gs.dedup();
        Ok(gs)
    }

    fn series(
        &self,
        name: &str,
        aggregation: &str,
        granularity: i64,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<Vec<(String, Points)>, QueryError> {
        if let Some(s) = start {
            assert_eq!(s % granularity, 0, "start is floored by the evaluator");
        }
        Ok(self
            .0
            .iter()
            .filter(|m| m.0 == name && m.1 == aggregation && m.2 == granularity)
            .map(|m| {
                let kept: Vec<(i64, f64)> = m
                    .4
                    .timestamps
                    .iter()
                    .zip(&m.4.values)
                    .filter(|(t, _)| start.is_none_or(|s| **t >= s) && stop.is_none_or(|e| **t < e))
                    .map(|(t, v)| (*t, *v))
                    .collect();
                (m.3.to_string(), points(&kept))
            })
            .collect())
    }
}

/// §1.7's a and b, plus c (300 s only), d (disjoint from a), and cpu (two
/// series under one name).
fn source() -> Mem {
    Mem(vec![
        (
            "a",
            "mean",
            M,
            "a",
            points(&[(at(0), 1.0), (at(1), 2.0), (at(2), 3.0)]),
        ),
        (
            "b",
            "mean",
            M,
            "b",
            points(&[(at(1), 10.0), (at(2), 20.0), (at(3), 30.0)]),
        ),
        ("c", "mean", 5 * M, "c", points(&[(at(0), 7.0)])),
        ("d", "mean", M, "d", points(&[(at(10), 1.0)])),
        (
            "cpu",
            "mean",
            M,
            "cpu/web-1",
            points(&[(at(0), 1.0), (at(1), 3.0)]),
        ),
        (
            "cpu",
            "mean",
            M,
            "cpu/web-2",
            points(&[(at(0), 5.0), (at(1), 7.0)]),
        ),
        (
            "h",
            "max",
            M,
            "h",
            points(&[(at(0), 1.0), (at(1), 4.0), (at(2), 2.0)]),
        ),
        (
            "h",
            "max",
            2 * M,
            "h",
            points(&[(at(0), 4.0), (at(2), 2.0)]),
        ),
    ])
}

fn run(operations: &str, options: &Options) -> Result<Output, QueryError> {
    evaluate(&parse(operations)?, &source(), options)
}

fn with_fill(fill: Fill) -> Options {
    Options {
        fill,
        ..Options::default()
    }
}

/// The one 60 s aggregated series.
fn aggregated(operations: &str, options: &Options) -> Vec<(i64, f64)> {
    match run(operations, options).unwrap() {
        Output::Aggregated(mut list) => {
            assert_eq!(list.len(), 1, "{list:?}");
            let (g, points) = list.remove(0);
            assert_eq!(g, M);
            points
        }
        other => panic!("expected aggregated, got {other:?}"),
    }
}

fn per_series(operations: &str, options: &Options) -> Vec<(String, String, i64, Vec<Point>)> {
    match run(operations, options).unwrap() {
        Output::PerSeries(list) => list,
        other => panic!("expected per series, got {other:?}"),
    }
}

/// `values` at 12:00 + i minutes.
fn from_noon(values: &[f64]) -> Vec<(i64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (at(i as i64), *v))
        .collect()
}

const MEAN_AB: &str = "(aggregate mean (metric (a mean) (b mean)))";

// ---- §1.7's worked-example table ----

#[test]
fn table_defaults_trim_to_the_overlap() {
    assert_eq!(
        aggregated(MEAN_AB, &Options::default()),
        vec![(at(1), 6.0), (at(2), 11.5)]
    );
}

#[test]
fn table_fill_null_and_dropna() {
    let want = from_noon(&[1.0, 6.0, 11.5, 30.0]);
    assert_eq!(aggregated(MEAN_AB, &with_fill(Fill::Null)), want);
    assert_eq!(aggregated(MEAN_AB, &with_fill(Fill::DropNa)), want);
}

#[test]
fn table_fill_zero() {
    assert_eq!(
        aggregated(MEAN_AB, &with_fill(Fill::Value(0.0))),
        from_noon(&[0.5, 6.0, 11.5, 15.0])
    );
}

#[test]
fn table_ffill() {
    assert_eq!(
        aggregated(MEAN_AB, &with_fill(Fill::Ffill)),
        from_noon(&[1.0, 6.0, 11.5, 16.5])
    );
}

#[test]
fn table_bfill() {
    assert_eq!(
        aggregated(MEAN_AB, &with_fill(Fill::Bfill)),
        from_noon(&[5.5, 6.0, 11.5, 30.0])
    );
}

#[test]
fn table_full_ffill_and_full_bfill() {
    let want = from_noon(&[5.5, 6.0, 11.5, 16.5]);
    assert_eq!(aggregated(MEAN_AB, &with_fill(Fill::FullFfill)), want);
    assert_eq!(aggregated(MEAN_AB, &with_fill(Fill::FullBfill)), want);
}

#[test]
fn table_needed_overlap_50_with_start_and_stop() {
    let options = Options {
        start: Some(at(0)),
        stop: Some(at(4)),
        needed_overlap: 50.0,
        ..Options::default()
    };
    assert_eq!(
        aggregated(MEAN_AB, &options),
        from_noon(&[1.0, 6.0, 11.5, 30.0])
    );
}

#[test]
fn table_population_std_with_fill_zero() {
    assert_eq!(
        aggregated(
            "(aggregate std (metric (a mean) (b mean)))",
            &with_fill(Fill::Value(0.0))
        ),
        from_noon(&[0.5, 4.0, 8.5, 15.0])
    );
}

#[test]
fn table_scaled_rolling_sum_with_fill_zero() {
    assert_eq!(
        per_series(
            "(* 4 (rolling sum 2 (metric (a mean) (b mean))))",
            &with_fill(Fill::Value(0.0))
        ),
        vec![
            (
                "a".into(),
                "mean".into(),
                M,
                vec![(at(1), 12.0), (at(2), 20.0), (at(3), 12.0)]
            ),
            (
                "b".into(),
                "mean".into(),
                M,
                vec![(at(1), 40.0), (at(2), 120.0), (at(3), 200.0)]
            ),
        ]
    );
}

#[test]
fn table_resample_max_120() {
    let want = vec![(
        "a".to_string(),
        "mean".to_string(),
        2 * M,
        vec![(at(0), 2.0), (at(2), 3.0)],
    )];
    assert_eq!(
        per_series("(resample max 120 (metric a mean))", &Options::default()),
        want
    );
    assert_eq!(
        per_series("(resample max 2m (metric a mean))", &Options::default()),
        want
    );
}

// ---- the rest of the grammar ----

#[test]
fn rate_of_the_cross_series_mean() {
    assert_eq!(
        aggregated(
            "(aggregate rate:mean (metric (a mean) (b mean)))",
            &Options::default()
        ),
        vec![(at(2), 5.5)]
    );
    assert_eq!(
        aggregated(
            "(aggregate rate:mean (metric (a mean) (b mean)))",
            &with_fill(Fill::Value(0.0))
        ),
        vec![(at(1), 5.5), (at(2), 5.5), (at(3), 3.5)]
    );
}

#[test]
fn other_cross_methods() {
    let fill0 = with_fill(Fill::Value(0.0));
    let ab = |m: &str| {
        aggregated(
            &format!("(aggregate {m} (metric (a mean) (b mean)))"),
            &fill0,
        )
    };
    let values = |m: &str| ab(m).into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    assert_eq!(values("sum"), [1.0, 12.0, 23.0, 30.0]);
    assert_eq!(values("min"), [0.0, 2.0, 3.0, 0.0]);
    assert_eq!(values("max"), [1.0, 10.0, 20.0, 30.0]);
    assert_eq!(values("var"), [0.25, 16.0, 72.25, 225.0]);
    assert_eq!(values("median"), [0.5, 6.0, 11.5, 15.0]);
    assert_eq!(values("count"), [2.0, 2.0, 2.0, 2.0]);
    // count counts non-NaN cells.
    let null = with_fill(Fill::Null);
    assert_eq!(
        aggregated("(aggregate count (metric (a mean) (b mean)))", &null),
        from_noon(&[1.0, 2.0, 2.0, 1.0])
    );
}

#[test]
fn several_series_under_one_name() {
    assert_eq!(
        aggregated("(aggregate sum (metric cpu mean))", &Options::default()),
        from_noon(&[6.0, 10.0])
    );
    let labels: Vec<String> = per_series("(metric cpu mean)", &Options::default())
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(labels, ["cpu/web-1", "cpu/web-2"]);
}

#[test]
fn rateofchange_and_rateofchangesec() {
    assert_eq!(
        per_series("(rateofchange (metric a mean))", &Options::default())[0].3,
        vec![(at(1), 1.0), (at(2), 1.0)]
    );
    let sec = &per_series("(rateofchangesec (metric a mean))", &Options::default())[0].3;
    assert_eq!(sec.len(), 3);
    assert_eq!(sec[0].0, at(0));
    assert!(sec[0].1.is_nan());
    assert_eq!(sec[1..], [(at(1), 1.0 / 60.0), (at(2), 1.0 / 60.0)]);
    // A NaN-dropping fill removes the first point.
    let sec = &per_series(
        "(rateofchangesec (metric a mean))",
        &with_fill(Fill::DropNa),
    )[0]
    .3;
    assert_eq!(sec, &[(at(1), 1.0 / 60.0), (at(2), 1.0 / 60.0)]);
}

/// The values of the one per-series result.
fn values_of(operations: &str) -> Vec<f64> {
    let list = per_series(operations, &Options::default());
    assert_eq!(list.len(), 1, "{list:?}");
    list[0].3.iter().map(|(_, v)| *v).collect()
}

#[test]
fn comparisons_give_zero_or_one() {
    assert_eq!(values_of("(> (metric a mean) 1)"), [0.0, 1.0, 1.0]);
    assert_eq!(values_of("(gt (metric a mean) 1)"), [0.0, 1.0, 1.0]);
    assert_eq!(values_of("(>= (metric a mean) 2)"), [0.0, 1.0, 1.0]);
    assert_eq!(values_of("(< (metric a mean) 2)"), [1.0, 0.0, 0.0]);
    assert_eq!(values_of("(le (metric a mean) 2)"), [1.0, 1.0, 0.0]);
    assert_eq!(values_of("(= (metric a mean) 2)"), [0.0, 1.0, 0.0]);
    assert_eq!(values_of("(== (metric a mean) 2)"), [0.0, 1.0, 0.0]);
    assert_eq!(values_of("(!= (metric a mean) 2)"), [1.0, 0.0, 1.0]);
    assert_eq!(values_of("(ne 2 (metric a mean))"), [1.0, 0.0, 1.0]);
}

#[test]
fn clip_and_element_wise_max() {
    assert_eq!(
        values_of("(clip (metric b mean) 15 25)"),
        [15.0, 20.0, 25.0]
    );
    assert_eq!(
        values_of("(clip_min (metric b mean) 15)"),
        [15.0, 20.0, 30.0]
    );
    assert_eq!(
        values_of("(clip_max (metric b mean) 15)"),
        [10.0, 15.0, 15.0]
    );
    assert_eq!(values_of("(max (metric a mean) 2.5)"), [2.5, 2.5, 3.0]);
}

#[test]
fn arithmetic_and_unary() {
    assert_eq!(values_of("(+ (metric a mean) 1)"), [2.0, 3.0, 4.0]);
    assert_eq!(values_of("(sub 10 (metric a mean))"), [9.0, 8.0, 7.0]);
    assert_eq!(values_of("(/ (metric a mean) 2)"), [0.5, 1.0, 1.5]);
    assert_eq!(values_of("(** (metric a mean) 2)"), [1.0, 4.0, 9.0]);
    assert_eq!(values_of("(mod (metric b mean) 7)"), [3.0, 6.0, 2.0]);
    // NumPy's mod: the divisor's sign.
    assert_eq!(values_of("(% (neg (metric a mean)) 3)"), [2.0, 1.0, 0.0]);
    assert_eq!(values_of("(abs (neg (metric a mean)))"), [1.0, 2.0, 3.0]);
    assert_eq!(values_of("(floor (/ (metric a mean) 2))"), [0.0, 1.0, 1.0]);
    assert_eq!(values_of("(ceil (/ (metric a mean) 2))"), [1.0, 1.0, 2.0]);
    assert_eq!(values_of("(cos (* (metric a mean) 0))"), [1.0, 1.0, 1.0]);
    assert_eq!(values_of("(sin (* (metric a mean) 0))"), [0.0, 0.0, 0.0]);
    assert_eq!(values_of("(tan (* (metric a mean) 0))"), [0.0, 0.0, 0.0]);
}

#[test]
fn series_on_series_is_aggregated() {
    // The grid is trimmed to the overlap, 12:01 and 12:02.
    assert_eq!(
        aggregated("(- (metric b mean) (metric a mean))", &Options::default()),
        vec![(at(1), 8.0), (at(2), 17.0)]
    );
    // Different timestamps: the ones both sides have.
    assert_eq!(
        aggregated(
            "(- (metric a mean) (rolling mean 2 (metric a mean)))",
            &Options::default()
        ),
        vec![(at(1), 0.5), (at(2), 0.5)]
    );
}

#[test]
fn several_granularities_coarsest_first() {
    assert_eq!(
        per_series("(metric h max)", &Options::default()),
        vec![
            (
                "h".into(),
                "max".into(),
                2 * M,
                vec![(at(0), 4.0), (at(2), 2.0)]
            ),
            (
                "h".into(),
                "max".into(),
                M,
                vec![(at(0), 1.0), (at(1), 4.0), (at(2), 2.0)]
            ),
        ]
    );
    let only = Options {
        granularity: Some(M),
        ..Options::default()
    };
    assert_eq!(per_series("(metric h max)", &only).len(), 1);
}

#[test]
fn start_is_floored_and_stop_is_exclusive() {
    let options = Options {
        start: Some(at(1) + 30 * S),
        stop: Some(at(2)),
        ..Options::default()
    };
    assert_eq!(values_of_with("(metric a mean)", &options), [2.0]);
}

fn values_of_with(operations: &str, options: &Options) -> Vec<f64> {
    per_series(operations, options)[0]
        .3
        .iter()
        .map(|(_, v)| *v)
        .collect()
}

#[test]
fn resample_uses_carbonara_methods() {
    // Sample std per bucket; a bucket of one value has no point.
    assert_eq!(
        per_series("(resample std 120 (metric a mean))", &Options::default())[0].3,
        vec![(at(0), std::f64::consts::FRAC_1_SQRT_2)]
    );
    // 12:00 is a multiple of 180 s from the epoch: one bucket of 1, 2, 3.
    assert_eq!(
        per_series("(resample 50pct 180 (metric a mean))", &Options::default())[0].3,
        vec![(at(0), 2.0)]
    );
    // 12:01 is not a multiple of 120 s: floored to 12:00.
    assert_eq!(
        per_series("(resample count 2m (metric b mean))", &Options::default())[0].3,
        vec![(at(0), 1.0), (at(2), 2.0)]
    );
}

#[test]
fn json_form_is_the_same_tree() {
    let pairs = [
        (
            r#"["aggregate", "mean", ["metric", ["a", "mean"], ["b", "mean"]]]"#,
            MEAN_AB,
        ),
        (
            r#"["*", 4, ["rolling", "sum", 2, ["metric", ["a", "mean"], ["b", "mean"]]]]"#,
            "(* 4 (rolling sum 2 (metric (a mean) (b mean))))",
        ),
        (
            r#"["resample", "max", "2m", ["metric", "a", "mean"]]"#,
            "(resample max 120 (metric a mean))",
        ),
        (
            r#"["clip", ["metric", "b", "mean"], 15, 25.0]"#,
            "(clip (metric b mean) 15 25)",
        ),
        (
            "[\"rateofchangesec\",\n [\"metric\", \"a\", \"mean\"]]",
            "(rateofchangesec (metric \"a\" mean))",
        ),
    ];
    for (json, sexp) in pairs {
        assert_eq!(parse(json).unwrap(), parse(sexp).unwrap(), "{json}");
    }
    assert_eq!(
        aggregated(pairs[0].0, &Options::default()),
        aggregated(MEAN_AB, &Options::default())
    );
}

#[test]
fn tree_shape() {
    assert_eq!(
        parse("(aggregate rate:max (metric x.y/z 95pct))").unwrap(),
        Operation::Aggregate {
            method: CrossMethod {
                rate: true,
                base: CrossBase::Max
            },
            operand: Box::new(Operation::Metric(vec![MetricRef {
                name: "x.y/z".into(),
                aggregation: "95pct".into()
            }])),
        }
    );
}

// ---- errors ----

fn syntax_error(operations: &str) -> (usize, String, String) {
    match parse(operations) {
        Err(e @ QueryError::Syntax { .. }) => {
            let text = e.to_string();
            let QueryError::Syntax { position, message } = e else {
                unreachable!()
            };
            (position, message, text)
        }
        other => panic!("expected a syntax error for {operations}, got {other:?}"),
    }
}

#[test]
fn syntax_errors_name_the_token_and_position() {
    let (position, _, text) = syntax_error("(aggregate mean (metric a mean)");
    assert_eq!(position, 0);
    assert_eq!(
        text,
        "invalid operations at position 0: `(` is never closed; expected `)`"
    );
    let (position, message, _) = syntax_error("(metric a mean))");
    assert_eq!(
        (position, message.as_str()),
        (15, "unexpected `)` after the end of the operations")
    );
    let (position, message, _) = syntax_error("(aggregate avg (metric a mean))");
    assert_eq!(position, 11);
    assert!(
        message.starts_with("unknown aggregation method `avg`"),
        "{message}"
    );
    let (position, message, _) = syntax_error("(rolling mean 0 (metric a mean))");
    assert_eq!(position, 14);
    assert!(message.starts_with("invalid window `0`"), "{message}");
    let (position, message, _) = syntax_error("(resample mean soon (metric a mean))");
    assert_eq!(position, 15);
    assert!(
        message.starts_with("invalid granularity `soon`"),
        "{message}"
    );
    let (position, message, _) = syntax_error("(aggregate mean)");
    assert_eq!(position, 0);
    assert_eq!(
        message,
        "`aggregate` takes 2 arguments, (aggregate METHOD OPERATION); found 1"
    );
    let (position, message, _) = syntax_error("(metric a)");
    assert_eq!(position, 0);
    assert!(
        message.starts_with("`metric` takes a name and a method; found 1 argument;"),
        "{message}"
    );
    let (position, message, _) = syntax_error("(metric (a mean) b)");
    assert_eq!(position, 17);
    assert!(
        message.starts_with("expected a (NAME AGG) pair, found `b`"),
        "{message}"
    );
    let (position, _, _) = syntax_error("");
    assert_eq!(position, 0);
    let (position, message, _) = syntax_error(r#"["metric", "a" "mean"]"#);
    assert_eq!(position, 15);
    assert!(message.starts_with("invalid JSON"), "{message}");
}

#[test]
fn unknown_operator() {
    let e = parse("(foo (metric a mean))").unwrap_err();
    assert!(
        matches!(&e, QueryError::UnknownOperator { name, position: 1 } if name == "foo"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("unknown operation `foo` at position 1; expected metric, aggregate"),
        "{e}"
    );
}

#[test]
fn no_common_granularity() {
    let e = run(
        "(aggregate mean (metric (a mean) (c mean)))",
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, QueryError::NoCommonGranularity { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "metrics a/mean, c/mean can't be aggregated: no granularity match"
    );
    let e = run(
        "(metric a mean)",
        &Options {
            granularity: Some(5 * M),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, QueryError::MissingGranularity { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "aggregation method 'mean' at granularity '300' for metric a does not exist"
    );
}

#[test]
fn rolling_window_too_large() {
    let e = run("(rolling sum 5 (metric a mean))", &Options::default()).unwrap_err();
    assert!(
        matches!(
            e,
            QueryError::RollingWindowTooLarge {
                window: 5,
                length: 3
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "rolling window '5' is greater than serie length '3'"
    );
}

#[test]
fn not_enough_overlap() {
    let options = Options {
        start: Some(at(0)),
        stop: Some(at(4)),
        ..Options::default()
    };
    let e = run(MEAN_AB, &options).unwrap_err();
    assert!(
        matches!(e, QueryError::NotEnoughOverlap { percent, needed } if percent == 50.0 && needed == 100.0),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "less than 100% of datapoints overlap in this timespan (50.00%)"
    );
}

#[test]
fn no_overlap() {
    let e = run(
        "(aggregate mean (metric (a mean) (d mean)))",
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, QueryError::NoOverlap { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "metrics a/mean, d/mean can't be aggregated: no overlap"
    );
    // needed_overlap 0 allows it; the NaN cells are skipped.
    let options = Options {
        needed_overlap: 0.0,
        ..Options::default()
    };
    assert_eq!(
        aggregated("(aggregate mean (metric (a mean) (d mean)))", &options),
        vec![(at(0), 1.0), (at(1), 2.0), (at(2), 3.0), (at(10), 1.0)]
    );
}

#[test]
fn source_errors_pass_through() {
    let e = run("(metric nope mean)", &Options::default()).unwrap_err();
    assert!(
        matches!(e, QueryError::UnknownMetric { ref name } if name == "nope"),
        "{e:?}"
    );
    let e = run("(metric a max)", &Options::default()).unwrap_err();
    assert!(matches!(e, QueryError::UnknownAggregation { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "aggregation method 'max' for metric a does not exist"
    );
}

#[test]
fn a_number_is_not_a_series() {
    let e = run("(+ 1 2)", &Options::default()).unwrap_err();
    assert!(matches!(e, QueryError::NotASeries { .. }), "{e:?}");
}

#[test]
fn fill_parses_gnocchi_values() {
    assert_eq!(Fill::parse("null").unwrap(), Fill::Null);
    assert_eq!(Fill::parse("full_bfill").unwrap(), Fill::FullBfill);
    assert_eq!(Fill::parse("-1.5").unwrap(), Fill::Value(-1.5));
    assert!(matches!(
        Fill::parse("zero"),
        Err(QueryError::InvalidOption { option: "fill", .. })
    ));
    use crate::query::time::parse_granularity;
    assert_eq!(parse_granularity("90"), Ok(90 * S));
    assert_eq!(parse_granularity("1h30m"), Ok(90 * M));
    assert!(parse_granularity("0").is_err());
}

#[test]
fn trim_only_the_open_ends() {
    // start given, stop open: cut after the last overlap (12:02) only;
    // 2 of 3 timestamps overlap.
    let options = Options {
        start: Some(at(0)),
        needed_overlap: 60.0,
        ..Options::default()
    };
    assert_eq!(aggregated(MEAN_AB, &options), from_noon(&[1.0, 6.0, 11.5]));
    // stop given, start open: cut before the first overlap (12:01) only.
    let options = Options {
        stop: Some(at(4)),
        needed_overlap: 60.0,
        ..Options::default()
    };
    assert_eq!(
        aggregated(MEAN_AB, &options),
        vec![(at(1), 6.0), (at(2), 11.5), (at(3), 30.0)]
    );
}

#[test]
fn rolling_methods_and_rate() {
    let fill0 = with_fill(Fill::Value(0.0));
    let rolled = |m: &str| {
        aggregated(
            &format!("(rolling {m} 2 (aggregate sum (metric (a mean) (b mean))))"),
            &fill0,
        )
    };
    // The sums are 1, 12, 23, 30.
    assert_eq!(
        rolled("mean"),
        vec![(at(1), 6.5), (at(2), 17.5), (at(3), 26.5)]
    );
    assert_eq!(
        rolled("max"),
        vec![(at(1), 12.0), (at(2), 23.0), (at(3), 30.0)]
    );
    assert_eq!(
        rolled("std"),
        vec![(at(1), 5.5), (at(2), 5.5), (at(3), 3.5)]
    );
    // rate: the rolling means, differenced.
    assert_eq!(rolled("rate:mean"), vec![(at(2), 11.0), (at(3), 9.0)]);
    // A window of the whole series gives one point, at the last timestamp.
    assert_eq!(
        aggregated(
            "(rolling count 4 (aggregate sum (metric (a mean) (b mean))))",
            &fill0
        ),
        vec![(at(3), 4.0)]
    );
}

#[test]
fn numeric_fill_keeps_nan_results_but_dropna_does_not() {
    // The means are 0.5, 6, 11.5, 15: −inf, NaN, inf, inf.
    let op = "(/ (- (aggregate mean (metric (a mean) (b mean))) 6) 0)";
    let kept = aggregated(op, &with_fill(Fill::Value(0.0)));
    assert_eq!(kept.len(), 4);
    assert_eq!(kept[0].1, f64::NEG_INFINITY);
    assert!(kept[1].1.is_nan(), "{kept:?}");
    assert_eq!(kept[2].1, f64::INFINITY);
    assert!(aggregated(op, &with_fill(Fill::DropNa)).is_empty());
    assert!(aggregated(op, &with_fill(Fill::Ffill)).is_empty());
}

#[test]
fn resample_of_an_aggregate() {
    assert_eq!(
        run(
            "(resample sum 120 (aggregate mean (metric (a mean) (b mean))))",
            &with_fill(Fill::Value(0.0)),
        )
        .unwrap(),
        Output::Aggregated(vec![(2 * M, vec![(at(0), 6.5), (at(2), 26.5)])])
    );
}

#[test]
fn invalid_options() {
    let e = run(
        MEAN_AB,
        &Options {
            needed_overlap: 150.0,
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            QueryError::InvalidOption {
                option: "needed_overlap",
                ..
            }
        ),
        "{e:?}"
    );
    let (position, message, _) = syntax_error(r#"(metric "a mean)"#);
    assert_eq!(position, 8);
    assert!(message.starts_with("unterminated string"), "{message}");
    let (position, message, _) = syntax_error("(metric a mean) x");
    assert_eq!(
        (position, message.as_str()),
        (16, "unexpected `x` after the end of the operations")
    );
    let (position, message, _) = syntax_error(r#"["*", "4", ["metric", "a", "mean"]]"#);
    assert_eq!(position, 6);
    assert!(message.contains("found the string \"4\""), "{message}");
}

#[test]
fn nesting_is_bounded_so_input_cannot_overflow_the_stack() {
    let deep = format!(
        "{}(metric (a mean)){}",
        "(abs ".repeat(100_000),
        ")".repeat(100_000)
    );
    match parse(&deep) {
        Err(QueryError::Syntax { position, message }) => {
            assert_eq!(position, 5 * 64);
            assert_eq!(message, "operations nested deeper than 64 levels");
        }
        other => panic!("{other:?}"),
    }
    // 64 levels are fine.
    let ok = format!("{}(metric (a mean)){}", "(abs ".repeat(62), ")".repeat(62));
    assert!(parse(&ok).is_ok());
}
