//! Backpressure: the source stops fetching while too much of what it read is
//! not yet written, so a slow disk or model never grows memory.
//!
//! The source counts each message it hands over ([`InFlight::take`]); the
//! pipeline gives the count back once the message's batch is written to the
//! sink ([`InFlight::release`]). When either budget is spent (bytes:
//! `kafka.max_in_flight_bytes`; messages: half the event channel, so that
//! handing over never blocks) the polling thread pauses every assigned
//! partition with librdkafka's pause, which also drops its prefetched
//! messages, and keeps polling: rebalances, heartbeats and
//! `max.poll.interval.ms` are still served. It resumes once half of each
//! budget is free; librdkafka fetches again from the next message the
//! application has not seen, so nothing is skipped or read twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::comment::RawMessage;
use crate::metrics::Metrics;

/// Messages handed to the pipeline and not yet written, against a budget.
pub struct InFlight {
    bytes: AtomicU64,
    messages: AtomicU64,
    paused: AtomicBool,
    ever_paused: AtomicBool,
    max_bytes: u64,
    max_messages: u64,
    metrics: Metrics,
}

impl InFlight {
    /// A budget of `max_bytes` and `max_messages`.
    pub fn new(max_bytes: u64, max_messages: u64, metrics: Metrics) -> Self {
        Self {
            bytes: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            ever_paused: AtomicBool::new(false),
            max_bytes,
            max_messages: max_messages.max(1),
            metrics,
        }
    }

    /// What a message counts against the byte budget: its payload and key,
    /// plus a fixed share for its coordinates and allocation.
    pub fn weight(m: &RawMessage) -> u64 {
        let payload = m.payload.as_ref().map_or(0, Vec::len);
        let key = m.key.as_ref().map_or(0, Vec::len);
        (payload + key + m.coords.topic.len() + 96) as u64
    }

    /// The source handed over a message of `weight` bytes.
    pub fn take(&self, weight: u64) {
        let now = self.bytes.fetch_add(weight, Ordering::SeqCst) + weight;
        self.messages.fetch_add(1, Ordering::SeqCst);
        self.metrics.in_flight_bytes.set(now as i64);
    }

    /// The pipeline wrote `messages` messages of `bytes` in all.
    pub fn release(&self, bytes: u64, messages: u64) {
        let sub = |a: &AtomicU64, v: u64| {
            a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| {
                Some(x.saturating_sub(v))
            })
            .map_or(0, |old| old.saturating_sub(v))
        };
        let now = sub(&self.bytes, bytes);
        sub(&self.messages, messages);
        self.metrics.in_flight_bytes.set(now as i64);
    }

    /// Bytes in flight now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// Whether fetching should pause: a budget is spent.
    pub fn over(&self) -> bool {
        self.bytes() >= self.max_bytes || self.messages.load(Ordering::SeqCst) >= self.max_messages
    }

    /// Whether paused fetching may resume: half of each budget is free.
    pub fn may_resume(&self) -> bool {
        self.bytes() <= self.max_bytes / 2
            && self.messages.load(Ordering::SeqCst) <= self.max_messages / 2
    }

    /// Whether fetching is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Whether fetching was ever paused (a partition revoked while paused
    /// stays paused inside librdkafka; a new assignment must then resume it).
    pub fn ever_paused(&self) -> bool {
        self.ever_paused.load(Ordering::SeqCst)
    }

    /// Records a pause or a resume.
    pub fn set_paused(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::SeqCst) == paused {
            return;
        }
        self.metrics.fetch_paused.set(i64::from(paused));
        if paused {
            self.ever_paused.store(true, Ordering::SeqCst);
            self.metrics.backpressure_pauses.inc();
            tracing::info!(
                in_flight_bytes = self.bytes(),
                budget = self.max_bytes,
                "backpressure: fetching paused until the sink catches up"
            );
        } else {
            tracing::info!(
                in_flight_bytes = self.bytes(),
                "backpressure: fetching resumed"
            );
        }
    }
}

/// What the polling thread should do with fetching now.
#[derive(Debug, PartialEq, Eq)]
pub enum Valve {
    /// Pause every assigned partition.
    Pause,
    /// Resume every assigned partition.
    Resume,
    /// Leave fetching as it is.
    Hold,
}

impl InFlight {
    /// The valve's next move, with hysteresis (pause when a budget is spent,
    /// resume when half of each is free).
    pub fn valve(&self) -> Valve {
        match (self.paused(), self.over(), self.may_resume()) {
            (false, true, _) => Valve::Pause,
            (true, _, true) => Valve::Resume,
            _ => Valve::Hold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::SourceCoords;

    fn msg(len: usize) -> RawMessage {
        RawMessage {
            coords: SourceCoords {
                topic: "fb".into(),
                partition: 0,
                offset: 0,
                kafka_timestamp: None,
            },
            key: None,
            payload: Some(vec![b'x'; len]),
        }
    }

    #[test]
    fn the_valve_pauses_when_spent_and_resumes_at_half() {
        let m = Metrics::new();
        let f = InFlight::new(10_000, 1_000, m.clone());
        let w = InFlight::weight(&msg(1_000));
        assert_eq!(w, 1_000 + 2 + 96);
        for _ in 0..9 {
            f.take(w);
        }
        assert_eq!(f.valve(), Valve::Hold, "under the budget");
        f.take(w);
        assert_eq!(f.valve(), Valve::Pause);
        f.set_paused(true);
        assert_eq!(m.fetch_paused.get(), 1);
        assert_eq!(m.backpressure_pauses.get(), 1);
        f.release(3 * w, 3);
        assert_eq!(f.valve(), Valve::Hold, "between half and full: hold");
        f.release(3 * w, 3);
        assert_eq!(f.valve(), Valve::Resume);
        f.set_paused(false);
        assert_eq!(m.fetch_paused.get(), 0);
        assert_eq!(m.in_flight_bytes.get(), (4 * w) as i64);
        assert!(f.ever_paused());
        // Releasing more than was taken never wraps.
        f.release(u64::MAX, u64::MAX);
        assert_eq!(f.bytes(), 0);
    }

    #[test]
    fn the_message_budget_pauses_small_messages_too() {
        let f = InFlight::new(1 << 30, 4, Metrics::new());
        for _ in 0..4 {
            f.take(InFlight::weight(&msg(1)));
        }
        assert_eq!(f.valve(), Valve::Pause);
    }
}
