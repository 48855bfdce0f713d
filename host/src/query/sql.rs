//! SQL over the archive with DataFusion. Each archive policy is a table
//! named after it (quote names with a `-`: `"ceilometer-low"`), with the
//! archive's columns plus `date` (`YYYY-MM-DD`, UTC), the Hive partition:
//! a filter on `date` skips whole folders, and filters on `metric` and
//! `timestamp` skip row groups by their statistics.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The SQL does not parse or plan (unknown table or column, type
    /// errors); the message is DataFusion's, plus the tables there are.
    #[error("{message} (tables: {tables})")]
    Query {
        /// DataFusion's message.
        message: String,
        /// The archive's tables, comma-separated.
        tables: String,
    },
    /// The archive cannot be read.
    #[error("{0}")]
    Archive(String),
}

/// The archive's tables: `(policy name, granularity folders)`.
fn tables(root: &Path) -> Result<Vec<(String, Vec<std::path::PathBuf>)>, SqlError> {
    let read = |dir: &Path, prefix: &str| -> Result<Vec<(String, std::path::PathBuf)>, SqlError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| SqlError::Archive(format!("cannot list {}: {e}", dir.display())))?;
        let mut out: Vec<(String, std::path::PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?.strip_prefix(prefix)?.to_owned();
                Some((name, p))
            })
            .collect();
        out.sort();
        Ok(out)
    };
    let mut out = Vec::new();
    for (policy, dir) in read(root, "policy=")? {
        let granularities: Vec<_> = read(&dir, "granularity=")?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        if !granularities.is_empty() {
            out.push((policy, granularities));
        }
    }
    Ok(out)
}

/// Runs `query` over the archive at `root` and returns its result.
///
/// # Errors
/// [`SqlError::Query`] for SQL that does not parse or plan, naming the
/// archive's tables; [`SqlError::Archive`] when the folder is not an
/// archive or a file cannot be read.
pub async fn sql(root: &Path, query: &str) -> Result<Vec<RecordBatch>, SqlError> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    let ctx = SessionContext::new_with_config(config);
    let found = tables(root)?;
    if found.is_empty() {
        return Err(SqlError::Archive(format!(
            "no archive at {} (no policy=…/granularity=…/ folders)",
            root.display()
        )));
    }
    let names: Vec<String> = found.iter().map(|(n, _)| n.clone()).collect();
    let fail = |e: datafusion::error::DataFusionError| SqlError::Query {
        message: e.to_string(),
        tables: names.join(", "),
    };
    for (policy, dirs) in &found {
        let urls = dirs
            .iter()
            .map(|d| {
                let abs = std::path::absolute(d).unwrap_or_else(|_| d.clone());
                ListingTableUrl::parse(format!("{}/", abs.display()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SqlError::Archive(e.to_string()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("date".to_owned(), DataType::Utf8)]);
        let table_config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&ctx.state())
            .await
            .map_err(|e| SqlError::Archive(format!("policy {policy}: {e}")))?;
        let table = ListingTable::try_new(table_config)
            .map_err(|e| SqlError::Archive(format!("policy {policy}: {e}")))?;
        // A bare name, not parsed: `-` and capitals survive.
        ctx.register_table(TableReference::bare(policy.as_str()), Arc::new(table))
            .map_err(|e| SqlError::Archive(format!("policy {policy}: {e}")))?;
    }
    let frame = ctx.sql(query).await.map_err(fail)?;
    frame.collect().await.map_err(fail)
}
