//! The lifecycle a service goes through, shared by its probes and its
//! server: starting → ready → draining → stopped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Where in its life a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Startup hooks are running: not ready, not started.
    Starting,
    /// Serving; readiness depends on the checks.
    Ready,
    /// Shutting down: not ready (so load balancers stop sending), still
    /// live and still serving what arrives.
    Draining,
    /// The listener is closed.
    Stopped,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        })
    }
}

/// A shared handle on the lifecycle. Clones see and move the same state.
///
/// The phase only moves forward: asking to go back (say, `set_ready` while
/// draining) does nothing, so a late startup hook cannot make a draining
/// service ready again.
///
/// ```
/// use opsready_health::{Lifecycle, Phase};
///
/// let lifecycle = Lifecycle::new();
/// assert_eq!(lifecycle.phase(), Phase::Starting);
/// lifecycle.set_ready();
/// lifecycle.start_draining();
/// lifecycle.set_ready(); // too late: draining wins
/// assert_eq!(lifecycle.phase(), Phase::Draining);
/// assert!(lifecycle.has_started());
///
/// // Shut down while starting: a late `set_ready` starts nothing.
/// let interrupted = Lifecycle::new();
/// interrupted.start_draining();
/// interrupted.set_ready();
/// assert!(!interrupted.has_started());
/// ```
#[derive(Debug, Clone)]
pub struct Lifecycle {
    phase: Arc<watch::Sender<Phase>>,
    /// Whether startup finished: a shutdown during the startup hooks goes
    /// from `Starting` to `Draining` without it.
    started: Arc<AtomicBool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A lifecycle in [`Phase::Starting`].
    pub fn new() -> Self {
        Self {
            phase: Arc::new(watch::Sender::new(Phase::Starting)),
            started: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    fn advance(&self, to: Phase) {
        self.phase.send_if_modified(|phase| {
            let forward = to > *phase;
            if forward {
                *phase = to;
            }
            forward
        });
    }

    /// Startup finished: `/startupz` turns 200 and readiness follows the
    /// checks.
    pub fn set_ready(&self) {
        // Started only by this move: a `set_ready` after the drain began
        // is too late, and the service never started.
        self.phase.send_if_modified(|phase| {
            let starting = *phase == Phase::Starting;
            if starting {
                self.started.store(true, Ordering::Release);
                *phase = Phase::Ready;
            }
            starting
        });
    }

    /// Whether startup finished ([`set_ready`](Self::set_ready) was
    /// called), whatever the phase since: a service shut down while its
    /// startup hooks ran never started.
    pub fn has_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Shutdown began: readiness is 503 from this instant.
    pub fn start_draining(&self) {
        self.advance(Phase::Draining);
    }

    /// The listener closed.
    pub fn set_stopped(&self) {
        self.advance(Phase::Stopped);
    }

    /// Waits until the phase is at least `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.phase.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|current| *current >= phase).await;
    }
}
