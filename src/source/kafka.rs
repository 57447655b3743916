//! Kafka source: a consumer-group member polled on its own thread.
//!
//! - Offsets are never auto-committed. [`KafkaCommitter`] commits a
//!   partition's next offset only after its files are durable.
//! - On assignment, each partition's start is recovered from the committed
//!   files under the output root (falling back to the group's committed
//!   offset, then `auto.offset.reset`), so a crash between a file rename and
//!   its offset commit, or a commit refused during a rebalance, never
//!   duplicates a row.
//! - On revocation, the rebalance callback asks the pipeline to flush and
//!   commit the revoked partitions and waits for it before releasing them. A
//!   *lost* assignment (session timeout) is aborted instead: another member
//!   already owns those offsets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::mpsc;

use super::backpressure::{InFlight, Valve};
use super::kafka_watch::{apply_stats, brokers_context, emit, LogThrottle, LOG_WINDOW};
use super::{SourceError, SourceEvent};
use crate::comment::{RawMessage, SourceCoords};
use crate::config::{KafkaConfig, OffsetReset};
use crate::metrics::{Metrics, OffsetResetLabel, ResultLabel};
use crate::sink::{CommittedRange, Resume, TopicPartition};

/// The librdkafka settings for a pipeline's `[kafka]` section (consumer side;
/// the dead-letter producer reuses the connection and security properties).
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, v) in &k.properties {
        c.set(key, v);
    }
    c
}

fn consumer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(k);
    if let Ok(Some(id)) = k.resolved_instance_id() {
        c.set("group.instance.id", id);
    }
    if !k.properties.contains_key("statistics.interval.ms") {
        // Lag and broker state come from librdkafka's statistics.
        c.set("statistics.interval.ms", "5000");
    }
    if !k
        .properties
        .contains_key("topic.metadata.refresh.interval.ms")
    {
        // A topic deleted and recreated (or created after the job started)
        // is seen within 10 s, not librdkafka's default 5 minutes.
        c.set("topic.metadata.refresh.interval.ms", "10000");
    }
    if !k.properties.contains_key("queued.max.messages.kbytes") {
        // librdkafka's prefetch is memory outside the in-flight budget: half of it.
        let kib = (k.max_in_flight_bytes / 2 / 1024).clamp(64, 2_097_151);
        c.set("queued.max.messages.kbytes", kib.to_string());
    }
    c.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", &k.auto_offset_reset)
        .set_log_level(if k.properties.contains_key("debug") {
            // librdkafka's own debug contexts were asked for: let them through
            // (as `librdkafka` debug events).
            RDKafkaLogLevel::Debug
        } else {
            RDKafkaLogLevel::Warning
        });
    c
}

/// Consumer context: routes librdkafka logs to `tracing` (warnings and
/// errors through one [`LogThrottle`]), reads its statistics into the
/// metrics and the health state, and handles rebalances.
pub struct SourceContext {
    on_offset_reset: OffsetReset,
    /// Connection settings, for the probe that confirms an offset reset.
    client: ClientConfig,
    events: mpsc::Sender<SourceEvent>,
    store: crate::sink::store::OutputStore,
    metrics: Metrics,
    throttle: Arc<LogThrottle>,
    flow: Arc<InFlight>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let error = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => true,
            RDKafkaLogLevel::Warning => false,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{log_message}");
                return;
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", fac, "{log_message}");
                return;
            }
        };
        emit(
            self.throttle
                .offer(error, &format!("{fac}: {log_message}"), Instant::now()),
        );
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        self.metrics.kafka_error(&error_kind(code));
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.metrics.brokers_up.set(0);
            self.metrics.health.set_brokers_up(false);
        }
        emit(
            self.throttle
                .offer(true, &format!("{error}: {reason}"), Instant::now()),
        );
    }

    fn stats(&self, statistics: Statistics) {
        match apply_stats(&self.metrics, &statistics) {
            Some(true) => tracing::info!("Kafka brokers reachable again"),
            Some(false) => tracing::warn!(
                "no Kafka broker reachable; /readyz turns red after {} s",
                self.metrics.health.unreachable_after().as_secs()
            ),
            None => {}
        }
    }
}

/// The `reason` label of `verbatim_kafka_errors_total`: librdkafka's code name.
fn error_kind(code: Option<RDKafkaErrorCode>) -> String {
    code.map_or_else(|| "other".to_string(), |c| format!("{c:?}"))
}

