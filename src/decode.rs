//! Decode stage: a message's bytes become a [`Comment`] (or, from a
//! responses topic, a [`crate::comment::Response`]: [`response`]), or a
//! [`Rejection`] with a reason. Nothing here panics on input, and nothing
//! is dropped.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::comment::{Comment, Decoded, RawMessage, RejectReason, Rejection};
use crate::config::{FieldMapping, InputConfig, InputFormat, ResponseFields, TimeFormat};

mod response;

/// Turns raw messages into comments according to `[input]`.
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: InputConfig,
    /// Hashes `customer_id` before it goes further (`privacy.hash_customer_id`).
    customer_hasher: Option<crate::comment::CustomerHasher>,
    /// Top-level names consumed by the mapping (for `keep_unmapped`).
    mapped_roots: Vec<String>,
    /// Topics whose messages are follow-up events, and their mapping.
    responses: Option<(Vec<String>, ResponseFields)>,
}

/// A field-level failure inside decoding.
struct Fail(RejectReason, String);

impl Decoder {
    /// A decoder for this `[input]` section.
    pub fn new(cfg: InputConfig) -> Self {
        let mapped_roots = cfg
            .fields
            .mapped()
            .iter()
            .map(|(_, p)| p.split('.').next().unwrap_or(p).to_string())
            .chain(
                cfg.fields
                    .attributes
                    .iter()
                    .map(|p| p.split('.').next().unwrap_or(p).to_string()),
            )
            .collect();
        Self {
            cfg,
            customer_hasher: None,
            mapped_roots,
            responses: None,
        }
    }

    /// Decodes messages of `topics` as follow-up events through `fields`
    /// (`[responses]`), every other topic as comments.
    pub fn with_responses(mut self, topics: Vec<String>, fields: ResponseFields) -> Self {
        self.responses = (!topics.is_empty()).then_some((topics, fields));
        self
    }

    /// Hashes `customer_id` with `hasher` (`None`: kept as sent); see
    /// [`crate::config::PrivacyConfig::customer_hasher`].
    pub fn with_customer_hasher(mut self, hasher: Option<crate::comment::CustomerHasher>) -> Self {
        self.customer_hasher = hasher;
        self
    }

    /// Decodes one message. `ingest_time` is stamped on the result.
    pub fn decode(&self, msg: RawMessage, ingest_time: DateTime<Utc>) -> Decoded {
        let decoded = match &self.responses {
            Some((topics, fields)) if topics.contains(&msg.coords.topic) => {
                response::decode(&msg, fields, &self.cfg.time_format, ingest_time)
                    .map(|r| Decoded::Response(Box::new(r)))
            }
            _ => self
                .try_decode(&msg, ingest_time)
                .map(|c| Decoded::Comment(Box::new(c))),
        };
        match decoded {
            Ok(d) => d,
            Err(Fail(reason, message)) => Decoded::Rejected(Box::new(Rejection {
                coords: msg.coords,
                key: msg.key,
                raw: msg.payload.unwrap_or_default(),
                reason,
                message,
                ingest_time,
            })),
        }
    }

    fn try_decode(&self, msg: &RawMessage, ingest_time: DateTime<Utc>) -> Result<Comment, Fail> {
        let s = payload_str(msg)?;
        let coords = msg.coords.clone();
        let default_id = format!("{}-{}-{}", coords.topic, coords.partition, coords.offset);
        let fallback_time = coords.kafka_timestamp.unwrap_or(ingest_time);
        match self.cfg.format {
            InputFormat::Text => {
                let text = self.check_text(s)?;
                Ok(Comment::new(
                    coords,
                    default_id,
                    text,
                    fallback_time,
                    ingest_time,
                ))
            }
            InputFormat::Json => {
                let obj = json_object(s)?;
                self.comment_from_object(obj, coords, fallback_time, ingest_time, default_id)
            }
        }
    }

