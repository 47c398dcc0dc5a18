//! The shutdown signal: SIGTERM or Ctrl-C, once, heard by every task of the process.

use tokio::sync::watch;

/// The tasks of a running process; the first to end (an error, or every task after the signal) decides how
/// it exits.
pub type Tasks = tokio::task::JoinSet<anyhow::Result<()>>;

/// A shutdown signal every task can wait on; clones hear the same signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Starts listening for SIGTERM and Ctrl-C.
    pub fn install() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: draining in-flight work");
            let _ = sender.send(true);
        });
        Shutdown(receiver)
    }

    /// Resolves once the signal came.
    pub async fn wait(mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
