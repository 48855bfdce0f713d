// `{{name}}`: a wasmeter alarm rule. Alarms when every point is above the
// parameter `threshold`, is ok when none is, and is equivocal otherwise
// (trending to the last point's state). No points: insufficient data.
//
// ComponentizeJS maps `settings` to an array of [key, value], enums to
// their WIT names ('insufficient-data'), `option<f64>` to a number or
// undefined, record fields to camelCase; a thrown object with a `payload`
// becomes the `err` case of the result.

/** The contract's `error` record, thrown to return `err`. */
class PluginError extends Error {
  constructor(kind, message) {
    super(message);
    this.payload = { kind, message };
  }
}

function threshold(params) {
  // A key given twice counts with its last value.
  const found = params.findLast(([key]) => key === 'threshold');
  if (found === undefined) {
    throw new PluginError('invalid-settings', 'missing setting `threshold`');
  }
  const n = Number(found[1]);
  if (found[1].trim() === '' || Number.isNaN(n)) {
    throw new PluginError(
      'invalid-settings',
      `setting \`threshold\`: expected a number, got ${JSON.stringify(found[1])}`,
    );
  }
  return n;
}

export function init(_settings) {}

export function evaluate(params, input) {
  const limit = threshold(params);
  return input.map(({ values }) => {
    const points = values.length;
    const outside = values.filter((v) => v > limit).length;
    const last = points > 0 ? values[points - 1] : undefined;
    const equivocal = outside !== 0 && outside !== points;
    let state;
    if (last === undefined) state = 'insufficient-data';
    else if (equivocal) state = last > limit ? 'alarm' : 'ok';
    else state = outside === points ? 'alarm' : 'ok';
    return {
      state,
      equivocal,
      points,
      outside,
      mostRecent: last,
      reason: points === 0 ? 'no datapoints' : '',
    };
  });
}
