//! The parser core: a line-protocol document in, one [`Point`] or
//! [`BadLine`] per line out. The grammar and the checks follow the Go
//! reference (`github.com/influxdata/line-protocol/v2`, whose decode corpus
//! the tests run); the crate docs say why this is not
//! `influxdb-line-protocol`.

use std::fmt;

/// The unit of the timestamps in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Nanoseconds (the default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
        }
    }

    /// The precision a setting names: `ns`, `us` (or `µs`), `ms`, `s`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ns" => Some(Precision::Ns),
            "us" | "µs" => Some(Precision::Us),
            "ms" => Some(Precision::Ms),
            "s" => Some(Precision::S),
            _ => None,
        }
    }

    /// A timestamp of this unit in ns, `None` when that does not fit an i64.
    pub fn to_nanos(self, t: i64) -> Option<i64> {
        t.checked_mul(self.nanos())
    }

    /// `t_ns` rounded down to a whole unit (what the Go reference does to
    /// the default time).
    pub fn truncate(self, t_ns: i64) -> i64 {
        let n = self.nanos();
        t_ns.div_euclid(n) * n
    }
}

/// A field's value, with its line-protocol type.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A float: `1`, `1.5`, `-2e3`, `.5`, `1.`.
    Float(f64),
    /// A signed integer: `12i`.
    Int(i64),
    /// An unsigned integer: `12u`.
    UInt(u64),
    /// A string: `"text"`, unescaped.
    String(String),
    /// A boolean: `t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`,
    /// `False`, `FALSE`.
    Bool(bool),
}

/// One parsed line.
///
/// ```text
/// cpu,host=a,dc=x usage=0.5,count=3i 1700000000
/// └┬┘ └────┬────┘ └───────┬────────┘ └───┬────┘
///  │     tags           fields       timestamp (× precision = time_ns)
/// measurement
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// 1-based number of the line the point starts on.
    pub line: u32,
    /// The measurement, unescaped.
    pub measurement: String,
    /// The tags, unescaped, sorted by key (keys are unique).
    pub tags: Vec<(String, String)>,
    /// The fields, unescaped, in input order.
    pub fields: Vec<(String, FieldValue)>,
    /// The point's time, ns since the Unix epoch: its timestamp × the
    /// precision, or the default time rounded down to the precision.
    pub time_ns: i64,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based number of the line the bad point starts on.
    pub line: u32,
    /// Why, lowercase: names the bad token and what was expected.
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Parses a whole document: one entry per point, in input order. Blank
/// lines and `#` comment lines give none; after a bad line parsing resumes
/// at the next line. `default_time_ns` (rounded down to the precision)
/// stamps points without a timestamp.
///
/// ```
/// use wasmeter_plugin_influx_line::{parse, FieldValue, Precision};
///
/// let doc = b"# a comment\ncpu,host=a v=1i 5\nbad line\n";
/// let out = parse(doc, Precision::S, 0);
/// let p = out[0].as_ref().unwrap();
/// assert_eq!((p.line, p.time_ns), (2, 5_000_000_000));
/// assert_eq!(p.fields, vec![("v".to_string(), FieldValue::Int(1))]);
/// assert_eq!(out[1].as_ref().unwrap_err().line, 3);
/// assert_eq!(out.len(), 2);
/// ```
pub fn parse(
    input: &[u8],
    precision: Precision,
    default_time_ns: i64,
) -> Vec<Result<Point, BadLine>> {
    let default_time_ns = precision.truncate(default_time_ns);
    let mut s = Scanner::new(input);
    let mut out = Vec::new();
    loop {
        s.skip_blank_lines_and_comments();
        if s.peek().is_none() {
            return out;
        }
        let line = s.line_of(s.pos);
        match s.point(precision, default_time_ns) {
            Ok(mut p) => {
                p.line = line;
                out.push(Ok(p));
            }
            Err(reason) => {
                out.push(Err(BadLine { line, reason }));
                s.skip_rest_of_line();
            }
        }
    }
}

