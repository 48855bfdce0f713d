//! # wasmeter-guest: write wasmeter plugins in Rust
//!
//! This crate owns the guest side of the `wasmeter:plugin@0.1.0` contract
//! (`wit/wasmeter.wit`): the wit-bindgen bindings of the three plugin worlds
//! and a small API over them, so a plugin's own code is a struct, one trait
//! impl and one export macro.
//!
//! | world         | trait           | export macro               |
//! |---------------|-----------------|----------------------------|
//! | `collector`   | [`Collector`]   | [`export_collector!`]      |
//! | `transformer` | [`Transformer`] | [`export_transformer!`]    |
//! | `alarm-rule`  | [`AlarmRule`]   | [`export_alarm_rule!`]     |
//! | `decoder`     | [`Decoder`]     | [`export_decoder!`]        |
//!
//! The trait's `init` builds the plugin from its [`Settings`] (the
//! `settings` table of the pipeline config); the host calls it once per
//! instance. The instance then keeps the value for its lifetime, so a
//! transformer can hold state between batches in `&mut self`.
//!
//! Samples travel in a columnar [`Batch`]:
//!
//! ```text
//! series:       [ s0 = (cpu.time, host-1, s, cumulative, {mode=user}),
//!                 s1 = (cpu.time, host-1, s, cumulative, {mode=system}) ]
//! series_index: [ 0,     1,     0,     1     ]
//! timestamps:   [ t0,    t0,    t1,    t1    ]   ns since the Unix epoch, UTC
//! values:       [ 12.5,  3.25,  13.0,  3.5   ]
//! ```
//!
//! Build a plugin crate as `crate-type = ["cdylib"]` for the
//! `wasm32-wasip2` target; the result is a component the host loads.
//!
//! # Example: a transformer
//!
//! ```
//! use wasmeter_guest::{Batch, Error, Settings, Transformer};
//!
//! /// Multiplies every value by `scale` and renames the unit.
//! struct Scale {
//!     scale: f64,
//!     unit: Option<String>,
//! }
//!
//! impl Transformer for Scale {
//!     fn init(settings: Settings) -> Result<Self, Error> {
//!         Ok(Scale {
//!             scale: settings.f64_or("scale", 1.0)?,
//!             unit: settings.get("unit").map(str::to_owned),
//!         })
//!     }
//!
//!     fn transform(&mut self, mut batch: Batch) -> Result<Batch, Error> {
//!         let scale = self.scale;
//!         wasmeter_guest::map_values(&mut batch.values, |v| v * scale);
//!         if let Some(unit) = &self.unit {
//!             batch.series.iter_mut().for_each(|s| s.unit.clone_from(unit));
//!         }
//!         Ok(batch)
//!     }
//! }
//!
//! wasmeter_guest::export_transformer!(Scale);
//! # // Exercise the plugin natively.
//! # let mut plugin = Scale::init(Settings::from(vec![("scale".into(), "1000".into())])).unwrap();
//! # let mut b = wasmeter_guest::BatchBuilder::new();
//! # let s = b.series("cpu.time", "host", "s", wasmeter_guest::SampleType::Cumulative, &[]);
//! # b.push(s, 1, 2.5);
//! # let out = plugin.transform(b.finish()).unwrap();
//! # assert_eq!(out.values, vec![2500.0]);
//! ```
//!
//! # Example: a collector
//!
//! ```
//! use wasmeter_guest::{Batch, BatchBuilder, Collector, Error, SampleType, Settings};
//!
//! /// Emits one constant gauge per tick.
//! struct Constant {
//!     value: f64,
//! }
//!
//! impl Collector for Constant {
//!     fn init(settings: Settings) -> Result<Self, Error> {
//!         Ok(Constant { value: settings.f64_or("value", 1.0)? })
//!     }
//!
//!     fn collect(&mut self, now_ns: i64) -> Result<Batch, Error> {
//!         let mut b = BatchBuilder::new();
//!         let up = b.series("up", "localhost", "1", SampleType::Gauge, &[("job", "demo")]);
//!         b.push(up, now_ns, self.value);
//!         Ok(b.finish())
//!     }
//! }
//!
//! wasmeter_guest::export_collector!(Constant);
//! # let mut c = Constant::init(Settings::default()).unwrap();
//! # let batch = c.collect(42).unwrap();
//! # assert_eq!(batch.timestamps, vec![42]);
//! # assert_eq!(batch.series[0].attributes, vec![("job".to_string(), "demo".to_string())]);
//! ```
//!
//! # Example: an alarm rule
//!
//! ```
//! use wasmeter_guest::alarm::{Evaluation, SeriesAggregates, State};
//! use wasmeter_guest::{AlarmRule, Error, Settings};
//!
//! /// Alarms when every point is above `threshold`.
//! struct Above;
//!
//! impl AlarmRule for Above {
//!     fn init(_settings: Settings) -> Result<Self, Error> {
//!         Ok(Above)
//!     }
//!
//!     fn evaluate(&mut self, params: Settings, input: Vec<SeriesAggregates>) -> Result<Vec<Evaluation>, Error> {
//!         let threshold = params.f64("threshold")?;
//!         Ok(input
//!             .iter()
//!             .map(|s| {
//!                 let outside = s.values.iter().filter(|v| **v > threshold).count() as u32;
//!                 let points = s.values.len() as u32;
//!                 let state = if points > 0 && outside == points { State::Alarm } else { State::Ok };
//!                 Evaluation {
//!                     state,
//!                     equivocal: outside != 0 && outside != points,
//!                     points,
//!                     outside,
//!                     most_recent: s.values.last().copied(),
//!                     reason: String::new(),
//!                 }
//!             })
//!             .collect())
//!     }
//! }
//!
//! wasmeter_guest::export_alarm_rule!(Above);
//! ```

