//! The `augur` binary: parse the command line, hand it to the library.

fn main() {
    let args = augur::cli::Args::parse_ordered();
    std::process::exit(augur::cli::run(args));
}
