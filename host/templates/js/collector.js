// `{{name}}`: a wasmeter collector. Emits one gauge `heartbeat` = 1 per
// tick, for the resource named by the setting `resource_id` (default
// `localhost`).
//
// ComponentizeJS maps `settings` to an array of [key, value], `s64` to
// BigInt, `list<f64>` to a Float64Array, record fields to camelCase.

let resourceId = 'localhost';

export function init(settings) {
  for (const [key, value] of settings) {
    if (key === 'resource_id') resourceId = value;
  }
}

/** `now`: the tick's time, ns since the Unix epoch, UTC (a BigInt). */
export function collect(now) {
  return {
    series: [{ metric: 'heartbeat', resourceId, unit: '1', type: 'gauge', attributes: [] }],
    seriesIndex: Uint32Array.of(0),
    timestamps: BigInt64Array.of(now),
    values: Float64Array.of(1),
  };
}