/// How a consumer error is logged: (is it an error, the line). A topic
/// that does not exist is an error naming `kafka.topics` and the fix.
fn consumer_error_line(code: Option<RDKafkaErrorCode>, e: &KafkaError) -> (bool, String) {
    match code {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => (
            true,
            format!("{e}. Fix: check the spelling in kafka.topics, or create the topic; nothing is read from it until it exists"),
        ),
        _ => (false, format!("consumer error: {e}")),
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl SourceContext {
    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let mut starts = Vec::new();
        for (topic, partition) in partitions_of(tpl) {
            match crate::sink::recover_partition(&self.store, &topic, partition) {
                Ok(Resume {
                    next: Some(next),
                    epoch,
                }) => {
                    let Some((start, reset)) = self.check_in_log(consumer, &topic, partition, next)
                    else {
                        return; // the policy is "fail": the job is stopping
                    };
                    if let Err(e) =
                        tpl.set_partition_offset(&topic, partition, Offset::Offset(start))
                    {
                        self.fatal(format!("setting the start of {topic}/{partition}: {e}"));
                    }
                    // A reset starts a new epoch: its files are named apart
                    // from the old log's, and progress is read from them.
                    let epoch = if reset { epoch + 1 } else { epoch };
                    starts.push(((topic, partition), Some(start), epoch));
                }
                // No files yet: the group's committed offset, else auto.offset.reset.
                Ok(Resume { next: None, epoch }) => starts.push(((topic, partition), None, epoch)),
                Err(e) => self.fatal(format!(
                    "recovering progress of {topic}/{partition} from files: {e}"
                )),
            }
        }
        let res = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = res {
            self.fatal(format!("assigning partitions: {e}"));
            return;
        }
        // New partitions follow the valve; one revoked while paused would
        // otherwise come back paused.
        let valve = if self.flow.paused() {
            consumer.pause(tpl)
        } else if self.flow.ever_paused() {
            consumer.resume(tpl)
        } else {
            Ok(())
        };
        if let Err(e) = valve {
            tracing::warn!(error = %e, "setting fetch pause on new partitions");
        }
        self.metrics.assigned_partitions.inc_by(starts.len() as i64);
        self.metrics.health.set_joined(true);
        let _ = self.events.blocking_send(SourceEvent::Assigned(starts));
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions = partitions_of(tpl);
        let lost = consumer.assignment_lost();
        if lost {
            self.metrics.health.set_joined(false);
        }
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self
            .events
            .blocking_send(SourceEvent::Revoke {
                partitions: partitions.clone(),
                lost,
                done,
            })
            .is_ok()
        {
            // The pipeline flushes and commits these partitions, then answers.
            let _ = wait.recv();
        }
        let res = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "unassigning revoked partitions");
        }
        self.metrics
            .assigned_partitions
            .dec_by(partitions.len() as i64);
    }

    /// Checks that the offset the files resume at lies within the
    /// partition's log. When it does not (the topic was recreated, or
    /// retention deleted messages never read), applies
    /// `kafka.on_offset_reset`: `fail` stops the job (returns `None`),
    /// `earliest` / `latest` start at the log's start or end. Always an
    /// error log and a count, never silent. Returns the start and whether
    /// the policy moved it.
    fn check_in_log(
        &self,
        consumer: &BaseConsumer<Self>,
        topic: &str,
        partition: i32,
        next: i64,
    ) -> Option<(i64, bool)> {
        let (lo, hi) = match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "cannot read the log's bounds; resuming after the files without checking them");
                return Some((next, false));
            }
        };
        let cause = if next > hi {
            // Some brokers (tansu 0.6) report watermarks that are not offsets;
            // believe "beyond the end" only if the log no longer holds the
            // last message the files have.
            match self.holds_offset(topic, partition, next - 1) {
                Some(true) => {
                    tracing::debug!(topic, partition, next, hi, "the broker's high watermark is below the files' progress, but the log holds the last message; resuming after the files");
                    return Some((next, false));
                }
                Some(false) => "beyond_end",
                None => {
                    // Loud: if the topic was recreated, this partition will
                    // wait at `next` and never read the new log's messages.
                    self.metrics.kafka_error("OffsetUnconfirmed");
                    tracing::error!(topic, partition, next, hi, "the broker says the log ends at {hi}, before the files' progress ({next}), but offset {} could not be read back within 10 s to confirm it is gone; resuming after the files. If the topic was recreated, this partition will not read the new log's messages until it passes offset {next}. Fix: check the topic on the broker; to read a recreated topic from its start, point output.root at a new folder", next - 1);
                    return Some((next, false));
                }
            }
        } else if next < lo {
            "before_start"
        } else {
            return Some((next, false));
        };
        let policy = self.on_offset_reset;
        self.metrics
            .offset_resets
            .get_or_create(&OffsetResetLabel {
                cause: cause.into(),
                policy: policy.as_str().into(),
            })
            .inc();
        let what = if cause == "beyond_end" {
            format!("the files under output.root resume at offset {next} but the log of {topic}/{partition} ends at {hi}: the topic was recreated or truncated")
        } else {
            format!("the files under output.root resume at offset {next} but the log of {topic}/{partition} now starts at {lo}: retention deleted {} messages that were never read", lo - next)
        };
        match policy {
            OffsetReset::Fail => {
                self.fatal(format!("{what}. Fix: if the new log is the one to read, set kafka.on_offset_reset = \"earliest\" (from its start) or \"latest\" (only new messages) and restart; to keep the old output apart, point output.root at a new folder"));
                None
            }
            OffsetReset::Earliest => {
                tracing::error!(
                    topic,
                    partition,
                    "{what}; kafka.on_offset_reset = \"earliest\": reading from offset {lo}"
                );
                Some((lo, true))
            }
            OffsetReset::Latest => {
                tracing::error!(
                    topic,
                    partition,
                    "{what}; kafka.on_offset_reset = \"latest\": reading from offset {hi}"
                );
                Some((hi, true))
            }
        }
    }

    /// Whether the partition's log still holds `offset`, read with a
    /// group-less consumer: `Some(false)` when the broker says it is out of
    /// range, `None` when nothing conclusive came back within 10 s.
    fn holds_offset(&self, topic: &str, partition: i32, offset: i64) -> Option<bool> {
        let mut cfg = self.client.clone();
        cfg.set("enable.auto.commit", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "true")
            .remove("group.instance.id")
            // Its statistics would be logged by the default context.
            .remove("statistics.interval.ms");
        cfg.set("group.id", "verbatim-offset-probe");
        let probe: BaseConsumer = cfg.create().ok()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .ok()?;
        probe.assign(&tpl).ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match probe.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => return Some(m.offset() == offset),
                Some(Err(KafkaError::PartitionEOF(_))) => return Some(false),
                Some(Err(e))
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange
                        )
                    ) =>
                {
                    return Some(false)
                }
                Some(Err(_)) | None => {}
            }
        }
        None
    }

    fn fatal(&self, msg: String) {
        tracing::error!("{msg}");
        let _ = self.events.blocking_send(SourceEvent::Fatal(msg));
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(consumer, tpl),
            other => {
                tracing::error!(?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

type Inner = BaseConsumer<SourceContext>;

/// What [`probe`] found on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Broker ids and addresses the cluster reported.
    pub brokers: Vec<(i32, String)>,
    /// Each configured topic with its partition count (`None`: it does not exist).
    pub topics: Vec<(String, Option<usize>)>,
    /// Topics the cluster has, for suggestions.
    pub existing: Vec<String>,
}

/// A problem [`probe`] found, naming the pipeline key and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeProblem {
    /// The pipeline key at fault, e.g. `kafka.brokers`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

/// Contacts the cluster as `verbatim run` would (same client settings):
/// librdkafka validates `[kafka.properties]` when the client is created,
/// then the brokers are asked for the metadata of every topic.
pub fn probe(k: &KafkaConfig, timeout: Duration) -> Result<ProbeReport, ProbeProblem> {
    let consumer: BaseConsumer = consumer_config(k).create().map_err(|e| {
        let msg = e.to_string();
        let key = k
            .properties
            .keys()
            .find(|key| msg.contains(key.as_str()))
            .map_or_else(|| "kafka.properties".to_string(), |key| format!("kafka.properties.\"{key}\""));
        ProbeProblem {
            key,
            problem: format!("librdkafka refuses it: {msg}"),
            fix: "use a property name and value from librdkafka's CONFIGURATION.md (consumer or both)".into(),
        }
    })?;
    let md = consumer.fetch_metadata(None, timeout).map_err(|e| ProbeProblem {
        key: "kafka.brokers".into(),
        problem: format!("no broker of {:?} answered within {} s: {e}", k.brokers, timeout.as_secs()),
        fix: "check host:port, DNS and firewalls from this machine, and the security settings (security.protocol, sasl.*, ssl.*) in kafka.properties".into(),
    })?;
    let existing: Vec<String> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .filter(|n| !n.starts_with("__"))
        .collect();
    let topics = k
        .topics
        .iter()
        .map(|name| {
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map(|t| t.partitions().len());
            (name.clone(), n)
        })
        .collect();
    Ok(ProbeReport {
        brokers: md
            .brokers()
            .iter()
            .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
            .collect(),
        topics,
        existing,
    })
}

/// A running Kafka source: its polling thread and its consumer.
pub struct KafkaSource {
    consumer: Option<Arc<Inner>>,
    stop: Arc<AtomicBool>,
    close: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Commits offsets for ranges whose files are durable.
#[derive(Clone)]
pub struct KafkaCommitter {
    consumer: Arc<Inner>,
    metrics: Metrics,
}

impl KafkaCommitter {
    /// Commits `next_offset` for each range (synchronously, one request).
    /// A refused commit is logged and counted, not fatal: the files remain
    /// the record of progress and the next assignment recovers from them.
    pub fn commit(&self, ranges: &[CommittedRange]) {
        if ranges.is_empty() {
            return;
        }
        let res = (|| -> Result<(), KafkaError> {
            let mut tpl = TopicPartitionList::new();
            for r in ranges {
                tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.next_offset()))?;
            }
            let res = self.consumer.commit(&tpl, CommitMode::Sync);
            drop(tpl);
            res
        })();
        let result = match &res {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "offset commit refused; the files stay authoritative");
                "error"
            }
        };
        self.metrics
            .offset_commits
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }
}

