//! Integration tests of the cometctl binary: one test binary, one module per area.

mod support;

mod bad_input;
mod init;
mod render;
mod snapshots;
