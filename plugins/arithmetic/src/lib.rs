//! `arithmetic` transformer: one new meter computed by an expression over
//! other meters, per resource and timestamp (Ceilometer's arithmetic
//! transformer, adapted to labelled series).
//!
//! Each variable of the expression is a *selector*: a meter name, optionally
//! with attribute constraints. Its value, for one resource at one timestamp,
//! is the **sum** of the values of the input samples of that meter, that
//! resource and that timestamp whose attributes include every constraint:
//!
//! ```text
//! var.idle   = "cpu.time.rate{mode=idle}"     Σ over the CPUs, mode idle
//! var.all    = "cpu.time.rate"                Σ over the CPUs and modes
//! expression = "100 * (1 - idle / all)"
//!
//! input (one batch)                                   output
//! t0 host-1 cpu.time.rate {cpu=0,mode=idle}   0.5  ┐
//! t0 host-1 cpu.time.rate {cpu=0,mode=user}   0.5  ├─ t0 host-1 cpu.util 25 %
//! t0 host-1 cpu.time.rate {cpu=1,mode=idle}   1.0  ┘   (idle = 1.5, all = 2)
//! t0 host-2 cpu.time.rate {cpu=0,mode=user}   1.0  ─── none: host-2 has no idle
//! ```
//!
//! Settings (strings, as the host passes them):
//!
//! | key               | meaning                                                  | default  |
//! |-------------------|----------------------------------------------------------|----------|
//! | `metric`          | the output meter's name                                  | required |
//! | `unit`            | the output meter's unit                                  | `1`      |
//! | `expression`      | the expression, over the variables                       | required |
//! | `var.NAME`        | variable `NAME`: `METER` or `METER{key=value,key2=v2}`   | ≥ 1      |
//! | `keep_attributes` | comma list of attribute keys kept when equal in a group  | none     |
//!
//! - Groups are `(resource_id, timestamp)`: one output sample per group in
//!   which **every** variable matched at least one sample, of type `gauge`,
//!   at the group's timestamp and resource, with no attributes except the
//!   `keep_attributes` keys that every sample of the group has with one
//!   same value. A group missing a variable gives nothing; such groups are
//!   counted and logged once per batch (a warning with the count).
//! - Only the computed meter comes out: the plugin does not pass its input
//!   on. What goes around it is the host's meter filter: the stage's
//!   `meters` list picks the samples the plugin sees (default `["*"]`:
//!   all of them), and `pass_unmatched` (default `true`) sends the samples
//!   the list rejects downstream unchanged. So list the selected meters in
//!   `meters` (e.g. `meters = ["cpu.time.rate"]`): the other meters go
//!   around, and the selected ones stop here (give them a parallel stage on
//!   the same input to keep them). With the default `["*"]` every other
//!   meter would stop at this stage.
//! - Arithmetic is IEEE 754 `f64`: `x / 0` is ±inf, `0 / 0` is NaN, and a
//!   NaN or ±inf input propagates; such results are emitted as they are.
//! - Input units and types are not looked at: values are summed as they
//!   are. Samples of series no variable selects are ignored.
//! - The expression language is [exmex]'s: `+ - * / ^`, parentheses, unary
//!   minus, numbers (`100`, `0.5`, `1e-9`), functions such as `abs`,
//!   `min(a, b)`, `max(a, b)`, `sqrt`, `ln`, `round`, and the constants `PI`
//!   and `E`. Variable names are `[A-Za-z_][A-Za-z0-9_]*` and must not be a
//!   function name.
//!
//! At init the expression is parsed once; every problem is an
//! `invalid-settings` error naming the setting: a syntax error (with the
//! column where exmex reports one), a variable of the expression without a
//! `var.` setting, a `var.` setting the expression does not use, a bad
//! selector, an unknown setting key.
//!
//! Per batch: the variables each entry of the batch's series table feeds
//! are worked out once per series (a bit set); then one pass over the rows
//! adds each value to its group's sums. No allocation per sample.
//!
//! [exmex]: https://docs.rs/exmex

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use exmex::{Express, FlatEx, FloatOpsFactory, MatchLiteral, literal_matcher_from_pattern};
use wasmeter_guest::{Batch, Error, Level, SampleType, Series, Settings, Transformer};

