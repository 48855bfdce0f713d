// unit-conversion transformer in C: `value × scale + offset`, and an
// optional new unit and metric name. The same plugin, settings and errors
// as plugins/unit-conversion (Rust); tests/e2e/polyglot.rs proves them
// equal on one batch.
//
// Settings (all optional): scale (default 1), offset (default 0), unit,
// metric. Bindings: `wasmeter plugin bindings --world transformer`.

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transformer.h"

static double scale = 1.0;
static double offset = 0.0;
static transformer_string_t unit;   // when has_unit
static transformer_string_t metric; // when has_metric
static bool has_unit = false;
static bool has_metric = false;

static bool key_is(const transformer_string_t *key, const char *name) {
  size_t n = strlen(name);
  return key->len == n && memcmp(key->ptr, name, n) == 0;
}

static void fail(transformer_error_t *err, wasmeter_plugin_types_error_kind_t kind,
                 const char *message) {
  err->kind = kind;
  transformer_string_dup(&err->message, message);
}

// Bytes of Unicode White_Space (what Rust's `str::trim` strips) that start
// at `p` (at most `n` bytes), or 0.
static size_t space_at(const unsigned char *p, size_t n) {
  if (n >= 1 && (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r'))) return 1;
  if (n >= 2 && p[0] == 0xC2 && (p[1] == 0x85 || p[1] == 0xA0)) return 2;
  if (n >= 3 && p[0] == 0xE1 && p[1] == 0x9A && p[2] == 0x80) return 3;
  if (n >= 3 && p[0] == 0xE2 && p[1] == 0x80 &&
      ((p[2] >= 0x80 && p[2] <= 0x8A) || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF))
    return 3;
  if (n >= 3 && p[0] == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) return 3;
  if (n >= 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) return 3;
  return 0;
}

// Bytes of White_Space that end at `p + n`, or 0.
static size_t space_before(const unsigned char *p, size_t n) {
  for (size_t k = 1; k <= 3 && k <= n; k++) {
    if (space_at(p + n - k, k) == k) return k;
  }
  return 0;
}

static bool word_is(const char *p, size_t n, const char *word) {
  if (n != strlen(word)) return false;
  for (size_t i = 0; i < n; i++) {
    if (tolower((unsigned char)p[i]) != word[i]) return false;
  }
  return true;
}

// True when `p[..n]` is in the grammar of Rust's `f64::from_str`: a sign,
// then inf, infinity or nan (any case), or decimal digits with an optional
// point and exponent (at least one digit before the exponent).
static bool rust_float(const char *p, size_t n) {
  size_t i = 0;
  if (i < n && (p[i] == '+' || p[i] == '-')) i++;
  if (word_is(p + i, n - i, "inf") || word_is(p + i, n - i, "infinity") ||
      word_is(p + i, n - i, "nan"))
    return true;
  size_t digits = 0;
  while (i < n && isdigit((unsigned char)p[i])) i++, digits++;
  if (i < n && p[i] == '.') {
    i++;
    while (i < n && isdigit((unsigned char)p[i])) i++, digits++;
  }
  if (digits == 0) return false;
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    size_t exp = 0;
    while (i < n && isdigit((unsigned char)p[i])) i++, exp++;
    if (exp == 0) return false;
  }
  return i == n;
}

// Parses a setting value as the Rust SDK does: `str::trim`, then
// `f64::from_str`.
static bool parse_number(const transformer_string_t *value, double *out) {
  const unsigned char *p = value->ptr;
  size_t n = value->len, k;
  while ((k = space_at(p, n)) > 0) p += k, n -= k;
  while ((k = space_before(p, n)) > 0) n -= k;
  if (!rust_float((const char *)p, n)) return false;
  char *text = malloc(n + 1);
  if (text == NULL) return false;
  memcpy(text, p, n);
  text[n] = '\0';
  *out = strtod(text, NULL);
  free(text);
  return true;
}

// Appends `value` to `out` quoted as Rust's `{:?}` quotes a string: `\"`,
// `\\`, `\0`, `\t`, `\r`, `\n`, and other control characters as `\u{…}`.
static void quote(const transformer_string_t *value, char *out, size_t size) {
  size_t o = 0;
  out[o++] = '"';
  for (size_t i = 0; i < value->len && o + 12 < size; i++) {
    unsigned char c = value->ptr[i];
    const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\0' ? "\\0"
                      : c == '\t' ? "\\t" : c == '\r' ? "\\r" : c == '\n' ? "\\n" : NULL;
    if (esc != NULL) {
      o += (size_t)snprintf(out + o, size - o, "%s", esc);
    } else if (c < 0x20 || c == 0x7F) {
      o += (size_t)snprintf(out + o, size - o, "\\u{%x}", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = '"';
  out[o] = '\0';
}

static bool number_setting(const transformer_tuple2_string_string_t *kv, double *out,
                           transformer_error_t *err) {
  if (kv == NULL || parse_number(&kv->f1, out)) return true;
  char quoted[1024];
  quote(&kv->f1, quoted, sizeof quoted);
  char message[1100];
  snprintf(message, sizeof message, "setting `%.*s`: expected a number, got %s", (int)kv->f0.len,
           (const char *)kv->f0.ptr, quoted);
  fail(err, WASMETER_PLUGIN_TYPES_ERROR_KIND_INVALID_SETTINGS, message);
  return false;
}

bool exports_transformer_init(transformer_settings_t *settings, transformer_error_t *err) {
  // A key given twice counts with its last value, as in the Rust SDK.
  transformer_tuple2_string_string_t *scale_kv = NULL, *offset_kv = NULL;
  for (size_t i = 0; i < settings->len; i++) {
    transformer_tuple2_string_string_t *kv = &settings->ptr[i];
    if (key_is(&kv->f0, "scale")) {
      scale_kv = kv;
    } else if (key_is(&kv->f0, "offset")) {
      offset_kv = kv;
    } else if (key_is(&kv->f0, "unit")) {
      if (has_unit) transformer_string_free(&unit);
      transformer_string_dup_n(&unit, (const char *)kv->f1.ptr, kv->f1.len);
      has_unit = true;
    } else if (key_is(&kv->f0, "metric")) {
      if (has_metric) transformer_string_free(&metric);
      transformer_string_dup_n(&metric, (const char *)kv->f1.ptr, kv->f1.len);
      has_metric = true;
    }
  }
  bool ok = number_setting(scale_kv, &scale, err) && number_setting(offset_kv, &offset, err);
  transformer_settings_free(settings);
  return ok;
}

bool exports_transformer_transform(transformer_batch_t *input, transformer_batch_t *ret,
                                   transformer_error_t *err) {
  (void)err;
  double *v = input->values.ptr;
  size_t n = input->values.len;
  if (offset == 0.0) {
    // `x + 0.0` would turn -0.0 into +0.0: keep the sign bit.
    for (size_t i = 0; i < n; i++) v[i] *= scale;
  } else {
    for (size_t i = 0; i < n; i++) v[i] = v[i] * scale + offset;
  }
  for (size_t i = 0; i < input->series.len; i++) {
    wasmeter_plugin_types_series_t *s = &input->series.ptr[i];
    if (has_unit) {
      transformer_string_free(&s->unit);
      transformer_string_dup_n(&s->unit, (const char *)unit.ptr, unit.len);
    }
    if (has_metric) {
      transformer_string_free(&s->metric);
      transformer_string_dup_n(&s->metric, (const char *)metric.ptr, metric.len);
    }
  }
  // The input batch is ours; hand it back as the output.
  *ret = *input;
  return true;
}
