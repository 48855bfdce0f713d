//! `rate-of-change` transformer: counters to rates per second, with
//! Ceilometer's `rate_of_change` rules.
//!
//! For each series (metric, resource_id, attributes), every sample after the
//! first gives one output sample at its own timestamp:
//!
//! ```text
//! rate = Δv / Δt        Δt = t − t_prev in seconds
//! out  = min(rate × scale, max)
//!
//! cumulative:  Δv = v − v_prev, or v when v < v_prev (a counter reset, counted from 0)
//! gauge:       Δv = v − v_prev (may be negative)
//! delta:       Δv = v (the sample already is the change since the previous one)
//! ```
//!
//! - The first sample of a series gives no output (it has no predecessor).
//! - A sample whose timestamp is not after the previous one's (time going
//!   backwards, or a repeat) is dropped, counted and logged (a warning per
//!   batch with the count in it and the total so far); the previous sample
//!   stays the reference.
//! - NaN propagates: a NaN value gives a NaN rate, and so does the sample
//!   after it.
//!
//! Example: a cumulative series `0 1 2 3 2 3 4` at 10 s steps gives
//! `0.1 0.1 0.1 0.2 0.1 0.1`: the reset to 2 counts as an increase of 2, so
//! the total increase is 7.
//!
//! The output series are the input ones with type `gauge`, unit
//! `<unit>/s` (`1/s` for an empty unit) and the same metric, unless the
//! settings say otherwise:
//!
//! | key      | meaning                                         | default      |
//! |----------|-------------------------------------------------|--------------|
//! | `scale`  | factor applied to the rate                      | `1`          |
//! | `max`    | cap on the scaled rate                          | none         |
//! | `unit`   | the unit of the output series                   | `<unit>/s`   |
//! | `metric` | the metric name of the output series            | unchanged    |
//!
//! E.g. CPU utilisation in % from `cpu.time` (seconds): `scale = 100`,
//! `unit = "%"`, `metric = "cpu.util"`.
//!
//! State (the previous sample of each series) lives in the plugin instance,
//! so it carries over from batch to batch and across config reloads that
//! keep the stage unchanged (the host keeps the instance). A series' state
//! is made once, when the series is first seen; after that a batch costs one
//! hash lookup per distinct series and no allocation per sample.
//!
//! Deliberate differences from Ceilometer: the series key includes the
//! attributes (Ceilometer keys on name and resource only, which would mix
//! `cpu.time` of different CPUs and modes); Δt = 0 is dropped like time going
//! backwards (Ceilometer emits a rate of 0); a delta sample's rate is `v / Δt`
//! (Ceilometer subtracts the previous delta).

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use wasmeter_guest::{Batch, Error, Level, SampleType, Series, Settings, Transformer};

/// The transformer: its settings and the state of every series seen.
pub struct RateOfChange {
    scale: f64,
    max: Option<f64>,
    unit: Option<String>,
    metric: Option<String>,
    /// Series identity → index into `previous`.
    slots: HashMap<SeriesKey, usize>,
    /// The last accepted `(timestamp ns, value)` of each series.
    previous: Vec<Option<(i64, f64)>>,
    /// Scratch, per batch: the slot of each entry of the batch's series table.
    batch_slots: Vec<usize>,
    /// Samples dropped because their time did not advance, since init.
    dropped_total: u64,
}

/// A series' identity, owned (the map's key).
#[derive(Debug)]
struct SeriesKey {
    metric: String,
    resource_id: String,
    attributes: Vec<(String, String)>,
}

/// A series' identity, borrowed from a batch (the lookup key). Hashes
/// exactly as the owned [`SeriesKey`] does.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SeriesRef<'a> {
    metric: &'a str,
    resource_id: &'a str,
    attributes: &'a [(String, String)],
}

impl SeriesKey {
    fn as_ref(&self) -> SeriesRef<'_> {
        SeriesRef {
            metric: &self.metric,
            resource_id: &self.resource_id,
            attributes: &self.attributes,
        }
    }
}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for SeriesKey {}

impl Equivalent<SeriesKey> for SeriesRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        *self == key.as_ref()
    }
}

impl<'a> From<&'a Series> for SeriesRef<'a> {
    fn from(s: &'a Series) -> Self {
        SeriesRef {
            metric: &s.metric,
            resource_id: &s.resource_id,
            attributes: &s.attributes,
        }
    }
}

impl RateOfChange {
    /// The state slot of `series`, made on first sight.
    fn slot(&mut self, series: &Series) -> usize {
        let key = SeriesRef::from(series);
        if let Some(&slot) = self.slots.get(&key) {
            return slot;
        }
        let slot = self.previous.len();
        self.previous.push(None);
        self.slots.insert(
            SeriesKey {
                metric: series.metric.clone(),
                resource_id: series.resource_id.clone(),
                attributes: series.attributes.clone(),
            },
            slot,
        );
        slot
    }

    /// Number of series with state.
    pub fn series_count(&self) -> usize {
        self.previous.len()
    }

    /// Samples dropped since init because their time did not advance.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

/// Ns to s.
const NS_PER_S: f64 = 1e9;

impl Transformer for RateOfChange {
    fn init(settings: Settings) -> Result<Self, Error> {
        let max = match settings.get("max") {
            None => None,
            Some(_) => Some(settings.f64("max")?),
        };
        Ok(RateOfChange {
            scale: settings.f64_or("scale", 1.0)?,
            max,
            unit: settings.get("unit").map(str::to_owned),
            metric: settings.get("metric").map(str::to_owned),
            slots: HashMap::new(),
            previous: Vec::new(),
            batch_slots: Vec::new(),
            dropped_total: 0,
        })
    }

