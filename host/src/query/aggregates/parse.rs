//! The operations grammar: text (s-expression or JSON list) → a tree of
//! atoms and lists with positions → [`Operation`].
//!
//! Both forms are read by the same reader; the JSON form is first checked
//! by serde_json (so it is real JSON), and its strings are decoded by
//! serde_json too.

use super::{BinaryOp, CrossBase, CrossMethod, MetricRef, Operation, QueryError, UnaryOp};
use crate::rollup::AggregationMethod;

/// Parses operations: an s-expression such as
/// `(aggregate mean (metric (a mean) (b mean)))`, or the same as a JSON
/// list, `["aggregate", "mean", ["metric", ["a", "mean"], ["b", "mean"]]]`.
///
/// # Errors
/// [`QueryError::Syntax`] naming the token and its 0-based character
/// offset; [`QueryError::UnknownOperator`] for a name outside the grammar.
pub fn parse(operations: &str) -> Result<Operation, QueryError> {
    let chars: Vec<char> = operations.chars().collect();
    let json = chars.iter().find(|c| !c.is_whitespace()) == Some(&'[');
    if json && let Err(e) = serde_json::from_str::<serde_json::Value>(operations) {
        return Err(QueryError::Syntax {
            position: char_offset(operations, e.line(), e.column()),
            message: format!("invalid JSON: {e}"),
        });
    }
    check_depth(&chars, json)?;
    let mut reader = Reader {
        chars: &chars,
        at: 0,
        json,
    };
    reader.skip_blank();
    if reader.at == chars.len() {
        return Err(syntax(
            0,
            "empty operations; expected e.g. (metric NAME AGG)",
        ));
    }
    let tree = reader.read()?;
    reader.skip_blank();
    if reader.at < chars.len() {
        return Err(syntax(
            reader.at,
            format!(
                "unexpected `{}` after the end of the operations",
                chars[reader.at]
            ),
        ));
    }
    to_operation(&tree)
}

/// Deepest nesting of operations accepted: reading, building and
/// evaluating the tree recurse once per level, so user input must not
/// choose the stack depth.
pub const MAX_DEPTH: usize = 64;

/// Fails at the first list opened deeper than [`MAX_DEPTH`] (outside
/// strings).
fn check_depth(chars: &[char], json: bool) -> Result<(), QueryError> {
    let (open, close) = if json { ('[', ']') } else { ('(', ')') };
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        } else if c == open {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(syntax(
                    i,
                    format!("operations nested deeper than {MAX_DEPTH} levels"),
                ));
            }
        } else if c == close {
            depth = depth.saturating_sub(1);
        }
    }
    Ok(())
}

fn syntax(position: usize, message: impl Into<String>) -> QueryError {
    QueryError::Syntax {
        position,
        message: message.into(),
    }
}

/// serde_json's 1-based line and column → a 0-based character offset.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1);
        }
        offset += l.chars().count() + 1;
    }
    offset
}

/// A node of the text: a list or an atom, with its character offset.
#[derive(Debug)]
enum Node {
    List {
        items: Vec<Node>,
        position: usize,
    },
    Atom {
        text: String,
        /// Written as a string (`"…"`): never a number operand.
        quoted: bool,
        position: usize,
    },
}

impl Node {
    fn position(&self) -> usize {
        match self {
            Node::List { position, .. } | Node::Atom { position, .. } => *position,
        }
    }

    /// How the node reads in an error message.
    fn describe(&self) -> String {
        match self {
            Node::List { .. } => "a list".into(),
            Node::Atom {
                text, quoted: true, ..
            } => format!("\"{text}\""),
            Node::Atom { text, .. } => format!("`{text}`"),
        }
    }
}

struct Reader<'a> {
    chars: &'a [char],
    at: usize,
    /// JSON form: `[ ]` are lists, `,` separates.
    json: bool,
}

