//! `sitebootctl`: operator CLI for the siteboot registration service.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use siteboot_registration::ctl::{self, Cli};

fn main() -> ExitCode {
    // Usage errors exit 1 (clap's default is 2, which this CLI reserves for "server said no").
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sitebootctl: start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(ctl::run(cli)))
}
