//! The sandbox holds against hostile plugins (`tests/plugins/hostile`): each
//! misdeed fails that call only, with the exact error kind, and a
//! well-behaved plugin is served right after.

use std::sync::Arc;
use std::time::Duration;

use wasmeter::batch;
use wasmeter::bindings::SampleType;
use wasmeter::plugin::{Grants, Limits, Plugin, PluginErrorKind, PluginSource, Transformer};

use crate::support::{runtime, series, wit_batch};

fn hostile() -> Arc<Plugin> {
    let p = wasmeter_plugins::testing::HOSTILE;
    Arc::new(Plugin::from_bytes(&runtime(), p.name, p.bytes).unwrap())
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        call_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

fn instance(behaviour: &str) -> Transformer {
    Transformer::new(
        hostile(),
        &format!("hostile-{behaviour}"),
        &[("behaviour".into(), behaviour.into())],
        &Grants::default(),
        limits(),
    )
    .unwrap()
}

fn input() -> arrow::array::RecordBatch {
    batch::from_wit(wit_batch(
        vec![series("m", "r", "1", SampleType::Gauge)],
        &[(0, 1, 1.0), (0, 2, 2.0)],
    ))
    .unwrap()
}

/// A well-behaved plugin still answers exactly.
fn assert_still_serving() {
    let mut good = instance("identity");
    let out = good.transform(&input()).unwrap();
    assert_eq!(out, input());
}

fn assert_fails(behaviour: &str, kind: PluginErrorKind, message_part: &str) {
    let mut bad = instance(behaviour);
    let err = bad.transform(&input()).unwrap_err();
    assert_eq!(err.kind, kind, "{behaviour}: {err}");
    assert_eq!(err.plugin, format!("hostile-{behaviour}"));
    assert!(
        err.message.contains(message_part),
        "{behaviour}: {}",
        err.message
    );
    assert_eq!(bad.stats().errors.get(&kind), Some(&1));
    assert_still_serving();
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    assert_fails("loop", PluginErrorKind::Deadline, "interrupt");
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    assert_fails("memory-bomb", PluginErrorKind::Memory, "");
}

#[test]
fn a_panic_is_a_trap() {
    assert_fails("panic", PluginErrorKind::Trap, "unreachable");
}

#[test]
fn mismatched_columns_are_bad_output() {
    assert_fails(
        "mismatched-columns",
        PluginErrorKind::BadOutput,
        "columns of unequal length: series-index has 2, timestamps 2, values 3",
    );
}

#[test]
fn an_out_of_range_series_index_is_bad_output() {
    assert_fails(
        "index-out-of-range",
        PluginErrorKind::BadOutput,
        "sample 0: series index 8 out of range (the batch has 1 series)",
    );
}

#[test]
fn a_hundred_million_samples_do_not_fit_in_the_cap() {
    // The output lives in the plugin's memory, so the cap bounds it.
    assert_fails("huge-output", PluginErrorKind::Memory, "");
}

#[test]
fn etc_passwd_is_not_there_without_a_grant() {
    assert_fails(
        "read-passwd",
        PluginErrorKind::Unavailable,
        "cannot read /etc/passwd",
    );
    // A grant of another directory does not open /etc either.
    let dir = tempfile::tempdir().unwrap();
    let grants = Grants {
        read_dirs: vec![dir.path().to_path_buf()],
        ..Grants::default()
    };
    let mut t = Transformer::new(
        hostile(),
        "granted-tmp",
        &[("behaviour".into(), "read-passwd".into())],
        &grants,
        limits(),
    )
    .unwrap();
    assert_eq!(
        t.transform(&input()).unwrap_err().kind,
        PluginErrorKind::Unavailable
    );
}

#[test]
fn a_socket_cannot_be_opened_without_a_grant() {
    assert_fails(
        "open-socket",
        PluginErrorKind::Unavailable,
        "cannot connect",
    );
}

#[test]
fn misdeeds_in_init_fail_the_instantiation() {
    for (behaviour, kind) in [
        ("loop", PluginErrorKind::Deadline),
        ("panic", PluginErrorKind::Trap),
    ] {
        let err = Transformer::new(
            hostile(),
            "bad-init",
            &[
                ("behaviour".into(), behaviour.into()),
                ("in_init".into(), "true".into()),
            ],
            &Grants::default(),
            limits(),
        )
        .err()
        .unwrap();
        assert_eq!(err.kind, kind, "{err}");
    }
    assert_still_serving();
}

#[test]
fn a_failed_instance_is_replaced_and_the_next_batch_goes_through() {
    let plugin = hostile();
    let settings = [
        ("behaviour".to_string(), "panic".to_string()),
        ("every".to_string(), "2".to_string()),
    ];
    let mut t = Transformer::new(
        plugin.clone(),
        "flaky",
        &settings,
        &Grants::default(),
        limits(),
    )
    .unwrap();
    assert!(t.transform(&input()).is_ok());
    assert_eq!(
        t.transform(&input()).unwrap_err().kind,
        PluginErrorKind::Trap
    );
    // A trapped instance is poisoned: every further call traps too.
    assert_eq!(
        t.transform(&input()).unwrap_err().kind,
        PluginErrorKind::Trap
    );
    let mut fresh =
        Transformer::new(plugin, "flaky", &settings, &Grants::default(), limits()).unwrap();
    assert_eq!(fresh.transform(&input()).unwrap(), input());
}

#[test]
fn an_instance_that_stays_above_the_high_water_mark_asks_to_be_recycled() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        call_timeout: Duration::from_secs(5),
        recycle_above_bytes: 20 << 20,
    };
    let mut t = Transformer::new(
        hostile(),
        "hoarder",
        &[("behaviour".into(), "hoard".into())],
        &Grants::default(),
        limits,
    )
    .unwrap();
    // 8 MiB more per call: above 20 MiB from the third call on, and asks
    // for recycling after three such calls.
    let mut asked = Vec::new();
    for _ in 0..5 {
        assert_eq!(t.transform(&input()).unwrap(), input());
        asked.push(t.needs_recycling());
    }
    assert_eq!(asked, [false, false, false, false, true]);
    assert!(t.stats().peak_memory_bytes > 40 << 20);
    assert_still_serving();
}

