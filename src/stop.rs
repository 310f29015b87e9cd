//! Stopping a run: Ctrl-C, a fatal API answer or a local fatal error, seen by every stage.

use std::sync::Arc;
use tokio::sync::watch;

/// Why the run is stopping, if it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopState {
    /// Going on.
    Running,
    /// Ctrl-C or SIGTERM: stop reading, finish what is in flight.
    Interrupted,
    /// The API refused the credentials (401/403): send nothing more.
    ApiFatal(String),
    /// A local fatal error (a report or state file cannot be written).
    LocalFatal(String),
}

/// A shared stop signal. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Stop {
    tx: Arc<watch::Sender<StopState>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// A signal in the running state.
    pub fn new() -> Stop {
        Stop {
            tx: Arc::new(watch::channel(StopState::Running).0),
        }
    }

    fn set(&self, s: StopState) {
        self.tx.send_if_modified(|cur| {
            if *cur == StopState::Running {
                *cur = s;
                true
            } else {
                false
            }
        });
    }

    /// Ctrl-C: the first reason to stop wins.
    pub fn interrupt(&self) {
        self.set(StopState::Interrupted)
    }

    /// A fatal API answer.
    pub fn api_fatal(&self, message: String) {
        self.set(StopState::ApiFatal(message))
    }

    /// A local fatal error.
    pub fn local_fatal(&self, message: String) {
        self.set(StopState::LocalFatal(message))
    }

    /// The current state.
    pub fn state(&self) -> StopState {
        self.tx.borrow().clone()
    }

    /// Whether any reason to stop has been given.
    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow() != StopState::Running
    }

    /// Whether reading should stop (interrupt or local failure); after a fatal API answer the
    /// rest of the input is still read, so every unsent row is listed as `not_attempted`.
    pub fn reading_should_stop(&self) -> bool {
        matches!(
            *self.tx.borrow(),
            StopState::Interrupted | StopState::LocalFatal(_)
        )
    }

    /// Resolves once a reason to stop is given.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| *s != StopState::Running).await;
    }
}
