//! Follow-up events: a JSON object becomes a [`Response`] through
//! `[responses.fields]`, or a rejection with a reason.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{json_kind, json_object, lookup, opt_scalar_string, parse_time, payload_str, Fail};
use crate::comment::{Outcome, RawMessage, RejectReason, Response};
use crate::config::{ResponseFields, TimeFormat};

/// Decodes one follow-up event.
pub(super) fn decode(
    msg: &RawMessage,
    f: &ResponseFields,
    time_format: &TimeFormat,
    ingest_time: DateTime<Utc>,
) -> Result<Response, Fail> {
    let obj = json_object(payload_str(msg)?)?;
    let coords = msg.coords.clone();
    let id = opt_scalar_string(&obj, Some(&f.id))?
        .unwrap_or_else(|| format!("{}-{}-{}", coords.topic, coords.partition, coords.offset));
    let comment_id = match opt_scalar_string(&obj, Some(&f.comment_id))? {
        Some(c) => c,
        None => opt_scalar_string(&obj, Some(&f.action_id))?.ok_or_else(|| {
            Fail(
                RejectReason::MissingField,
                format!(
                    "neither `{}` nor `{}` names the comment or action it answers",
                    f.comment_id, f.action_id
                ),
            )
        })?,
    };
    let outcome = outcome(&obj, &f.outcome)?;
    let at = match lookup(&obj, &f.at) {
        None | Some(Value::Null) => coords.kafka_timestamp.unwrap_or(ingest_time),
        Some(v) => parse_time(v, time_format).map_err(|why| {
            Fail(
                RejectReason::BadTimestamp,
                format!("field `{}`: {why}", f.at),
            )
        })?,
    };
    Ok(Response {
        id,
        comment_id,
        at,
        channel: opt_scalar_string(&obj, Some(&f.channel))?,
        outcome,
        agent: opt_scalar_string(&obj, Some(&f.agent))?,
        note: opt_scalar_string(&obj, Some(&f.note))?,
        ingest_time,
        coords,
    })
}

fn outcome(obj: &Map<String, Value>, path: &str) -> Result<Outcome, Fail> {
    let codes = || {
        Outcome::ALL
            .iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match lookup(obj, path) {
        None | Some(Value::Null) => Err(Fail(
            RejectReason::MissingField,
            format!("field `{path}` (the outcome: {}) is missing", codes()),
        )),
        Some(Value::String(s)) => Outcome::parse(s).ok_or_else(|| {
            Fail(
                RejectReason::BadValue,
                format!("field `{path}` is {s:?}, not one of {}", codes()),
            )
        }),
        Some(other) => Err(Fail(
            RejectReason::WrongType,
            format!(
                "field `{path}` should be a string, got {}",
                json_kind(other)
            ),
        )),
    }
}
