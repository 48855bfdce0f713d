//! # wasmeter
//!
//! A metric pipeline whose every stage is a sandboxed WebAssembly component:
//! collectors produce samples, transformers reshape them, alarm rules judge
//! them. Samples travel between stages as Apache Arrow batches
//! ([`batch`]); plugins run under [`plugin`]'s sandbox.
//!
//! Modules, in the direction data flows:
//!
//! | module       | owns                                                      |
//! |--------------|-----------------------------------------------------------|
//! | [`bindings`] | the host side of the WIT contract (`wit/`)                |
//! | [`batch`]    | the Arrow sample schema, Arrow ⇄ WIT conversion           |
//! | [`plugin`]   | engine, loading, sandbox, limits, instances               |
//! | [`config`]   | the pipeline config file: schema, parsing, validation     |
//! | [`pipeline`] | stage graph, scheduling, channels                         |
//! | [`rollup`]   | archive policies, Gnocchi's aggregation, back window      |
//! | [`archive`]  | the Parquet archive: layout, writer, retention            |
//! | [`query`]    | reading the archive: Gnocchi's measures and aggregates, SQL |
//! | [`alarm`]    | Aodh's alarms: rules, state machine, notifications        |
//! | [`samples`]  | sample batches in CSV, JSON lines and Arrow IPC files     |
//! | [`cli`]      | the `wasmeter` command line                               |

pub mod alarm;
pub mod archive;
pub mod batch;
pub mod bindings;
pub mod cli;
pub mod config;
pub mod import;
pub mod pipeline;
pub mod plugin;
pub mod query;
pub mod rollup;
pub mod samples;
