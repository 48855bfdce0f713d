//! The rollup engine: archive policies, aggregation methods, bucketing,
//! back window — Gnocchi's semantics (reference §1.1–1.4).
//!
//! Consumes: Arrow sample batches (from the pipeline's leaf stages).
//! Emits: closed aggregate rows, one per (series, granularity, non-empty
//! bucket), each exactly once, for the [`crate::archive`] writer; counts of
//! every refused measure ([`RollupReport`]).
//!
//! ```text
//! samples ──> per series: raw measures of the open buckets
//!               │ cutoff passes a bucket's end
//!               v
//!             compute every method of the policy from the raw measures
//!               v
//!             ClosedRows: bucket start, series, [mean, max, pct95, …] per row
//! ```
//!
//! Bucketing floors timestamps to the granularity from the Unix epoch, UTC,
//! and labels a bucket by its start; empty buckets are absent. Open buckets
//! survive restarts: [`RollupEngine::save_state`] / [`RollupEngine::load_state`].

mod engine;
mod methods;
pub mod policy;
mod rows;
mod state;

pub use engine::{RollupEngine, RollupReport, SeriesInfo, floor, retain};
pub use methods::{BucketScratch, aggregate};
pub use policy::{AggregationMethod, ArchivePolicy, BaseMethod, PolicyItem, PolicyRules};
pub use rows::{ClosedRow, ClosedRowRef, ClosedRows};
pub use state::STATE_FILE;

#[cfg(test)]
mod tests;
