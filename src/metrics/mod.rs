//! What an on-call engineer sees: Prometheus metrics and health probes.
//!
//! - this file: [`Metrics`], every metric the job exports (README lists them);
//! - [`health`]: the state behind `/livez` and `/readyz`;
//! - [`http`]: the axum endpoint serving both;
//! - [`memory`]: the heap's arenas (set first thing in `main`).

pub mod health;
pub mod http;
pub mod memory;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use health::Health;

/// Label set with one `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Reject reason code.
    pub reason: String,
}

/// Label set with one `table` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    /// Output table (`comments`, `rejected`).
    pub table: String,
}

/// Label set with one `stage` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// Stage name: an operator's name, `sink_write`, `sink_commit`, `offset_commit`.
    pub stage: String,
}

/// Label set with one `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Label set of a Kafka partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: String,
}

/// Label set of an offset reset.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OffsetResetLabel {
    /// `beyond_end` (topic recreated or truncated) or `before_start` (retention).
    pub cause: String,
    /// The `kafka.on_offset_reset` applied: `fail`, `earliest`, `latest`.
    pub policy: String,
}

/// The action priorities as labelled, 1 urgent … 4 low.
pub const PRIORITY_LABELS: [&str; 4] = ["urgent", "high", "normal", "low"];

/// Label set with one `priority` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PriorityLabel {
    /// `urgent`, `high`, `normal` or `low`.
    pub priority: String,
}

/// Label set of the build-info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    /// The crate version.
    pub version: String,
}

