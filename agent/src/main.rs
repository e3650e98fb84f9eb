//! `siteboot-agent`: parse arguments, start telemetry, run (see `siteboot_agent::cli`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    siteboot_agent::cli::main()
}
