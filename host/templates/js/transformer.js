// `{{name}}`: a wasmeter transformer. Multiplies every value by the setting
// `factor` (default 1).
//
// ComponentizeJS maps `settings` to an array of [key, value], the batch's
// `values` to a Float64Array, record fields to camelCase; a thrown object
// with a `payload` becomes the `err` case of the result.

/** The contract's `error` record, thrown to return `err`. */
class PluginError extends Error {
  constructor(kind, message) {
    super(message);
    this.payload = { kind, message };
  }
}

let factor = 1;

export function init(settings) {
  // A key given twice counts with its last value.
  const found = settings.findLast(([key]) => key === 'factor');
  if (found !== undefined) {
    const value = found[1];
    const n = value.trim() === '' ? NaN : Number(value);
    if (Number.isNaN(n) && value.trim().toLowerCase() !== 'nan') {
      throw new PluginError(
        'invalid-settings',
        `setting \`factor\`: expected a number, got ${JSON.stringify(value)}`,
      );
    }
    factor = n;
  }
}

/** One call per batch: the values are one column, changed in place. */
export function transform(batch) {
  const values = batch.values;
  for (let i = 0; i < values.length; i++) values[i] *= factor;
  return batch;
}
