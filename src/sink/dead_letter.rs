//! Dead-letter topic: every rejected message is also produced, unchanged, to
//! `rejected.dead_letter_topic` with the reason in headers. Deliveries are
//! tracked per source partition and awaited before that partition's offset
//! is committed, so a committed offset implies its dead letters arrived.
//!
//! Headers: `verbatim.reason` (code), `verbatim.message`, `verbatim.source`
//! (`topic/partition/offset`), `verbatim.pipeline`.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::comment::Rejection;
use crate::sink::TopicPartition;

/// Errors from the dead-letter producer.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The producer could not be created from the configuration.
    #[error("creating the dead-letter producer: {0}")]
    Create(KafkaError),
    /// A dead letter could not be delivered.
    #[error("delivering the dead letter of {record}: {source}")]
    Delivery {
        /// Which record, to which topic: `topic/partition/offset -> dlq`.
        record: String,
        /// The producer's error.
        source: KafkaError,
    },
    /// The producer went away before confirming a delivery.
    #[error("the dead-letter producer was closed before confirming delivery")]
    Canceled,
}

/// Produces rejected messages to a dead-letter topic.
pub struct DeadLetter {
    producer: FutureProducer,
    topic: String,
    pipeline: String,
    pending: HashMap<TopicPartition, Vec<(i64, DeliveryFuture)>>,
}

impl DeadLetter {
    /// A producer for `topic` with the consumer's connection settings
    /// (`props` holds bootstrap servers and security properties).
    pub fn new(props: &ClientConfig, topic: &str, pipeline: &str) -> Result<Self, DeadLetterError> {
        let mut cfg = props.clone();
        cfg.set("enable.idempotence", "true");
        let producer: FutureProducer = cfg.create().map_err(DeadLetterError::Create)?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            pipeline: pipeline.to_string(),
            pending: HashMap::new(),
        })
    }

    /// Queues one rejected message for delivery.
    pub async fn send(&mut self, r: &Rejection) -> Result<(), DeadLetterError> {
        let source = format!(
            "{}/{}/{}",
            r.coords.topic, r.coords.partition, r.coords.offset
        );
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "verbatim.reason",
                value: Some(r.reason.code()),
            })
            .insert(Header {
                key: "verbatim.message",
                value: Some(r.message.as_str()),
            })
            .insert(Header {
                key: "verbatim.source",
                value: Some(source.as_str()),
            })
            .insert(Header {
                key: "verbatim.pipeline",
                value: Some(self.pipeline.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
            .payload(r.raw.as_slice())
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        loop {
            match self.producer.send_result(record) {
                Ok(fut) => {
                    self.pending
                        .entry((r.coords.topic.clone(), r.coords.partition))
                        .or_default()
                        .push((r.coords.offset, fut));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    record = rec;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((e, _)) => {
                    return Err(DeadLetterError::Delivery {
                        record: format!("{source} -> {}", self.topic),
                        source: e,
                    })
                }
            }
        }
    }

    /// Waits until every dead letter from `tp` is confirmed by the broker.
    pub async fn confirm(&mut self, tp: &TopicPartition) -> Result<usize, DeadLetterError> {
        let Some(futs) = self.pending.remove(tp) else {
            return Ok(0);
        };
        let n = futs.len();
        for (offset, f) in futs {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => {
                    return Err(DeadLetterError::Delivery {
                        record: format!("{}/{}/{offset} -> {}", tp.0, tp.1, self.topic),
                        source,
                    })
                }
                Err(_) => return Err(DeadLetterError::Canceled),
            }
        }
        Ok(n)
    }

    /// Forgets pending deliveries of a partition whose assignment was lost.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.pending.remove(tp);
    }

    /// Flushes the producer (on shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "dead-letter producer flush");
        }
    }
}