impl Reader<'_> {
    fn skip_blank(&mut self) {
        while let Some(&c) = self.chars.get(self.at) {
            if c.is_whitespace() || (self.json && c == ',') {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    fn is_delimiter(&self, c: char) -> bool {
        c.is_whitespace()
            || c == '"'
            || if self.json {
                matches!(c, '[' | ']' | ',' | '{' | '}')
            } else {
                matches!(c, '(' | ')')
            }
    }

    fn read(&mut self) -> Result<Node, QueryError> {
        let (open, close) = if self.json { ('[', ']') } else { ('(', ')') };
        let start = self.at;
        let c = self.chars[start];
        if c == open {
            self.at += 1;
            let mut items = Vec::new();
            loop {
                self.skip_blank();
                match self.chars.get(self.at) {
                    None => {
                        return Err(syntax(
                            start,
                            format!("`{open}` is never closed; expected `{close}`"),
                        ));
                    }
                    Some(&c) if c == close => {
                        self.at += 1;
                        return Ok(Node::List {
                            items,
                            position: start,
                        });
                    }
                    Some(_) => items.push(self.read()?),
                }
            }
        }
        if c == close {
            return Err(syntax(start, format!("unexpected `{close}`")));
        }
        if self.json && matches!(c, '{' | '}') {
            return Err(syntax(start, "a JSON object is not an operation"));
        }
        if c == '"' {
            return self.read_string();
        }
        while let Some(&c) = self.chars.get(self.at) {
            if self.is_delimiter(c) {
                break;
            }
            self.at += 1;
        }
        if self.at == start {
            return Err(syntax(start, format!("unexpected `{c}`")));
        }
        Ok(Node::Atom {
            text: self.chars[start..self.at].iter().collect(),
            quoted: false,
            position: start,
        })
    }

    /// A `"…"` string with JSON's escapes, decoded by serde_json.
    fn read_string(&mut self) -> Result<Node, QueryError> {
        let start = self.at;
        self.at += 1;
        let mut escaped = false;
        loop {
            let Some(&c) = self.chars.get(self.at) else {
                return Err(syntax(
                    start,
                    "unterminated string; expected a closing `\"`",
                ));
            };
            self.at += 1;
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => break,
                _ => escaped = false,
            }
        }
        let raw: String = self.chars[start..self.at].iter().collect();
        let text = serde_json::from_str::<String>(&raw)
            .map_err(|e| syntax(start, format!("invalid string {raw}: {e}")))?;
        Ok(Node::Atom {
            text,
            quoted: true,
            position: start,
        })
    }
}

/// A number as written: optional sign, digits, fraction, exponent (not
/// `nan` or `inf`).
fn number(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let unsigned = unsigned.strip_prefix('.').unwrap_or(unsigned);
    if !unsigned.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn binary_op(name: &str) -> Option<BinaryOp> {
    Some(match name {
        "+" | "add" => BinaryOp::Add,
        "-" | "sub" => BinaryOp::Sub,
        "*" | "mul" => BinaryOp::Mul,
        "/" | "div" => BinaryOp::Div,
        "**" | "pow" => BinaryOp::Pow,
        "%" | "mod" => BinaryOp::Mod,
        "=" | "==" | "eq" => BinaryOp::Eq,
        "!=" | "ne" => BinaryOp::Ne,
        "<" | "lt" => BinaryOp::Lt,
        ">" | "gt" => BinaryOp::Gt,
        "<=" | "le" => BinaryOp::Le,
        ">=" | "ge" => BinaryOp::Ge,
        "clip_min" => BinaryOp::ClipMin,
        "clip_max" => BinaryOp::ClipMax,
        "max" => BinaryOp::Max,
        _ => return None,
    })
}

fn unary_op(name: &str) -> Option<UnaryOp> {
    Some(match name {
        "abs" => UnaryOp::Abs,
        "neg" => UnaryOp::Neg,
        "cos" => UnaryOp::Cos,
        "sin" => UnaryOp::Sin,
        "tan" => UnaryOp::Tan,
        "floor" => UnaryOp::Floor,
        "ceil" => UnaryOp::Ceil,
        _ => return None,
    })
}

/// The text of an atom; an error naming `what` was expected otherwise.
fn atom<'n>(node: &'n Node, what: &str) -> Result<&'n str, QueryError> {
    match node {
        Node::Atom { text, .. } => Ok(text),
        Node::List { position, .. } => {
            Err(syntax(*position, format!("expected {what}, found a list")))
        }
    }
}

fn cross_method(node: &Node) -> Result<CrossMethod, QueryError> {
    let text = atom(node, "an aggregation method")?;
    let (rate, base) = match text.strip_prefix("rate:") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let base = match base {
        "mean" => CrossBase::Mean,
        "median" => CrossBase::Median,
        "std" => CrossBase::Std,
        "var" => CrossBase::Var,
        "min" => CrossBase::Min,
        "max" => CrossBase::Max,
        "sum" => CrossBase::Sum,
        "count" => CrossBase::Count,
        _ => {
            return Err(syntax(
                node.position(),
                format!(
                    "unknown aggregation method `{text}`; expected mean, median, std, var, \
                     min, max, sum, count, or rate: and one of them"
                ),
            ));
        }
    };
    Ok(CrossMethod { rate, base })
}

/// Checks the argument count of `(name args…)`.
fn arity<'n>(
    name: &str,
    items: &'n [Node],
    position: usize,
    shape: &str,
) -> Result<&'n [Node], QueryError> {
    let args = &items[1..];
    let wanted = shape.split_whitespace().count();
    if args.len() != wanted {
        return Err(syntax(
            position,
            format!(
                "`{name}` takes {wanted} argument{}, ({name} {shape}); found {}",
                if wanted == 1 { "" } else { "s" },
                args.len()
            ),
        ));
    }
    Ok(args)
}

fn boxed(node: &Node) -> Result<Box<Operation>, QueryError> {
    to_operation(node).map(Box::new)
}

