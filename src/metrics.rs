//! Prometheus metrics of the stream job, served as text on `/metrics`.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
            bytes: Counter::default(),
            offset_commits: Family::default(),
            dead_letters: Counter::default(),
            actions: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            assigned_partitions: Gauge::default(),
            stage_seconds: Family::default(),
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

    /// The current values in Prometheus text format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }

    /// Serves `/metrics` on `addr` until the task is dropped.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
        loop {
            let (mut sock, _) = listener.accept().await?;
            let m = self.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if req.starts_with("GET /metrics") {
                    ("200 OK", m.render())
                } else if req.starts_with("GET /healthz") {
                    ("200 OK", "ok\n".to_string())
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    }
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

    #[tokio::test]
    async fn serves_over_http() {
        let m = Metrics::new();
        m.messages.inc();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let h = tokio::spawn(m.serve(addr));
        let mut body = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
                s.read_to_string(&mut body).await.unwrap();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        h.abort();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("verbatim_messages_total 1"), "{body}");
    }
}
