//! End-to-end tests: the built `wasmeter` binary, the built plugin
//! components and real inputs (`tests/data/`).

mod alarms;
mod archive;
mod cli;
mod main_job;
mod pipeline;
mod plugins;
mod polyglot;
mod query;
mod reload;
mod sandbox;
mod scrape;
mod support;

// Every standard plugin must have a test module under `plugins/`: this
// fails to compile when a plugin is added without one.
macro_rules! require_plugin_test {
    ($name:ident) => {
        #[allow(unused_imports)]
        use plugins::$name as _;
    };
}
wasmeter_plugins::foreach_plugin!(require_plugin_test);
