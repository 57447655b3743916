//! `[input]`: how a message's bytes become a comment.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// Message format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// A JSON object per message; fields picked by `[input.fields]`.
    Json,
    /// The whole message value is the comment text (UTF-8).
    Text,
}

/// How event times are parsed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), `YYYY-MM-DD`, or a number of
    /// epoch seconds (< 10^11) or milliseconds.
    Auto,
    /// RFC 3339 only.
    Rfc3339,
    /// A number of seconds since the epoch.
    EpochSeconds,
    /// A number of milliseconds since the epoch.
    EpochMillis,
}

/// `[input]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `json` (default) or `text`.
    #[serde(default = "default_format")]
    pub format: InputFormat,
    /// Texts longer than this many bytes are rejected (`text_too_long`).
    #[serde(default = "default_max_text_bytes")]
    pub max_text_bytes: usize,
    /// How the event-time field is parsed.
    #[serde(default = "default_time_format")]
    pub time_format: TimeFormat,
    /// Which JSON fields hold what.
    #[serde(default)]
    pub fields: FieldMapping,
}

fn default_format() -> InputFormat {
    InputFormat::Json
}
fn default_max_text_bytes() -> usize {
    200_000
}
fn default_time_format() -> TimeFormat {
    TimeFormat::Auto
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            format: default_format(),
            max_text_bytes: default_max_text_bytes(),
            time_format: default_time_format(),
            fields: FieldMapping::default(),
        }
    }
}

/// `[input.fields]`: dotted paths into the JSON object (`customer.id`).
/// An optional field that is absent from a message is null in its row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Comment id; absent → `topic-partition-offset`.
    #[serde(default = "f_id")]
    pub id: Option<String>,
    /// The comment text (required in every message).
    #[serde(default = "f_text")]
    pub text: String,
    /// Event time; absent → Kafka timestamp, then ingest time.
    #[serde(default = "f_event_time")]
    pub event_time: Option<String>,
    /// Numeric score (number or numeric string).
    #[serde(default = "f_score")]
    pub score: Option<String>,
    /// Channel.
    #[serde(default = "f_channel")]
    pub channel: Option<String>,
    /// Staff member id.
    #[serde(default = "f_staff_id")]
    pub staff_id: Option<String>,
    /// Location.
    #[serde(default = "f_location")]
    pub location: Option<String>,
    /// Product.
    #[serde(default = "f_product")]
    pub product: Option<String>,
    /// Declared language code.
    #[serde(default = "f_language")]
    pub language: Option<String>,
    /// The customer who wrote it: enables repeat detection from history
    /// (`actions.repeat_window`); hashed before it is written unless
    /// `privacy.hash_customer_id = false`.
    #[serde(default = "f_customer_id")]
    pub customer_id: Option<String>,
    /// Extra fields copied into the `attributes` map.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Also copy every top-level field not mapped above into `attributes`.
    #[serde(default)]
    pub keep_unmapped: bool,
}

fn f_id() -> Option<String> {
    Some("id".into())
}
fn f_text() -> String {
    "text".into()
}
fn f_event_time() -> Option<String> {
    Some("created_at".into())
}
fn f_score() -> Option<String> {
    Some("score".into())
}
fn f_channel() -> Option<String> {
    Some("channel".into())
}
fn f_staff_id() -> Option<String> {
    Some("staff_id".into())
}
fn f_location() -> Option<String> {
    Some("location".into())
}
fn f_product() -> Option<String> {
    Some("product".into())
}
fn f_language() -> Option<String> {
    Some("language".into())
}
fn f_customer_id() -> Option<String> {
    Some("customer_id".into())
}

impl Default for FieldMapping {
    fn default() -> Self {
        Self {
            id: f_id(),
            text: f_text(),
            event_time: f_event_time(),
            score: f_score(),
            channel: f_channel(),
            staff_id: f_staff_id(),
            location: f_location(),
            product: f_product(),
            language: f_language(),
            customer_id: f_customer_id(),
            attributes: Vec::new(),
            keep_unmapped: false,
        }
    }
}

impl FieldMapping {
    /// The mapped paths, with the key each one is configured under.
    pub fn mapped(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![("text", self.text.as_str())];
        for (k, p) in [
            ("id", &self.id),
            ("event_time", &self.event_time),
            ("score", &self.score),
            ("channel", &self.channel),
            ("staff_id", &self.staff_id),
            ("location", &self.location),
            ("product", &self.product),
            ("language", &self.language),
            ("customer_id", &self.customer_id),
        ] {
            if let Some(p) = p {
                v.push((k, p.as_str()));
            }
        }
        v
    }
}

/// Checks that every `(key, path)` under `section` is a field name or a
/// dotted path.
pub(crate) fn check_field_paths(
    bad: &Invalid<'_>,
    section: &str,
    mapped: &[(&'static str, &str)],
) -> Result<(), ConfigError> {
    for (k, p) in mapped {
        if p.is_empty() || p.split('.').any(str::is_empty) {
            return Err(bad.err(
                &format!("{section}.{k}"),
                format!("is {p:?}, not a field path"),
                "use a field name or a dotted path such as \"customer.id\"",
            ));
        }
    }
    Ok(())
}

impl InputConfig {
    /// Checks every `[input]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if self.max_text_bytes == 0 {
            return Err(bad.err(
                "input.max_text_bytes",
                "is 0".into(),
                "set a positive byte limit, e.g. 200000",
            ));
        }
        check_field_paths(bad, "input.fields", &self.fields.mapped())?;
        for a in &self.fields.attributes {
            if a.is_empty() || a.split('.').any(str::is_empty) {
                return Err(bad.err(
                    "input.fields.attributes",
                    format!("contains {a:?}, not a field path"),
                    "use field names or dotted paths",
                ));
            }
        }
        Ok(())
    }
}
