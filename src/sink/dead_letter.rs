//! Dead-letter topic: every rejected message is also produced, unchanged, to
//! `rejected.dead_letter_topic` with the reason in headers. Deliveries are
//! tracked per source partition and awaited before that partition's offset
//! is committed, so a committed offset implies its dead letters arrived.
//!
//! Headers: `verbatim.reason` (code), `verbatim.message`, `verbatim.source`
//! (`topic/partition/offset`), `verbatim.pipeline`.

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::producer::{ProduceError, TrackedProducer};
use crate::comment::Rejection;

/// Produces rejected messages to a dead-letter topic.
pub struct DeadLetter {
    out: TrackedProducer,
    pipeline: String,
}

impl DeadLetter {
    /// A producer for `topic` with the consumer's connection settings
    /// (`props` holds bootstrap servers and security properties).
    pub fn new(props: &ClientConfig, topic: &str, pipeline: &str) -> Result<Self, ProduceError> {
        Ok(Self {
            out: TrackedProducer::new(props, topic)?,
            pipeline: pipeline.to_string(),
        })
    }

    /// Queues one rejected message for delivery.
    pub async fn send(&mut self, r: &Rejection) -> Result<(), ProduceError> {
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
        let topic = self.out.topic().to_string();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
            .payload(r.raw.as_slice())
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        let tp = (r.coords.topic.clone(), r.coords.partition);
        self.out.send(&tp, r.coords.offset, record).await
    }

    /// The producer: the pipeline confirms, forgets and flushes through it.
    pub fn producer(&mut self) -> &mut TrackedProducer {
        &mut self.out
    }
}
