//! Persisting the open buckets across restarts.
//!
//! `DATA_DIR/open-buckets.arrow`, an Arrow IPC file, one row per series:
//!
//! ```text
//! metric, resource_id, unit: Utf8     attributes: Map<Utf8, Utf8>
//! policy: Utf8                        granularities: List<Int64> (ns)
//! open_from: List<Int64> (ns, per granularity: first unwritten bucket)
//! last, pred_timestamp: Int64 (null if none)    pred_value: Float64
//! timestamps: List<Int64>, values: List<Float64> (raw measures)
//! ```
//!
//! The schema's metadata holds the engine's clock under `wasmeter.clock`
//! (the newest `now` of [`RollupEngine::advance`], ns since the Unix epoch,
//! UTC) and each policy's expiry floor under `wasmeter.expired_before.NAME`
//! (ns), so that measures a forgotten series could repeat are still refused
//! as expired right after a restart or a reload that lengthened the
//! horizon; a file without them (written before the keys existed, or
//! before the first advance) leaves the clock unset.
//!
//! Written to a temporary file, `fsync`ed and renamed (and the directory
//! `fsync`ed), so a crash mid-write leaves the previous state and a saved
//! state survives a power loss.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Array, Int64Builder, ListBuilder,
    MapBuilder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{Float64Type, Int64Type};

use super::engine::{RollupEngine, SeriesInfo, floor};

/// The state file inside the data directory.
pub const STATE_FILE: &str = "open-buckets.arrow";

/// The schema metadata key of the engine's clock.
const CLOCK_KEY: &str = "wasmeter.clock";
/// The prefix of the schema metadata key of a policy's expiry floor.
const EXPIRED_BEFORE_KEY: &str = "wasmeter.expired_before.";

impl RollupEngine {
    /// Writes the open state of every series to `DATA_DIR/open-buckets.arrow`.
    ///
    /// # Errors
    /// I/O and Arrow errors, with the path.
    pub fn save_state(&self, data_dir: &Path) -> anyhow::Result<()> {
        self.write_state(data_dir, &self.series)
    }

    fn write_state(
        &self,
        data_dir: &Path,
        series: &[super::engine::SeriesState],
    ) -> anyhow::Result<()> {
        let n = series.len();
        let mut metric = StringBuilder::new();
        let mut resource = StringBuilder::new();
        let mut unit = StringBuilder::new();
        let mut policy = StringBuilder::new();
        let mut attrs = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut grans = ListBuilder::new(Int64Builder::new());
        let mut open_from = ListBuilder::new(Int64Builder::new());
        let mut last = Int64Builder::with_capacity(n);
        let mut pred_ts = Int64Builder::with_capacity(n);
        let mut pred_v = Float64Builder::with_capacity(n);
        let mut ts = ListBuilder::new(Int64Builder::new());
        let mut vs = ListBuilder::new(Float64Builder::new());
        for st in series {
            let p = &self.policies[st.policy];
            metric.append_value(&st.info.metric);
            resource.append_value(&st.info.resource_id);
            unit.append_value(&st.info.unit);
            policy.append_value(&p.name);
            for (k, v) in &st.info.attributes {
                attrs.keys().append_value(k);
                attrs.values().append_value(v);
            }
            attrs.append(true)?;
            grans.append_value(p.definition.iter().map(|d| Some(d.granularity_ns())));
            open_from.append_value(st.open_from.iter().map(|&o| Some(o)));
            last.append_option(st.last);
            pred_ts.append_option(st.pred.map(|p| p.0));
            pred_v.append_option(st.pred.map(|p| p.1));
            ts.append_value(st.points.iter().map(|p| Some(p.0)));
            vs.append_value(st.points.iter().map(|p| Some(p.1)));
        }
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("metric", Arc::new(metric.finish())),
            ("resource_id", Arc::new(resource.finish())),
            ("unit", Arc::new(unit.finish())),
            ("attributes", Arc::new(attrs.finish())),
            ("policy", Arc::new(policy.finish())),
            ("granularities", Arc::new(grans.finish())),
            ("open_from", Arc::new(open_from.finish())),
            ("last", Arc::new(last.finish())),
            ("pred_timestamp", Arc::new(pred_ts.finish())),
            ("pred_value", Arc::new(pred_v.finish())),
            ("timestamps", Arc::new(ts.finish())),
            ("values", Arc::new(vs.finish())),
        ];
        let mut batch = RecordBatch::try_from_iter(columns)?;
        if let Some(clock) = self.clock() {
            let mut metadata =
                std::collections::HashMap::from([(CLOCK_KEY.to_owned(), clock.to_string())]);
            for (p, floor) in self.policies.iter().zip(self.expired_before()) {
                if *floor != i64::MIN {
                    metadata.insert(format!("{EXPIRED_BEFORE_KEY}{}", p.name), floor.to_string());
                }
            }
            let schema = arrow::datatypes::Schema::clone(&batch.schema()).with_metadata(metadata);
            batch = batch.with_schema(Arc::new(schema))?;
        }
        crate::archive::create_dir_synced(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(data_dir)?;
        let mut w = arrow::ipc::writer::FileWriter::try_new(tmp.as_file(), &batch.schema())?;
        w.write(&batch)?;
        w.finish()?;
        drop(w);
        let path = data_dir.join(STATE_FILE);
        // On disk before the write-ahead log it replaces is removed.
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        crate::archive::sync_dir(data_dir)
            .with_context(|| format!("cannot fsync {}", data_dir.display()))?;
        Ok(())
    }