impl KafkaSource {
    /// Joins the consumer group and starts polling on a new thread. Events
    /// (messages, revocations) arrive on `events` in order.
    pub fn start(
        cfg: &KafkaConfig,
        store: crate::sink::store::OutputStore,
        events: mpsc::Sender<SourceEvent>,
        flow: Arc<InFlight>,
        metrics: Metrics,
    ) -> Result<(Self, KafkaCommitter), SourceError> {
        if let Some(id) = cfg.resolved_instance_id().map_err(SourceError::Config)? {
            tracing::info!(instance_id = %id, "static group membership: a restart under this id takes its partitions back at once");
        }
        metrics.health.require_group();
        // Exported at 0 from the start, so that an alert on any increase works.
        for cause in ["beyond_end", "before_start"] {
            metrics
                .offset_resets
                .get_or_create(&OffsetResetLabel {
                    cause: cause.into(),
                    policy: cfg.on_offset_reset.as_str().into(),
                })
                .inc_by(0);
        }
        metrics.health.set_limits(
            metrics.health.stall_after(),
            Duration::from_secs(cfg.unreachable_after_secs),
        );
        let throttle = Arc::new(LogThrottle::new(LOG_WINDOW));
        let ctx = SourceContext {
            on_offset_reset: cfg.on_offset_reset,
            client: client_config(cfg),
            events: events.clone(),
            store,
            metrics: metrics.clone(),
            throttle: Arc::clone(&throttle),
            flow: Arc::clone(&flow),
        };
        let consumer: Inner = consumer_config(cfg)
            .create_with_context(ctx)
            .map_err(SourceError::Kafka)?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(SourceError::Kafka)?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let (close, closed) = std::sync::mpsc::channel::<()>();
        let thread = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            let watch = Watch {
                metrics: metrics.clone(),
                throttle,
                give_up_after: cfg.give_up_after_secs.map(Duration::from_secs),
            };
            std::thread::Builder::new()
                .name("kafka-source".into())
                .spawn(move || poll_loop(consumer, stop, closed, events, flow, watch))
                .map_err(SourceError::Thread)?
        };
        let committer = KafkaCommitter {
            consumer: Arc::clone(&consumer),
            metrics,
        };
        Ok((
            Self {
                consumer: Some(consumer),
                stop,
                close: Some(close),
                thread: Some(thread),
            },
            committer,
        ))
    }

    /// Asks the polling thread to stop fetching; it answers with
    /// [`SourceEvent::Stopped`] after the last message it handed over.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The flag that [`KafkaSource::stop`] sets, for callers that must stop
    /// the source from elsewhere.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Leaves the group and closes the consumer. Call after the pipeline has
    /// committed everything and dropped its committer; keep draining events
    /// until the channel closes (the final revocation arrives there).
    pub fn close(&mut self) -> std::thread::Result<()> {
        self.stop();
        drop(self.consumer.take());
        drop(self.close.take());
        match self.thread.take() {
            Some(t) => t.join(),
            None => Ok(()),
        }
    }
}