    fn transform(&mut self, mut batch: Batch) -> Result<Batch, Error> {
        let mut batch_slots = std::mem::take(&mut self.batch_slots);
        batch_slots.clear();
        for series in &mut batch.series {
            // The identity is canonical with attributes sorted by key (the
            // host sorts them already; this is a no-op then).
            series.attributes.sort_unstable();
            batch_slots.push(self.slot(series));
        }

        // Compact the columns in place: output row `w` ≤ input row `r`.
        let n = batch.values.len();
        let mut w = 0;
        let mut dropped = 0u64;
        let mut first_dropped = None;
        for r in 0..n {
            let index = batch.series_index[r];
            let Some(&slot) = batch_slots.get(index as usize) else {
                self.batch_slots = batch_slots;
                return Err(Error::invalid_input(format!(
                    "row {r}: series index {index} out of range ({} series)",
                    batch.series.len()
                )));
            };
            let (t, v) = (batch.timestamps[r], batch.values[r]);
            let previous = &mut self.previous[slot];
            let Some((t0, v0)) = *previous else {
                *previous = Some((t, v));
                continue;
            };
            if t <= t0 {
                dropped += 1;
                first_dropped.get_or_insert((index, t, t0));
                continue;
            }
            *previous = Some((t, v));
            let dv = match batch.series[index as usize].type_ {
                SampleType::Cumulative if v < v0 => v,
                SampleType::Delta => v,
                _ => v - v0,
            };
            let dt = t.abs_diff(t0) as f64 / NS_PER_S;
            let mut out = dv / dt * self.scale;
            if let Some(max) = self.max
                && out > max
            {
                out = max;
            }
            batch.series_index[w] = index;
            batch.timestamps[w] = t;
            batch.values[w] = out;
            w += 1;
        }
        batch.series_index.truncate(w);
        batch.timestamps.truncate(w);
        batch.values.truncate(w);
        self.batch_slots = batch_slots;

        if let Some((index, t, t0)) = first_dropped {
            self.dropped_total += dropped;
            let s = &batch.series[index as usize];
            wasmeter_guest::log(
                Level::Warn,
                &format!(
                    "dropped {dropped} samples whose time did not advance ({} since start); first: {} {} {:?} at {t} ns, not after {t0} ns",
                    self.dropped_total, s.metric, s.resource_id, s.attributes
                ),
            );
        }

        for series in &mut batch.series {
            series.type_ = SampleType::Gauge;
            match &self.unit {
                Some(unit) => series.unit.clone_from(unit),
                None if series.unit.is_empty() => series.unit.push_str("1/s"),
                None => series.unit.push_str("/s"),
            }
            if let Some(metric) = &self.metric {
                series.metric.clone_from(metric);
            }
        }
        Ok(batch)
    }
}

wasmeter_guest::export_transformer!(RateOfChange);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmeter_guest::BatchBuilder;

    fn plugin(settings: &[(&str, &str)]) -> RateOfChange {
        RateOfChange::init(Settings::from(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        ))
        .unwrap()
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_reset_counts_from_zero() {
        let mut p = plugin(&[]);
        let mut b = BatchBuilder::new();
        let s = b.series("bytes", "r", "B", SampleType::Cumulative, &[]);
        for (i, v) in [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
            b.push(s, i as i64 * 10 * S, v);
        }
        let out = p.transform(b.finish()).unwrap();
        assert_eq!(out.values, vec![0.1, 0.1, 0.1, 0.2, 0.1, 0.1]);
        assert_eq!(
            out.timestamps,
            vec![10 * S, 20 * S, 30 * S, 40 * S, 50 * S, 60 * S]
        );
        let total: f64 = out.values.iter().map(|r| r * 10.0).sum();
        assert_eq!(total, 7.0);
        assert_eq!(out.series[0].unit, "B/s");
        assert_eq!(out.series[0].type_, SampleType::Gauge);
    }

    #[test]
    fn time_not_advancing_is_dropped_and_counted() {
        let mut p = plugin(&[]);
        let mut b = BatchBuilder::new();
        let s = b.series("c", "r", "1", SampleType::Cumulative, &[]);
        for (t, v) in [(0, 10.0), (10, 20.0), (5, 100.0), (10, 30.0), (20, 40.0)] {
            b.push(s, t * S, v);
        }
        let out = p.transform(b.finish()).unwrap();
        assert_eq!(out.values, vec![1.0, 2.0]);
        assert_eq!(out.timestamps, vec![10 * S, 20 * S]);
        assert_eq!(p.dropped_total(), 2);
    }

    #[test]
    fn the_key_is_the_whole_identity_and_state_is_made_once() {
        let mut p = plugin(&[]);
        for round in 0..3 {
            let mut b = BatchBuilder::new();
            let a = b.series("m", "r", "1", SampleType::Gauge, &[("k", "a")]);
            let c = b.series("m", "r", "1", SampleType::Gauge, &[("k", "c")]);
            b.push(c, round * S, -(round as f64));
            b.push(a, round * S, round as f64);
            let out = p.transform(b.finish()).unwrap();
            let expected: Vec<f64> = if round == 0 { vec![] } else { vec![-1.0, 1.0] };
            assert_eq!(out.values, expected);
        }
        assert_eq!(p.series_count(), 2);
    }
}
