//! A Kafka producer whose deliveries are tracked per *source* partition, so
//! the pipeline can wait for every record a partition caused (dead letters,
//! actions) before it commits that partition's files and offset.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::sink::TopicPartition;

/// Errors from an output producer.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The producer could not be created from the configuration.
    #[error("creating the producer for {topic}: {source}")]
    Create {
        /// The output topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A record could not be delivered.
    #[error("delivering {record}: {source}")]
    Delivery {
        /// Which record, to which topic: `topic/partition/offset -> output`.
        record: String,
        /// The producer's error.
        source: KafkaError,
    },
    /// The producer went away before confirming a delivery.
    #[error("the producer for {0} was closed before confirming delivery")]
    Canceled(String),
}

/// An idempotent producer to one topic, remembering which source partition
/// and offset each record came from until its delivery is confirmed.
pub struct TrackedProducer {
    producer: FutureProducer,
    topic: String,
    pending: HashMap<TopicPartition, Vec<(i64, DeliveryFuture)>>,
}

impl TrackedProducer {
    /// A producer for `topic` with the consumer's connection settings
    /// (`props` holds bootstrap servers and security properties).
    pub fn new(props: &ClientConfig, topic: &str) -> Result<Self, ProduceError> {
        let mut cfg = props.clone();
        cfg.set("enable.idempotence", "true");
        let producer: FutureProducer = cfg.create().map_err(|source| ProduceError::Create {
            topic: topic.to_string(),
            source,
        })?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            pending: HashMap::new(),
        })
    }

    /// The output topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues one record caused by the message at `(source, offset)`;
    /// waits while librdkafka's queue is full.
    pub async fn send(
        &mut self,
        source: &TopicPartition,
        offset: i64,
        mut record: FutureRecord<'_, [u8], [u8]>,
    ) -> Result<(), ProduceError> {
        loop {
            match self.producer.send_result(record) {
                Ok(fut) => {
                    self.pending
                        .entry(source.clone())
                        .or_default()
                        .push((offset, fut));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    record = rec;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((e, _)) => {
                    return Err(ProduceError::Delivery {
                        record: format!("{}/{}/{offset} -> {}", source.0, source.1, self.topic),
                        source: e,
                    })
                }
            }
        }
    }

    /// Waits until every record from `tp` is confirmed by the broker;
    /// returns how many there were.
    pub async fn confirm(&mut self, tp: &TopicPartition) -> Result<usize, ProduceError> {
        let Some(futs) = self.pending.remove(tp) else {
            return Ok(0);
        };
        let n = futs.len();
        for (offset, f) in futs {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => {
                    return Err(ProduceError::Delivery {
                        record: format!("{}/{}/{offset} -> {}", tp.0, tp.1, self.topic),
                        source,
                    })
                }
                Err(_) => return Err(ProduceError::Canceled(self.topic.clone())),
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
            tracing::warn!(topic = %self.topic, error = %e, "producer flush");
        }
    }
}
