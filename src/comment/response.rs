//! A follow-up event: someone answered (or tried to answer) a comment in the
//! action queue. Read from `[responses] topic` or `verbatim ingest --table
//! responses`, written to `responses/`.

use std::fmt;

use chrono::{DateTime, Utc};

use super::SourceCoords;

/// What the follow-up achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The customer was reached.
    Contacted,
    /// The customer's problem was solved.
    Resolved,
    /// Someone tried and did not reach the customer.
    NoAnswer,
    /// The customer was reached and did not want to be contacted.
    Declined,
}

impl Outcome {
    /// Every outcome, in the order they are documented.
    pub const ALL: [Outcome; 4] = [
        Outcome::Contacted,
        Outcome::Resolved,
        Outcome::NoAnswer,
        Outcome::Declined,
    ];

    /// The code written to `responses.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Contacted => "contacted",
            Outcome::Resolved => "resolved",
            Outcome::NoAnswer => "no_answer",
            Outcome::Declined => "declined",
        }
    }

    /// Parses a code, case-insensitively, `-` or ` ` for `_`.
    pub fn parse(text: &str) -> Option<Outcome> {
        let t = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Outcome::ALL.into_iter().find(|o| o.as_str() == t)
    }

    /// Whether the customer was reached (an answer, in the SLA's sense).
    pub fn reached(self) -> bool {
        !matches!(self, Outcome::NoAnswer)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A follow-up event that decoded cleanly.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Coordinates of the message it came from.
    pub coords: SourceCoords,
    /// The event's id: the mapped id field, else `topic-partition-offset`.
    /// Two events with one id are one event sent twice.
    pub id: String,
    /// The comment (the action's id is its comment's id) it answers.
    pub comment_id: String,
    /// When it happened: the mapped time field, else the Kafka timestamp,
    /// else the ingest time.
    pub at: DateTime<Utc>,
    /// How (phone, email, chat...).
    pub channel: Option<String>,
    /// What it achieved.
    pub outcome: Outcome,
    /// Who answered.
    pub agent: Option<String>,
    /// Free text from the agent (PII redacted like comment texts).
    pub note: Option<String>,
    /// When verbatim read it.
    pub ingest_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_parse_leniently_and_print_their_code() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse(" No-Answer "), Some(Outcome::NoAnswer));
        assert_eq!(Outcome::parse("no answer"), Some(Outcome::NoAnswer));
        assert_eq!(Outcome::parse("called"), None);
        assert!(!Outcome::NoAnswer.reached());
        assert!(Outcome::Declined.reached());
    }
}
