//! The `spend` binary: parses the command line and hands over to
//! `spend_cli::run`. Exit codes: 0 success, 1 failure (including a failed
//! verification), 2 bad usage.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = spend_cli::Cli::parse();
    // Configuration first: a mistake in it (an unknown key, a typo) is
    // reported before anything starts, and it says how to log.
    let config = match spend_cli::SpendConfig::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json = match config.log.json() {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    spend_core::telemetry::init(&cli.log_filter_with(&config.log.level), json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(spend_cli::run(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
