//! One module per standard plugin (see `require_plugin_test!`).

pub mod arithmetic;
pub mod influx_line;
pub mod openmetrics;
pub mod procfs;
pub mod rate_of_change;
pub mod threshold;
pub mod unit_conversion;

use wasmeter::plugin::{Plugin, PluginSource};

use crate::support::runtime;

#[test]
fn every_builtin_is_a_valid_component_of_a_known_world() {
    assert!(!wasmeter_plugins::ALL.is_empty());
    for p in wasmeter_plugins::ALL {
        assert!(
            wasmparser::Parser::is_component(p.bytes),
            "{} is not a component",
            p.name
        );
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(p.bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let loaded =
            Plugin::load(&runtime(), p.name, &PluginSource::Builtin(p.name.into())).unwrap();
        assert_eq!(loaded.contract_version(), "0.1.0");
    }
}