#![allow(unsafe_code)] // the generated bindings are FFI

mod batch;
mod settings;
mod values;

pub use batch::{BatchBuilder, Sample};
pub use settings::Settings;
pub use values::map_values;

/// The raw wit-bindgen bindings, one module per world. Plugin code rarely
/// needs these; use the re-exports at the crate root.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    /// The shared imports: `types` and `log`.
    pub mod common {
        wit_bindgen::generate!({
            path: "../wit",
            world: "common",
            additional_derives: [PartialEq],
        });
    }

    /// The `collector` world.
    pub mod collector {
        wit_bindgen::generate!({
            path: "../wit",
            world: "collector",
            with: {
                "wasmeter:plugin/types@0.1.0": crate::bindings::common::wasmeter::plugin::types,
                "wasmeter:plugin/log@0.1.0": crate::bindings::common::wasmeter::plugin::log,
            },
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "wasmeter_guest::bindings::collector",
        });
    }

    /// The `transformer` world.
    pub mod transformer {
        wit_bindgen::generate!({
            path: "../wit",
            world: "transformer",
            with: {
                "wasmeter:plugin/types@0.1.0": crate::bindings::common::wasmeter::plugin::types,
                "wasmeter:plugin/log@0.1.0": crate::bindings::common::wasmeter::plugin::log,
            },
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "wasmeter_guest::bindings::transformer",
        });
    }

    /// The `alarm-rule` world.
    pub mod alarm_rule {
        wit_bindgen::generate!({
            path: "../wit",
            world: "alarm-rule",
            with: {
                "wasmeter:plugin/types@0.1.0": crate::bindings::common::wasmeter::plugin::types,
                "wasmeter:plugin/log@0.1.0": crate::bindings::common::wasmeter::plugin::log,
                "wasmeter:plugin/alarm@0.1.0": generate,
            },
            additional_derives: [PartialEq],
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "wasmeter_guest::bindings::alarm_rule",
        });
    }

    /// The `decoder` world.
    pub mod decoder {
        wit_bindgen::generate!({
            path: "../wit",
            world: "decoder",
            with: {
                "wasmeter:plugin/types@0.1.0": crate::bindings::common::wasmeter::plugin::types,
                "wasmeter:plugin/log@0.1.0": crate::bindings::common::wasmeter::plugin::log,
                "wasmeter:plugin/decode@0.1.0": generate,
            },
            additional_derives: [PartialEq],
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "wasmeter_guest::bindings::decoder",
        });
    }
}

use bindings::common::wasmeter::plugin::types;

pub use types::{Batch, Error, ErrorKind, SampleType, Series};

/// The alarm-rule world's data types: what an [`AlarmRule`] receives and
/// returns.
pub mod alarm {
    pub use crate::bindings::alarm_rule::wasmeter::plugin::alarm::{
        Evaluation, SeriesAggregates, State,
    };
}

/// The decoder world's data types: what a [`Decoder`] returns.
pub mod decode {
    pub use crate::bindings::decoder::wasmeter::plugin::decode::{Decoded, RejectedLine};
}

