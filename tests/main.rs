//! Augur's integration tests, one binary: sqllogictest files, the binary end to end,
//! the shell through a pty, functions, object storage against a local S3 server, the
//! Postgres-wire server with real clients, and crash safety under `kill -9`.

mod cli;
mod cluster;
mod common;
mod crash;
mod credit;
mod delta;
mod errors;
mod gbdt;
mod ml;
mod persistence;
mod s3;
mod server;
mod shell;
mod sqllogic;
mod udfs;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = vec![];
    trials.extend(sqllogic::trials());
    trials.extend(cli::trials());
    trials.extend(errors::trials());
    trials.extend(ml::trials());
    trials.extend(gbdt::trials());
    trials.extend(credit::trials());
    trials.extend(delta::trials());
    trials.extend(persistence::trials());
    trials.extend(shell::trials());
    trials.extend(s3::trials());
    trials.extend(cluster::trials());
    trials.extend(server::trials());
    trials.extend(udfs::trials());
    trials.extend(crash::trials());
    libtest_mimic::run(&args, trials).exit();
}
