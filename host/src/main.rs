//! The `wasmeter` binary: see `wasmeter --help`.

fn main() -> std::process::ExitCode {
    wasmeter::cli::main()
}
