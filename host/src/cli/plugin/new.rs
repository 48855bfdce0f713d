//! `wasmeter plugin new`: a working plugin project in Rust, Python,
//! JavaScript or C, from the templates in `host/templates/` (see its
//! README). Every project builds as generated (`./build.sh`) and passes its
//! own test (`./test.sh`: `wasmeter plugin test` against `test/`).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::cli::Failure;
use crate::plugin::{World, authoring};

/// Arguments of `wasmeter plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-`, starting with
    /// a letter. Also the project folder's name.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The world the plugin implements.
    #[arg(long, value_enum)]
    pub world: NewWorld,
    /// Where to create the project folder.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Rust only: the path of the `wasmeter-guest` SDK the project depends
    /// on (default: the SDK next to this binary's sources).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// Worlds `plugin new` scaffolds (a decoder is best started from
/// `plugins/openmetrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewWorld {
    /// Produces samples on an interval.
    Collector,
    /// Batch in, batch out.
    Transformer,
    /// Decides ok / alarm / insufficient data per series.
    AlarmRule,
}

impl From<NewWorld> for World {
    fn from(w: NewWorld) -> World {
        match w {
            NewWorld::Collector => World::Collector,
            NewWorld::Transformer => World::Transformer,
            NewWorld::AlarmRule => World::AlarmRule,
        }
    }
}

/// Languages `plugin new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust on the `wasmeter-guest` SDK, built by cargo for wasm32-wasip2.
    Rust,
    /// Python, built by componentize-py.
    Python,
    /// JavaScript, built by ComponentizeJS.
    Js,
    /// C, built by zig cc (or clang) and `wasmeter plugin componentize`.
    C,
}

/// A template file: where it goes in the project, and its text.
type File = (&'static str, &'static str);

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("../../../templates/", $path))
    };
}

/// The files of the world's example, common to every language.
fn common(world: World) -> Vec<File> {
    let mut files = vec![
        ("test.sh", template!("common/test.sh")),
        (".gitignore", template!("common/gitignore")),
    ];
    match world {
        World::Collector => {
            files.push((
                "test/expected.csv",
                template!("common/collector.expected.csv"),
            ));
        }
        World::Transformer => {
            files.push(("test/input.csv", template!("common/transformer.input.csv")));
            files.push((
                "test/expected.csv",
                template!("common/transformer.expected.csv"),
            ));
        }
        World::AlarmRule => {
            files.push(("test/input.csv", template!("common/alarm-rule.input.csv")));
            files.push((
                "test/expected.jsonl",
                template!("common/alarm-rule.expected.jsonl"),
            ));
        }
        World::Decoder => {}
    }
    files
}

/// The language's files for `world`.
fn language(lang: Lang, world: World) -> Vec<File> {
    let pick = |collector, transformer, alarm_rule| match world {
        World::Collector => collector,
        World::Transformer => transformer,
        _ => alarm_rule,
    };
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", template!("rust/Cargo.toml")),
            ("rust-toolchain.toml", template!("rust/rust-toolchain.toml")),
            ("build.sh", template!("rust/build.sh")),
            ("README.md", template!("rust/README.md")),
            (
                "src/lib.rs",
                pick(
                    template!("rust/collector.rs"),
                    template!("rust/transformer.rs"),
                    template!("rust/alarm-rule.rs"),
                ),
            ),
        ],
        Lang::Python => vec![
            ("requirements.txt", template!("python/requirements.txt")),
            ("build.sh", template!("python/build.sh")),
            ("README.md", template!("python/README.md")),
            (
                "app.py",
                pick(
                    template!("python/collector.py"),
                    template!("python/transformer.py"),
                    template!("python/alarm-rule.py"),
                ),
            ),
        ],
        Lang::Js => vec![
            ("package.json", template!("js/package.json")),
            ("build.sh", template!("js/build.sh")),
            ("README.md", template!("js/README.md")),
            (
                "plugin.js",
                pick(
                    template!("js/collector.js"),
                    template!("js/transformer.js"),
                    template!("js/alarm-rule.js"),
                ),
            ),
        ],
        Lang::C => vec![
            ("requirements.txt", template!("c/requirements.txt")),
            ("build.sh", template!("c/build.sh")),
            ("README.md", template!("c/README.md")),
            (
                "plugin.c",
                pick(
                    template!("c/collector.c"),
                    template!("c/transformer.c"),
                    template!("c/alarm-rule.c"),
                ),
            ),
        ],
    }
}