/// Every metric the job exports. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Messages read from the source.
    pub messages: Counter,
    /// Rows appended to `comments` files (committed or not).
    pub comments: Counter,
    /// Messages rejected, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Files committed, by table.
    pub files: Family<TableLabel, Counter>,
    /// Bytes in committed files.
    pub bytes: Counter,
    /// Commits lost to another writer's marker (this instance was stale).
    pub commits_fenced: Counter,
    /// Offset commits to Kafka, by result.
    pub offset_commits: Family<ResultLabel, Counter>,
    /// Records produced to the dead-letter topic.
    pub dead_letters: Counter,
    /// Records produced to the action topic.
    pub actions: Counter,
    /// Seconds spent processing one batch (NLP stages + sink write).
    pub batch_seconds: Histogram,
    /// Partitions currently assigned to this instance.
    pub assigned_partitions: Gauge,
    /// Seconds spent in each stage, summed (rate() is the stage's share of a core).
    pub stage_seconds: Family<StageLabel, Counter<f64, AtomicU64>>,
    /// Messages in each assigned partition not yet durable: the log end minus
    /// the committed offset (before the first commit, the log's size).
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    /// Unix time of the last range made durable.
    pub last_commit_time: Gauge,
    /// Seconds from a message's Kafka timestamp to its row being durable.
    pub end_to_end_seconds: Histogram,
    /// Seconds of one encoder forward pass (one sub-batch).
    pub inference_seconds: Histogram,
    /// Errors reported by the Kafka client, by kind.
    pub kafka_errors: Family<ReasonLabel, Counter>,
    /// Partitions whose file progress lay outside their log, by cause and policy.
    pub offset_resets: Family<OffsetResetLabel, Counter>,
    /// 1 when any broker is connected, 0 when none is.
    pub brokers_up: Gauge,
    /// 1 when `/readyz` would answer 200.
    pub ready: Gauge,
    /// Resident memory of the process, read at each scrape.
    pub resident_memory: Gauge,
    /// Bytes of rows the sink holds in memory (not yet in a file).
    pub sink_buffered_bytes: Gauge,
    /// Bytes of messages handed over by the source and not yet written.
    pub in_flight_bytes: Gauge,
    /// 1 while fetching is paused because the in-flight budget is spent.
    pub fetch_paused: Gauge,
    /// Times fetching was paused for backpressure.
    pub backpressure_pauses: Counter,
    /// Comments found to repeat a complaint from the customer's history.
    pub repeat_issues: Counter,
    /// Customers with a complaint inside the repeat window, in memory.
    pub history_customers: Gauge,
    /// Queued comments not answered within their priority's SLA.
    pub actions_overdue: Family<PriorityLabel, Gauge>,
    /// The state behind `/livez` and `/readyz`.
    pub health: Health,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under `verbatim_`.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("verbatim");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            messages: Counter::default(),
            comments: Counter::default(),
            rejected: Family::default(),
            files: Family::default(),
            commits_fenced: Counter::default(),
            bytes: Counter::default(),
            offset_commits: Family::default(),
            dead_letters: Counter::default(),
            actions: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            assigned_partitions: Gauge::default(),
            stage_seconds: Family::default(),
            consumer_lag: Family::default(),
            last_commit_time: Gauge::default(),
            end_to_end_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 18)),
            inference_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            kafka_errors: Family::default(),
            offset_resets: Family::default(),
            brokers_up: Gauge::default(),
            ready: Gauge::default(),
            resident_memory: Gauge::default(),
            sink_buffered_bytes: Gauge::default(),
            in_flight_bytes: Gauge::default(),
            fetch_paused: Gauge::default(),
            backpressure_pauses: Counter::default(),
            repeat_issues: Counter::default(),
            history_customers: Gauge::default(),
            actions_overdue: Family::default(),
            health: Health::new(),
        };
        r.register(
            "messages",
            "Messages read from the source",
            m.messages.clone(),
        );
        r.register(
            "comment_rows",
            "Rows written to comments files",
            m.comments.clone(),
        );
        r.register(
            "rejected",
            "Messages rejected, by reason",
            m.rejected.clone(),
        );
        r.register(
            "files_committed",
            "Parquet files committed, by table",
            m.files.clone(),
        );
        r.register(
            "commits_fenced",
            "Range commits lost to another writer's marker: this instance held partitions the group had given away",
            m.commits_fenced.clone(),
        );
        r.register(
            "committed_bytes",
            "Bytes in committed Parquet files",
            m.bytes.clone(),
        );
        r.register(
            "offset_commits",
            "Kafka offset commits, by result",
            m.offset_commits.clone(),
        );
        r.register(
            "dead_letters",
            "Records produced to the dead-letter topic",
            m.dead_letters.clone(),
        );
        r.register(
            "actions",
            "Records produced to the action topic",
            m.actions.clone(),
        );
        r.register(
            "batch_seconds",
            "Seconds to process one batch",
            m.batch_seconds.clone(),
        );
        r.register(
            "assigned_partitions",
            "Kafka partitions assigned to this instance",
            m.assigned_partitions.clone(),
        );
        r.register(
            "stage_seconds",
            "Seconds spent in each stage (an operator, sink_write, sink_commit, offset_commit)",
            m.stage_seconds.clone(),
        );
        r.register(
            "consumer_lag",
            "Messages in an assigned partition not yet durable (log end minus committed offset)",
            m.consumer_lag.clone(),
        );
        r.register(
            "last_commit_timestamp_seconds",
            "Unix time of the last range made durable",
            m.last_commit_time.clone(),
        );
        r.register(
            "end_to_end_seconds",
            "Seconds from a message's Kafka timestamp to its row being durable",
            m.end_to_end_seconds.clone(),
        );
        r.register(
            "inference_seconds",
            "Seconds of one encoder forward pass (one sub-batch)",
            m.inference_seconds.clone(),
        );
        // Exported at 0 from the start, so that rate() and alerts work at once.
        m.kafka_error_counter("AllBrokersDown");
        r.register(
            "kafka_errors",
            "Errors reported by the Kafka client, by kind",
            m.kafka_errors.clone(),
        );
        r.register(
            "offset_resets",
            "Partitions whose file progress lay outside their log, by cause and policy",
            m.offset_resets.clone(),
        );
        r.register(
            "brokers_up",
            "1 when any Kafka broker is connected",
            m.brokers_up.clone(),
        );
        r.register("ready", "1 when /readyz answers 200", m.ready.clone());
        r.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            m.resident_memory.clone(),
        );
        r.register(
            "sink_buffered_bytes",
            "Bytes of rows the Parquet sink holds in memory",
            m.sink_buffered_bytes.clone(),
        );
        r.register(
            "in_flight_bytes",
            "Bytes of messages read from Kafka and not yet written to a file",
            m.in_flight_bytes.clone(),
        );
        r.register(
            "fetch_paused",
            "1 while fetching is paused because kafka.max_in_flight_bytes is spent",
            m.fetch_paused.clone(),
        );
        r.register(
            "backpressure_pauses",
            "Times fetching was paused because kafka.max_in_flight_bytes was spent",
            m.backpressure_pauses.clone(),
        );
        r.register(
            "repeat_issues",
            "Comments that repeat a complaint the same customer made within actions.repeat_window",
            m.repeat_issues.clone(),
        );
        r.register(
            "history_customers",
            "Customers with a complaint inside actions.repeat_window, held in memory",
            m.history_customers.clone(),
        );
        // Every priority is exported from the start (0 until a status run).
        for p in PRIORITY_LABELS {
            m.actions_overdue
                .get_or_create(&PriorityLabel {
                    priority: p.to_string(),
                })
                .set(0);
        }
        r.register(
            "actions_overdue",
            "Queued comments past their [actions.sla] with no answer, as of the last status run",
            m.actions_overdue.clone(),
        );
        let build: Family<BuildLabel, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        r.register("build_info", "The running version (always 1)", build);
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Counts a rejection.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records one call of a stage.
    pub fn observe_stage(&self, stage: &str, seconds: f64) {
        self.stage_seconds
            .get_or_create(&StageLabel {
                stage: stage.to_string(),
            })
            .inc_by(seconds);
    }

    /// Total seconds recorded for a stage so far.
    pub fn stage_total(&self, stage: &str) -> f64 {
        self.stage_seconds
            .get_or_create(&StageLabel {
                stage: stage.to_string(),
            })
            .get()
    }

    /// Counts an error of the Kafka client.
    pub fn kafka_error(&self, kind: &str) {
        self.kafka_error_counter(kind).inc();
    }

    fn kafka_error_counter(&self, kind: &str) -> Counter {
        self.kafka_errors
            .get_or_create(&ReasonLabel {
                reason: kind.to_string(),
            })
            .clone()
    }

    /// The current values in OpenMetrics text format (gauges read at scrape
    /// time, such as memory and readiness, are refreshed first).
    pub fn render(&self) -> String {
        if let Some(rss) = resident_bytes() {
            self.resident_memory.set(rss as i64);
        }
        self.ready.set(i64::from(self.health.ready()));
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }

    /// Serves `/metrics`, `/livez` and `/readyz` on `addr` until the task is dropped.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        http::serve(self, addr).await
    }
}

/// Resident set size of this process, from `/proc/self/statm` (Linux only).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.messages.inc_by(3);
        m.reject("not_json");
        let s = m.render();
        assert!(s.contains("verbatim_messages_total 3"), "{s}");
        assert!(
            s.contains("verbatim_rejected_total{reason=\"not_json\"} 1"),
            "{s}"
        );
    }
}