mod load {
    use super::*;

    fn refused(bytes: &[u8]) -> String {
        let err = Plugin::from_bytes(&runtime(), "x.wasm", bytes).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Load);
        assert!(!err.message.contains('\n'), "one line: {}", err.message);
        err.message
    }

    #[test]
    fn a_missing_file() {
        let err = Plugin::load(
            &runtime(),
            "gone",
            &PluginSource::File("/nonexistent/p.wasm".into()),
        )
        .unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Load);
        assert_eq!(
            err.to_string(),
            "plugin /nonexistent/p.wasm: load: cannot read the file: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn not_wasm() {
        assert_eq!(
            refused(b"#!/bin/sh\necho hi\n"),
            "not a WebAssembly file (no \\0asm header)"
        );
    }

    #[test]
    fn a_core_module() {
        assert!(
            refused(b"\0asm\x01\0\0\0").starts_with("a core WebAssembly module, not a component")
        );
    }

    #[test]
    fn an_unknown_builtin() {
        let err = Plugin::load(&runtime(), "b", &PluginSource::Builtin("nope".into())).unwrap_err();
        assert!(
            err.message.starts_with("no such standard plugin (known: "),
            "{}",
            err.message
        );
    }

    /// A component of WIT `world` in a package at `version`, with dummy
    /// function bodies, made by wit-component.
    fn component(wit: &str, world: &str) -> Vec<u8> {
        let mut resolve = wit_parser::Resolve::default();
        let pkg = resolve.push_str("test.wit", wit).unwrap();
        let world = resolve.select_world(&[pkg], Some(world)).unwrap();
        let mut module =
            wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .unwrap();
        wit_component::ComponentEncoder::default()
            .module(&module)
            .unwrap()
            .validate(true)
            .encode()
            .unwrap()
    }

    #[test]
    fn an_incompatible_contract_version_names_both() {
        let wit =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/wasmeter.wit"))
                .unwrap()
                .replace(
                    "package wasmeter:plugin@0.1.0;",
                    "package wasmeter:plugin@0.2.0;",
                );
        let bytes = component(&wit, "transformer");
        assert_eq!(
            refused(&bytes),
            "built against wasmeter:plugin@0.2.0, but this host implements wasmeter:plugin@0.1.0"
        );
        // The same component at the right version loads.
        let ok = component(&wit.replace("@0.2.0;", "@0.1.0;"), "transformer");
        Plugin::from_bytes(&runtime(), "ok", &ok).unwrap();
    }

    #[test]
    fn a_component_of_no_known_world() {
        let bytes = component(
            "package other:thing@1.0.0;\ninterface log { log: func(m: string); }\nworld w { import log; export run: func(); }",
            "w",
        );
        assert!(refused(&bytes).starts_with(
            "not a wasmeter plugin: no wasmeter:plugin/* interface among its imports"
        ));
        let bytes = component(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/wasmeter.wit"))
                .unwrap(),
            "common",
        );
        assert!(refused(&bytes).starts_with("exports none of collect, transform, evaluate"));
    }

    #[test]
    fn the_wrong_world_for_the_stage() {
        let p = Plugin::load(
            &runtime(),
            "procfs",
            &PluginSource::Builtin("procfs".into()),
        )
        .unwrap();
        let err = Transformer::new(Arc::new(p), "t", &[], &Grants::default(), Limits::default())
            .err()
            .unwrap();
        assert_eq!(err.kind, PluginErrorKind::Load);
        assert!(
            err.message
                .starts_with("wrong world: expected a transformer, the component is a collector"),
            "{}",
            err.message
        );
    }
}

