//! `unit-conversion` transformer: `value × scale + offset`, and an optional
//! new unit and metric name.
//!
//! Settings (all optional):
//!
//! | key      | meaning                                   | default   |
//! |----------|-------------------------------------------|-----------|
//! | `scale`  | factor applied first                      | `1`       |
//! | `offset` | added after scaling                       | `0`       |
//! | `unit`   | the unit of the output series             | unchanged |
//! | `metric` | the metric name of the output series      | unchanged |
//!
//! Example: nanoseconds to seconds is `scale = 1e-9`, `unit = "s"`;
//! Celsius to Fahrenheit is `scale = 1.8`, `offset = 32`, `unit = "[degF]"`.

use wasmeter_guest::{Batch, Error, Settings, Transformer, map_values};

/// The plugin's settings, parsed once by `init`.
pub struct UnitConversion {
    scale: f64,
    offset: f64,
    unit: Option<String>,
    metric: Option<String>,
}

impl Transformer for UnitConversion {
    fn init(settings: Settings) -> Result<Self, Error> {
        Ok(UnitConversion {
            scale: settings.f64_or("scale", 1.0)?,
            offset: settings.f64_or("offset", 0.0)?,
            unit: settings.get("unit").map(str::to_owned),
            metric: settings.get("metric").map(str::to_owned),
        })
    }

    fn transform(&mut self, mut batch: Batch) -> Result<Batch, Error> {
        let (scale, offset) = (self.scale, self.offset);
        if offset == 0.0 {
            // `x + 0.0` would turn -0.0 into +0.0: keep the sign bit.
            map_values(&mut batch.values, |v| v * scale);
        } else {
            map_values(&mut batch.values, |v| v * scale + offset);
        }
        for series in &mut batch.series {
            if let Some(unit) = &self.unit {
                series.unit.clone_from(unit);
            }
            if let Some(metric) = &self.metric {
                series.metric.clone_from(metric);
            }
        }
        Ok(batch)
    }
}

wasmeter_guest::export_transformer!(UnitConversion);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmeter_guest::{BatchBuilder, SampleType};

    #[test]
    fn celsius_to_fahrenheit() {
        let mut p = UnitConversion::init(Settings::from(vec![
            ("scale".into(), "1.8".into()),
            ("offset".into(), "32".into()),
            ("unit".into(), "[degF]".into()),
        ]))
        .unwrap();
        let mut b = BatchBuilder::new();
        let s = b.series("temperature", "room", "Cel", SampleType::Gauge, &[]);
        b.push(s, 0, 100.0);
        b.push(s, 1, -40.0);
        let out = p.transform(b.finish()).unwrap();
        assert_eq!(out.values, vec![212.0, -40.0]);
        assert_eq!(out.series[0].unit, "[degF]");
        assert_eq!(out.series[0].metric, "temperature");
    }

    #[test]
    fn bad_scale_is_an_invalid_setting() {
        let err = UnitConversion::init(Settings::from(vec![("scale".into(), "x".into())]))
            .err()
            .unwrap();
        assert_eq!(err.kind, wasmeter_guest::ErrorKind::InvalidSettings);
    }
}