/// The contract version this SDK was built against (`wasmeter:plugin@…`).
pub const CONTRACT_VERSION: &str = "0.1.0";

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The settings (or an alarm's parameters) are wrong.
    pub fn invalid_settings(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidSettings, message)
    }

    /// The input cannot be processed.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Something the plugin needs is not there now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A bug in the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// A pollster: produces samples on its collector's interval.
pub trait Collector: Sized + 'static {
    /// Builds the plugin from its settings. Called once per instance.
    ///
    /// # Errors
    /// Return [`Error::invalid_settings`] naming the bad key and value.
    fn init(settings: Settings) -> Result<Self, Error>;

    /// Collects one batch. `now_ns` is the scheduled tick time, ns since the
    /// Unix epoch, UTC: stamp samples with it unless the source has its own
    /// time.
    ///
    /// # Errors
    /// Any [`Error`]; the host logs it and counts the failed call.
    fn collect(&mut self, now_ns: i64) -> Result<Batch, Error>;
}

/// A transformer: one batch in, one batch out.
pub trait Transformer: Sized + 'static {
    /// Builds the plugin from its settings. Called once per instance.
    ///
    /// # Errors
    /// Return [`Error::invalid_settings`] naming the bad key and value.
    fn init(settings: Settings) -> Result<Self, Error>;

    /// Transforms one batch; may keep per-series state in `self`.
    ///
    /// # Errors
    /// Any [`Error`]; the host keeps the input batch in its dead-letter file.
    fn transform(&mut self, input: Batch) -> Result<Batch, Error>;
}

/// An alarm rule: decides ok / alarm / insufficient data per series.
pub trait AlarmRule: Sized + 'static {
    /// Builds the plugin from its settings. Called once per instance.
    ///
    /// # Errors
    /// Return [`Error::invalid_settings`] naming the bad key and value.
    fn init(settings: Settings) -> Result<Self, Error>;

    /// Evaluates one alarm over its matching series; returns one
    /// [`alarm::Evaluation`] per input entry, in input order.
    ///
    /// # Errors
    /// [`Error::invalid_settings`] for bad `params`; any other [`Error`].
    fn evaluate(
        &mut self,
        params: Settings,
        input: Vec<alarm::SeriesAggregates>,
    ) -> Result<Vec<alarm::Evaluation>, Error>;
}

/// A decoder: the bytes of a wire or file format in, samples out.
pub trait Decoder: Sized + 'static {
    /// Builds the plugin from its settings. Called once per instance.
    ///
    /// # Errors
    /// Return [`Error::invalid_settings`] naming the bad key and value.
    fn init(settings: Settings) -> Result<Self, Error>;

    /// Decodes one whole document (a scrape body, a file). `content_type`
    /// is the media type the source declared, "" when unknown; `now_ns`
    /// stamps samples without a time of their own (ns since the Unix epoch,
    /// UTC). Refused lines go into [`decode::Decoded::rejected`] with their
    /// 1-based line number.
    ///
    /// # Errors
    /// [`Error::invalid_input`] naming the line when the document cannot be
    /// used (in a strict mode: at its first bad line).
    fn decode(
        &mut self,
        input: Vec<u8>,
        content_type: String,
        now_ns: i64,
    ) -> Result<decode::Decoded, Error>;
}

/// Severity of a log record, see [`log`].
pub use bindings::common::wasmeter::plugin::log::Level;

/// Writes one record to the host's log, tagged with the plugin's name.
///
/// Outside a Wasm host (native unit tests) the record goes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::common::wasmeter::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

#[doc(hidden)]
pub mod __private {
    //! Support for the export macros; not a public API.
    use super::*;
    use std::cell::RefCell;

    /// Holds the plugin value of this instance between calls.
    pub struct Slot<T>(RefCell<Option<T>>);

    // SAFETY-free: a Wasm instance is single-threaded; the slot is only
    // touched from the export glue.
    unsafe impl<T> Sync for Slot<T> {}

    impl<T> Slot<T> {
        /// An empty slot.
        pub const fn new() -> Self {
            Slot(RefCell::new(None))
        }

        /// Stores the plugin built by `init`.
        pub fn set(&self, value: T) {
            *self.0.borrow_mut() = Some(value);
        }

        /// Runs `f` on the plugin, or fails when `init` was not called.
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> Result<R, Error>) -> Result<R, Error> {
            match self.0.borrow_mut().as_mut() {
                Some(plugin) => f(plugin),
                None => Err(Error::internal("plugin called before init")),
            }
        }
    }

    impl<T> Default for Slot<T> {
        fn default() -> Self {
            Self::new()
        }
    }
}

