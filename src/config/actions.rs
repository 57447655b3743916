//! `[actions]`: the follow-up queue (which flagged comments need a person).

use serde::{Deserialize, Serialize};

/// Default `actions.flags`: the flags that need a person.
pub const DEFAULT_ACTION_FLAGS: [&str; 4] = [
    "safety_risk",
    "contact_requested",
    "repeat_issue",
    "score_solicited",
];

/// `[actions]`: which flagged comments need a person, and where they go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Flags that put a comment in the queue (built-in or `[flags.<name>]`);
    /// empty: no queue.
    pub flags: Vec<String>,
    /// Also produce each action as JSON to this Kafka topic, keyed by comment
    /// id; delivery is confirmed before the input offset is committed.
    pub topic: Option<String>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            flags: DEFAULT_ACTION_FLAGS.iter().map(|f| f.to_string()).collect(),
            topic: None,
        }
    }
}
