//! `sitebootctl`: the operator CLI. Talks to the operator API over HTTPS, trusting only the
//! service CA file, authenticating with the operator credential file; defaults come from
//! the embedded data directory so it works next to `cargo run` with no flags.
//!
//! Exit codes ([`args::EXIT_CODES_HELP`], shown by `--help`): 0 ok, 1 usage or local
//! configuration, 2 the server said no (other 4xx), 3 unreachable or server error (5xx),
//! 4 authentication refused, 5 not found.

mod args;
mod client;
mod fleet;
mod output;
mod seed;

pub use args::{Cli, Command, Output, EXIT_CODES_HELP};
pub use client::{Client, CtlError};
pub use seed::SeedArgs;

/// Runs one command and returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    match execute(&cli).await {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("sitebootctl: {e}");
            e.exit_code()
        }
    }
}

/// Runs one command and returns what it prints.
pub async fn execute(cli: &Cli) -> Result<String, CtlError> {
    if let Command::Seed(a) = &cli.command {
        let value = seed::run(cli, a).await?;
        return Ok(output::render(&cli.command, &value, cli.output));
    }
    let client = Client::from_cli(cli)?;
    let value = args::dispatch(&client, &cli.command).await?;
    Ok(output::render(&cli.command, &value, cli.output))
}
