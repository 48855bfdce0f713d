//! The `wasmeter` binary: see `wasmeter --help`.

/// mimalloc keeps freed pages for reuse, where glibc's malloc returns them
/// to the kernel and faults them back in on the next batch: the rollup
/// engine's closed rows (one allocation per batch and granularity) ran
/// 1.5× faster with it (`cargo bench --bench rollup`, which uses it too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wasmeter::cli::main()
}
