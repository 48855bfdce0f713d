// `{{name}}`: a wasmeter alarm rule. Alarms when every point is above the
// parameter `threshold`, is ok when none is, and is equivocal otherwise
// (trending to the last point's state). No points: insufficient data.
//
// The generated bindings (build/bindings/alarm_rule.h) give the types;
// arguments of an export are the callee's to free, what it returns is
// allocated with malloc and freed by the bindings.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm_rule.h"

static void fail(alarm_rule_error_t *err, const char *message) {
  err->kind = WASMETER_PLUGIN_TYPES_ERROR_KIND_INVALID_SETTINGS;
  alarm_rule_string_dup(&err->message, message);
}

static bool threshold(const alarm_rule_settings_t *params, double *out, alarm_rule_error_t *err) {
  // A key given twice counts with its last value.
  for (size_t i = params->len; i-- > 0;) {
    const alarm_rule_tuple2_string_string_t *kv = &params->ptr[i];
    if (kv->f0.len != 9 || memcmp(kv->f0.ptr, "threshold", 9) != 0) continue;
    char buf[64] = {0};
    char *end = NULL;
    if (kv->f1.len > 0 && kv->f1.len < sizeof buf) {
      memcpy(buf, kv->f1.ptr, kv->f1.len);
      *out = strtod(buf, &end);
    }
    if (end != NULL && end != buf && *end == '\0') return true;
    char message[128];
    snprintf(message, sizeof message, "setting `threshold`: expected a number, got \"%.*s\"",
             (int)kv->f1.len, (const char *)kv->f1.ptr);
    fail(err, message);
    return false;
  }
  fail(err, "missing setting `threshold`");
  return false;
}

bool exports_alarm_rule_init(alarm_rule_settings_t *settings, alarm_rule_error_t *err) {
  (void)err;
  alarm_rule_settings_free(settings);
  return true;
}

bool exports_alarm_rule_evaluate(alarm_rule_settings_t *params,
                                 alarm_rule_list_series_aggregates_t *input,
                                 alarm_rule_list_evaluation_t *ret, alarm_rule_error_t *err) {
  double limit = 0;
  bool ok = threshold(params, &limit, err);
  alarm_rule_settings_free(params);
  if (!ok) {
    alarm_rule_list_series_aggregates_free(input);
    return false;
  }
  ret->len = input->len;
  ret->ptr = input->len ? calloc(input->len, sizeof *ret->ptr) : NULL;
  if (input->len && ret->ptr == NULL) {
    err->kind = WASMETER_PLUGIN_TYPES_ERROR_KIND_INTERNAL;
    alarm_rule_string_dup(&err->message, "out of memory");
    alarm_rule_list_series_aggregates_free(input);
    return false;
  }
  for (size_t i = 0; i < input->len; i++) {
    const alarm_rule_list_f64_t *values = &input->ptr[i].values;
    wasmeter_plugin_alarm_evaluation_t *e = &ret->ptr[i];
    uint32_t outside = 0;
    for (size_t j = 0; j < values->len; j++) outside += values->ptr[j] > limit;
    e->points = (uint32_t)values->len;
    e->outside = outside;
    e->equivocal = outside != 0 && outside != e->points;
    if (values->len == 0) {
      e->state = WASMETER_PLUGIN_ALARM_STATE_INSUFFICIENT_DATA;
      alarm_rule_string_dup(&e->reason, "no datapoints");
      continue;
    }
    double last = values->ptr[values->len - 1];
    e->most_recent.is_some = true;
    e->most_recent.val = last;
    bool alarm = e->equivocal ? last > limit : outside == e->points;
    e->state = alarm ? WASMETER_PLUGIN_ALARM_STATE_ALARM : WASMETER_PLUGIN_ALARM_STATE_OK;
  }
  alarm_rule_list_series_aggregates_free(input);
  return true;
}
