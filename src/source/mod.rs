//! Source stage: where messages come from.
//!
//! - [`kafka`]: the stream job's consumer-group member.
//! - [`file`](mod@file): JSONL/CSV backfills for `verbatim ingest`.
//! - [`kafka_watch`]: the Kafka client's logs (throttled), lag and broker state.
//! - [`backpressure`]: pausing fetch while too much read is not yet written.
//! - [`kafka_mock`]: librdkafka's in-process mock cluster, for the demo and tests.
//!
//! Both hand the pipeline an ordered stream of [`SourceEvent`]s.

pub mod backpressure;
pub mod file;
pub mod kafka;
pub mod kafka_mock;
pub mod kafka_watch;

use std::path::PathBuf;

use crate::comment::RawMessage;
use crate::sink::TopicPartition;

/// What a source tells the pipeline, in order.
#[derive(Debug)]
pub enum SourceEvent {
    /// One message.
    Message(RawMessage),
    /// Partitions were assigned; each with the offset recovered from the
    /// files (`None`: the group's committed offset or `auto.offset.reset`)
    /// and the epoch its new files are named with (one more than the files'
    /// when `kafka.on_offset_reset` moved it to a new log).
    Assigned(Vec<(TopicPartition, Option<i64>, u32)>),
    /// Partitions are being taken away. Flush and commit them (or, if the
    /// assignment was `lost`, abort them), then answer on `done`; the
    /// consumer waits for that answer before releasing them.
    Revoke {
        /// The partitions going away.
        partitions: Vec<TopicPartition>,
        /// The assignment was lost (another member may already own them).
        lost: bool,
        /// Answer here when done.
        done: std::sync::mpsc::SyncSender<()>,
    },
    /// The source hit something it cannot recover from; the job must stop
    /// without committing further.
    Fatal(String),
    /// The source has stopped and will send no more messages.
    Stopped,
}

/// Errors from a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The Kafka client refused its configuration or the subscription.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The source's settings cannot be used as they are.
    #[error("{0}")]
    Config(String),
    /// The polling thread could not be started.
    #[error("starting the source thread: {0}")]
    Thread(std::io::Error),
    /// A backfill path is not a text file (missing, a directory, binary).
    #[error("{path}: {what}. Fix: {fix}")]
    NotText {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: String,
        /// What to do.
        fix: String,
    },
    /// A backfill file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
