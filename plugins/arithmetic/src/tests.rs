use super::*;
use wasmeter_guest::{BatchBuilder, ErrorKind};

fn init(settings: &[(&str, &str)]) -> Result<Arithmetic, Error> {
    Arithmetic::init(Settings::from(
        settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    ))
}

fn plugin(settings: &[(&str, &str)]) -> Arithmetic {
    init(settings).unwrap()
}

fn refused(settings: &[(&str, &str)]) -> String {
    let e = init(settings).err().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidSettings);
    e.message
}

const CPU_UTIL: &[(&str, &str)] = &[
    ("metric", "cpu.util"),
    ("unit", "%"),
    ("expression", "100 * (1 - idle / all)"),
    ("var.idle", "cpu.time.rate{mode=idle}"),
    ("var.all", "cpu.time.rate"),
];

/// `(resource, attributes, timestamp, value)` of an output row.
type Row = (String, Vec<(String, String)>, i64, f64);

fn rows(out: &Batch) -> Vec<Row> {
    out.samples()
        .map(|s| {
            (
                s.series.resource_id.clone(),
                s.series.attributes.clone(),
                s.timestamp,
                s.value,
            )
        })
        .collect()
}

#[test]
fn cpu_utilisation_sums_over_cpus_and_modes_per_resource_and_time() {
    let mut p = plugin(CPU_UTIL);
    let mut b = BatchBuilder::new();
    let mut add = |cpu: &str, mode: &str, t: i64, v: f64| {
        let s = b.series(
            "cpu.time.rate",
            "host",
            "s/s",
            SampleType::Gauge,
            &[("cpu", cpu), ("mode", mode)],
        );
        b.push(s, t, v);
    };
    add("0", "idle", 10, 0.5);
    add("0", "user", 10, 0.25);
    add("1", "idle", 10, 0.75);
    add("1", "user", 10, 0.25);
    add("0", "idle", 20, 0.25);
    add("0", "user", 20, 0.75);
    add("1", "idle", 20, 1.0);
    let out = p.transform(b.finish()).unwrap();
    assert_eq!(
        rows(&out),
        vec![
            ("host".into(), vec![], 10, 100.0 * (1.0 - 1.25 / 1.75)),
            ("host".into(), vec![], 20, 100.0 * (1.0 - 1.25 / 2.0)),
        ]
    );
    let s = &out.series[0];
    assert_eq!(
        (s.metric.as_str(), s.unit.as_str(), s.type_),
        ("cpu.util", "%", SampleType::Gauge)
    );
    assert_eq!(out.series.len(), 1);
}

#[test]
fn a_group_missing_a_variable_gives_nothing_and_is_counted() {
    let mut p = plugin(CPU_UTIL);
    let mut b = BatchBuilder::new();
    let idle = b.series(
        "cpu.time.rate",
        "a",
        "1",
        SampleType::Gauge,
        &[("mode", "idle")],
    );
    let user = b.series(
        "cpu.time.rate",
        "b",
        "1",
        SampleType::Gauge,
        &[("mode", "user")],
    );
    let other = b.series("memory.used", "c", "B", SampleType::Gauge, &[]);
    b.push(idle, 1, 2.0);
    b.push(user, 1, 3.0); // b has no idle sample: incomplete
    b.push(other, 1, 5.0); // selected by no variable: no group at all
    let out = p.transform(b.finish()).unwrap();
    assert_eq!(rows(&out), vec![("a".into(), vec![], 1, 0.0)]);
    assert_eq!(p.incomplete_total(), 1);
}

#[test]
fn attribute_selectors_need_every_key() {
    let mut p = plugin(&[
        ("metric", "x"),
        ("expression", "a - b"),
        ("var.a", "m{k1=x, k2=y}"),
        ("var.b", "m{k2=y}"),
    ]);
    let mut b = BatchBuilder::new();
    let xy = b.series(
        "m",
        "r",
        "1",
        SampleType::Gauge,
        &[("k1", "x"), ("k2", "y")],
    );
    let zy = b.series(
        "m",
        "r",
        "1",
        SampleType::Gauge,
        &[("k1", "z"), ("k2", "y")],
    );
    let xw = b.series(
        "m",
        "r",
        "1",
        SampleType::Gauge,
        &[("k1", "x"), ("k2", "w")],
    );
    b.push(xy, 0, 1.0);
    b.push(zy, 0, 10.0);
    b.push(xw, 0, 100.0);
    let out = p.transform(b.finish()).unwrap();
    // a = 1 (k1=x and k2=y), b = 1 + 10 (k2=y).
    assert_eq!(out.values, vec![1.0 - 11.0]);
}

