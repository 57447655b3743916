//! Batch stage: decoded messages are gathered into a [`CommentBatch`] until
//! it holds `batch.max_records` messages or its oldest one has waited
//! `batch.max_wait_ms`. A batch is the unit the NLP stages and the sink work on.

use std::time::{Duration, Instant};

use crate::comment::{Comment, Decoded, Rejection, Response};
use crate::config::BatchConfig;

/// The messages of one batch, split by outcome. Both halves keep the source
/// order of their rows.
#[derive(Debug, Default)]
pub struct CommentBatch {
    /// Comments that decoded cleanly.
    pub comments: Vec<Comment>,
    /// Messages that were rejected (by the decoder or a later stage).
    pub rejected: Vec<Rejection>,
    /// Follow-up events (from a responses topic); the NLP stages leave them be.
    pub responses: Vec<Response>,
}

impl CommentBatch {
    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.comments.len() + self.rejected.len() + self.responses.len()
    }

    /// True when the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one decoded message.
    pub fn push(&mut self, d: Decoded) {
        match d {
            Decoded::Comment(c) => self.comments.push(*c),
            Decoded::Rejected(r) => self.rejected.push(*r),
            Decoded::Response(r) => self.responses.push(*r),
        }
    }
}

/// Accumulates messages into batches by count and age.
#[derive(Debug)]
pub struct Batcher {
    cfg: BatchConfig,
    current: CommentBatch,
    opened: Option<Instant>,
}

impl Batcher {
    /// A batcher with these limits.
    pub fn new(cfg: BatchConfig) -> Self {
        Self {
            cfg,
            current: CommentBatch::default(),
            opened: None,
        }
    }

    /// Adds a message; returns a full batch when `max_records` is reached.
    pub fn push(&mut self, d: Decoded) -> Option<CommentBatch> {
        if self.current.is_empty() {
            self.opened = Some(Instant::now());
        }
        self.current.push(d);
        (self.current.len() >= self.cfg.max_records).then(|| self.take())
    }

    /// When the current batch must be processed even if not full.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened
            .map(|t| t + Duration::from_millis(self.cfg.max_wait_ms))
    }

    /// Takes whatever is pending (possibly empty).
    pub fn take(&mut self) -> CommentBatch {
        self.opened = None;
        std::mem::take(&mut self.current)
    }

    /// Number of messages pending.
    pub fn pending(&self) -> usize {
        self.current.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::{RawMessage, SourceCoords};
    use crate::config::InputConfig;
    use crate::decode::Decoder;

    fn decoded(i: i64) -> Decoded {
        let d = Decoder::new(InputConfig::default());
        d.decode(
            RawMessage {
                coords: SourceCoords {
                    topic: "t".into(),
                    partition: 0,
                    offset: i,
                    kafka_timestamp: None,
                },
                key: None,
                payload: Some(if i % 2 == 0 {
                    b"{\"text\":\"x\"}".to_vec()
                } else {
                    b"nope".to_vec()
                }),
            },
            chrono::Utc::now(),
        )
    }

    #[test]
    fn fills_to_max_records_then_restarts() {
        let mut b = Batcher::new(BatchConfig {
            max_records: 3,
            max_wait_ms: 1000,
        });
        assert!(b.deadline().is_none());
        assert!(b.push(decoded(0)).is_none());
        assert!(b.deadline().is_some());
        assert!(b.push(decoded(1)).is_none());
        let full = b.push(decoded(2)).expect("third message fills the batch");
        assert_eq!((full.comments.len(), full.rejected.len()), (2, 1));
        assert_eq!(b.pending(), 0);
        assert!(b.deadline().is_none());
    }
}
