//! End-to-end tests: the real `nitrosync-parent`, `nitrosync-enclave` and `nitrosync` binaries,
//! and the Python AWS simulator, in temporary directories over Unix sockets.
//!
//! One test binary, as the house style asks; each test gets its own directory and processes.

mod attest;
mod authority;
mod cli;
mod control;
mod crash;
mod flags;
mod fleet;
mod hostile;
mod identity;
mod input;
mod logs;
mod metrics;
mod output;
mod relay;
mod scale;
mod stack;
mod support;
mod sync;
mod tenant_api;
mod terminal;
mod trust;
mod views;
mod wait;
