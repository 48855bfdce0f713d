//! The syntax of one line, in each format: what kind of line it is and its
//! tokens, borrowed from the input. No rule that spans lines lives here
//! (see `parser`).
//!
//! ```text
//! # TYPE name type            # HELP name text            # UNIT name unit
//! name{label="value",…} value [timestamp] [# {label="value",…} value [timestamp]]
//! ```
//!
//! OpenMetrics separates tokens by exactly one space and allows no other
//! whitespace; Prometheus 0.0.4 allows any run of spaces and tabs between
//! tokens, around labels and at either end, and a trailing comma in the
//! label set. Label values unescape `\\`, `\"` and `\n`; another backslash
//! is kept as written in OpenMetrics (its conformance cases accept `\z`)
//! and is an error in Prometheus (as its parser reports).

use std::borrow::Cow;

use crate::family::MetricType;
use crate::number::{self, Timestamp};

/// One `name="value"` pair; the value is unescaped (borrowed when it had
/// no escape).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Label<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// A sample line's tokens (its labels are in the caller's vector, sorted
/// by name).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample<'a> {
    /// The metric name as written.
    pub name: &'a str,
    /// Name and label set as written: the same text is the same series.
    pub series: &'a str,
    pub value: f64,
    pub timestamp: Option<Timestamp>,
    /// Whether an exemplar (valid) follows.
    pub exemplar: bool,
}

/// What a line is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line<'a> {
    /// Empty (or, in Prometheus, only blanks).
    Blank,
    /// A Prometheus comment other than HELP/TYPE.
    Comment,
    /// `# EOF` (OpenMetrics).
    Eof,
    Help {
        name: &'a str,
    },
    Type {
        name: &'a str,
        kind: MetricType,
    },
    Unit {
        name: &'a str,
        unit: &'a str,
    },
    Sample(Sample<'a>),
}

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Prometheus,
    OpenMetrics,
}

/// Parses one OpenMetrics line. `labels` and `exemplar` are scratch
/// vectors, cleared here; on success `labels` holds the sample's labels.
pub(crate) fn openmetrics<'a>(
    line: &'a str,
    labels: &mut Vec<Label<'a>>,
    exemplar: &mut Vec<Label<'a>>,
) -> Result<Line<'a>, String> {
    labels.clear();
    if line.is_empty() {
        return Ok(Line::Blank);
    }
    if line.starts_with('#') {
        return om_descriptor(line);
    }
    let b = line.as_bytes();
    let mut pos = metric_name(line, 0)?;
    let name = &line[..pos];
    if b.get(pos) == Some(&b'{') {
        pos = label_set(line, pos, Syntax::OpenMetrics, labels)?;
    }
    let series = &line[..pos];
    sort_unique(labels)?;
    if pos == b.len() {
        return Err(format!("missing value after `{series}`"));
    }
    if b[pos] != b' ' {
        return Err(format!(
            "unexpected {:?} after `{series}`: expected a space and the value",
            char_at(line, pos)
        ));
    }
    let (tok, mut pos) = om_token(line, pos + 1, "value")?;
    let value = number::parse_number(tok).ok_or_else(|| bad_value(tok))?;
    let mut timestamp = None;
    if pos < b.len() && b.get(pos + 1) != Some(&b'#') {
        let (tok, next) = om_token(line, pos + 1, "timestamp")?;
        timestamp = Some(number::om_timestamp(tok).ok_or_else(|| bad_om_timestamp(tok))?);
        pos = next;
    }
    let mut has_exemplar = false;
    if pos < b.len() {
        // `pos` is at a space; an exemplar is ` # {labels} value [timestamp]`.
        if !line[pos..].starts_with(" # {") {
            return Err(format!(
                "unexpected {:?} after the sample: expected an exemplar `# {{labels}} value [timestamp]` or the end of the line",
                &line[pos + 1..]
            ));
        }
        om_exemplar(line, pos + 3, exemplar)?;
        has_exemplar = true;
    }
    Ok(Line::Sample(Sample {
        name,
        series,
        value,
        timestamp,
        exemplar: has_exemplar,
    }))
}

