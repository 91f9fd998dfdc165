//! The `augur` binary: parse the command line, hand it to the library.

/// mimalloc: DataFusion allocates many short-lived buffers from several threads, where glibc's
/// allocator spends measurable time (benches/results/tpch-history.md has the before/after).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = augur::cli::Args::parse_ordered();
    std::process::exit(augur::cli::run(args));
}
