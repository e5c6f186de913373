//! `inferprobe`: parses flags, sets up logging, runs a subcommand and maps the result to an exit
//! code (0 success, 1 failed probe or invalid config, 2 bad usage). What it prints passes
//! through the secret redactor, panics included.

use std::process::ExitCode;

use clap::Parser;
use inferprobe::cli::{Cli, Command};
use inferprobe::{commands, logging, redact};

fn main() -> ExitCode {
    redact::install_panic_hook();
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format, &cli.log_level) {
        redact::eprint(format_args!("error: {e}"));
        return ExitCode::from(commands::EXIT_USAGE);
    }
    if let Command::CheckConfig(args) = cli.command {
        return ExitCode::from(commands::check_config(args));
    }
    if let Command::Thresholds(args) = cli.command {
        return ExitCode::from(inferprobe::thresholds::run_cli(args));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            redact::eprint(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(commands::EXIT_FAILURE);
        }
    };
    let res = rt.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run(args).await,
            Command::Probe(args) => commands::probe(*args).await,
            Command::Sim(args) => inferprobe::sim::run_cli(*args).await.map(|()| 0),
            Command::Calibrate(args) => inferprobe::calibrate::run(*args).await,
            Command::Gate(args) => inferprobe::gate::run_cli(*args).await,
            Command::CheckConfig(_) | Command::Thresholds(_) => Ok(0),
        }
    });
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            redact::eprint(format_args!("error: {e:#}"));
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}