literal_matcher_from_pattern!(Number, r"^(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][+-]?[0-9]+)?");

/// The compiled expression: exmex's default operators, numbers with
/// exponents.
type Expression = FlatEx<f64, FloatOpsFactory<f64>, Number>;

/// At most this many variables (one bit each in a series' mask).
const MAX_VARIABLES: usize = 64;

/// The transformer: the compiled expression and its variables.
pub struct Arithmetic {
    metric: String,
    unit: String,
    expression: Expression,
    /// One per variable, in the order exmex wants their values (by name).
    variables: Vec<Variable>,
    keep_attributes: Vec<String>,
    /// Total groups that lacked a variable, since init.
    incomplete_total: u64,
}

/// A `var.NAME` setting.
#[derive(Debug, Clone, PartialEq)]
struct Variable {
    name: String,
    /// The selector as written, for messages.
    selector: String,
    meter: String,
    /// Attribute constraints, sorted by key.
    attributes: Vec<(String, String)>,
}

impl Variable {
    /// Whether a series feeds this variable.
    fn selects(&self, series: &Series) -> bool {
        series.metric == self.meter
            && self
                .attributes
                .iter()
                .all(|(k, v)| series.attributes.iter().any(|(sk, sv)| sk == k && sv == v))
    }
}

/// Parses `METER` or `METER{key=value,key2=value2}` (spaces around names
/// are ignored).
fn parse_selector(key: &str, name: &str, text: &str) -> Result<Variable, Error> {
    let bad = |why: &str| {
        Error::invalid_settings(format!(
            "setting `{key}`: {why} in selector {text:?} (expected METER or METER{{key=value,…}})"
        ))
    };
    let (meter, constraints) = match text.split_once('{') {
        None => (text, None),
        Some((meter, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| bad("missing closing `}`"))?;
            (meter, Some(inner))
        }
    };
    let meter = meter.trim();
    if meter.is_empty() {
        return Err(bad("empty meter name"));
    }
    if meter.contains(['{', '}', '=', ',']) {
        return Err(bad("unexpected `{`, `}`, `=` or `,` in the meter name"));
    }
    let mut attributes: Vec<(String, String)> = Vec::new();
    if let Some(inner) = constraints {
        for pair in inner.split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(bad(&format!("{:?} is not key=value", pair.trim())));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || k.contains(['{', '}', '=']) || v.contains(['{', '}', '=']) {
                return Err(bad(&format!("{:?} is not key=value", pair.trim())));
            }
            if attributes.iter().any(|(seen, _)| seen == k) {
                return Err(bad(&format!("key `{k}` given twice")));
            }
            attributes.push((k.to_owned(), v.to_owned()));
        }
        attributes.sort();
    }
    Ok(Variable {
        name: name.to_owned(),
        selector: text.to_owned(),
        meter: meter.to_owned(),
        attributes,
    })
}

/// Whether `name` can be an expression variable.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// exmex's parse error as a message for users: its text, without the debug
/// dumps of its tokens, and the column (1-based, in characters) of the
/// first character it cannot read, when it names one.
fn syntax_error(expression: &str, error: &exmex::ExError) -> String {
    let msg = error.msg();
    if let Some(rest) = msg.strip_prefix("don't know how to parse ")
        && let Some(start) = expression.len().checked_sub(rest.len())
        && expression.get(start..) == Some(rest)
    {
        let column = expression[..start].chars().count() + 1;
        let c = rest.chars().next().unwrap_or(' ');
        return format!("unexpected {c:?} at column {column}");
    }
    let msg = msg
        .split_once(", left: ")
        .or_else(|| msg.split_once(", Operator {"))
        .map_or(msg, |(head, _)| head);
    match msg.split_once(" ops and ") {
        // "we have 0 ops and 2 node. …": two operands with no operator.
        Some(_) => "two operands with no operator between them".to_owned(),
        None => msg.to_owned(),
    }
}

impl Arithmetic {
    /// Groups that lacked a variable, since init.
    pub fn incomplete_total(&self) -> u64 {
        self.incomplete_total
    }
}

