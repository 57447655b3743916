//! What `/livez` and `/readyz` answer: the job's own view of whether it is
//! alive and whether it is doing its work.
//!
//! Every part of the job that knows something sets it here:
//! - the pipeline marks the models loaded and beats on every turn of its
//!   event loop;
//! - the Kafka source marks the group joined or lost, and the brokers
//!   reachable or not (from librdkafka's error callback and statistics);
//! - anything that stops the job for good records why.
//!
//! Liveness fails only when the event loop has not turned for
//! [`Health::stall_after`]; readiness fails while any check is red, with the
//! failing checks named in the answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the event loop may go without a turn before `/livez` fails.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(300);

/// How long the brokers may be unreachable before `/readyz` fails.
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::from_secs(60);

/// Shared health state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    /// Milliseconds after `started` of the event loop's last turn.
    beat_ms: AtomicU64,
    models_loaded: AtomicBool,
    /// Whether this job reads from a consumer group at all (`run`), so that
    /// readiness waits for joining it.
    needs_group: AtomicBool,
    joined: AtomicBool,
    brokers_down_since: Mutex<Option<Instant>>,
    stopped: Mutex<Option<String>>,
    stall_after: Mutex<Duration>,
    unreachable_after: Mutex<Duration>,
}

/// One check of `/readyz` and whether it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name: `models`, `group`, `brokers`, `running`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// What was seen, in words.
    pub detail: String,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these small locks leaves valid data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Health {
    /// A fresh state: nothing loaded, nothing joined, brokers not known to be down.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                started: Instant::now(),
                beat_ms: AtomicU64::new(0),
                models_loaded: AtomicBool::new(false),
                needs_group: AtomicBool::new(false),
                joined: AtomicBool::new(false),
                brokers_down_since: Mutex::new(None),
                stopped: Mutex::new(None),
                stall_after: Mutex::new(DEFAULT_STALL_AFTER),
                unreachable_after: Mutex::new(DEFAULT_UNREACHABLE_AFTER),
            }),
        }
    }

    /// Sets how long the event loop may stall and the brokers may be
    /// unreachable before the probes fail.
    pub fn set_limits(&self, stall_after: Duration, unreachable_after: Duration) {
        *lock(&self.inner.stall_after) = stall_after;
        *lock(&self.inner.unreachable_after) = unreachable_after;
    }

    /// The event-loop stall limit.
    pub fn stall_after(&self) -> Duration {
        *lock(&self.inner.stall_after)
    }

    /// The broker-unreachable limit.
    pub fn unreachable_after(&self) -> Duration {
        *lock(&self.inner.unreachable_after)
    }

    /// The event loop turned.
    pub fn beat(&self) {
        let ms = self.inner.started.elapsed().as_millis() as u64;
        self.inner.beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the event loop last turned.
    pub fn since_beat(&self) -> Duration {
        let now = self.inner.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.inner.beat_ms.load(Ordering::Relaxed)))
    }

    /// The operators (and their models) are loaded.
    pub fn set_models_loaded(&self) {
        self.inner.models_loaded.store(true, Ordering::SeqCst);
    }

    /// This job must join a consumer group before it is ready.
    pub fn require_group(&self) {
        self.inner.needs_group.store(true, Ordering::SeqCst);
    }

    /// The consumer group was joined (an assignment arrived, even an empty
    /// one) or lost (session timeout, fatal error).
    pub fn set_joined(&self, joined: bool) {
        self.inner.joined.store(joined, Ordering::SeqCst);
    }

    /// Whether the group is joined.
    pub fn joined(&self) -> bool {
        self.inner.joined.load(Ordering::SeqCst)
    }

    /// Records whether any broker is reachable. Returns `true` when this
    /// changes the state (down → up or up → down).
    pub fn set_brokers_up(&self, up: bool) -> bool {
        let mut since = lock(&self.inner.brokers_down_since);
        match (up, since.is_some()) {
            (true, true) => {
                *since = None;
                true
            }
            (false, false) => {
                *since = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// How long every broker has been unreachable (`None`: reachable, or not
    /// known to be otherwise).
    pub fn brokers_down_for(&self) -> Option<Duration> {
        lock(&self.inner.brokers_down_since).map(|t| t.elapsed())
    }

    /// The job is stopping for good, for `reason`.
    pub fn set_stopped(&self, reason: impl Into<String>) {
        *lock(&self.inner.stopped) = Some(reason.into());
    }

    /// Whether the event loop is alive (`/livez`).
    pub fn live(&self) -> Check {
        let since = self.since_beat();
        let limit = self.stall_after();
        Check {
            name: "event_loop",
            ok: since <= limit,
            detail: format!(
                "last turn {:.1} s ago (limit {} s)",
                since.as_secs_f64(),
                limit.as_secs()
            ),
        }
    }

    /// Every readiness check (`/readyz`).
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let loaded = self.inner.models_loaded.load(Ordering::SeqCst);
        out.push(Check {
            name: "models",
            ok: loaded,
            detail: if loaded { "loaded" } else { "loading" }.into(),
        });
        if self.inner.needs_group.load(Ordering::SeqCst) {
            let joined = self.joined();
            out.push(Check {
                name: "group",
                ok: joined,
                detail: if joined {
                    "joined"
                } else {
                    "not joined (waiting for an assignment)"
                }
                .into(),
            });
            let limit = self.unreachable_after();
            let (ok, detail) = match self.brokers_down_for() {
                None => (true, "reachable".to_string()),
                Some(d) => (
                    d < limit,
                    format!(
                        "unreachable for {} s (red after {} s)",
                        d.as_secs(),
                        limit.as_secs()
                    ),
                ),
            };
            out.push(Check {
                name: "brokers",
                ok,
                detail,
            });
        }
        let stopped = lock(&self.inner.stopped).clone();
        out.push(Check {
            name: "running",
            ok: stopped.is_none(),
            detail: stopped.unwrap_or_else(|| "yes".into()),
        });
        out
    }

    /// Whether every readiness check passes.
    pub fn ready(&self) -> bool {
        self.checks().iter().all(|c| c.ok)
    }
}

/// The text of a probe's answer: one line per check, `ok` or `FAIL`.
pub fn render_checks(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| {
            format!(
                "{} {}: {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_models_group_and_brokers() {
        let h = Health::new();
        h.require_group();
        assert!(!h.ready(), "{}", render_checks(&h.checks()));
        h.set_models_loaded();
        assert!(!h.ready());
        h.set_joined(true);
        assert!(h.ready(), "{}", render_checks(&h.checks()));
        h.set_limits(DEFAULT_STALL_AFTER, Duration::ZERO);
        assert!(h.set_brokers_up(false));
        assert!(!h.set_brokers_up(false), "already down: no change");
        assert!(!h.ready(), "brokers down past the limit");
        assert!(render_checks(&h.checks()).contains("FAIL brokers: unreachable"));
        assert!(h.set_brokers_up(true));
        assert!(h.ready());
        h.set_stopped("gave up");
        assert!(!h.ready());
    }

    #[test]
    fn brokers_down_within_the_limit_stay_ready() {
        let h = Health::new();
        h.require_group();
        h.set_models_loaded();
        h.set_joined(true);
        h.set_brokers_up(false);
        assert!(h.ready(), "60 s of grace by default");
    }

    #[test]
    fn a_job_without_a_group_is_ready_once_loaded() {
        let h = Health::new();
        h.set_models_loaded();
        assert!(h.ready());
    }

    #[test]
    fn live_fails_when_the_loop_stalls() {
        let h = Health::new();
        h.beat();
        assert!(h.live().ok);
        h.set_limits(Duration::ZERO, DEFAULT_UNREACHABLE_AFTER);
        std::thread::sleep(Duration::from_millis(5));
        let c = h.live();
        assert!(!c.ok, "{c:?}");
    }
}
