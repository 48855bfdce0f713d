//! The host side of the `wasmeter:plugin@0.1.0` contract, generated from
//! `wit/` by wasmtime's `bindgen!`: one module per world, all sharing the
//! `types` and `log` interfaces of [`common`].
//!
//! Typed bindings only: no dynamic `Val` on the data path.

#![allow(missing_docs, clippy::all)]

/// The shared interfaces: `types` (the sample batch) and `log`.
pub mod common {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "common",
        additional_derives: [PartialEq],
    });
}

/// The `collector` world.
pub mod collector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "collector",
        with: {
            "wasmeter:plugin/types": crate::bindings::common::wasmeter::plugin::types,
            "wasmeter:plugin/log": crate::bindings::common::wasmeter::plugin::log,
        },
    });
}

/// The `transformer` world.
pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
        with: {
            "wasmeter:plugin/types": crate::bindings::common::wasmeter::plugin::types,
            "wasmeter:plugin/log": crate::bindings::common::wasmeter::plugin::log,
        },
    });
}

/// The `alarm-rule` world.
pub mod alarm_rule {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "alarm-rule",
        additional_derives: [PartialEq],
        with: {
            "wasmeter:plugin/types": crate::bindings::common::wasmeter::plugin::types,
            "wasmeter:plugin/log": crate::bindings::common::wasmeter::plugin::log,
        },
    });
}

/// The `decoder` world.
pub mod decoder {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "decoder",
        additional_derives: [PartialEq],
        with: {
            "wasmeter:plugin/types": crate::bindings::common::wasmeter::plugin::types,
            "wasmeter:plugin/log": crate::bindings::common::wasmeter::plugin::log,
        },
    });
}

pub use common::wasmeter::plugin::log::Level;
pub use common::wasmeter::plugin::types::{
    Batch as WitBatch, Error as WitError, ErrorKind as WitErrorKind, SampleType,
    Series as WitSeries,
};