    /// Restores the open state saved by [`RollupEngine::save_state`], if
    /// the file exists; returns the number of series restored. A series
    /// whose policy no longer exists gets the one the rules now choose. The
    /// saved clock and expiry floors are restored too (the engine keeps the
    /// newer of its own and the saved ones; a policy's floor is at least the
    /// clock minus its horizon now).
    ///
    /// # Errors
    /// A file that exists but cannot be read as the state format, or whose
    /// `wasmeter.clock` or `wasmeter.expired_before.*` is not an integer.
    pub fn load_state(&mut self, data_dir: &Path) -> anyhow::Result<usize> {
        let path = data_dir.join(STATE_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        let reader = arrow::ipc::reader::FileReader::try_new(file, None)
            .with_context(|| format!("{}: not an open-bucket state file", path.display()))?;
        let metadata = reader.schema().metadata().clone();
        let ns = |key: &str| -> anyhow::Result<Option<i64>> {
            metadata
                .get(key)
                .map(|v| {
                    v.parse().with_context(|| {
                        format!("{}: {key} {v:?} is not an integer", path.display())
                    })
                })
                .transpose()
        };
        if let Some(clock) = ns(CLOCK_KEY)? {
            let floors = self
                .policies
                .iter()
                .map(|p| ns(&format!("{EXPIRED_BEFORE_KEY}{}", p.name)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            self.restore_clock(clock, &floors);
        }
        let mut restored = 0;
        for batch in reader {
            let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
            restored += self
                .restore_batch(&batch)
                .with_context(|| format!("{}: bad state", path.display()))?;
        }
        Ok(restored)
    }

    fn restore_batch(&mut self, b: &RecordBatch) -> anyhow::Result<usize> {
        let col = |name: &str| {
            b.column_by_name(name)
                .with_context(|| format!("no column {name}"))
        };
        let s = |name: &str| -> anyhow::Result<arrow::array::StringArray> {
            Ok(col(name)?
                .as_string_opt::<i32>()
                .context("not a string column")?
                .clone())
        };
        let (metric, resource, unit, policy) =
            (s("metric")?, s("resource_id")?, s("unit")?, s("policy")?);
        let attrs = col("attributes")?
            .as_map_opt()
            .context("attributes")?
            .clone();
        let list_i64 = |name: &str| -> anyhow::Result<arrow::array::ListArray> {
            Ok(col(name)?
                .as_list_opt::<i32>()
                .context("not a list")?
                .clone())
        };
        let (grans, open_from, ts, vs) = (
            list_i64("granularities")?,
            list_i64("open_from")?,
            list_i64("timestamps")?,
            list_i64("values")?,
        );
        let last = col("last")?
            .as_primitive_opt::<Int64Type>()
            .context("last")?
            .clone();
        let pred_ts = col("pred_timestamp")?
            .as_primitive_opt::<Int64Type>()
            .context("pred")?
            .clone();
        let pred_v = col("pred_value")?
            .as_primitive_opt::<Float64Type>()
            .context("pred")?
            .clone();
        for row in 0..b.num_rows() {
            let entries = attrs.value(row);
            let (k, v) = (
                entries.column(0).as_string::<i32>(),
                entries.column(1).as_string::<i32>(),
            );
            let info = Arc::new(SeriesInfo {
                metric: metric.value(row).to_owned(),
                resource_id: resource.value(row).to_owned(),
                unit: unit.value(row).to_owned(),
                attributes: (0..entries.len())
                    .map(|i| (k.value(i).to_owned(), v.value(i).to_owned()))
                    .collect(),
            });
            let Some(policy_idx) = self
                .policies
                .iter()
                .position(|p| p.name == policy.value(row))
                .or_else(|| self.rules_policy_for(&info.metric))
            else {
                tracing::warn!(metric = %info.metric, "no archive policy for a restored series; its open buckets are dropped");
                continue;
            };
            let id = self.register(info, policy_idx);
            let saved_g = grans.value(row);
            let saved_g: &Int64Array = saved_g.as_primitive();
            let saved_open = open_from.value(row);
            let saved_open: &Int64Array = saved_open.as_primitive();
            let t = ts.value(row);
            let t: &Int64Array = t.as_primitive();
            let v = vs.value(row);
            let v: &Float64Array = v.as_primitive();
            let policies = self.policies.clone();
            let st = &mut self.series[id as usize];
            st.points = t
                .values()
                .iter()
                .copied()
                .zip(v.values().iter().copied())
                .collect();
            st.last = last.is_valid(row).then(|| last.value(row));
            st.pred = pred_ts
                .is_valid(row)
                .then(|| (pred_ts.value(row), pred_v.value(row)));
            for (gi, item) in policies[policy_idx].definition.iter().enumerate() {
                let g = item.granularity_ns();
                st.open_from[gi] = match saved_g.values().iter().position(|&sg| sg == g) {
                    Some(i) => saved_open.value(i),
                    // A granularity added since: open from the first measure.
                    None => st.points.first().map_or(i64::MIN, |p| floor(p.0, g)),
                };
            }
            // A granularity removed since may leave measures older than
            // every open bucket: drop them now (the engine keeps none).
            st.drop_before_open();
            self.index_series(id);
        }
        Ok(b.num_rows())
    }
}