/// `{labels} value [timestamp]` from `pos` (at `{`) to the end of the line.
fn om_exemplar<'a>(line: &'a str, pos: usize, labels: &mut Vec<Label<'a>>) -> Result<(), String> {
    labels.clear();
    let b = line.as_bytes();
    let pos = label_set(line, pos, Syntax::OpenMetrics, labels)?;
    sort_unique(labels).map_err(|e| format!("exemplar: {e}"))?;
    let chars: usize = labels
        .iter()
        .map(|l| l.name.chars().count() + l.value.chars().count())
        .sum();
    if chars > 128 {
        return Err(format!(
            "exemplar label set has {chars} characters: at most 128 are allowed"
        ));
    }
    if b.get(pos) != Some(&b' ') {
        return Err("exemplar: expected a space and the value after its labels".into());
    }
    let (tok, pos) = om_token(line, pos + 1, "exemplar value")?;
    number::parse_number(tok).ok_or_else(|| format!("exemplar: {}", bad_value(tok)))?;
    if pos < b.len() {
        let (tok, pos) = om_token(line, pos + 1, "exemplar timestamp")?;
        number::om_timestamp(tok).ok_or_else(|| format!("exemplar: {}", bad_om_timestamp(tok)))?;
        if pos < b.len() {
            return Err(format!(
                "unexpected {:?} after the exemplar's timestamp",
                &line[pos..]
            ));
        }
    }
    Ok(())
}

/// The token from `pos` to the next space or the end of the line: refuses
/// an empty one (two spaces, or a trailing space).
fn om_token<'a>(line: &'a str, pos: usize, what: &str) -> Result<(&'a str, usize), String> {
    let end = line[pos..].find(' ').map_or(line.len(), |i| pos + i);
    if end == pos {
        return Err(if pos == line.len() {
            format!("trailing space where the {what} was expected")
        } else {
            format!("two spaces before the {what}: tokens are separated by a single space")
        });
    }
    Ok((&line[pos..end], end))
}

/// `# HELP`, `# TYPE`, `# UNIT`, `# EOF`: the only `#` lines OpenMetrics has.
fn om_descriptor(line: &str) -> Result<Line<'_>, String> {
    if line == "# EOF" {
        return Ok(Line::Eof);
    }
    let expected =
        "expected `# HELP`, `# TYPE`, `# UNIT` or `# EOF` (openmetrics has no other comments)";
    let Some(rest) = line.strip_prefix("# ") else {
        return Err(format!("bad comment line {line:?}: {expected}"));
    };
    let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Err(format!("bad comment line {line:?}: {expected}"));
    }
    let Some((name, text)) = rest.split_once(' ') else {
        return Err(if rest.is_empty() {
            format!("`# {keyword}` without a metric name")
        } else {
            format!(
                "`# {keyword} {rest}` needs a space and the {} after the metric name",
                match keyword {
                    "HELP" => "help text",
                    "TYPE" => "type",
                    _ => "unit",
                }
            )
        });
    };
    if metric_name_end(name.as_bytes(), 0) != name.len() || name.is_empty() {
        return Err(format!(
            "bad metric name {name:?} in `# {keyword}`: expected [a-zA-Z_:][a-zA-Z0-9_:]*"
        ));
    }
    match keyword {
        "HELP" => Ok(Line::Help { name }),
        "TYPE" => match MetricType::parse(text, Syntax::OpenMetrics) {
            Some(kind) => Ok(Line::Type { name, kind }),
            None => Err(format!(
                "bad metric type {text:?} for `{name}`: expected counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown"
            )),
        },
        _ => {
            if let Some(c) = text.chars().find(|c| !is_name_char(*c)) {
                Err(format!(
                    "bad unit {text:?} for `{name}`: {c:?} is not allowed (expected [a-zA-Z0-9_:]*)"
                ))
            } else {
                Ok(Line::Unit { name, unit: text })
            }
        }
    }
}

/// Parses one Prometheus 0.0.4 line; `labels` as in [`openmetrics`].
pub(crate) fn prometheus<'a>(
    line: &'a str,
    labels: &mut Vec<Label<'a>>,
) -> Result<Line<'a>, String> {
    labels.clear();
    let b = line.as_bytes();
    let mut pos = skip_blanks(b, 0);
    if pos == b.len() {
        return Ok(Line::Blank);
    }
    if b[pos] == b'#' {
        return prom_comment(line, pos + 1);
    }
    let start = pos;
    pos = metric_name(line, pos)?;
    let name = &line[start..pos];
    let mut series_end = pos;
    let after_name = skip_blanks(b, pos);
    if b.get(after_name) == Some(&b'{') {
        pos = label_set(line, after_name, Syntax::Prometheus, labels)?;
        series_end = pos;
    } else if pos < b.len() && after_name == pos {
        return Err(format!(
            "unexpected {:?} after metric name `{name}`: expected `{{`, a blank or the value",
            char_at(line, pos)
        ));
    }
    let series = &line[start..series_end];
    sort_unique(labels)?;
    pos = skip_blanks(b, pos);
    if pos == b.len() {
        return Err(format!("missing value after `{series}`"));
    }
    let (tok, next) = blank_token(line, pos);
    let value = number::parse_number(tok).ok_or_else(|| bad_value(tok))?;
    pos = skip_blanks(b, next);
    let mut timestamp = None;
    if pos < b.len() {
        let (tok, next) = blank_token(line, pos);
        timestamp = Some(number::prom_timestamp(tok).ok_or_else(|| {
            format!("bad timestamp {tok:?}: expected integer milliseconds since the unix epoch")
        })?);
        pos = skip_blanks(b, next);
        if pos < b.len() {
            return Err(format!(
                "unexpected {:?} after the timestamp: expected the end of the line",
                &line[pos..]
            ));
        }
    }
    Ok(Line::Sample(Sample {
        name,
        series,
        value,
        timestamp,
        exemplar: false,
    }))
}