impl Transformer for Arithmetic {
    fn init(settings: Settings) -> Result<Self, Error> {
        let metric = settings.require("metric")?.trim();
        if metric.is_empty() {
            return Err(Error::invalid_settings(
                "setting `metric`: must not be empty",
            ));
        }
        let unit = settings.get("unit").unwrap_or("1").to_owned();
        let text = settings.require("expression")?;
        let expression = Expression::parse(text).map_err(|e| {
            Error::invalid_settings(format!(
                "setting `expression`: cannot parse {text:?}: {}",
                syntax_error(text, &e)
            ))
        })?;
        let keep_attributes: Vec<String> = settings
            .get("keep_attributes")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();

        // The var.* settings, the last one of a repeated key winning.
        let mut declared: Vec<Variable> = Vec::new();
        for (key, value) in settings.iter() {
            if let Some(name) = key.strip_prefix("var.") {
                if !is_identifier(name) {
                    return Err(Error::invalid_settings(format!(
                        "setting `{key}`: {name:?} is not a variable name (letters, digits and `_`, not starting with a digit)"
                    )));
                }
                let var = parse_selector(key, name, value)?;
                declared.retain(|v| v.name != name);
                declared.push(var);
            } else if !matches!(key, "metric" | "unit" | "expression" | "keep_attributes") {
                return Err(Error::invalid_settings(format!(
                    "unknown setting `{key}` (expected metric, unit, expression, keep_attributes or var.NAME)"
                )));
            }
        }

        let used = expression.var_names();
        if used.is_empty() {
            return Err(Error::invalid_settings(format!(
                "setting `expression`: {text:?} uses no variable"
            )));
        }
        let mut variables = Vec::with_capacity(used.len());
        for name in used {
            let Some(var) = declared.iter().find(|v| &v.name == name) else {
                return Err(Error::invalid_settings(format!(
                    "setting `expression`: variable `{name}` has no `var.{name}` setting"
                )));
            };
            variables.push(var.clone());
        }
        if let Some(unused) = declared.iter().find(|v| !used.contains(&v.name)) {
            return Err(Error::invalid_settings(format!(
                "setting `var.{0}`: variable `{0}` is not used in the expression {text:?} (or is the name of a function)",
                unused.name
            )));
        }
        if variables.len() > MAX_VARIABLES {
            return Err(Error::invalid_settings(format!(
                "setting `expression`: {} variables, at most {MAX_VARIABLES}",
                variables.len()
            )));
        }
        Ok(Arithmetic {
            metric: metric.to_owned(),
            unit,
            expression,
            variables,
            keep_attributes,
            incomplete_total: 0,
        })
    }

