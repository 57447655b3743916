//! Watching the Kafka client so that trouble is loud but not a flood.
//!
//! - [`LogThrottle`]: librdkafka's warnings and errors (and its error
//!   callback) pass through one throttle. The first line in a window is
//!   logged at once; the rest are counted and summed up in one line per
//!   window, with the latest message and how long the brokers have been
//!   unreachable. An unreachable broker thus logs one line per 10 s, not ~40
//!   per second.
//! - [`apply_stats`]: librdkafka's statistics (every
//!   `statistics.interval.ms`, 5 s unless the pipeline sets it) give the
//!   consumer lag of each assigned partition and whether any broker is up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::statistics::Statistics;

use crate::metrics::{Metrics, PartitionLabel};

/// The summary window of [`LogThrottle`].
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// Rate-limits the Kafka client's warnings and errors to one line per window.
#[derive(Debug)]
pub struct LogThrottle {
    window: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last_emit: Option<Instant>,
    suppressed: u64,
    latest: String,
    error: bool,
}

/// A line the throttle lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Error (else warning).
    pub error: bool,
    /// The text.
    pub text: String,
}

impl LogThrottle {
    /// A throttle with the given window.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Offers one message; returns the line to log now, if any.
    pub fn offer(&self, error: bool, msg: &str, now: Instant) -> Option<Line> {
        let mut s = self.lock();
        let due = s
            .last_emit
            .is_none_or(|t| now.duration_since(t) >= self.window);
        if due && s.suppressed == 0 {
            s.last_emit = Some(now);
            return Some(Line {
                error,
                text: msg.to_string(),
            });
        }
        s.suppressed += 1;
        s.latest = msg.to_string();
        s.error |= error;
        None
    }

    /// Called regularly (the poll loop, every 100 ms): once a window has
    /// passed since the last line and messages were held back, returns one
    /// summary line; `context` is appended (e.g. how long brokers are down).
    pub fn flush(&self, now: Instant, context: Option<String>) -> Option<Line> {
        let mut s = self.lock();
        let due = s
            .last_emit
            .is_none_or(|t| now.duration_since(t) >= self.window);
        if !due || s.suppressed == 0 {
            return None;
        }
        let mut text = format!(
            "{} more Kafka client message(s) in the last {} s; latest: {}",
            s.suppressed,
            s.last_emit
                .map_or(self.window, |t| now.duration_since(t))
                .as_secs(),
            s.latest
        );
        if let Some(c) = context {
            text.push_str("; ");
            text.push_str(&c);
        }
        let line = Line {
            error: s.error,
            text,
        };
        s.last_emit = Some(now);
        s.suppressed = 0;
        s.error = false;
        Some(line)
    }
}

/// Logs a line from the throttle under the `librdkafka` target.
pub fn emit(line: Option<Line>) {
    if let Some(l) = line {
        if l.error {
            tracing::error!(target: "librdkafka", "{}", l.text);
        } else {
            tracing::warn!(target: "librdkafka", "{}", l.text);
        }
    }
}

/// What the watcher says about unreachable brokers, for summary lines.
pub fn brokers_context(metrics: &Metrics) -> Option<String> {
    metrics.health.brokers_down_for().map(|d| {
        format!(
            "no broker reachable for {} s (/readyz turns red after {} s; check kafka.brokers, the network and the broker)",
            d.as_secs(),
            metrics.health.unreachable_after().as_secs()
        )
    })
}

/// Reads one statistics report: per-partition lag of the partitions this
/// member is assigned, and whether any broker is connected. Returns whether
/// broker reachability changed, and to what.
pub fn apply_stats(metrics: &Metrics, stats: &Statistics) -> Option<bool> {
    for (name, topic) in &stats.topics {
        for (id, p) in &topic.partitions {
            if *id < 0 {
                continue; // librdkafka's internal "unassigned" partition
            }
            let label = PartitionLabel {
                topic: name.clone(),
                partition: id.to_string(),
            };
            if !p.desired {
                metrics.consumer_lag.remove(&label);
                continue;
            }
            if let Some(lag) = partition_lag(p) {
                metrics.consumer_lag.get_or_create(&label).set(lag);
            }
        }
    }
    if stats.brokers.is_empty() {
        return None;
    }
    let up = stats.brokers.values().any(|b| b.state == "UP");
    metrics.brokers_up.set(i64::from(up));
    metrics.health.set_brokers_up(up).then_some(up)
}

