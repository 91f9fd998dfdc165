//! The `augur` binary: parse the command line, hand it to the library.

fn main() {
    let invocation = augur::cli::parse();
    std::process::exit(augur::cli::main(invocation));
}
