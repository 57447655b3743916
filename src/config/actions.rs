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
    /// How far apart two negative mentions of one target by one customer
    /// (`input.fields.customer_id`) make the later one a `repeat_issue`,
    /// e.g. `"30d"`, `"72h"`; `"off"` keeps no history.
    pub repeat_window: String,
    /// `[actions.sla]`: how soon each priority must be answered.
    pub sla: SlaConfig,
    /// How often the stream job recomputes the action statuses (the
    /// `verbatim_actions_overdue` metric and `action_status/`), e.g. `"5m"`;
    /// `"off"`: only `verbatim actions status` does.
    pub status_every: String,
}

/// `[actions.sla]`: time to a first response, per priority, counted from
/// when the customer wrote (`event_time`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// Priority 1 (`safety_risk`).
    pub urgent: String,
    /// Priority 2 (asked to be contacted, again).
    pub high: String,
    /// Priority 3.
    pub normal: String,
    /// Priority 4 (e.g. `score_solicited`).
    pub low: String,
}

impl Default for SlaConfig {
    fn default() -> Self {
        Self {
            urgent: "4h".into(),
            high: "24h".into(),
            normal: "72h".into(),
            low: "7d".into(),
        }
    }
}

impl SlaConfig {
    /// The four spans, urgent first, each checked; `Err((key, problem))`.
    pub fn spans(&self) -> Result<[chrono::Duration; 4], (&'static str, String)> {
        let one = |key: &'static str, text: &str| {
            let d = parse_duration(text).map_err(|p| (key, p))?;
            if d <= chrono::Duration::zero() {
                return Err((key, format!("is {text:?}, not a positive span")));
            }
            Ok(d)
        };
        Ok([
            one("urgent", &self.urgent)?,
            one("high", &self.high)?,
            one("normal", &self.normal)?,
            one("low", &self.low)?,
        ])
    }
}

/// Default `actions.repeat_window`.
pub const DEFAULT_REPEAT_WINDOW: &str = "30d";

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            flags: DEFAULT_ACTION_FLAGS.iter().map(|f| f.to_string()).collect(),
            topic: None,
            repeat_window: DEFAULT_REPEAT_WINDOW.to_string(),
            sla: SlaConfig::default(),
            status_every: "5m".into(),
        }
    }
}

impl ActionsConfig {
    /// `repeat_window` as a duration; `None` when it is `"off"`.
    pub fn repeat_window(&self) -> Result<Option<chrono::Duration>, String> {
        optional_span(&self.repeat_window)
    }

    /// `status_every` as a duration; `None` when it is `"off"`.
    pub fn status_every(&self) -> Result<Option<chrono::Duration>, String> {
        optional_span(&self.status_every)
    }
}

/// A positive span, or `None` for `"off"`.
fn optional_span(text: &str) -> Result<Option<chrono::Duration>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let d = parse_duration(text)?;
    if d <= chrono::Duration::zero() {
        return Err(format!("is {text:?}, not a positive span"));
    }
    Ok(Some(d))
}

/// Parses a span such as `"30d"`, `"4h"`, `"90m"`, `"45s"` or `"2w"`: a
/// whole number and one unit.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("is {text:?}, not a number followed by a unit"))?;
    let secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        other => return Err(format!("is {text:?}, with unit {other:?}")),
    };
    n.checked_mul(secs)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| format!("is {text:?}, too long a span"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_in_every_unit_and_bad_ones_say_why() {
        let secs = |t: &str| parse_duration(t).map(|d| d.num_seconds());
        assert_eq!(secs("45s"), Ok(45));
        assert_eq!(secs("90m"), Ok(5_400));
        assert_eq!(secs("4h"), Ok(14_400));
        assert_eq!(secs(" 30d "), Ok(2_592_000));
        assert_eq!(secs("2w"), Ok(1_209_600));
        assert!(secs("30").unwrap_err().contains("unit"));
        assert!(secs("d").unwrap_err().contains("not a number"));
        assert!(secs("3 days").unwrap_err().contains("\"days\""));
        assert!(secs("99999999999999999d").is_err());
        let w = |t: &str| {
            ActionsConfig {
                repeat_window: t.into(),
                ..Default::default()
            }
            .repeat_window()
        };
        assert_eq!(w("off"), Ok(None));
        assert_eq!(w("30d"), Ok(Some(chrono::Duration::days(30))));
        assert!(w("0d").is_err());
        let sla = SlaConfig::default().spans().unwrap();
        assert_eq!(sla.map(|d| d.num_hours()), [4, 24, 72, 168]);
        let bad = SlaConfig {
            high: "soon".into(),
            ..Default::default()
        };
        assert_eq!(bad.spans().unwrap_err().0, "high");
    }
}