/// What `test.sh` passes to `wasmeter plugin test` for `world`.
fn test_args(world: World) -> &'static str {
    match world {
        World::Collector => {
            "--now 2026-01-01T00:00:00Z --setting resource_id=test-host --expect test/expected.csv"
        }
        World::Transformer => {
            "--input test/input.csv --setting factor=2 --expect test/expected.csv"
        }
        _ => "--input test/input.csv --param threshold=90 --expect test/expected.jsonl",
    }
}

/// `Err` with the reason unless `name` is lowercase letters, digits and
/// `-`, starting with a letter (a Cargo package, npm package and file name).
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a plugin name: use lowercase letters, digits and `-`, starting with a letter (e.g. \"disk-usage\")"
        ))
    }
}

/// Runs `wasmeter plugin new`; prints the project folder.
pub fn run(args: NewArgs) -> Result<(), Failure> {
    let usage = |m: String| Failure::Usage(format!("error: {m}"));
    check_name(&args.name).map_err(usage)?;
    let world: World = args.world.into();
    let project = args.dir.join(&args.name);
    if project.exists() {
        return Err(usage(format!("{} already exists", project.display())));
    }
    let sdk = match &args.sdk {
        Some(p) => p.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    if args.lang == Lang::Rust && !sdk.join("Cargo.toml").exists() {
        return Err(usage(format!(
            "no wasmeter-guest SDK at {}: name it with --sdk PATH",
            sdk.display()
        )));
    }
    let vars = [
        ("{{name}}", args.name.clone()),
        ("{{name_snake}}", args.name.replace('-', "_")),
        ("{{world}}", world.as_str().to_owned()),
        ("{{world_snake}}", world.as_str().replace('-', "_")),
        ("{{sdk}}", sdk.display().to_string()),
        ("{{test_args}}", test_args(world).to_owned()),
        (
            "{{wasmeter}}",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "wasmeter".into()),
        ),
    ];
    let write = |rel: &str, text: &str| -> anyhow::Result<()> {
        let mut text = text.to_owned();
        for (k, v) in &vars {
            text = text.replace(k, v);
        }
        let path = project.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    };
    for (rel, text) in language(args.lang, world).into_iter().chain(common(world)) {
        write(rel, text)
            .map_err(|e| Failure::Runtime(e.context(format!("{}", project.join(rel).display()))))?;
    }
    if args.lang != Lang::Rust {
        authoring::write_wit(&project.join("wit")).map_err(Failure::Runtime)?;
    }
    println!("{}", project.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_package_and_file_names() {
        assert!(check_name("disk-usage").is_ok());
        assert!(check_name("x2").is_ok());
        for bad in ["", "Disk", "2x", "disk_usage", "disk-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_of_every_template_is_known() {
        let known = [
            "{{name}}",
            "{{name_snake}}",
            "{{world}}",
            "{{world_snake}}",
            "{{sdk}}",
            "{{test_args}}",
            "{{wasmeter}}",
        ];
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            for world in [World::Collector, World::Transformer, World::AlarmRule] {
                for (path, text) in language(lang, world).into_iter().chain(common(world)) {
                    let mut rest = text;
                    while let Some(i) = rest.find("{{") {
                        let end = rest[i..].find("}}").map_or(rest.len(), |e| i + e + 2);
                        let p = &rest[i..end];
                        assert!(known.contains(&p), "{lang:?} {world} {path}: {p}");
                        rest = &rest[end..];
                    }
                }
            }
        }
    }
}
