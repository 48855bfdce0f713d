//! Reading the archive: Gnocchi's measures and aggregates, SQL.

pub mod aggregates;
