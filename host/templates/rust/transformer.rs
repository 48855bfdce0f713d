//! `{{name}}`: a wasmeter transformer. Multiplies every value by the
//! setting `factor` (default 1).

use wasmeter_guest::{Batch, Error, Settings, Transformer, map_values};

struct Plugin {
    factor: f64,
}

impl Transformer for Plugin {
    fn init(settings: Settings) -> Result<Self, Error> {
        Ok(Plugin {
            factor: settings.f64_or("factor", 1.0)?,
        })
    }

    /// One call per batch: the values are one column, change them in place
    /// (`map_values` runs eight at a time, with WebAssembly SIMD).
    fn transform(&mut self, mut batch: Batch) -> Result<Batch, Error> {
        let factor = self.factor;
        map_values(&mut batch.values, |v| v * factor);
        Ok(batch)
    }
}

wasmeter_guest::export_transformer!(Plugin);