    fn transform(&mut self, input: Batch) -> Result<Batch, Error> {
        let n_vars = self.variables.len();
        let full: u64 = if n_vars == 64 {
            u64::MAX
        } else {
            (1u64 << n_vars) - 1
        };
        let n_keep = self.keep_attributes.len();

        // Once per series of the table: the variables it feeds, its
        // resource as a small integer, and for each kept key the value as
        // a small integer (`ABSENT` when the series lacks the key).
        let mut resources: HashMap<&str, u32> = HashMap::new();
        let mut resource_names: Vec<&str> = Vec::new();
        let mut values_of_key: Vec<HashMap<&str, u32>> = vec![HashMap::new(); n_keep];
        let mut value_names: Vec<Vec<&str>> = vec![Vec::new(); n_keep];
        let mut series_mask = Vec::with_capacity(input.series.len());
        let mut series_resource = Vec::with_capacity(input.series.len());
        let mut series_keep = Vec::with_capacity(input.series.len() * n_keep);
        for series in &input.series {
            let mask = self
                .variables
                .iter()
                .enumerate()
                .filter(|(_, v)| v.selects(series))
                .fold(0u64, |m, (i, _)| m | (1 << i));
            series_mask.push(mask);
            let next = resource_names.len() as u32;
            let r = *resources.entry(&series.resource_id).or_insert(next);
            if r == next {
                resource_names.push(&series.resource_id);
            }
            series_resource.push(r);
            for (k, key) in self.keep_attributes.iter().enumerate() {
                let id = match series.attributes.iter().find(|(sk, _)| sk == key) {
                    None => ABSENT,
                    Some((_, value)) => {
                        let next = value_names[k].len() as u32;
                        let id = *values_of_key[k].entry(value).or_insert(next);
                        if id == next {
                            value_names[k].push(value);
                        }
                        id
                    }
                };
                series_keep.push(id);
            }
        }

        // One pass over the rows: each group's sums, variables seen and
        // kept attribute values.
        let mut groups: HashMap<(u32, i64), usize> = HashMap::new();
        let mut group_key: Vec<(u32, i64)> = Vec::new();
        let mut sums: Vec<f64> = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        let mut keep: Vec<u32> = Vec::new();
        for (row, ((&index, &t), &v)) in input
            .series_index
            .iter()
            .zip(&input.timestamps)
            .zip(&input.values)
            .enumerate()
        {
            let Some(&mask) = series_mask.get(index as usize) else {
                return Err(Error::invalid_input(format!(
                    "row {row}: series index {index} out of range ({} series)",
                    input.series.len()
                )));
            };
            if mask == 0 {
                continue;
            }
            let s = index as usize;
            let key = (series_resource[s], t);
            let g = match groups.entry(key) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    let g = group_key.len();
                    e.insert(g);
                    group_key.push(key);
                    sums.resize(sums.len() + n_vars, 0.0);
                    seen.push(0);
                    keep.extend_from_slice(&series_keep[s * n_keep..(s + 1) * n_keep]);
                    g
                }
            };
            seen[g] |= mask;
            let mut bits = mask;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                sums[g * n_vars + i] += v;
                bits &= bits - 1;
            }
            for k in 0..n_keep {
                let slot = &mut keep[g * n_keep + k];
                if *slot != series_keep[s * n_keep + k] {
                    *slot = ABSENT;
                }
            }
        }

        // The output: one sample per complete group; one output series per
        // (resource, kept attributes).
        let mut out = Batch::empty();
        let mut out_series: HashMap<(u32, &[u32]), u32> = HashMap::new();
        let mut incomplete = 0u64;
        let mut first_incomplete = None;
        for (g, &(r, t)) in group_key.iter().enumerate() {
            if seen[g] != full {
                incomplete += 1;
                first_incomplete.get_or_insert((r, t, full & !seen[g]));
                continue;
            }
            let values = &sums[g * n_vars..(g + 1) * n_vars];
            let value = self
                .expression
                .eval(values)
                .map_err(|e| Error::internal(format!("evaluating the expression: {}", e.msg())))?;
            let kept = &keep[g * n_keep..(g + 1) * n_keep];
            let next = out.series.len() as u32;
            let index = *out_series.entry((r, kept)).or_insert(next);
            if index == next {
                let mut attributes: Vec<(String, String)> = self
                    .keep_attributes
                    .iter()
                    .zip(kept)
                    .enumerate()
                    .filter(|(_, (_, id))| **id != ABSENT)
                    .map(|(k, (key, &id))| (key.clone(), value_names[k][id as usize].to_owned()))
                    .collect();
                attributes.sort();
                out.series.push(Series {
                    metric: self.metric.clone(),
                    resource_id: resource_names[r as usize].to_owned(),
                    unit: self.unit.clone(),
                    type_: SampleType::Gauge,
                    attributes,
                });
            }
            out.series_index.push(index);
            out.timestamps.push(t);
            out.values.push(value);
        }

        if let Some((r, t, missing)) = first_incomplete {
            self.incomplete_total += incomplete;
            let names: Vec<&str> = self
                .variables
                .iter()
                .enumerate()
                .filter(|(i, _)| missing & (1 << i) != 0)
                .map(|(_, v)| v.name.as_str())
                .collect();
            wasmeter_guest::log(
                Level::Warn,
                &format!(
                    "{incomplete} (resource, timestamp) groups lacked a variable and gave no {} ({} since start); first: {} at {t} ns lacks {}",
                    self.metric,
                    self.incomplete_total,
                    resource_names[r as usize],
                    names.join(", ")
                ),
            );
        }
        Ok(out)
    }
}

/// A kept key's value id when the key is absent or differs in the group.
const ABSENT: u32 = u32::MAX;

wasmeter_guest::export_transformer!(Arithmetic);

#[cfg(test)]
mod tests;
