//! The records that flow through the pipeline: a raw message as it came off
//! the source, a decoded [`Comment`], or a [`Rejection`] with its reason.
//!
//! A message becomes exactly one of the two: every offset the source hands
//! out ends up either as a row in `comments/` or as a row in `rejected/`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

mod enrichment;
pub mod language;
pub mod response;

pub use enrichment::{
    blames, skipped, target_sentiment, Aspect, ClauseStates, Enrichment, Evidence, Polarity,
    Sentiment, TokenStates, BUILT_IN_FLAGS, TARGETS,
};
pub use response::{Outcome, Response};

/// Where a message came from: the coordinates that make every row traceable
/// back to its Kafka record (or, for `verbatim ingest`, to its line in a file).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceCoords {
    /// Kafka topic, or `file:<name>` for backfills.
    pub topic: String,
    /// Kafka partition (0 for files).
    pub partition: i32,
    /// Kafka offset, or the record's 0-based index in the file.
    pub offset: i64,
    /// Kafka's record timestamp, where the broker gave one.
    pub kafka_timestamp: Option<DateTime<Utc>>,
}

/// A message as the source delivered it, before any parsing.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Coordinates of this message.
    pub coords: SourceCoords,
    /// The record key, if any.
    pub key: Option<Vec<u8>>,
    /// The record value; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
}

/// A hash of `bytes` that is the same on every machine and in every build
/// (64-bit FNV-1a): keys that outlive a process (a partition choice, a
/// comment's id in the theme model's saved state) use it.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A comment that decoded cleanly: text plus the metadata the field mapping
/// pulled out of the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// Coordinates of the message this comment came from.
    pub coords: SourceCoords,
    /// The comment's id: the mapped id field, else `topic-partition-offset`.
    pub id: String,
    /// When the customer wrote it: the mapped time field, else the Kafka
    /// timestamp, else the ingest time.
    pub event_time: DateTime<Utc>,
    /// The comment text, trimmed.
    pub text: String,
    /// A numeric score given with the comment (NPS, CSAT, stars).
    pub score: Option<f64>,
    /// Channel the feedback came through (survey, app review, chat, ...).
    pub channel: Option<String>,
    /// Identifier of the staff member the feedback is attached to.
    pub staff_id: Option<String>,
    /// Site, store or region.
    pub location: Option<String>,
    /// Product or service line.
    pub product: Option<String>,
    /// Language code declared by the producer of the message, if any.
    pub declared_language: Option<String>,
    /// The customer who wrote it (`input.fields.customer_id`), already
    /// hashed when `privacy.hash_customer_id` is on.
    pub customer_id: Option<String>,
    /// Extra fields kept as strings (non-string values JSON-encoded).
    pub attributes: BTreeMap<String, String>,
    /// When verbatim read it.
    pub ingest_time: DateTime<Utc>,
    /// What the NLP stages found (empty until they run).
    pub nlp: Enrichment,
}

impl Comment {
    /// A comment with text and times only; metadata empty.
    pub fn new(
        coords: SourceCoords,
        id: String,
        text: String,
        event_time: DateTime<Utc>,
        ingest_time: DateTime<Utc>,
    ) -> Self {
        Self {
            coords,
            id,
            event_time,
            text,
            score: None,
            channel: None,
            staff_id: None,
            location: None,
            product: None,
            declared_language: None,
            customer_id: None,
            attributes: BTreeMap::new(),
            ingest_time,
            nlp: Enrichment::default(),
        }
    }

    /// The `dt=` partition this comment is written under (its event date, UTC).
    pub fn event_date(&self) -> chrono::NaiveDate {
        self.event_time.date_naive()
    }
}

/// Hashes customer ids before they are written: the first 16 bytes of
/// SHA-256 over a domain tag, the secret salt and the id, as 32 hex
/// characters. The same id and salt give the same hash on every instance,
/// so history and joins work on hashes alone.
#[derive(Clone)]
pub struct CustomerHasher {
    prefix: sha2::Sha256,
}

impl fmt::Debug for CustomerHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerHasher(..)")
    }
}

impl CustomerHasher {
    /// A hasher keyed by `salt` (empty: unsalted).
    pub fn new(salt: &str) -> Self {
        use sha2::Digest;
        let mut prefix = sha2::Sha256::new();
        prefix.update(b"verbatim customer_id v1\0");
        prefix.update((salt.len() as u64).to_le_bytes());
        prefix.update(salt.as_bytes());
        Self { prefix }
    }

    /// The hash of one id.
    pub fn hash(&self, id: &str) -> String {
        use sha2::Digest;
        let mut h = self.prefix.clone();
        h.update(id.as_bytes());
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Why a message was rejected. The code is stable: it is written to the
/// `reason` column of `rejected/`, to the dead-letter header and to metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The record had no value (a tombstone) or an empty one.
    EmptyPayload,
    /// The value is not valid UTF-8.
    InvalidUtf8,
    /// The value is not parseable JSON (format `json`).
    NotJson,
    /// The value is JSON but not an object (format `json`).
    NotObject,
    /// The mapped text field is absent or null.
    MissingText,
    /// The text is empty once whitespace is trimmed.
    EmptyText,
    /// The text is longer than `input.max_text_bytes`.
    TextTooLong,
    /// A mapped field has the wrong JSON type (text not a string, score not a number...).
    WrongType,
    /// The mapped event-time field could not be parsed.
    BadTimestamp,
    /// A field a response needs (the comment or action id it answers) is
    /// absent or empty.
    MissingField,
    /// A field holds a value outside its set (a response's `outcome`).
    BadValue,
}

impl RejectReason {
    /// Every reason, in a stable order (for metrics and docs).
    pub const ALL: [RejectReason; 11] = [
        RejectReason::EmptyPayload,
        RejectReason::InvalidUtf8,
        RejectReason::NotJson,
        RejectReason::NotObject,
        RejectReason::MissingText,
        RejectReason::EmptyText,
        RejectReason::TextTooLong,
        RejectReason::WrongType,
        RejectReason::BadTimestamp,
        RejectReason::MissingField,
        RejectReason::BadValue,
    ];

    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::EmptyPayload => "empty_payload",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::NotJson => "not_json",
            RejectReason::NotObject => "not_object",
            RejectReason::MissingText => "missing_text",
            RejectReason::EmptyText => "empty_text",
            RejectReason::TextTooLong => "text_too_long",
            RejectReason::WrongType => "wrong_type",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadValue => "bad_value",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A message that could not become a comment. Kept whole, with the reason.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Coordinates of the rejected message.
    pub coords: SourceCoords,
    /// The record key, if any.
    pub key: Option<Vec<u8>>,
    /// The raw bytes of the record value (empty for a tombstone).
    pub raw: Vec<u8>,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail: which field, what was found.
    pub message: String,
    /// When verbatim read it.
    pub ingest_time: DateTime<Utc>,
}

/// The outcome of decoding one message.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// A clean comment.
    Comment(Box<Comment>),
    /// A clean follow-up event (from a responses topic or file).
    Response(Box<Response>),
    /// A rejected message.
    Rejected(Box<Rejection>),
}

impl Decoded {
    /// Coordinates of the underlying message, whichever way it went.
    pub fn coords(&self) -> &SourceCoords {
        match self {
            Decoded::Comment(c) => &c.coords,
            Decoded::Response(r) => &r.coords,
            Decoded::Rejected(r) => &r.coords,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_hash_is_fnv_1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(super::stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::stable_hash(b"foobar"), 0x85944171f73967e8);
    }
}