/// What the polling thread watches besides messages.
struct Watch {
    metrics: Metrics,
    throttle: Arc<LogThrottle>,
    give_up_after: Option<Duration>,
}

impl Watch {
    /// Flushes held-back client logs; returns a reason to stop when the
    /// brokers have been unreachable for longer than `give_up_after`.
    fn check(&self) -> Option<String> {
        emit(
            self.throttle
                .flush(Instant::now(), brokers_context(&self.metrics)),
        );
        let down = self.metrics.health.brokers_down_for()?;
        let limit = self.give_up_after?;
        (down >= limit).then(|| {
            format!(
                "no Kafka broker reachable for {} s (kafka.give_up_after_secs = {}); giving up. Check kafka.brokers, the network and the broker, or raise or remove kafka.give_up_after_secs",
                down.as_secs(),
                limit.as_secs()
            )
        })
    }
}

fn poll_loop(
    consumer: Arc<Inner>,
    stop: Arc<AtomicBool>,
    closed: std::sync::mpsc::Receiver<()>,
    events: mpsc::Sender<SourceEvent>,
    flow: Arc<InFlight>,
    watch: Watch,
) {
    let metrics = watch.metrics.clone();
    while !stop.load(Ordering::SeqCst) {
        if let Some(reason) = watch.check() {
            tracing::error!("{reason}");
            metrics.health.set_stopped(reason.clone());
            let _ = events.blocking_send(SourceEvent::Fatal(reason));
            break;
        }
        regulate(&consumer, &flow);
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                if metrics.health.set_brokers_up(true) {
                    metrics.brokers_up.set(1);
                    tracing::info!("Kafka brokers reachable again");
                }
                metrics.messages.inc();
                let raw = RawMessage {
                    coords: SourceCoords {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        kafka_timestamp: m
                            .timestamp()
                            .to_millis()
                            .and_then(|ms| chrono::Utc.timestamp_millis_opt(ms).single()),
                    },
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                };
                drop(m);
                flow.take(InFlight::weight(&raw));
                if events.blocking_send(SourceEvent::Message(raw)).is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                let code = e.rdkafka_error_code();
                metrics.kafka_error(&error_kind(code));
                let (error, line) = consumer_error_line(code, &e);
                emit(watch.throttle.offer(error, &line, Instant::now()));
            }
        }
    }
    let _ = events.blocking_send(SourceEvent::Stopped);
    drop(events);
    // Wait until the pipeline has committed and released its handle, then
    // close here, on a plain thread: closing runs the final revocation callback.
    let _ = closed.recv();
    consumer.unsubscribe();
    drop(consumer);
}

