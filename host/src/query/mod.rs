//! Reading the archive: Gnocchi's measures and aggregates, SQL.
//!
//! | module         | answers                                                  |
//! |----------------|----------------------------------------------------------|
//! | [`reader`]     | series out of the Parquet files, pruned by folder and row-group statistics |
//! | [`measures`]   | Gnocchi's measures read (reference §1.5)                 |
//! | [`aggregates`] | Gnocchi's aggregates operations (reference §1.7)         |
//! | [`sql`]        | SQL with DataFusion, one table per archive policy        |
//! | [`time`]       | times and granularities as Gnocchi accepts them          |

pub mod aggregates;
pub mod measures;
pub mod reader;
mod source;
pub mod sql;
pub mod time;

pub use source::ArchiveSource;
