// `{{name}}`: a wasmeter transformer. Multiplies every value by the setting
// `factor` (default 1).
//
// The generated bindings (build/bindings/transformer.h) give the types;
// arguments of an export are the callee's to free or to hand back.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transformer.h"

static double factor = 1.0;

bool exports_transformer_init(transformer_settings_t *settings, transformer_error_t *err) {
  // A key given twice counts with its last value.
  const transformer_tuple2_string_string_t *kv = NULL;
  for (size_t i = 0; i < settings->len; i++) {
    const transformer_string_t *key = &settings->ptr[i].f0;
    if (key->len == 6 && memcmp(key->ptr, "factor", 6) == 0) kv = &settings->ptr[i];
  }
  bool ok = true;
  if (kv != NULL) {
    char buf[64] = {0};
    char *end = NULL;
    if (kv->f1.len > 0 && kv->f1.len < sizeof buf) {
      memcpy(buf, kv->f1.ptr, kv->f1.len);
      factor = strtod(buf, &end);
    }
    if (end == NULL || end == buf || *end != '\0') {
      char message[128];
      snprintf(message, sizeof message, "setting `factor`: expected a number, got \"%.*s\"",
               (int)kv->f1.len, (const char *)kv->f1.ptr);
      err->kind = WASMETER_PLUGIN_TYPES_ERROR_KIND_INVALID_SETTINGS;
      transformer_string_dup(&err->message, message);
      ok = false;
    }
  }
  transformer_settings_free(settings);
  return ok;
}

// One call per batch: the values are one column, changed in place, and the
// input batch is handed back as the output.
bool exports_transformer_transform(transformer_batch_t *input, transformer_batch_t *ret,
                                   transformer_error_t *err) {
  (void)err;
  for (size_t i = 0; i < input->values.len; i++) input->values.ptr[i] *= factor;
  *ret = *input;
  return true;
}
