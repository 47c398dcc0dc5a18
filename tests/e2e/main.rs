//! End-to-end tests. They run the built `cometctl` binary and check what it writes with the tools each
//! ecosystem uses itself: docker-compose, nginx, promtool and kubernetes-validate. `.ci/install-tools.sh`
//! installs them; a missing tool fails the test and says how to get it (nothing is skipped quietly).

mod harness;
mod validators;
