//! The siteboot end-to-end harness: a Kubernetes API emulator served over HTTP, real Git
//! servers on loopback, a process runner for the real binaries and a secret scan of
//! their logs. Used by every journey test in `e2e/tests/`.
#![forbid(unsafe_code)]

pub mod browser;
pub mod emulator;
pub mod git;
pub mod journey;
pub mod ports;
pub mod process;
pub mod secrets;
pub mod storm;
pub mod vm;
