// `{{name}}`: a wasmeter collector. Emits one gauge `heartbeat` = 1 per
// tick, for the resource named by the setting `resource_id` (default
// `localhost`).
//
// The generated bindings (build/bindings/collector.h) give the types; what
// an export returns is allocated with malloc and freed by the bindings.

#include <stdlib.h>
#include <string.h>

#include "collector.h"

static collector_string_t resource_id;

bool exports_collector_init(collector_settings_t *settings, collector_error_t *err) {
  (void)err;
  collector_string_dup(&resource_id, "localhost");
  for (size_t i = 0; i < settings->len; i++) {
    collector_tuple2_string_string_t *kv = &settings->ptr[i];
    if (kv->f0.len == 11 && memcmp(kv->f0.ptr, "resource_id", 11) == 0) {
      collector_string_free(&resource_id);
      collector_string_dup_n(&resource_id, (const char *)kv->f1.ptr, kv->f1.len);
    }
  }
  collector_settings_free(settings);
  return true;
}

// `now`: the tick's time, ns since the Unix epoch, UTC.
bool exports_collector_collect(int64_t now, collector_batch_t *ret, collector_error_t *err) {
  (void)err;
  wasmeter_plugin_types_series_t *s = calloc(1, sizeof *s);
  collector_string_dup(&s->metric, "heartbeat");
  collector_string_dup_n(&s->resource_id, (const char *)resource_id.ptr, resource_id.len);
  collector_string_dup(&s->unit, "1");
  s->type = WASMETER_PLUGIN_TYPES_SAMPLE_TYPE_GAUGE;
  ret->series.ptr = s;
  ret->series.len = 1;
  ret->series_index.ptr = calloc(1, sizeof(uint32_t));
  ret->series_index.len = 1;
  ret->timestamps.ptr = malloc(sizeof(int64_t));
  ret->timestamps.ptr[0] = now;
  ret->timestamps.len = 1;
  ret->values.ptr = malloc(sizeof(double));
  ret->values.ptr[0] = 1.0;
  ret->values.len = 1;
  return true;
}