/// Pauses or resumes every assigned partition as the in-flight budget says.
fn regulate(consumer: &Inner, flow: &InFlight) {
    let pause = match flow.valve() {
        Valve::Pause => true,
        Valve::Resume => false,
        Valve::Hold => return,
    };
    let res = consumer.assignment().and_then(|a| {
        if pause {
            consumer.pause(&a)
        } else {
            consumer.resume(&a)
        }
    });
    match res {
        Ok(()) => flow.set_paused(pause),
        Err(e) => tracing::warn!(error = %e, pause, "pausing or resuming fetch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_topic_is_an_error_with_the_fix() {
        let code = RDKafkaErrorCode::UnknownTopicOrPartition;
        let e = KafkaError::MessageConsumption(code);
        let (error, line) = consumer_error_line(Some(code), &e);
        assert!(error);
        assert!(
            line.contains("Fix: check the spelling in kafka.topics"),
            "{line}"
        );
        let other = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        let (error, line) =
            consumer_error_line(Some(RDKafkaErrorCode::BrokerTransportFailure), &other);
        assert!(!error);
        assert!(line.starts_with("consumer error: "), "{line}");
        assert_eq!(error_kind(Some(code)), "UnknownTopicOrPartition");
        assert_eq!(error_kind(None), "other");
    }
}