    fn comment_from_object(
        &self,
        obj: Map<String, Value>,
        coords: crate::comment::SourceCoords,
        fallback_time: DateTime<Utc>,
        ingest_time: DateTime<Utc>,
        default_id: String,
    ) -> Result<Comment, Fail> {
        let f: &FieldMapping = &self.cfg.fields;
        let text = match lookup(&obj, &f.text) {
            None | Some(Value::Null) => {
                return Err(Fail(
                    RejectReason::MissingText,
                    format!("field `{}` is missing", f.text),
                ))
            }
            Some(Value::String(s)) => self.check_text(s)?,
            Some(other) => {
                return Err(Fail(
                    RejectReason::WrongType,
                    format!(
                        "field `{}` should be a string, got {}",
                        f.text,
                        json_kind(other)
                    ),
                ))
            }
        };
        let id = match opt_scalar_string(&obj, f.id.as_deref())? {
            Some(id) if !id.is_empty() => id,
            _ => default_id,
        };
        let event_time = match f
            .event_time
            .as_deref()
            .and_then(|p| lookup(&obj, p).map(|v| (p, v)))
        {
            None | Some((_, Value::Null)) => fallback_time,
            Some((path, v)) => parse_time(v, &self.cfg.time_format).map_err(|why| {
                Fail(RejectReason::BadTimestamp, format!("field `{path}`: {why}"))
            })?,
        };
        let score =
            match f
                .score
                .as_deref()
                .and_then(|p| lookup(&obj, p).map(|v| (p, v)))
            {
                None | Some((_, Value::Null)) => None,
                Some((_, Value::Number(n))) => n.as_f64(),
                Some((path, Value::String(s))) => match s.trim() {
                    "" => None,
                    t => Some(t.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(
                        || {
                            Fail(
                                RejectReason::WrongType,
                                format!("field `{path}` should be a number, got {s:?}"),
                            )
                        },
                    )?),
                },
                Some((path, other)) => {
                    return Err(Fail(
                        RejectReason::WrongType,
                        format!(
                            "field `{path}` should be a number, got {}",
                            json_kind(other)
                        ),
                    ))
                }
            };
        let mut attributes = BTreeMap::new();
        for path in &f.attributes {
            if let Some(v) = lookup(&obj, path) {
                if !v.is_null() {
                    attributes.insert(path.clone(), attribute_string(v));
                }
            }
        }
        let channel = opt_scalar_string(&obj, f.channel.as_deref())?;
        let staff_id = opt_scalar_string(&obj, f.staff_id.as_deref())?;
        let location = opt_scalar_string(&obj, f.location.as_deref())?;
        let product = opt_scalar_string(&obj, f.product.as_deref())?;
        let declared_language = opt_scalar_string(&obj, f.language.as_deref())?;
        let customer_id = opt_scalar_string(&obj, f.customer_id.as_deref())?.map(|id| match &self
            .customer_hasher
        {
            Some(h) => h.hash(&id),
            None => id,
        });
        if f.keep_unmapped {
            for (k, v) in obj {
                if !self.mapped_roots.iter().any(|m| m == &k) && !v.is_null() {
                    attributes.insert(k, attribute_string(&v));
                }
            }
        }
        Ok(Comment {
            coords,
            id,
            event_time,
            text,
            score,
            channel,
            staff_id,
            location,
            product,
            declared_language,
            customer_id,
            attributes,
            ingest_time,
            nlp: Default::default(),
        })
    }

    fn check_text(&self, s: &str) -> Result<String, Fail> {
        let t = s.trim();
        if t.is_empty() {
            return Err(Fail(
                RejectReason::EmptyText,
                "text is empty after trimming whitespace".into(),
            ));
        }
        if t.len() > self.cfg.max_text_bytes {
            return Err(Fail(
                RejectReason::TextTooLong,
                format!(
                    "text is {} bytes, over input.max_text_bytes = {}",
                    t.len(),
                    self.cfg.max_text_bytes
                ),
            ));
        }
        Ok(t.to_string())
    }
}

/// Follows a dotted path into a JSON object.
/// The message value as text: rejects tombstones, empty values and bytes
/// that are not UTF-8.
fn payload_str(msg: &RawMessage) -> Result<&str, Fail> {
    let payload = match &msg.payload {
        Some(p) if !p.is_empty() => p.as_slice(),
        Some(_) => {
            return Err(Fail(
                RejectReason::EmptyPayload,
                "message value is empty".into(),
            ))
        }
        None => {
            return Err(Fail(
                RejectReason::EmptyPayload,
                "message has no value (tombstone)".into(),
            ))
        }
    };
    std::str::from_utf8(payload).map_err(|e| {
        Fail(
            RejectReason::InvalidUtf8,
            format!(
                "message value is not UTF-8: invalid byte at position {}",
                e.valid_up_to()
            ),
        )
    })
}

/// Text that must be one JSON object.
fn json_object(s: &str) -> Result<Map<String, Value>, Fail> {
    let v: Value = serde_json::from_str(s)
        .map_err(|e| Fail(RejectReason::NotJson, format!("not JSON: {e}")))?;
    match v {
        Value::Object(o) => Ok(o),
        other => Err(Fail(
            RejectReason::NotObject,
            format!("expected a JSON object, got {}", json_kind(&other)),
        )),
    }
}

fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = obj.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// An optional metadata field: strings as they are, numbers and booleans as
/// text, null/absent as `None`; objects and arrays are a type error.
fn opt_scalar_string(obj: &Map<String, Value>, path: Option<&str>) -> Result<Option<String>, Fail> {
    let Some(path) = path else { return Ok(None) };
    match lookup(obj, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(Fail(
            RejectReason::WrongType,
            format!(
                "field `{path}` should be a string or number, got {}",
                json_kind(other)
            ),
        )),
    }
}

fn attribute_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses an event time per `[input] time_format`.
pub fn parse_time(v: &Value, fmt: &TimeFormat) -> Result<DateTime<Utc>, String> {
    let from_epoch = |x: f64, millis: bool| -> Result<DateTime<Utc>, String> {
        if !x.is_finite() {
            return Err(format!("{x} is not a time"));
        }
        let ms = if millis { x } else { x * 1000.0 };
        // Keep to years 1900..2200: anything else is a unit mistake, not a date.
        if !(-2_208_988_800_000.0..=7_258_118_400_000.0).contains(&ms) {
            return Err(format!("{x} is outside the years 1900-2200"));
        }
        Utc.timestamp_millis_opt(ms as i64)
            .single()
            .ok_or_else(|| format!("{x} is not a valid epoch time"))
    };
    match (fmt, v) {
        (TimeFormat::EpochSeconds, Value::Number(n)) => {
            from_epoch(n.as_f64().unwrap_or(f64::NAN), false)
        }
        (TimeFormat::EpochMillis, Value::Number(n)) => {
            from_epoch(n.as_f64().unwrap_or(f64::NAN), true)
        }
        (TimeFormat::Auto, Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            from_epoch(x, x.abs() >= 1e11)
        }
        (TimeFormat::Rfc3339, Value::String(s)) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{s:?} is not RFC 3339: {e}")),
        (TimeFormat::Auto, Value::String(s)) => parse_time_str(s.trim()),
        (TimeFormat::EpochSeconds | TimeFormat::EpochMillis, Value::String(s)) => {
            let x: f64 = s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a number of epoch units"))?;
            from_epoch(x, matches!(fmt, TimeFormat::EpochMillis))
        }
        (_, other) => Err(format!("expected a time, got {}", json_kind(other))),
    }
}