/// As [`parse`], but the first bad line fails the whole document.
///
/// # Errors
/// The first bad line.
pub fn parse_strict(
    input: &[u8],
    precision: Precision,
    default_time_ns: i64,
) -> Result<Vec<Point>, BadLine> {
    parse(input, precision, default_time_ns)
        .into_iter()
        .collect()
}

/// Bytes 0–31 and DEL: never part of a name or tag value.
fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Backslash escapes: the bytes a `\` escapes in each kind of token.
const MEASUREMENT_ESCAPES: &[u8] = b", ";
const KEY_ESCAPES: &[u8] = b",= ";
/// And the bytes that end each kind of token.
const MEASUREMENT_ENDS: &[u8] = b", ";
const KEY_ENDS: &[u8] = b",= ";

struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    /// `line_at` newlines precede `line_pos` (a cache for `line_of`).
    line_pos: usize,
    line_at: u32,
}

/// A byte (or the end of the line) as an error message names it.
fn found(b: Option<u8>) -> String {
    match b {
        None | Some(b'\n') => "end of line".to_owned(),
        Some(b) if b.is_ascii() => format!("'{}'", b.escape_ascii()),
        Some(b) => format!("byte 0x{b:02x}"),
    }
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "invalid utf-8 in {what} {:?}",
            String::from_utf8_lossy(e.as_bytes())
        )
    })
}

impl<'a> Scanner<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Scanner {
            buf,
            pos: 0,
            line_pos: 0,
            line_at: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The 1-based line of byte `pos` (`pos` never decreases between
    /// calls).
    fn line_of(&mut self, pos: usize) -> u32 {
        let newlines = self.buf[self.line_pos..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.line_at += u32::try_from(newlines).unwrap_or(u32::MAX);
        self.line_pos = pos;
        self.line_at
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips spaces, CRs and newlines, and whole `#` comment lines.
    fn skip_blank_lines_and_comments(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\r' | b'\n') => self.pos += 1,
                Some(b'#') => self.skip_rest_of_line(),
                _ => return,
            }
        }
    }

    /// Moves past the next newline (or to the end).
    fn skip_rest_of_line(&mut self) {
        match self.buf[self.pos..].iter().position(|&b| b == b'\n') {
            Some(i) => self.pos += i + 1,
            None => self.pos = self.buf.len(),
        }
    }

    /// At the end of a line: `\n`, `\r\n`, a final `\r`, or the end.
    fn at_eol(&self) -> bool {
        match self.peek() {
            None | Some(b'\n') => true,
            Some(b'\r') => matches!(self.buf.get(self.pos + 1), None | Some(b'\n')),
            _ => false,
        }
    }

    /// A measurement, tag key, tag value or field key: printable bytes up
    /// to one of `ends`; `\` before one of `escapes` stands for that byte,
    /// before anything else for itself.
    fn token(&mut self, ends: &[u8], escapes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'\\' {
                match self.buf.get(self.pos + 1) {
                    Some(&e) if escapes.contains(&e) => {
                        out.push(e);
                        self.pos += 2;
                    }
                    _ => {
                        out.push(b'\\');
                        self.pos += 1;
                    }
                }
            } else if ends.contains(&b) || is_control(b) {
                break;
            } else {
                out.push(b);
                self.pos += 1;
            }
        }
        out
    }

    fn point(&mut self, precision: Precision, default_time_ns: i64) -> Result<Point, String> {
        let measurement = self.token(MEASUREMENT_ENDS, MEASUREMENT_ESCAPES);
        if measurement.is_empty() {
            return Err(format!(
                "expected a measurement, found {}",
                found(self.peek())
            ));
        }
        let measurement = utf8(measurement, "measurement")?;

        let mut tags = Vec::new();
        while self.peek() == Some(b',') {
            self.pos += 1;
            tags.push(self.tag()?);
        }
        tags.sort();
        if let Some(w) = tags.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("duplicate tag key {:?}", w[0].0));
        }

        if self.skip_spaces() == 0 || self.at_eol() {
            let after = if tags.is_empty() {
                "measurement"
            } else {
                "tags"
            };
            return Err(format!(
                "expected ' ' and a field set after the {after}, found {}",
                found(self.peek())
            ));
        }
        let mut fields = vec![self.field()?];
        while self.peek() == Some(b',') {
            self.pos += 1;
            fields.push(self.field()?);
        }

        let spaces = self.skip_spaces();
        let time_ns = if self.at_eol() {
            default_time_ns
        } else if spaces == 0 {
            return Err(format!(
                "expected ',', ' ' or end of line after field {:?}, found {}",
                fields.last().map_or("", |f| f.0.as_str()),
                found(self.peek())
            ));
        } else {
            let t = self.timestamp()?;
            self.skip_spaces();
            if !self.at_eol() {
                let rest = self.rest_of_token();
                return Err(format!(
                    "unexpected text {:?} after the timestamp (expected end of line)",
                    String::from_utf8_lossy(rest)
                ));
            }
            precision.to_nanos(t).ok_or_else(|| {
                format!("timestamp {t} out of range: more than an i64 of ns at this precision")
            })?
        };
        // Consume the line end.
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        if self.peek() == Some(b'\n') {
            self.pos += 1;
        }
        Ok(Point {
            line: 0,
            measurement,
            tags,
            fields,
            time_ns,
        })
    }

    /// `key=value` after a `,` of the tag set.
    fn tag(&mut self) -> Result<(String, String), String> {
        let key = self.token(KEY_ENDS, KEY_ESCAPES);
        if key.is_empty() {
            return Err(format!(
                "expected a tag key after ',', found {}",
                found(self.peek())
            ));
        }
        let key = utf8(key, "tag key")?;
        if self.peek() != Some(b'=') {
            return Err(format!(
                "expected '=' after tag key {key:?}, found {}",
                found(self.peek())
            ));
        }
        self.pos += 1;
        let value = self.token(KEY_ENDS, KEY_ESCAPES);
        if value.is_empty() {
            return Err(format!(
                "expected a value for tag {key:?}, found {}",
                found(self.peek())
            ));
        }
        let value = utf8(value, "tag value")?;
        match self.peek() {
            Some(b',' | b' ') => Ok((key, value)),
            _ if self.at_eol() => Ok((key, value)),
            b => Err(format!(
                "expected ',' or ' ' after tag {key:?}, found {}",
                found(b)
            )),
        }
    }

    /// `key=value` of the field set.
    fn field(&mut self) -> Result<(String, FieldValue), String> {
        let key = self.token(KEY_ENDS, KEY_ESCAPES);
        if key.is_empty() {
            return Err(format!(
                "expected a field key, found {}",
                found(self.peek())
            ));
        }
        let key = utf8(key, "field key")?;
        if self.peek() != Some(b'=') {
            return Err(format!(
                "expected '=' after field key {key:?}, found {}",
                found(self.peek())
            ));
        }
        self.pos += 1;
        if self.peek() == Some(b'"') {
            let s = self.string(&key)?;
            return match self.peek() {
                Some(b',' | b' ') => Ok((key, FieldValue::String(s))),
                _ if self.at_eol() => Ok((key, FieldValue::String(s))),
                b => Err(format!(
                    "expected ',', ' ' or end of line after string field {key:?}, found {}",
                    found(b)
                )),
            };
        }
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b' ' | b'\r' | b'\n') {
                break;
            }
            self.pos += 1;
        }
        let token = &self.buf[start..self.pos];
        if token.is_empty() {
            return Err(format!(
                "expected a value for field {key:?}, found {}",
                found(self.peek())
            ));
        }
        let value = field_value(token).map_err(|why| format!("field {key:?}: {why}"))?;
        Ok((key, value))
    }

    /// A quoted string at `"`: `\"`, `\\`, `\n`, `\r`, `\t` are escapes; any
    /// other `\` is itself. Newlines may occur unescaped.
    fn string(&mut self, key: &str) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated string for field {key:?}")),
                Some(b'"') => {
                    self.pos += 1;
                    return utf8(out, "string field");
                }
                Some(b'\\') => {
                    let escaped = match self.buf.get(self.pos + 1) {
                        Some(b'"') => Some(b'"'),
                        Some(b'\\') => Some(b'\\'),
                        Some(b'n') => Some(b'\n'),
                        Some(b'r') => Some(b'\r'),
                        Some(b't') => Some(b'\t'),
                        _ => None,
                    };
                    match escaped {
                        Some(e) => {
                            out.push(e);
                            self.pos += 2;
                        }
                        None => {
                            out.push(b'\\');
                            self.pos += 1;
                        }
                    }
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// The bytes up to the next space or line end.
    fn rest_of_token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'\r' | b'\n') {
                break;
            }
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    /// An integer timestamp: `-?[0-9]+`.
    fn timestamp(&mut self) -> Result<i64, String> {
        let token = self.rest_of_token();
        let text = String::from_utf8_lossy(token);
        if !is_integer(token, true) {
            return Err(format!("invalid timestamp {text:?} (expected an integer)"));
        }
        text.parse()
            .map_err(|_| format!("timestamp {text} out of range (more than an i64)"))
    }
}

