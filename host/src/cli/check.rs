//! `wasmeter check CONFIG`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::Failure;
use crate::alarm::AlarmEvaluator;
use crate::archive::ArchiveLock;
use crate::config::PipelineConfig;
use crate::plugin::{Plugin, Runtime, World};

/// Arguments of `wasmeter check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The pipeline config file (TOML).
    pub config: PathBuf,
}

/// Validates the config and loads every plugin it names, checking each
/// plugin's world. Exit 0 when valid, 2 with every problem otherwise.
pub fn check(args: CheckArgs) -> Result<(), Failure> {
    let checked = load_and_check(&args.config, false)?;
    let config = &checked.config;
    println!(
        "{}: ok ({} collectors, {} transformers, {} alarms)",
        args.config.display(),
        config.collectors.len(),
        config.transformers.len(),
        config.alarms.len()
    );
    Ok(())
}

/// What [`load_and_check`] returns.
pub(super) struct Checked {
    /// The validated config.
    pub config: PipelineConfig,
    /// The runtime, whose compile cache is `DATA_DIR/cache`.
    pub runtime: Runtime,
    /// Each stage's plugin digest.
    pub digests: BTreeMap<String, String>,
    /// The alarms, with their rule plugins loaded and their parameters
    /// checked.
    pub alarms: Option<AlarmEvaluator>,
    /// The data directory's and archive's lock, when asked for.
    pub lock: Option<ArchiveLock>,
}

/// Parses and validates `path` and loads its plugins, so that `run` and
/// `check` refuse the same things with the same output. With `lock` (for
/// `run` and `import`), first takes the lock of the data directory and the
/// archive, before the alarms read their state there.
pub(super) fn load_and_check(path: &std::path::Path, lock: bool) -> Result<Checked, Failure> {
    let config = PipelineConfig::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    let lock = match lock {
        true => Some(ArchiveLock::take(
            &config.archive.data_dir,
            &config.archive.root,
        )?),
        false => None,
    };
    let runtime = Runtime::with_cache_dir(&config.archive.data_dir.join("cache"))
        .map_err(|e| Failure::Runtime(e.into()))?;
    let mut problems = Vec::new();
    let mut digests = BTreeMap::new();
    // A collector with a `url` scrapes through a decoder.
    let stages = config
        .collectors
        .iter()
        .map(|c| (&c.name, &c.plugin, Some(c.scrape.is_some())))
        .chain(
            config
                .transformers
                .iter()
                .map(|t| (&t.name, &t.plugin, None)),
        );
    // A plugin problem is reported at the stage's `plugin` key.
    let at = |name: &str, e: &crate::plugin::PluginError| match config.plugin_locations.get(name) {
        Some(loc) => {
            let mut loc = loc.clone();
            loc.message = format!("stage {name}: {e}");
            format!("error: {loc}")
        }
        None => format!("error: {}: stage {name}: {e}", path.display()),
    };
    for (name, source, scrapes) in stages {
        match Plugin::load(&runtime, &source.to_string(), source).map(Arc::new) {
            Ok(p) => {
                digests.insert(name.clone(), p.digest().to_owned());
                let fits = match scrapes {
                    Some(scrapes) => crate::pipeline::check_source_world(&p, scrapes),
                    None => p.expect_world(World::Transformer),
                };
                if let Err(e) = fits {
                    problems.push(at(name, &e));
                }
            }
            Err(e) => problems.push(at(name, &e)),
        }
    }
    // The scrape targets' TLS files, as the stages' start reads them.
    for c in &config.collectors {
        if let Some(target) = &c.scrape
            && let Err(reason) = crate::pipeline::check_scrape_target(target)
        {
            problems.push(format!(
                "error: {}: stage {}: {reason}",
                path.display(),
                c.name
            ));
        }
    }
    // Always an evaluator, so that a reload can add the first alarm.
    let mut alarms = None;
    match AlarmEvaluator::new(&config, &runtime) {
        Ok(e) => alarms = Some(e),
        Err(e) => problems.push(format!("error: {}: {e}", path.display())),
    }
    if problems.is_empty() {
        Ok(Checked {
            config,
            runtime,
            digests,
            alarms,
            lock,
        })
    } else {
        Err(Failure::Usage(problems.join("\n")))
    }
}