fn parse_time_str(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(x) = s.parse::<f64>() {
        return parse_time(&Value::from(x), &TimeFormat::Auto);
    }
    Err(format!(
        "{s:?} is not a recognised time (RFC 3339, YYYY-MM-DD[ HH:MM:SS], or epoch)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::SourceCoords;

    fn msg(payload: Option<&[u8]>) -> RawMessage {
        RawMessage {
            coords: SourceCoords {
                topic: "t".into(),
                partition: 2,
                offset: 41,
                kafka_timestamp: Some(Utc.timestamp_millis_opt(1_700_000_000_000).unwrap()),
            },
            key: None,
            payload: payload.map(|p| p.to_vec()),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn reason(d: Decoded) -> RejectReason {
        match d {
            Decoded::Rejected(r) => r.reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn comment(d: Decoded) -> Comment {
        match d {
            Decoded::Comment(c) => *c,
            other => panic!("expected a comment, got {other:?}"),
        }
    }

    #[test]
    fn full_object_maps_every_field() {
        let mut cfg = InputConfig::default();
        cfg.fields.attributes = vec!["customer.plan".into()];
        let d = Decoder::new(cfg);
        let c = comment(d.decode(
            msg(Some(br#"{"id": 17, "text": "  The engineer was great ", "created_at": "2026-03-04T10:00:00+02:00",
                "score": "9", "channel": "survey", "staff_id": "E-7", "location": "Leeds", "product": "broadband",
                "language": "en", "customer": {"plan": "gold"}}"#)),
            now(),
        ));
        assert_eq!(c.id, "17");
        assert_eq!(c.text, "The engineer was great");
        assert_eq!(
            c.event_time,
            Utc.with_ymd_and_hms(2026, 3, 4, 8, 0, 0).unwrap()
        );
        assert_eq!(c.score, Some(9.0));
        assert_eq!(c.staff_id.as_deref(), Some("E-7"));
        assert_eq!(c.declared_language.as_deref(), Some("en"));
        assert_eq!(
            c.attributes.get("customer.plan").map(String::as_str),
            Some("gold")
        );
    }

    #[test]
    fn customer_ids_are_hashed_with_the_salt_before_anything_else_sees_them() {
        use crate::comment::CustomerHasher;
        let body: &[u8] = br#"{"text": "again", "customer_id": "ann@example.com"}"#;
        let id = |h: Option<CustomerHasher>| {
            comment(
                Decoder::new(InputConfig::default())
                    .with_customer_hasher(h)
                    .decode(msg(Some(body)), now()),
            )
            .customer_id
        };
        assert_eq!(id(None).as_deref(), Some("ann@example.com"));
        let plain = id(Some(CustomerHasher::new(""))).unwrap();
        assert_eq!(plain.len(), 32);
        assert!(plain.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id(Some(CustomerHasher::new(""))).unwrap(), plain, "stable");
        let salted = id(Some(CustomerHasher::new("s3cret"))).unwrap();
        assert_ne!(salted, plain, "the salt changes the hash");
        // Numbers are ids too; an object is not.
        let n = Decoder::new(InputConfig::default())
            .decode(msg(Some(br#"{"text": "x", "customer_id": 42}"#)), now());
        assert_eq!(comment(n).customer_id.as_deref(), Some("42"));
        let bad = Decoder::new(InputConfig::default()).decode(
            msg(Some(br#"{"text": "x", "customer_id": {"a": 1}}"#)),
            now(),
        );
        assert_eq!(reason(bad), RejectReason::WrongType);
    }

    /// A decoder reading topic `resp` as follow-up events.
    fn events() -> Decoder {
        Decoder::new(InputConfig::default()).with_responses(
            vec!["resp".into()],
            crate::config::ResponseFields::default(),
        )
    }

    fn on(topic: &str, body: &[u8]) -> RawMessage {
        let mut m = msg(Some(body));
        m.coords.topic = topic.into();
        m
    }

    #[test]
    fn a_follow_up_event_maps_every_field_and_its_time_zone() {
        let d = events();
        let r = match d.decode(
            on(
                "resp",
                br#"{"id": "ev-1", "comment_id": "fb-7", "at": "2026-03-04T10:00:00+02:00",
                "channel": "phone", "outcome": "Resolved", "agent": "A-3", "note": "Refunded"}"#,
            ),
            now(),
        ) {
            Decoded::Response(r) => *r,
            other => panic!("{other:?}"),
        };
        assert_eq!((r.id.as_str(), r.comment_id.as_str()), ("ev-1", "fb-7"));
        assert_eq!(r.at, Utc.with_ymd_and_hms(2026, 3, 4, 8, 0, 0).unwrap());
        assert_eq!(r.outcome, crate::comment::Outcome::Resolved);
        assert_eq!(r.channel.as_deref(), Some("phone"));
        assert_eq!(r.agent.as_deref(), Some("A-3"));
        assert_eq!(r.note.as_deref(), Some("Refunded"));
        // An action id stands for its comment; no id or time: from the
        // coordinates and the Kafka timestamp.
        let r = match d.decode(
            on("resp", br#"{"action_id": "fb-9", "outcome": "no_answer"}"#),
            now(),
        ) {
            Decoded::Response(r) => *r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.comment_id, "fb-9");
        assert_eq!(r.id, "resp-2-41");
        assert_eq!(r.at, Utc.timestamp_millis_opt(1_700_000_000_000).unwrap());
        // The same bytes on the comments topic are a comment (or not).
        assert_eq!(
            reason(d.decode(
                on("fb", br#"{"action_id": "fb-9", "outcome": "no_answer"}"#),
                now()
            )),
            RejectReason::MissingText
        );
    }

    #[test]
    fn every_bad_follow_up_event_has_its_reason() {
        let d = events();
        let cases: [(&[u8], RejectReason); 7] = [
            (br#"{"outcome": "resolved"}"#, RejectReason::MissingField),
            (
                br#"{"comment_id": " ", "outcome": "resolved"}"#,
                RejectReason::MissingField,
            ),
            (
                br#"{"comment_id": "c", "outcome": "called"}"#,
                RejectReason::BadValue,
            ),
            (br#"{"comment_id": "c"}"#, RejectReason::MissingField),
            (
                br#"{"comment_id": "c", "outcome": 3}"#,
                RejectReason::WrongType,
            ),
            (
                br#"{"comment_id": "c", "outcome": "resolved", "at": "soon"}"#,
                RejectReason::BadTimestamp,
            ),
            (br#"[1]"#, RejectReason::NotObject),
        ];
        for (body, want) in cases {
            let got = d.decode(on("resp", body), now());
            match got {
                Decoded::Rejected(r) => {
                    assert_eq!(r.reason, want, "{}", String::from_utf8_lossy(body));
                    assert_eq!(r.raw, body, "kept whole");
                    assert!(!r.message.is_empty());
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        let mut tomb = on("resp", b"");
        tomb.payload = None;
        assert_eq!(reason(d.decode(tomb, now())), RejectReason::EmptyPayload);
    }

    #[test]
    fn missing_optionals_fall_back() {
        let d = Decoder::new(InputConfig::default());
        let c = comment(d.decode(msg(Some(br#"{"text": "ok"}"#)), now()));
        assert_eq!(c.id, "t-2-41");
        assert_eq!(c.event_time.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(c.score, None);
    }

    #[test]
    fn keep_unmapped_copies_other_fields() {
        let mut cfg = InputConfig::default();
        cfg.fields.keep_unmapped = true;
        let c = comment(Decoder::new(cfg).decode(
            msg(Some(br#"{"text": "ok", "nps_bucket": "promoter", "n": 3}"#)),
            now(),
        ));
        assert_eq!(c.attributes.len(), 2);
        assert_eq!(c.attributes["n"], "3");
    }

    #[test]
    fn every_bad_input_has_its_reason() {
        let d = Decoder::new(InputConfig {
            max_text_bytes: 10,
            ..InputConfig::default()
        });
        let cases: Vec<(Option<&[u8]>, RejectReason)> = vec![
            (None, RejectReason::EmptyPayload),
            (Some(b""), RejectReason::EmptyPayload),
            (Some(b"\xff\xfe{"), RejectReason::InvalidUtf8),
            (Some(b"{not json"), RejectReason::NotJson),
            (Some(b"[1,2]"), RejectReason::NotObject),
            (Some(b"\"just a string\""), RejectReason::NotObject),
            (Some(br#"{"body": "x"}"#), RejectReason::MissingText),
            (Some(br#"{"text": null}"#), RejectReason::MissingText),
            (Some(br#"{"text": "   "}"#), RejectReason::EmptyText),
            (
                Some(br#"{"text": "this is far too long"}"#),
                RejectReason::TextTooLong,
            ),
            (Some(br#"{"text": 5}"#), RejectReason::WrongType),
            (
                Some(br#"{"text": "ok", "score": "great"}"#),
                RejectReason::WrongType,
            ),
            (
                Some(br#"{"text": "ok", "score": [1]}"#),
                RejectReason::WrongType,
            ),
            (
                Some(br#"{"text": "ok", "staff_id": {"a": 1}}"#),
                RejectReason::WrongType,
            ),
            (
                Some(br#"{"text": "ok", "created_at": "yesterday"}"#),
                RejectReason::BadTimestamp,
            ),
            (
                Some(br#"{"text": "ok", "created_at": true}"#),
                RejectReason::BadTimestamp,
            ),
            (
                Some(br#"{"text": "ok", "created_at": 1e300}"#),
                RejectReason::BadTimestamp,
            ),
        ];
        for (payload, want) in cases {
            let got = reason(d.decode(msg(payload), now()));
            assert_eq!(
                got,
                want,
                "payload {:?}",
                payload.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn rejection_keeps_raw_bytes() {
        let d = Decoder::new(InputConfig::default());
        match d.decode(msg(Some(b"\xff oops")), now()) {
            Decoded::Rejected(r) => {
                assert_eq!(r.raw, b"\xff oops");
                assert_eq!(r.coords.offset, 41);
                assert!(r.message.contains("UTF-8"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_format_takes_whole_value() {
        let d = Decoder::new(InputConfig {
            format: InputFormat::Text,
            ..InputConfig::default()
        });
        let c = comment(d.decode(msg(Some("Связь пропала третий раз".as_bytes())), now()));
        assert_eq!(c.text, "Связь пропала третий раз");
    }

    #[test]
    fn time_formats() {
        let auto = TimeFormat::Auto;
        let t = |v: Value| parse_time(&v, &auto).unwrap();
        assert_eq!(t(Value::from(1_700_000_000)).timestamp(), 1_700_000_000);
        assert_eq!(
            t(Value::from(1_700_000_000_123i64)).timestamp_millis(),
            1_700_000_000_123
        );
        assert_eq!(
            t(Value::from("2026-01-02")).timestamp(),
            Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            t(Value::from("2026-01-02 10:11:12")).timestamp(),
            Utc.with_ymd_and_hms(2026, 1, 2, 10, 11, 12)
                .unwrap()
                .timestamp()
        );
        assert!(parse_time(&Value::from("2026-01-02"), &TimeFormat::Rfc3339).is_err());
        assert_eq!(
            parse_time(&Value::from("1700000000000"), &TimeFormat::EpochMillis)
                .unwrap()
                .timestamp(),
            1_700_000_000
        );
    }
}