#[test]
fn ieee_division_and_nan_pass_through() {
    let mut p = plugin(&[
        ("metric", "q"),
        ("expression", "a / b"),
        ("var.a", "a"),
        ("var.b", "b"),
    ]);
    let mut b = BatchBuilder::new();
    let a = b.series("a", "r", "1", SampleType::Gauge, &[]);
    let bb = b.series("b", "r", "1", SampleType::Gauge, &[]);
    for (t, x, y) in [
        (0, 1.0, 0.0),
        (1, -1.0, 0.0),
        (2, 0.0, 0.0),
        (3, f64::NAN, 1.0),
    ] {
        b.push(a, t, x);
        b.push(bb, t, y);
    }
    let out = p.transform(b.finish()).unwrap();
    assert_eq!(out.values[..2], [f64::INFINITY, f64::NEG_INFINITY]);
    assert!(out.values[2].is_nan() && out.values[3].is_nan());
}

#[test]
fn kept_attributes_are_those_equal_across_the_group() {
    let mut p = plugin(&[
        ("metric", "disk.total"),
        ("expression", "r + w"),
        ("var.r", "disk.read"),
        ("var.w", "disk.write"),
        ("keep_attributes", "device, op, missing"),
    ]);
    let mut b = BatchBuilder::new();
    let r = b.series(
        "disk.read",
        "h",
        "B",
        SampleType::Gauge,
        &[("device", "sda"), ("op", "read")],
    );
    let w = b.series(
        "disk.write",
        "h",
        "B",
        SampleType::Gauge,
        &[("device", "sda"), ("op", "write")],
    );
    b.push(r, 0, 1.5);
    b.push(w, 0, 2.0);
    let out = p.transform(b.finish()).unwrap();
    assert_eq!(
        rows(&out),
        vec![("h".into(), vec![("device".into(), "sda".into())], 0, 3.5)]
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut s = vec![("metric", "m"), ("expression", "a + 1"), ("var.a", "x")];
        s.extend_from_slice(extra);
        s
    };
    assert_eq!(
        refused(&[
            ("metric", "m"),
            ("expression", "100 * (a $ 2)"),
            ("var.a", "x")
        ]),
        "setting `expression`: cannot parse \"100 * (a $ 2)\": unexpected '$' at column 10"
    );
    assert_eq!(
        refused(&[("metric", "m"), ("expression", "(a + 1"), ("var.a", "x")]),
        "setting `expression`: cannot parse \"(a + 1\": parentheses mismatch"
    );
    assert_eq!(
        refused(&[("metric", "m"), ("expression", "a b"), ("var.a", "x")]),
        "setting `expression`: cannot parse \"a b\": two operands with no operator between them"
    );
    assert_eq!(
        refused(&[("metric", "m"), ("expression", "a + b"), ("var.a", "x")]),
        "setting `expression`: variable `b` has no `var.b` setting"
    );
    assert_eq!(
        refused(&base(&[("var.b", "y")])),
        "setting `var.b`: variable `b` is not used in the expression \"a + 1\" (or is the name of a function)"
    );
    assert_eq!(
        refused(&base(&[("var.a", "x{mode}")])),
        "setting `var.a`: \"mode\" is not key=value in selector \"x{mode}\" (expected METER or METER{key=value,…})"
    );
    assert_eq!(
        refused(&base(&[("var.a", "x{a=1,a=2}")])),
        "setting `var.a`: key `a` given twice in selector \"x{a=1,a=2}\" (expected METER or METER{key=value,…})"
    );
    assert_eq!(
        refused(&base(&[("var.a", "x{a=1")])),
        "setting `var.a`: missing closing `}` in selector \"x{a=1\" (expected METER or METER{key=value,…})"
    );
    assert_eq!(
        refused(&base(&[("vars.a", "x")])),
        "unknown setting `vars.a` (expected metric, unit, expression, keep_attributes or var.NAME)"
    );
    assert_eq!(
        refused(&[("expression", "a"), ("var.a", "x")]),
        "missing setting `metric`"
    );
    assert_eq!(
        refused(&[("metric", "m"), ("var.a", "x")]),
        "missing setting `expression`"
    );
    assert_eq!(
        refused(&[("metric", "m"), ("expression", "2 * PI")]),
        "setting `expression`: \"2 * PI\" uses no variable"
    );
}

#[test]
fn numbers_take_exponents() {
    let mut p = plugin(&[
        ("metric", "s"),
        ("expression", "ns * 1e-9 + 2.5E1 * 0"),
        ("var.ns", "t"),
    ]);
    let mut b = BatchBuilder::new();
    let t = b.series("t", "r", "ns", SampleType::Gauge, &[]);
    b.push(t, 0, 3e9);
    assert_eq!(p.transform(b.finish()).unwrap().values, vec![3.0]);
}