/// A Prometheus `#` line from after the `#`: HELP and TYPE are parsed,
/// anything else is a comment.
fn prom_comment(line: &str, pos: usize) -> Result<Line<'_>, String> {
    let b = line.as_bytes();
    let pos = skip_blanks(b, pos);
    let (keyword, pos) = blank_token(line, pos);
    if keyword != "HELP" && keyword != "TYPE" {
        return Ok(Line::Comment);
    }
    let pos = skip_blanks(b, pos);
    let (name, pos) = blank_token(line, pos);
    if name.is_empty() {
        return Err(format!("`# {keyword}` without a metric name"));
    }
    if metric_name_end(name.as_bytes(), 0) != name.len() {
        return Err(format!(
            "bad metric name {name:?} in `# {keyword}`: expected [a-zA-Z_:][a-zA-Z0-9_:]*"
        ));
    }
    let pos = skip_blanks(b, pos);
    if keyword == "HELP" {
        let text = &line[pos..];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('\\' | 'n') => {}
                    Some(e) => {
                        return Err(format!(
                            "bad escape `\\{e}` in the help of `{name}`: expected \\\\ or \\n"
                        ));
                    }
                    None => {
                        return Err(format!(
                            "lone `\\` at the end of the help of `{name}`: expected \\\\ or \\n"
                        ));
                    }
                }
            }
        }
        return Ok(Line::Help { name });
    }
    let (kind, pos) = blank_token(line, pos);
    let rest = &line[skip_blanks(b, pos)..];
    if !rest.is_empty() {
        return Err(format!(
            "unexpected {rest:?} after the type of `{name}`: expected the end of the line"
        ));
    }
    match MetricType::parse(kind, Syntax::Prometheus) {
        Some(kind) => Ok(Line::Type { name, kind }),
        None if kind.is_empty() => Err(format!("`# TYPE {name}` without a type")),
        None => Err(format!(
            "bad metric type {kind:?} for `{name}`: expected counter, gauge, histogram, summary or untyped"
        )),
    }
}

/// Parses `{name="value",…}` starting at `pos` (the `{`) into `out`;
/// returns the position after the `}`.
fn label_set<'a>(
    line: &'a str,
    pos: usize,
    syntax: Syntax,
    out: &mut Vec<Label<'a>>,
) -> Result<usize, String> {
    let b = line.as_bytes();
    let blanks = |i: usize| match syntax {
        Syntax::Prometheus => skip_blanks(b, i),
        Syntax::OpenMetrics => i,
    };
    let mut pos = blanks(pos + 1);
    if b.get(pos) == Some(&b'}') {
        return Ok(pos + 1);
    }
    loop {
        let name_end = label_name_end(b, pos);
        if name_end == pos {
            return Err(match b.get(pos) {
                None => "unterminated label set: expected `}`".into(),
                Some(b'}') => "trailing comma in the label set".into(),
                Some(b',') => "empty label between commas".into(),
                Some(_) => format!(
                    "bad label name at {:?}: expected [a-zA-Z_][a-zA-Z0-9_]*",
                    &line[pos..]
                ),
            });
        }
        let name = &line[pos..name_end];
        pos = blanks(name_end);
        if b.get(pos) != Some(&b'=') {
            return Err(format!(
                "expected `=` after label name `{name}`, found {}",
                found(line, pos)
            ));
        }
        pos = blanks(pos + 1);
        if b.get(pos) != Some(&b'"') {
            return Err(format!(
                "expected `\"` to open the value of label `{name}`, found {}",
                found(line, pos)
            ));
        }
        let (value, next) = label_value(line, pos + 1, syntax, name)?;
        out.push(Label { name, value });
        pos = blanks(next);
        match b.get(pos) {
            Some(b',') => {
                pos = blanks(pos + 1);
                if syntax == Syntax::Prometheus && b.get(pos) == Some(&b'}') {
                    return Ok(pos + 1);
                }
            }
            Some(b'}') => return Ok(pos + 1),
            _ => {
                return Err(format!(
                    "expected `,` or `}}` after the value of label `{name}`, found {}",
                    found(line, pos)
                ));
            }
        }
    }
}