fn to_operation(node: &Node) -> Result<Operation, QueryError> {
    let (items, position) = match node {
        Node::Atom {
            text,
            quoted: false,
            position,
        } => {
            return match number(text) {
                Some(v) => Ok(Operation::Number(v)),
                None => Err(syntax(
                    *position,
                    format!("expected an operation in parentheses or a number, found `{text}`"),
                )),
            };
        }
        Node::Atom { position, .. } => {
            return Err(syntax(
                *position,
                format!(
                    "expected an operation or a number, found the string {}",
                    node.describe()
                ),
            ));
        }
        Node::List { items, position } => (items, *position),
    };
    let Some(head) = items.first() else {
        return Err(syntax(position, "empty operation; expected a name first"));
    };
    let name = match head {
        Node::Atom { text, .. } if number(text).is_none() => text.as_str(),
        other => {
            return Err(syntax(
                other.position(),
                format!("expected an operation name, found {}", other.describe()),
            ));
        }
    };
    match name {
        "metric" => metric(items, position),
        "aggregate" => {
            let args = arity(name, items, position, "METHOD OPERATION")?;
            Ok(Operation::Aggregate {
                method: cross_method(&args[0])?,
                operand: boxed(&args[1])?,
            })
        }
        "rolling" => {
            let args = arity(name, items, position, "METHOD WINDOW OPERATION")?;
            let method = cross_method(&args[0])?;
            let text = atom(&args[1], "a window (a number of points)")?;
            let window = match number(text) {
                Some(w) if w >= 1.0 && w.fract() == 0.0 && w <= usize::MAX as f64 => w as usize,
                _ => {
                    return Err(syntax(
                        args[1].position(),
                        format!("invalid window `{text}`; expected a whole number of points ≥ 1"),
                    ));
                }
            };
            Ok(Operation::Rolling {
                method,
                window,
                operand: boxed(&args[2])?,
            })
        }
        "resample" => {
            let args = arity(name, items, position, "METHOD GRANULARITY OPERATION")?;
            let text = atom(&args[0], "an aggregation method")?;
            let method = match AggregationMethod::parse(text) {
                Some(m) if !m.rate => m.base,
                _ => {
                    return Err(syntax(
                        args[0].position(),
                        format!(
                            "unknown resample method `{text}`; expected mean, median, std, \
                             min, max, sum, count, first, last or Npct (N in 1..99)"
                        ),
                    ));
                }
            };
            let text = atom(&args[1], "a granularity")?;
            let Ok(granularity) = crate::query::time::parse_granularity(text) else {
                return Err(syntax(
                    args[1].position(),
                    format!(
                        "invalid granularity `{text}`; expected seconds (120) or a duration (2m)"
                    ),
                ));
            };
            Ok(Operation::Resample {
                method,
                granularity,
                operand: boxed(&args[2])?,
            })
        }
        "clip" => {
            let args = arity(name, items, position, "OPERATION MIN MAX")?;
            Ok(Operation::Clip {
                operand: boxed(&args[0])?,
                min: boxed(&args[1])?,
                max: boxed(&args[2])?,
            })
        }
        "rateofchange" => {
            let args = arity(name, items, position, "OPERATION")?;
            Ok(Operation::RateOfChange(boxed(&args[0])?))
        }
        "rateofchangesec" => {
            let args = arity(name, items, position, "OPERATION")?;
            Ok(Operation::RateOfChangeSec(boxed(&args[0])?))
        }
        _ => {
            if let Some(op) = binary_op(name) {
                let args = arity(name, items, position, "LEFT RIGHT")?;
                Ok(Operation::Binary {
                    op,
                    left: boxed(&args[0])?,
                    right: boxed(&args[1])?,
                })
            } else if let Some(op) = unary_op(name) {
                let args = arity(name, items, position, "OPERATION")?;
                Ok(Operation::Unary {
                    op,
                    operand: boxed(&args[0])?,
                })
            } else {
                Err(QueryError::UnknownOperator {
                    name: name.to_string(),
                    position: head.position(),
                })
            }
        }
    }
}

/// `(metric NAME AGG)` or `(metric (NAME AGG) (NAME AGG) …)`.
fn metric(items: &[Node], position: usize) -> Result<Operation, QueryError> {
    let args = &items[1..];
    let usage = "expected (metric NAME AGG) or (metric (NAME AGG) (NAME AGG) …)";
    let pair = |name: &Node, agg: &Node| -> Result<MetricRef, QueryError> {
        Ok(MetricRef {
            name: atom(name, "a metric name")?.to_string(),
            aggregation: atom(agg, "an aggregation method")?.to_string(),
        })
    };
    match args {
        [] => Err(syntax(
            position,
            format!("`metric` without a metric; {usage}"),
        )),
        [Node::Atom { .. }, agg] => Ok(Operation::Metric(vec![pair(&args[0], agg)?])),
        [Node::Atom { .. }, ..] => Err(syntax(
            position,
            format!(
                "`metric` takes a name and a method; found {} argument{}; {usage}",
                args.len(),
                if args.len() == 1 { "" } else { "s" }
            ),
        )),
        lists => lists
            .iter()
            .map(|node| match node {
                Node::List { items, .. } if items.len() == 2 => pair(&items[0], &items[1]),
                other => Err(syntax(
                    other.position(),
                    format!(
                        "expected a (NAME AGG) pair, found {}; {usage}",
                        other.describe()
                    ),
                )),
            })
            .collect::<Result<_, _>>()
            .map(Operation::Metric),
    }
}
