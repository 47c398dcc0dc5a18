//! Integration tests of the cometctl binary: one test binary, one module per area. `validators` checks what
//! cometctl writes with the tools each ecosystem uses itself (docker-compose, docker stack, nginx, promtool,
//! kubernetes-validate) and `security` with third-party scanners (trivy, compose-lint, hadolint);
//! `.ci/install-tools.sh` installs them, and a missing tool fails the test with the command that installs it
//! (nothing is skipped quietly).

mod support;

mod alert_rules;
mod backup;
mod bad_input;
mod doctor;
mod images;
mod init;
mod playbook;
mod render;
mod security;
mod snapshots;
mod tidy;
mod validators;