/// A quoted label value from `start` (after the opening quote); returns
/// the unescaped value and the position after the closing quote.
fn label_value<'a>(
    line: &'a str,
    start: usize,
    syntax: Syntax,
    label: &str,
) -> Result<(Cow<'a, str>, usize), String> {
    let b = line.as_bytes();
    let mut owned: Option<String> = None;
    let mut segment = start;
    let mut i = start;
    loop {
        match b.get(i) {
            None => {
                return Err(format!(
                    "unterminated value of label `{label}`: expected a closing `\"`"
                ));
            }
            Some(b'"') => {
                let value = match owned {
                    None => Cow::Borrowed(&line[start..i]),
                    Some(mut s) => {
                        s.push_str(&line[segment..i]);
                        Cow::Owned(s)
                    }
                };
                return Ok((value, i + 1));
            }
            Some(b'\\') => {
                let unescaped = match b.get(i + 1) {
                    Some(b'\\') => '\\',
                    Some(b'"') => '"',
                    Some(b'n') => '\n',
                    _ if syntax == Syntax::OpenMetrics => {
                        // Not an escape: the backslash stays as written.
                        i += 1;
                        continue;
                    }
                    _ => {
                        return Err(format!(
                            "bad escape `\\{}` in the value of label `{label}`: expected \\\\, \\\" or \\n",
                            line[i + 1..]
                                .chars()
                                .next()
                                .map(String::from)
                                .unwrap_or_default()
                        ));
                    }
                };
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&line[segment..i]);
                s.push(unescaped);
                i += 2;
                segment = i;
            }
            Some(_) => i += 1,
        }
    }
}

/// Sorts labels by name and refuses a repeated name.
fn sort_unique(labels: &mut [Label<'_>]) -> Result<(), String> {
    labels.sort_unstable_by(|a, b| a.name.cmp(b.name));
    match labels.windows(2).find(|w| w[0].name == w[1].name) {
        Some(w) => Err(format!("duplicate label `{}`", w[0].name)),
        None => Ok(()),
    }
}

/// Checks a metric name starts at `pos`; returns where it ends.
fn metric_name(line: &str, pos: usize) -> Result<usize, String> {
    let end = metric_name_end(line.as_bytes(), pos);
    if end == pos {
        let word = line[pos..].split([' ', '\t', '{']).next().unwrap_or("");
        return Err(format!(
            "bad metric name {word:?}: expected [a-zA-Z_:][a-zA-Z0-9_:]*"
        ));
    }
    Ok(end)
}

fn metric_name_end(b: &[u8], pos: usize) -> usize {
    match b.get(pos) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' || *c == b':' => {}
        _ => return pos,
    }
    let mut i = pos + 1;
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
    {
        i += 1;
    }
    i
}

fn label_name_end(b: &[u8], pos: usize) -> usize {
    match b.get(pos) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return pos,
    }
    let mut i = pos + 1;
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        i += 1;
    }
    i
}

/// True for a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub(crate) fn is_label_name(s: &str) -> bool {
    !s.is_empty() && label_name_end(s.as_bytes(), 0) == s.len()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn skip_blanks(b: &[u8], mut pos: usize) -> usize {
    while matches!(b.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// The token from `pos` to the next blank or the end of the line.
fn blank_token(line: &str, pos: usize) -> (&str, usize) {
    let end = line[pos..]
        .find([' ', '\t'])
        .map_or(line.len(), |i| pos + i);
    (&line[pos..end], end)
}

fn char_at(line: &str, pos: usize) -> char {
    line[pos..].chars().next().unwrap_or(' ')
}

fn found(line: &str, pos: usize) -> String {
    if pos >= line.len() {
        "the end of the line".into()
    } else {
        format!("{:?}", char_at(line, pos))
    }
}

fn bad_value(tok: &str) -> String {
    format!("bad value {tok:?}: expected a number (such as 1, -2.5e3, +Inf, NaN)")
}

fn bad_om_timestamp(tok: &str) -> String {
    format!("bad timestamp {tok:?}: expected seconds since the unix epoch as a real number")
}