mod cache {
    use wasmeter::plugin::Runtime;

    use super::*;

    fn load(dir: &std::path::Path) -> Runtime {
        let rt = Runtime::with_cache_dir(dir).unwrap();
        Plugin::load(&rt, "u", &PluginSource::Builtin("unit-conversion".into())).unwrap();
        rt
    }

    fn entry(dir: &std::path::Path) -> std::path::PathBuf {
        let entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    }

    #[test]
    fn a_second_start_does_not_recompile() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(dir.path());
        assert_eq!((first.compilations(), first.cache_hits()), (1, 0));
        let second = load(dir.path());
        assert_eq!((second.compilations(), second.cache_hits()), (0, 1));
    }

    #[test]
    fn a_corrupt_entry_is_discarded_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        load(dir.path());
        let path = entry(dir.path());
        let mut data = std::fs::read(&path).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let rt = load(dir.path());
        assert_eq!((rt.compilations(), rt.cache_hits()), (1, 0));
        // Rebuilt: the next start uses it.
        let rt = load(dir.path());
        assert_eq!((rt.compilations(), rt.cache_hits()), (0, 1));
        // Truncated to nothing: the same.
        std::fs::write(entry(dir.path()), b"").unwrap();
        assert_eq!(load(dir.path()).compilations(), 1);
    }

    #[test]
    fn a_foreign_entry_with_a_valid_digest_is_refused_by_wasmtime() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        load(dir.path());
        let path = entry(dir.path());
        // An artifact of an engine with other settings, under our key.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(false).consume_fuel(true);
        let foreign = wasmtime::Engine::new(&config).unwrap();
        let mut artifact = foreign
            .precompile_component(wasmeter_plugins::UNIT_CONVERSION.bytes)
            .unwrap();
        let digest = sha2::Sha256::digest(&artifact);
        artifact.extend_from_slice(&digest);
        std::fs::write(&path, &artifact).unwrap();
        let rt = load(dir.path());
        assert_eq!((rt.compilations(), rt.cache_hits()), (1, 0));
    }
}

#[test]
fn a_plugins_stderr_goes_to_the_log_tagged_with_its_name() {
    // Through the binary, whose log is the process's stderr: the hostile
    // transformer panics on every batch the procfs collector sends it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmeter.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[archive]
data_dir = "data"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "1s"
grants = {{ read_dirs = ["/proc"] }}

[[transformer]]
name = "panicky"
plugin = "{}"
inputs = ["host"]
settings = {{ behaviour = "panic" }}
"#,
            wasmeter_plugins::testing::HOSTILE.path
        ),
    )
    .unwrap();
    let out = crate::support::wasmeter()
        .args(["run", "--duration", "2500ms"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Rust's panic message, written by the guest to its stderr, is a log
    // record of the host, tagged with the stage and the stream.
    let line = err
        .lines()
        .find(|l| l.contains("hostile plugin panics on purpose"))
        .unwrap_or_else(|| panic!("no panic line in the log:\n{err}"));
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("plugin=\"panicky\""), "{line}");
    assert!(line.contains("stream=\"stderr\""), "{line}");
    // Nothing of the guest reaches the host's stderr untagged.
    assert!(
        !err.lines().any(|l| l.starts_with("thread '<unnamed>'")),
        "{err}"
    );
}

#[test]
fn http_goes_only_to_granted_hosts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = crate::scrape::serve(&rt, b"hello".to_vec(), "text/plain");
    let authority = target
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let port = authority.rsplit_once(':').unwrap().1.to_owned();
    let with = |http_hosts: Vec<String>| {
        Transformer::new(
            hostile(),
            "fetcher",
            &[
                ("behaviour".into(), "http-get".into()),
                ("authority".into(), authority.clone()),
            ],
            &Grants {
                http_hosts,
                ..Grants::default()
            },
            Limits::default(),
        )
        .unwrap()
    };
    // No grant, or a grant for another port: denied, nothing sent.
    for hosts in [
        vec![],
        vec![format!("127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1)],
    ] {
        let err = with(hosts).transform(&input()).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("RequestDenied"), "{err}");
    }
    assert_eq!(target.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Granted by host:port, or by host alone: the request goes through.
    for hosts in [vec![authority.clone()], vec!["127.0.0.1".to_owned()]] {
        let out = with(hosts).transform(&input()).unwrap();
        let wit = batch::to_wit(&out).unwrap();
        assert_eq!(wit.values, [200.0]);
    }
    assert_eq!(target.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_still_serving();
}