/// `[0-9]+`, with an optional leading `-` when `signed`.
fn is_integer(token: &[u8], signed: bool) -> bool {
    let digits = match token {
        [b'-', rest @ ..] if signed => rest,
        _ => token,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// A decimal float as Go's `strconv.ParseFloat` reads one (minus hex,
/// `inf`, `nan` and `+`, which the line-protocol grammar does not start a
/// number with): `-?`, digits with at most one `.` (at least one digit),
/// then optionally `e`/`E`, a sign and digits.
fn is_float(token: &[u8]) -> bool {
    let mut i = usize::from(token.first() == Some(&b'-'));
    let mut digits = 0;
    while token.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
        digits += 1;
    }
    if token.get(i) == Some(&b'.') {
        i += 1;
        while token.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if matches!(token.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(token.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while token.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == token.len()
}

/// A non-string field value; the error names the token.
fn field_value(token: &[u8]) -> Result<FieldValue, String> {
    let text = String::from_utf8_lossy(token);
    let invalid = |what: &str| format!("{what} {text:?}");
    match token[0] {
        b't' | b'T' | b'f' | b'F' => match &*text {
            "t" | "T" | "true" | "True" | "TRUE" => Ok(FieldValue::Bool(true)),
            "f" | "F" | "false" | "False" | "FALSE" => Ok(FieldValue::Bool(false)),
            _ => Err(invalid("invalid boolean")
                + " (expected t, T, true, True, TRUE, f, F, false, False or FALSE)"),
        },
        b'0'..=b'9' | b'-' | b'.' => {
            if let Some(body) = text.strip_suffix('i') {
                if !is_integer(body.as_bytes(), true) {
                    return Err(invalid("invalid integer"));
                }
                body.parse()
                    .map(FieldValue::Int)
                    .map_err(|_| invalid("integer out of range (i64):"))
            } else if let Some(body) = text.strip_suffix('u') {
                if !is_integer(body.as_bytes(), false) {
                    return Err(invalid("invalid unsigned integer"));
                }
                body.parse()
                    .map(FieldValue::UInt)
                    .map_err(|_| invalid("unsigned integer out of range (u64):"))
            } else {
                if !is_float(token) {
                    return Err(invalid("invalid float"));
                }
                match text.parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(FieldValue::Float(f)),
                    _ => Err(invalid("float out of range (f64):")),
                }
            }
        }
        _ => {
            Err(invalid("invalid value")
                + " (expected a number, 1i, 1u, a boolean or a quoted string)")
        }
    }
}
