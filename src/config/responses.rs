//! `[responses]`: follow-up events (someone answered a queued comment), read
//! by the same job from their own topic into `responses/`.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[responses]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// Kafka topic of follow-up events; the job subscribes to it beside
    /// `kafka.topics`. Unset: responses come only from `verbatim ingest
    /// --table responses`.
    pub topic: Option<String>,
    /// Where each field sits in an event's JSON object.
    pub fields: ResponseFields,
}

/// `[responses.fields]`: dotted paths into a follow-up event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseFields {
    /// The event's own id (a repeat of one id is one event sent twice);
    /// absent → `topic-partition-offset`.
    pub id: String,
    /// The comment it answers.
    pub comment_id: String,
    /// The action it answers, read when `comment_id` is absent (an action's
    /// id is its comment's id).
    pub action_id: String,
    /// When it happened; absent → Kafka timestamp, then ingest time.
    pub at: String,
    /// phone, email, chat...
    pub channel: String,
    /// `contacted`, `resolved`, `no_answer` or `declined` (required).
    pub outcome: String,
    /// Who answered.
    pub agent: String,
    /// Free text.
    pub note: String,
}

impl Default for ResponseFields {
    fn default() -> Self {
        Self {
            id: "id".into(),
            comment_id: "comment_id".into(),
            action_id: "action_id".into(),
            at: "at".into(),
            channel: "channel".into(),
            outcome: "outcome".into(),
            agent: "agent".into(),
            note: "note".into(),
        }
    }
}

impl ResponseFields {
    /// Every path with the key it is configured under.
    pub fn mapped(&self) -> [(&'static str, &str); 8] {
        [
            ("id", &self.id),
            ("comment_id", &self.comment_id),
            ("action_id", &self.action_id),
            ("at", &self.at),
            ("channel", &self.channel),
            ("outcome", &self.outcome),
            ("agent", &self.agent),
            ("note", &self.note),
        ]
    }
}

impl ResponsesConfig {
    /// Checks every `[responses]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        super::input::check_field_paths(bad, "responses.fields", &self.fields.mapped())?;
        if self.topic.as_deref() == Some("") {
            return Err(bad.err(
                "responses.topic",
                "is empty".into(),
                "name the topic of follow-up events, e.g. \"feedback-responses\", or remove the key",
            ));
        }
        Ok(())
    }
}
