// `unit-conversion` transformer in JavaScript: `value × scale + offset`, and
// an optional new unit and metric name. The same plugin as
// plugins/unit-conversion (Rust), built into a component of the
// `wasmeter:plugin/transformer` world by ComponentizeJS (see build.sh).
//
// Settings (all optional):
//
// | key      | meaning                                   | default   |
// |----------|-------------------------------------------|-----------|
// | `scale`  | factor applied first                      | `1`       |
// | `offset` | added after scaling                       | `0`       |
// | `unit`   | the unit of the output series             | unchanged |
// | `metric` | the metric name of the output series      | unchanged |
//
// How ComponentizeJS maps the WIT types used here:
// - `settings` (list<tuple<string, string>>) is an array of [key, value];
// - `batch` is { series, seriesIndex, timestamps, values }: `values`
//   (list<f64>) arrives as a Float64Array, `timestamps` (list<s64>) as a
//   BigInt64Array, `seriesIndex` (list<u32>) as a Uint32Array;
// - `series` is { metric, resourceId, unit, type, attributes };
// - a `result<T, error>` export returns T for `ok`; a thrown value that is
//   not an `Error` (or an `Error` with an own `payload`) becomes the `err`
//   payload, here { kind: 'invalid-settings', message }. Any other thrown
//   `Error` traps the call.

/** The `error` record of the WIT contract, thrown to return `err`. */
class PluginError extends Error {
  constructor(kind, message) {
    super(message);
    // ComponentizeJS lowers an own `payload` property as the `err` value.
    this.payload = { kind, message };
  }
}

// ComponentizeJS's SpiderMonkey is built without ICU, so its regular
// expressions have no `\p{…}`: the Unicode sets are spelled out.
// Rust's `str::trim` trims Unicode White_Space (JS's `trim` also trims U+FEFF).
const EDGE_WHITE_SPACE =
  /^[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
// The grammar of Rust's `f64::from_str`: a sign, then inf, infinity, nan
// (any case) or decimal digits with an optional fraction and exponent.
const RUST_FLOAT = /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)$/i;
// What Rust's `{:?}` writes as `\u{…}` in a string: control, format,
// separator (but the space), private-use and unassigned characters and
// grapheme extenders. Exact for controls, separators and private use; only
// the common format characters, combining marks and noncharacters.
const RUST_UNPRINTABLE =
  /[\0-\x1f\x7f-\xa0\xad\u0300-\u036f\u061c\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ue000-\uf8ff\ufe00-\ufe0f\ufeff\ufff0-\ufffb\ufffe\uffff\u{e0000}-\u{e0fff}\u{f0000}-\u{10ffff}]/u;
const RUST_SHORT_ESCAPES = { '\0': '\\0', '\t': '\\t', '\r': '\\r', '\n': '\\n', '\\': '\\\\', '"': '\\"' };

/** `value` quoted as Rust's `format!("{value:?}")` quotes a `&str`. */
function rustDebugString(value) {
  let out = '"';
  for (const c of value) {
    if (c in RUST_SHORT_ESCAPES) {
      out += RUST_SHORT_ESCAPES[c];
    } else if (RUST_UNPRINTABLE.test(c)) {
      out += `\\u{${c.codePointAt(0).toString(16)}}`;
    } else {
      out += c;
    }
  }
  return out + '"';
}

/** The raw value of `key` (the last one when the key repeats), or undefined. */
function getSetting(settings, key) {
  let found;
  for (const [k, v] of settings) {
    if (k === key) found = v;
  }
  return found;
}

/** An optional number setting, parsed as the Rust guest SDK's `f64_or`. */
function f64Or(settings, key, fallback) {
  const raw = getSetting(settings, key);
  if (raw === undefined) return fallback;
  const text = raw.replace(EDGE_WHITE_SPACE, '');
  if (!RUST_FLOAT.test(text)) {
    throw new PluginError(
      'invalid-settings',
      `setting \`${key}\`: expected a number, got ${rustDebugString(raw)}`,
    );
  }
  const unsigned = text.replace(/^[+-]/, '').toLowerCase();
  const negative = text.startsWith('-');
  if (unsigned === 'nan') return NaN;
  if (unsigned === 'inf' || unsigned === 'infinity') return negative ? -Infinity : Infinity;
  return Number(text);
}

// The settings, set by `init` (one component instance is one stage instance).
let config = null;

export function init(settings) {
  config = {
    scale: f64Or(settings, 'scale', 1),
    offset: f64Or(settings, 'offset', 0),
    unit: getSetting(settings, 'unit'),
    metric: getSetting(settings, 'metric'),
  };
}

export function transform(batch) {
  if (config === null) {
    throw new PluginError('internal', 'transform called before init');
  }
  const { scale, offset, unit, metric } = config;
  const values = batch.values;
  if (offset === 0) {
    // `x * scale + 0` would turn -0 into +0: keep the sign bit.
    for (let i = 0; i < values.length; i++) values[i] *= scale;
  } else {
    for (let i = 0; i < values.length; i++) values[i] = values[i] * scale + offset;
  }
  for (const series of batch.series) {
    if (unit !== undefined) series.unit = unit;
    if (metric !== undefined) series.metric = metric;
  }
  return batch;
}
