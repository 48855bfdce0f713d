"""`unit-conversion` transformer in Python: `value * scale + offset`, and an
optional new unit and metric name. The same plugin as plugins/unit-conversion
(Rust), built into a component of the `transformer` world by componentize-py
(see build.sh).

Settings (all optional; unknown keys are ignored, as in the Rust plugin; a key
given twice counts with its last value):

| key      | meaning                              | default   |
|----------|--------------------------------------|-----------|
| `scale`  | factor applied first                 | `1`       |
| `offset` | added after scaling                  | `0`       |
| `unit`   | the unit of the output series        | unchanged |
| `metric` | the metric name of the output series | unchanged |

A `scale` or `offset` that is not a number fails `init` with an
`invalid-settings` error worded as the Rust guest SDK words it:
"setting `scale`: expected a number, got \"x\"".
"""

import re
from typing import List, Optional, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Batch, Error, ErrorKind

try:
    import unicodedata
except ImportError:  # pragma: no cover - the bundled stdlib has it
    unicodedata = None

# Rust's `f64::from_str` grammar (what the Rust SDK accepts): an optional sign,
# then inf, infinity or nan (any case), or decimal digits with an optional
# point and exponent. Python's float() would also take `1_000` and non-ASCII
# digits, which the Rust plugin refuses.
_NUMBER = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)",
    re.ASCII | re.IGNORECASE,
)

# Unicode White_Space, what Rust's `str::trim` strips (str.strip() would also
# strip U+001C..U+001F).
_WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

_ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"'}
_NOT_PRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))


def _rust_debug(s: str) -> str:
    """`s` quoted as Rust's `{:?}` prints a string (close enough: Rust's own
    Unicode tables decide what is printable)."""
    out = ['"']
    for c in s:
        esc = _ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif " " <= c <= "~":
            out.append(c)
        elif unicodedata is None:
            out.append(c if c.isprintable() else "\\u{%x}" % ord(c))
        else:
            cat = unicodedata.category(c)
            if (cat in _NOT_PRINTABLE and c != " ") or cat in ("Mn", "Me"):
                out.append("\\u{%x}" % ord(c))
            else:
                out.append(c)
    out.append('"')
    return "".join(out)


def _invalid_settings(message: str) -> Err:
    return Err(Error(kind=ErrorKind.INVALID_SETTINGS, message=message))


def _get(settings: List[Tuple[str, str]], key: str) -> Optional[str]:
    """The value of `key`, the last one when the key repeats."""
    for k, v in reversed(settings):
        if k == key:
            return v
    return None


def _f64_or(settings: List[Tuple[str, str]], key: str, default: float) -> float:
    v = _get(settings, key)
    if v is None:
        return default
    t = v.strip(_WHITE_SPACE)
    if _NUMBER.fullmatch(t) is None:
        raise _invalid_settings(f"setting `{key}`: expected a number, got {_rust_debug(v)}")
    return float(t)


# The settings, parsed once by `init`. Module state, not instance state: it
# does not matter whether the bindings make one `WitWorld` or one per call.
_scale = 1.0
_offset = 0.0
_unit: Optional[str] = None
_metric: Optional[str] = None


class WitWorld(wit_world.WitWorld):
    def init(self, settings: List[Tuple[str, str]]) -> None:
        global _scale, _offset, _unit, _metric
        scale = _f64_or(settings, "scale", 1.0)
        offset = _f64_or(settings, "offset", 0.0)
        _scale, _offset = scale, offset
        _unit = _get(settings, "unit")
        _metric = _get(settings, "metric")

    def transform(self, input: Batch) -> Batch:
        scale, offset = _scale, _offset
        if offset == 0.0:
            # `x + 0.0` would turn -0.0 into +0.0: keep the sign bit.
            if scale != 1.0:  # x * 1.0 is x
                input.values = [v * scale for v in input.values]
        else:
            input.values = [v * scale + offset for v in input.values]
        unit, metric = _unit, _metric
        if unit is not None or metric is not None:
            for series in input.series:
                if unit is not None:
                    series.unit = unit
                if metric is not None:
                    series.metric = metric
        return input