/// The lag of one partition: librdkafka's `consumer_lag` (log end minus the
/// committed offset); before anything is committed, the log's size.
fn partition_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    if p.hi_offset >= 0 && p.lo_offset >= 0 && p.committed_offset < 0 {
        return Some(p.hi_offset - p.lo_offset);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Broker, Partition, Topic};

    #[test]
    fn a_flood_becomes_one_line_per_window() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut lines = Vec::new();
        // 40 messages a second for 60 s, flushed every 100 ms.
        for ms in (0..60_000u64).step_by(25) {
            let now = t0 + Duration::from_millis(ms);
            lines.extend(t.offer(true, &format!("connect failed at {ms}"), now));
            if ms % 100 == 0 {
                lines.extend(t.flush(now, Some("no broker reachable".into())));
            }
        }
        assert!(
            (6..=7).contains(&lines.len()),
            "{} lines: {lines:?}",
            lines.len()
        );
        assert_eq!(lines[0].text, "connect failed at 0");
        assert!(
            lines[1]
                .text
                .starts_with("400 more Kafka client message(s) in the last 10 s"),
            "{}",
            lines[1].text
        );
        assert!(lines[1].text.ends_with("; no broker reachable"));
        assert!(lines.iter().all(|l| l.error));
    }

    #[test]
    fn a_quiet_client_logs_each_line() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let a = t.offer(false, "a", t0);
        let b = t.offer(false, "b", t0 + Duration::from_secs(11));
        assert_eq!(a.map(|l| l.text).as_deref(), Some("a"));
        assert_eq!(b.map(|l| l.text).as_deref(), Some("b"));
        assert_eq!(t.flush(t0 + Duration::from_secs(30), None), None);
    }

    fn partition(id: i32, desired: bool, lo: i64, hi: i64, committed: i64) -> Partition {
        Partition {
            partition: id,
            desired,
            lo_offset: lo,
            hi_offset: hi,
            committed_offset: committed,
            // What librdkafka reports: -1 until an offset is committed.
            consumer_lag: if committed >= 0 { hi - committed } else { -1 },
            ..Default::default()
        }
    }

    fn report(state: &str) -> Statistics {
        let partitions = [
            partition(-1, false, -1, -1, -1001),
            partition(0, true, 0, 142, 100),
            partition(1, true, 3, 10, -1001),
            partition(2, false, 0, 99, -1001),
        ];
        let topic = Topic {
            topic: "feedback".into(),
            partitions: partitions.into_iter().map(|p| (p.partition, p)).collect(),
            ..Default::default()
        };
        let broker = Broker {
            name: "localhost:9092/1".into(),
            nodeid: 1,
            state: state.into(),
            ..Default::default()
        };
        Statistics {
            brokers: [(broker.name.clone(), broker)].into_iter().collect(),
            topics: [("feedback".to_string(), topic)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn stats_give_lag_and_broker_state() {
        let m = Metrics::new();
        assert_eq!(
            apply_stats(&m, &report("UP")),
            None,
            "brokers were not known to be down"
        );
        let page = m.render();
        assert!(
            page.contains("verbatim_consumer_lag{topic=\"feedback\",partition=\"0\"} 42"),
            "{page}"
        );
        assert!(
            page.contains("verbatim_consumer_lag{topic=\"feedback\",partition=\"1\"} 7"),
            "before the first commit, the log's size: {page}"
        );
        assert!(!page.contains("partition=\"2\""), "not assigned: {page}");
        assert!(!page.contains("partition=\"-1\""), "{page}");
        assert!(page.contains("verbatim_brokers_up 1"), "{page}");

        assert_eq!(apply_stats(&m, &report("CONNECT")), Some(false));
        assert!(m.health.brokers_down_for().is_some());
        assert!(m.render().contains("verbatim_brokers_up 0"));
        assert_eq!(apply_stats(&m, &report("UP")), Some(true));
        assert!(m.health.brokers_down_for().is_none());
    }
}
