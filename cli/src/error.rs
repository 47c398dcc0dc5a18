//! The exit-code vocabulary: what a failure means to the script that ran cometctl.

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure of the environment (IO, permissions).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for invalid input: arguments, spec, or an action refused to protect existing state.
pub const EXIT_INVALID_INPUT: u8 = 2;
/// Exit code for a deploy or upgrade that stopped because a service did not become ready (what ran before
/// still runs; an upgrade has rolled back).
pub const EXIT_DEPLOY_FAILED: u8 = 3;

/// Exit code of `doctor` when a check fails (the same code as a deploy that stopped: something is not
/// healthy).
pub const EXIT_CHECK_FAILED: u8 = 3;
/// Exit code of `doctor` when the worst outcome is a warn.
pub const EXIT_CHECK_WARNED: u8 = 4;

/// An action refused to protect existing state, or input that cannot be used; exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// A deploy that stopped because a service did not become ready; what was already running still runs. Exits 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeployFailed(pub String);

/// A check that found something wrong after the work began (a restored database whose counts differ from its
/// backup's manifest). Exits 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// The exit code of a command's error: the first refusal or deploy failure in its chain decides.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<DeployFailed>() || cause.is::<CheckFailed>()) {
        EXIT_DEPLOY_FAILED
    } else if error.chain().any(|cause| cause.is::<Refusal>()) {
        EXIT_INVALID_INPUT
    } else {
        EXIT_FAILURE
    }
}
