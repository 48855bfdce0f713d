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

// Parses a setting value as the Rust SDK does (`str::trim`, then
// `f64::from_str`): surrounding white space is ignored, hexadecimal is not
// a number.
static bool parse_number(const transformer_string_t *value, double *out) {
  const char *p = (const char *)value->ptr;
  size_t n = value->len;
  while (n > 0 && isspace((unsigned char)p[0])) p++, n--;
  while (n > 0 && isspace((unsigned char)p[n - 1])) n--;
  char buf[128];
  if (n == 0 || n >= sizeof buf || memchr(p, 'x', n) || memchr(p, 'X', n)) return false;
  memcpy(buf, p, n);
  buf[n] = '\0';
  char *end = NULL;
  double v = strtod(buf, &end);
  if (end != buf + n) return false;
  *out = v;
  return true;
}

static bool number_setting(const transformer_tuple2_string_string_t *kv, double *out,
                           transformer_error_t *err) {
  if (kv == NULL || parse_number(&kv->f1, out)) return true;
  char message[256];
  snprintf(message, sizeof message, "setting `%.*s`: expected a number, got \"%.*s\"",
           (int)kv->f0.len, (const char *)kv->f0.ptr, (int)kv->f1.len,
           (const char *)kv->f1.ptr);
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