/// Exports a [`Collector`] implementation as the component's `collector`
/// world. Use once per plugin crate.
#[macro_export]
macro_rules! export_collector {
    ($plugin:ty) => {
        const _: () = {
            static __WASMETER_PLUGIN: $crate::__private::Slot<$plugin> =
                $crate::__private::Slot::new();
            struct __WasmeterExport;
            impl $crate::bindings::collector::Guest for __WasmeterExport {
                fn init(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), $crate::Error> {
                    let plugin =
                        <$plugin as $crate::Collector>::init($crate::Settings::from(settings))?;
                    __WASMETER_PLUGIN.set(plugin);
                    Ok(())
                }
                fn collect(now: i64) -> ::std::result::Result<$crate::Batch, $crate::Error> {
                    __WASMETER_PLUGIN.with(|p| <$plugin as $crate::Collector>::collect(p, now))
                }
            }
            $crate::bindings::collector::export!(__WasmeterExport);
        };
    };
}

/// Exports a [`Transformer`] implementation as the component's
/// `transformer` world. Use once per plugin crate.
#[macro_export]
macro_rules! export_transformer {
    ($plugin:ty) => {
        const _: () = {
            static __WASMETER_PLUGIN: $crate::__private::Slot<$plugin> =
                $crate::__private::Slot::new();
            struct __WasmeterExport;
            impl $crate::bindings::transformer::Guest for __WasmeterExport {
                fn init(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), $crate::Error> {
                    let plugin =
                        <$plugin as $crate::Transformer>::init($crate::Settings::from(settings))?;
                    __WASMETER_PLUGIN.set(plugin);
                    Ok(())
                }
                fn transform(
                    input: $crate::Batch,
                ) -> ::std::result::Result<$crate::Batch, $crate::Error> {
                    __WASMETER_PLUGIN
                        .with(|p| <$plugin as $crate::Transformer>::transform(p, input))
                }
            }
            $crate::bindings::transformer::export!(__WasmeterExport);
        };
    };
}

/// Exports an [`AlarmRule`] implementation as the component's `alarm-rule`
/// world. Use once per plugin crate.
#[macro_export]
macro_rules! export_alarm_rule {
    ($plugin:ty) => {
        const _: () = {
            static __WASMETER_PLUGIN: $crate::__private::Slot<$plugin> =
                $crate::__private::Slot::new();
            struct __WasmeterExport;
            impl $crate::bindings::alarm_rule::Guest for __WasmeterExport {
                fn init(settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>) -> ::std::result::Result<(), $crate::Error> {
                    let plugin = <$plugin as $crate::AlarmRule>::init($crate::Settings::from(settings))?;
                    __WASMETER_PLUGIN.set(plugin);
                    Ok(())
                }
                fn evaluate(
                    params: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                    input: ::std::vec::Vec<$crate::alarm::SeriesAggregates>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::alarm::Evaluation>, $crate::Error> {
                    __WASMETER_PLUGIN.with(|p| <$plugin as $crate::AlarmRule>::evaluate(p, $crate::Settings::from(params), input))
                }
            }
            $crate::bindings::alarm_rule::export!(__WasmeterExport);
        };
    };
}

/// Exports a [`Decoder`] implementation as the component's `decoder` world.
/// Use once per plugin crate.
#[macro_export]
macro_rules! export_decoder {
    ($plugin:ty) => {
        const _: () = {
            static __WASMETER_PLUGIN: $crate::__private::Slot<$plugin> =
                $crate::__private::Slot::new();
            struct __WasmeterExport;
            impl $crate::bindings::decoder::Guest for __WasmeterExport {
                fn init(
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), $crate::Error> {
                    let plugin =
                        <$plugin as $crate::Decoder>::init($crate::Settings::from(settings))?;
                    __WASMETER_PLUGIN.set(plugin);
                    Ok(())
                }
                fn decode(
                    input: ::std::vec::Vec<u8>,
                    content_type: ::std::string::String,
                    now: i64,
                ) -> ::std::result::Result<$crate::decode::Decoded, $crate::Error> {
                    __WASMETER_PLUGIN
                        .with(|p| <$plugin as $crate::Decoder>::decode(p, input, content_type, now))
                }
            }
            $crate::bindings::decoder::export!(__WasmeterExport);
        };
    };
}
