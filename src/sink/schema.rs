//! Arrow schemas of the output tables, and the builders that turn rows into
//! record batches. README.md documents every column listed here; the
//! `schema_doc_matches_readme` test keeps the two in step.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, FixedSizeListArray, Float32Array, Float64Builder,
    Int32Array, Int64Array, ListArray, MapBuilder, MapFieldNames, StringArray, StringBuilder,
    StructArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::comment::{Comment, Rejection, SourceCoords};

/// Version of the table layout; bumped whenever a column changes meaning or type.
pub const SCHEMA_VERSION: i32 = 3;

/// Values the writer stamps on every row, and the optional columns it writes.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline version tag (verbatim version + config hash).
    pub pipeline_version: String,
    /// Size of the `embedding` column's vectors; `None`: no such column.
    pub embedding_dim: Option<usize>,
    /// Size of `mentions.embedding` (stored embeddings with themes per
    /// mention, which refits read); `None`: no such column.
    pub mention_embedding_dim: Option<usize>,
}

fn ts(unit: TimeUnit) -> DataType {
    DataType::Timestamp(unit, Some("UTC".into()))
}

fn attributes_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    )
}

fn theme_ids_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int32, false)))
}

fn flags_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, false)))
}

fn evidence_fields() -> Fields {
    Fields::from(vec![
        Field::new("flag", DataType::Utf8, false),
        Field::new("start", DataType::Int32, false),
        Field::new("end", DataType::Int32, false),
        Field::new("text", DataType::Utf8, false),
    ])
}

fn evidence_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(evidence_fields()),
        false,
    )))
}

/// A `list<string>` of flag names and the matching `list<struct>` of their
/// evidence, one list per row (`None`: a null row).
fn flag_lists(
    rows: &[Option<Vec<&crate::comment::Evidence>>],
) -> Result<(ListArray, ListArray), ArrowError> {
    let mut names = Vec::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut texts = Vec::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(rows.len());
    for r in rows {
        for e in r.iter().flatten() {
            names.push(e.flag.as_str());
            starts.push(e.start as i32);
            ends.push(e.end as i32);
            texts.push(e.text.as_str());
        }
        offsets.push(names.len() as i32);
        valid.push(r.is_some());
    }
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let name_array: ArrayRef = Arc::new(StringArray::from(names));
    let flags = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        offsets.clone(),
        name_array.clone(),
        Some(valid.clone().into()),
    )?;
    let structs = StructArray::try_new(
        evidence_fields(),
        vec![
            name_array,
            Arc::new(Int32Array::from(starts)),
            Arc::new(Int32Array::from(ends)),
            Arc::new(StringArray::from(texts)),
        ],
        None,
    )?;
    let evidence = ListArray::try_new(
        Arc::new(Field::new(
            "item",
            DataType::Struct(evidence_fields()),
            false,
        )),
        offsets,
        Arc::new(structs),
        Some(valid.into()),
    )?;
    Ok((flags, evidence))
}

/// `flags`, the five built-in flag columns and `flag_evidence`.
fn flag_columns(rows: &[&Comment]) -> Result<Vec<ArrayRef>, ArrowError> {
    let per_row: Vec<Option<Vec<&crate::comment::Evidence>>> = rows
        .iter()
        .map(|r| r.nlp.flags.as_ref().map(|ev| ev.iter().collect()))
        .collect();
    let (flags, evidence) = flag_lists(&per_row)?;
    let mut out: Vec<ArrayRef> = vec![Arc::new(flags)];
    for f in crate::comment::BUILT_IN_FLAGS {
        out.push(Arc::new(
            rows.iter()
                .map(|r| {
                    r.nlp
                        .flags
                        .as_ref()
                        .map(|ev| ev.iter().any(|e| e.flag == f))
                })
                .collect::<BooleanArray>(),
        ));
    }
    out.push(Arc::new(evidence));
    Ok(out)
}

fn aspect_fields() -> Fields {
    Fields::from(vec![
        Field::new("target", DataType::Utf8, false),
        Field::new("polarity", DataType::Utf8, false),
        Field::new("confidence", DataType::Float32, false),
        Field::new("start", DataType::Int32, false),
        Field::new("end", DataType::Int32, false),
        Field::new("text", DataType::Utf8, false),
    ])
}

fn aspects_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(aspect_fields()),
        false,
    )))
}

/// `sentiment` .. `analysis_skipped`.
fn analysis_columns(rows: &[&Comment]) -> Result<Vec<ArrayRef>, ArrowError> {
    use crate::comment::{blames, target_sentiment};
    let mut targets = Vec::new();
    let mut polarities = Vec::new();
    let mut confidences = Vec::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut texts = Vec::new();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(aspects) = &r.nlp.aspects {
            for a in aspects {
                targets.push(&*a.target);
                polarities.push(a.polarity.as_str());
                confidences.push(a.confidence);
                starts.push(a.start as i32);
                ends.push(a.end as i32);
                texts.push(a.text.as_str());
            }
        }
        offsets.push(targets.len() as i32);
        valid.push(r.nlp.aspects.is_some());
    }
    let structs = StructArray::try_new(
        aspect_fields(),
        vec![
            Arc::new(StringArray::from(targets)),
            Arc::new(StringArray::from(polarities)),
            Arc::new(Float32Array::from(confidences)),
            Arc::new(Int32Array::from(starts)),
            Arc::new(Int32Array::from(ends)),
            Arc::new(StringArray::from(texts)),
        ],
        None,
    )?;
    let aspects = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Struct(aspect_fields()), false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(structs),
        Some(valid.into()),
    )?;
    let per_target = |t: &'static str| -> ArrayRef {
        opt_str(rows.iter().map(|r| {
            r.nlp
                .aspects
                .as_deref()
                .and_then(|a| target_sentiment(a, t))
        }))
    };
    let blame = |t: &'static str| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.aspects.as_deref().map(|a| blames(a, t)))
                .collect::<BooleanArray>(),
        )
    };
    Ok(vec![
        opt_str(
            rows.iter()
                .map(|r| r.nlp.sentiment.map(|s| s.label.as_str())),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.sentiment.map(|s| s.score))
                .collect::<Float32Array>(),
        ),
        Arc::new(aspects),
        per_target("staff"),
        per_target("product"),
        blame("staff"),
        blame("product"),
        opt_str(rows.iter().map(|r| r.nlp.analysis_skipped)),
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.theme.as_ref().map(|t| t.0 as i32))
                .collect::<Int32Array>(),
        ),
        opt_str(rows.iter().map(|r| r.nlp.theme.as_ref().map(|t| &*t.1))),
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.theme.as_ref().map(|t| t.2))
                .collect::<Float32Array>(),
        ),
        Arc::new(theme_ids(rows)?),
    ])
}

/// `comments.theme_ids`: the mentions' themes, null when none has one.
fn theme_ids(rows: &[&Comment]) -> Result<ListArray, ArrowError> {
    let mut offsets = vec![0i32];
    let mut items = Vec::new();
    let mut valid = Vec::with_capacity(rows.len());
    for r in rows {
        let before = items.len();
        items.extend(
            r.nlp
                .aspects
                .iter()
                .flatten()
                .filter_map(|a| a.theme.as_ref().map(|t| t.0 as i32)),
        );
        valid.push(items.len() > before);
        offsets.push(items.len() as i32);
    }
    ListArray::try_new(
        Arc::new(Field::new("item", DataType::Int32, false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(Int32Array::from(items)),
        Some(valid.into()),
    )
}

fn embedding_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, false)),
        dim as i32,
    )
}

/// `(name, type, nullable, meaning)` of every `comments` column, in order;
/// `embedding` only when `embedding_dim` is set.
pub fn comments_columns(
    embedding_dim: Option<usize>,
) -> Vec<(&'static str, DataType, bool, &'static str)> {
    let mut cols = vec![
        ("source_topic", DataType::Utf8, false, "Kafka topic the message was read from (`file:<name>` for `verbatim ingest`)"),
        ("source_partition", DataType::Int32, false, "Kafka partition"),
        ("source_offset", DataType::Int64, false, "Kafka offset (line/record index for `ingest`); with topic and partition, unique per row"),
        ("kafka_timestamp", ts(TimeUnit::Millisecond), true, "Kafka record timestamp"),
        ("id", DataType::Utf8, false, "Comment id from the mapped `id` field, else `topic-partition-offset`"),
        ("event_time", ts(TimeUnit::Microsecond), false, "When the comment was written: mapped time field, else Kafka timestamp, else ingest time; `dt` is its UTC date"),
        ("text", DataType::Utf8, false, "Comment text, whitespace-trimmed"),
        ("score", DataType::Float64, true, "Score given with the comment (NPS 0-10, CSAT 1-5, stars...)"),
        ("channel", DataType::Utf8, true, "Channel (survey, app_review, chat...)"),
        ("staff_id", DataType::Utf8, true, "Staff member the feedback is attached to"),
        ("location", DataType::Utf8, true, "Site, store or region"),
        ("product", DataType::Utf8, true, "Product or service line"),
        ("declared_language", DataType::Utf8, true, "Language code sent with the message, if any"),
        ("customer_id", DataType::Utf8, true, "The customer who wrote it (`input.fields.customer_id`): a keyed hash of 32 hex characters unless `privacy.hash_customer_id = false`"),
        ("attributes", attributes_type(), false, "Extra mapped fields as strings (non-strings JSON-encoded)"),
        ("language", DataType::Utf8, true, "Detected language, ISO 639-1 (whatlang; null without `[nlp]` or with no letters)"),
        ("language_confidence", DataType::Float32, true, "Detector confidence in `language`, 0-1 (short texts score low)"),
        ("pii_redacted", DataType::Int32, true, "Emails, card and phone numbers replaced in `text` (null when `privacy.redact_pii` is off)"),
        ("flags", flags_type(), true, "Every flag raised (built-in and `[flags.<name>]`); null without `[nlp]`"),
        ("contact_requested", DataType::Boolean, true, "Asks to be called, written to or escalated"),
        ("repeat_issue", DataType::Boolean, true, "Happened before: \"third time\", \"still not fixed\", no answer to an earlier complaint"),
        ("score_solicited", DataType::Boolean, true, "Reports being asked or pressured to give a high rating"),
        ("survey_fatigue", DataType::Boolean, true, "Complains about feedback requests themselves"),
        ("safety_risk", DataType::Boolean, true, "Danger to people"),
        ("flag_evidence", evidence_type(), true, "Why each flag was raised: `{flag, start, end, text}`, span in characters of `text`"),
        ("repeat_of", flags_type(), true, "Ids of the same customer's comments read before this one (same partition) with a negative mention of a target this one complains about, written within `actions.repeat_window` of it (either side, so a late arrival counts); they raise `repeat_issue` with this comment's clause as evidence. Empty when none; null without a `customer_id` or analysis"),
        ("sentiment", DataType::Utf8, true, "Whole-comment sentiment: negative, neutral or positive (null when not analysed: see `analysis_skipped`)"),
        ("sentiment_score", DataType::Float32, true, "p(positive) - p(negative), -1..1; `sentiment` is the likeliest of the three classes (two-class heads: `neutral` within their neutral band)"),
        ("aspects", aspects_type(), true, "What each sentence is about: `{target, polarity, confidence, start, end, text}`, one per (sentence, target); target is staff, product, process, price, delivery, environment, other or a `[targets.<name>]` name; span in characters of `text` (the clause the target was read from)"),
        ("staff_sentiment", DataType::Utf8, true, "Polarity of the staff aspects (`mixed` when they disagree); null when staff is not mentioned"),
        ("product_sentiment", DataType::Utf8, true, "Polarity of the product aspects, as `staff_sentiment`"),
        ("blames_staff", DataType::Boolean, true, "A negative staff aspect (null when not analysed)"),
        ("blames_product", DataType::Boolean, true, "A negative product aspect (null when not analysed)"),
        ("analysis_skipped", DataType::Utf8, true, "Why sentiment and aspects are null: `language_not_supported` (the model reads only the languages its manifest lists), `language_unknown`"),
        ("theme_id", DataType::Int32, true, "Theme (stable id; `themes/state.json` holds the model): the comment's primary theme (see `theme_ids`), or with whole-comment themes the theme the comment joined, or its nearest theme when it did not (see `theme_similarity`); null for languages the model does not read and before the first theme forms"),
        ("theme_label", DataType::Utf8, true, "The theme's label phrase when the row was written (labels are refreshed as themes grow; ids are not)"),
        ("theme_similarity", DataType::Float32, true, "Cosine of the comment (its primary mention, with themes per mention) and the theme's centroid; below `themes.join_similarity` it did not join and waited in the novelty buffer"),
        ("theme_ids", theme_ids_type(), true, "With `themes.unit = \"mention\"`: the themes of the comment's mentions, in mention order (`mentions.theme_id`); `theme_id` is then the primary one: the strongest negative mention's, else the strongest mention's. Null when the comment's theme is its own (whole-comment themes, or no mention read)"),
        ("token_count", DataType::Int32, true, "Tokens the model read, special tokens included (null without `[nlp]`)"),
        ("truncated", DataType::Boolean, true, "The text was longer than the model reads (`max_seq_len`) and was cut"),
        ("embedding_model", DataType::Utf8, true, "Model, backend and precision that made the embedding, and the projection if any, e.g. `multilingual-e5-small onnx int8 + theme projection de77e8e9` or `all-MiniLM-L6-v2 onnx int8`"),
        ("ingest_time", ts(TimeUnit::Microsecond), false, "When verbatim read the message"),
        ("pipeline", DataType::Utf8, false, "Pipeline name (`name` in the pipeline file)"),
        ("pipeline_version", DataType::Utf8, false, "verbatim version and a hash of the resolved pipeline config"),
        ("schema_version", DataType::Int32, false, "Version of this table layout"),
    ];
    if let Some(d) = embedding_dim {
        cols.push((
            "embedding",
            embedding_type(d),
            true,
            "L2-normalised comment vector (`nlp.store_embeddings`), the one themes read: the model's sentence vector, through its manifest's `[theme_projection]` when it has one (multilingual-e5-small: into all-MiniLM-L6-v2's space, so MiniLM query vectors compare with it); D = 384 for both shipped models",
        ));
    }
    cols
}

/// `(name, type, nullable, meaning)` of every `rejected` column, in order.
pub fn rejected_columns() -> Vec<(&'static str, DataType, bool, &'static str)> {
    vec![
        ("source_topic", DataType::Utf8, false, "Kafka topic"),
        ("source_partition", DataType::Int32, false, "Kafka partition"),
        ("source_offset", DataType::Int64, false, "Kafka offset"),
        ("kafka_timestamp", ts(TimeUnit::Millisecond), true, "Kafka record timestamp"),
        ("key", DataType::Binary, true, "Record key bytes"),
        ("raw", DataType::Binary, false, "Record value bytes, unchanged (empty for a tombstone)"),
        ("raw_text", DataType::Utf8, true, "The value as text when it is valid UTF-8"),
        ("reason", DataType::Utf8, false, "Reason code: empty_payload, invalid_utf8, not_json, not_object, missing_text, empty_text, text_too_long, wrong_type, bad_timestamp; for responses also missing_field, bad_value"),
        ("message", DataType::Utf8, false, "What exactly was wrong (field, type found)"),
        ("ingest_time", ts(TimeUnit::Microsecond), false, "When verbatim read the message; `dt` is its UTC date"),
        ("pipeline", DataType::Utf8, false, "Pipeline name"),
        ("pipeline_version", DataType::Utf8, false, "verbatim version and config hash"),
        ("schema_version", DataType::Int32, false, "Version of this table layout"),
    ]
}

/// `(name, type, nullable, meaning)` of every `mentions` column, in order;
/// `embedding` only when `embedding_dim` is set (see
/// [`Stamp::mention_embedding_dim`]).
pub fn mentions_columns(
    embedding_dim: Option<usize>,
) -> Vec<(&'static str, DataType, bool, &'static str)> {
    let mut cols = vec![
        (
            "source_topic",
            DataType::Utf8,
            false,
            "Kafka topic of the comment",
        ),
        (
            "source_partition",
            DataType::Int32,
            false,
            "Kafka partition",
        ),
        (
            "source_offset",
            DataType::Int64,
            false,
            "Kafka offset; with topic and partition, joins to `comments`",
        ),
        ("comment_id", DataType::Utf8, false, "The comment's `id`"),
        (
            "event_time",
            ts(TimeUnit::Microsecond),
            false,
            "The comment's `event_time`; `dt` is its UTC date",
        ),
        ("staff_id", DataType::Utf8, true, "The comment's `staff_id`"),
        ("location", DataType::Utf8, true, "The comment's `location`"),
        ("product", DataType::Utf8, true, "The comment's `product`"),
        ("channel", DataType::Utf8, true, "The comment's `channel`"),
        (
            "customer_id",
            DataType::Utf8,
            true,
            "The comment's `customer_id` (hashed as in `comments`)",
        ),
        (
            "target",
            DataType::Utf8,
            false,
            "staff, product, process, price, delivery, environment, other, or a `[targets.<name>]` name",
        ),
        (
            "polarity",
            DataType::Utf8,
            false,
            "negative, neutral or positive",
        ),
        (
            "confidence",
            DataType::Float32,
            false,
            "The head's probability of this target with this polarity",
        ),
        (
            "span_start",
            DataType::Int32,
            false,
            "Start of the clause, in characters of the comment's `text`",
        ),
        (
            "span_end",
            DataType::Int32,
            false,
            "End of the clause (exclusive)",
        ),
        (
            "span_text",
            DataType::Utf8,
            false,
            "The clause (PII already redacted)",
        ),
        (
            "theme_id",
            DataType::Int32,
            true,
            "With `themes.unit = \"mention\"`: the mention's theme among its target's themes (stable id; joins `themes/themes.parquet`), the one it joined or its nearest; null with whole-comment themes or before its target has a theme",
        ),
        (
            "theme_label",
            DataType::Utf8,
            true,
            "The theme's label when the row was written",
        ),
        (
            "theme_similarity",
            DataType::Float32,
            true,
            "Cosine of the clause's vector and the theme's centroid",
        ),
        ("pipeline", DataType::Utf8, false, "Pipeline name"),
        (
            "pipeline_version",
            DataType::Utf8,
            false,
            "verbatim version and config hash",
        ),
        (
            "schema_version",
            DataType::Int32,
            false,
            "Version of this table layout",
        ),
    ];
    if let Some(d) = embedding_dim {
        cols.push((
            "embedding",
            embedding_type(d),
            true,
            "L2-normalised vector of the clause (`nlp.store_embeddings` with `themes.unit = \"mention\"`), in the space of `comments.embedding`, the one mention themes read: the comment's own vector when the clause is the whole comment, else the mean of the clause's token vectors through the model's theme projection",
        ));
    }
    cols
}

/// `(name, type, nullable, meaning)` of every `actions` column, in order.
pub fn actions_columns() -> Vec<(&'static str, DataType, bool, &'static str)> {
    vec![
        ("source_topic", DataType::Utf8, false, "Kafka topic of the comment"),
        ("source_partition", DataType::Int32, false, "Kafka partition"),
        ("source_offset", DataType::Int64, false, "Kafka offset; with topic and partition, joins to `comments`"),
        ("comment_id", DataType::Utf8, false, "The comment's `id` (the Kafka key of the action record)"),
        ("priority", DataType::Int32, false, "1 urgent (`safety_risk`), 2 high (`contact_requested` and `repeat_issue`), 3 normal (either), 4 low (other queued flags)"),
        ("priority_label", DataType::Utf8, false, "urgent, high, normal or low"),
        ("flags", flags_type(), false, "The queued flags (`actions.flags`) the comment raised"),
        ("evidence", evidence_type(), false, "Their evidence: `{flag, start, end, text}`, span in characters of `text`"),
        ("event_time", ts(TimeUnit::Microsecond), false, "The comment's `event_time`; `dt` is its UTC date"),
        ("ingest_time", ts(TimeUnit::Microsecond), false, "When verbatim read the message (age in the follow-up queue counts from here)"),
        ("staff_id", DataType::Utf8, true, "The comment's `staff_id`"),
        ("location", DataType::Utf8, true, "The comment's `location`"),
        ("channel", DataType::Utf8, true, "The comment's `channel`"),
        ("product", DataType::Utf8, true, "The comment's `product`"),
        ("customer_id", DataType::Utf8, true, "The comment's `customer_id` (hashed as in `comments`)"),
        ("score", DataType::Float64, true, "The comment's `score`"),
        ("sentiment", DataType::Utf8, true, "The comment's `sentiment`"),
        ("text", DataType::Utf8, false, "The comment's text (PII already redacted)"),
        ("pipeline", DataType::Utf8, false, "Pipeline name"),
        ("pipeline_version", DataType::Utf8, false, "verbatim version and config hash"),
        ("schema_version", DataType::Int32, false, "Version of this table layout"),
    ]
}

/// `(name, type, nullable, meaning)` of every `responses` column, in order.
pub fn responses_columns() -> Vec<(&'static str, DataType, bool, &'static str)> {
    vec![
        ("source_topic", DataType::Utf8, false, "Kafka topic of the event (`[responses] topic`, or `file:<name>` for `ingest --table responses`)"),
        ("source_partition", DataType::Int32, false, "Kafka partition"),
        ("source_offset", DataType::Int64, false, "Kafka offset; with topic and partition, unique per row"),
        ("kafka_timestamp", ts(TimeUnit::Millisecond), true, "Kafka record timestamp"),
        ("response_id", DataType::Utf8, false, "The event's id (`responses.fields.id`), else `topic-partition-offset`; an id seen twice is one event sent twice"),
        ("comment_id", DataType::Utf8, false, "The comment it answers (`comment_id`, else `action_id`: an action's id is its comment's id); joins to `actions.comment_id`"),
        ("responded_at", ts(TimeUnit::Microsecond), false, "When it happened (`responses.fields.at`; UTC, offsets in the input applied); `dt` is its UTC date"),
        ("channel", DataType::Utf8, true, "How: phone, email, chat..."),
        ("outcome", DataType::Utf8, false, "contacted, resolved, no_answer (tried, did not reach the customer) or declined (reached; the customer did not want more)"),
        ("agent", DataType::Utf8, true, "Who answered"),
        ("note", DataType::Utf8, true, "The agent's note (PII redacted as comment texts are)"),
        ("ingest_time", ts(TimeUnit::Microsecond), false, "When verbatim read the event"),
        ("pipeline", DataType::Utf8, false, "Pipeline name"),
        ("pipeline_version", DataType::Utf8, false, "verbatim version and config hash"),
        ("schema_version", DataType::Int32, false, "Version of this table layout"),
    ]
}

/// Arrow schema of `responses/`.
pub fn responses_schema() -> SchemaRef {
    to_schema(responses_columns())
}

/// Builds a `responses` record batch: one row per follow-up event.
pub fn responses_batch(
    rows: &[&crate::comment::Response],
    stamp: &Stamp,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut columns = coord_columns(rows.iter().map(|r| &r.coords));
    let body: Vec<ArrayRef> = vec![
        opt_str(rows.iter().map(|r| Some(r.id.as_str()))),
        opt_str(rows.iter().map(|r| Some(r.comment_id.as_str()))),
        ts_us(rows.iter().map(|r| micros(&r.at))),
        opt_str(rows.iter().map(|r| r.channel.as_deref())),
        opt_str(rows.iter().map(|r| Some(r.outcome.as_str()))),
        opt_str(rows.iter().map(|r| r.agent.as_deref())),
        opt_str(rows.iter().map(|r| r.note.as_deref())),
        ts_us(rows.iter().map(|r| micros(&r.ingest_time))),
    ];
    columns.extend(body);
    columns.extend(stamp_columns(stamp, n));
    RecordBatch::try_new(responses_schema(), columns)
}

/// Arrow schema of `actions/`.
pub fn actions_schema() -> SchemaRef {
    to_schema(actions_columns())
}

/// Builds an `actions` record batch: one row per queued comment.
pub fn actions_batch(
    rows: &[(&Comment, crate::sink::actions::Action<'_>)],
    stamp: &Stamp,
) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut columns: Vec<ArrayRef> = coord_columns(rows.iter().map(|(c, _)| &c.coords));
    columns.truncate(3);
    let names: Vec<Option<Vec<&str>>> = rows.iter().map(|(_, a)| Some(a.flags.clone())).collect();
    let evidence: Vec<Option<Vec<&crate::comment::Evidence>>> =
        rows.iter().map(|(_, a)| Some(a.evidence.clone())).collect();
    let (_, evidence) = flag_lists(&evidence)?;
    let body: Vec<ArrayRef> = vec![
        opt_str(rows.iter().map(|(c, _)| Some(c.id.as_str()))),
        Arc::new(
            rows.iter()
                .map(|(_, a)| Some(i32::from(a.priority)))
                .collect::<Int32Array>(),
        ),
        opt_str(rows.iter().map(|(_, a)| Some(a.priority_label()))),
        Arc::new(string_lists(&names)?),
        Arc::new(evidence),
        ts_us(rows.iter().map(|(c, _)| micros(&c.event_time))),
        ts_us(rows.iter().map(|(c, _)| micros(&c.ingest_time))),
        opt_str(rows.iter().map(|(c, _)| c.staff_id.as_deref())),
        opt_str(rows.iter().map(|(c, _)| c.location.as_deref())),
        opt_str(rows.iter().map(|(c, _)| c.channel.as_deref())),
        opt_str(rows.iter().map(|(c, _)| c.product.as_deref())),
        opt_str(rows.iter().map(|(c, _)| c.customer_id.as_deref())),
        Arc::new(
            rows.iter()
                .map(|(c, _)| c.score)
                .collect::<arrow::array::Float64Array>(),
        ),
        opt_str(
            rows.iter()
                .map(|(c, _)| c.nlp.sentiment.map(|s| s.label.as_str())),
        ),
        opt_str(rows.iter().map(|(c, _)| Some(c.text.as_str()))),
    ];
    columns.extend(body);
    columns.extend(stamp_columns(stamp, n));
    RecordBatch::try_new(actions_schema(), columns)
}

/// A `list<string>` with non-null items, one list per row.
fn string_lists(rows: &[Option<Vec<&str>>]) -> Result<ListArray, ArrowError> {
    let mut offsets = vec![0i32];
    let mut items = Vec::new();
    for r in rows {
        items.extend(r.iter().flatten().copied());
        offsets.push(items.len() as i32);
    }
    ListArray::try_new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(StringArray::from(items)),
        Some(rows.iter().map(Option::is_some).collect::<Vec<_>>().into()),
    )
}

/// Arrow schema of `mentions/`.
pub fn mentions_schema(embedding_dim: Option<usize>) -> SchemaRef {
    to_schema(mentions_columns(embedding_dim))
}

/// Builds a `mentions` record batch: one row per aspect of `rows`.
pub fn mentions_batch(rows: &[&Comment], stamp: &Stamp) -> Result<RecordBatch, ArrowError> {
    let flat: Vec<(&Comment, &crate::comment::Aspect)> = rows
        .iter()
        .flat_map(|c| c.nlp.aspects.iter().flatten().map(move |a| (*c, a)))
        .collect();
    let n = flat.len();
    let mut columns: Vec<ArrayRef> = coord_columns(flat.iter().map(|(c, _)| &c.coords));
    columns.truncate(3);
    let body: Vec<ArrayRef> = vec![
        opt_str(flat.iter().map(|(c, _)| Some(c.id.as_str()))),
        ts_us(flat.iter().map(|(c, _)| micros(&c.event_time))),
        opt_str(flat.iter().map(|(c, _)| c.staff_id.as_deref())),
        opt_str(flat.iter().map(|(c, _)| c.location.as_deref())),
        opt_str(flat.iter().map(|(c, _)| c.product.as_deref())),
        opt_str(flat.iter().map(|(c, _)| c.channel.as_deref())),
        opt_str(flat.iter().map(|(c, _)| c.customer_id.as_deref())),
        opt_str(flat.iter().map(|(_, a)| Some(&*a.target))),
        opt_str(flat.iter().map(|(_, a)| Some(a.polarity.as_str()))),
        Arc::new(
            flat.iter()
                .map(|(_, a)| Some(a.confidence))
                .collect::<Float32Array>(),
        ),
        Arc::new(
            flat.iter()
                .map(|(_, a)| Some(a.start as i32))
                .collect::<Int32Array>(),
        ),
        Arc::new(
            flat.iter()
                .map(|(_, a)| Some(a.end as i32))
                .collect::<Int32Array>(),
        ),
        opt_str(flat.iter().map(|(_, a)| Some(a.text.as_str()))),
        Arc::new(
            flat.iter()
                .map(|(_, a)| a.theme.as_ref().map(|t| t.0 as i32))
                .collect::<Int32Array>(),
        ),
        opt_str(flat.iter().map(|(_, a)| a.theme.as_ref().map(|t| &*t.1))),
        Arc::new(
            flat.iter()
                .map(|(_, a)| a.theme.as_ref().map(|t| t.2))
                .collect::<Float32Array>(),
        ),
    ];
    columns.extend(body);
    columns.extend(stamp_columns(stamp, n));
    if let Some(dim) = stamp.mention_embedding_dim {
        columns.push(vectors_array(
            flat.iter().map(|(_, a)| a.vector.as_deref()),
            dim,
        )?);
    }
    RecordBatch::try_new(mentions_schema(stamp.mention_embedding_dim), columns)
}

fn to_schema(cols: Vec<(&'static str, DataType, bool, &'static str)>) -> SchemaRef {
    Arc::new(Schema::new(
        cols.into_iter()
            .map(|(n, t, null, _)| Field::new(n, t, null))
            .collect::<Vec<_>>(),
    ))
}

/// Arrow schema of `comments/`.
pub fn comments_schema(embedding_dim: Option<usize>) -> SchemaRef {
    to_schema(comments_columns(embedding_dim))
}

/// Arrow schema of `rejected/`.
pub fn rejected_schema() -> SchemaRef {
    to_schema(rejected_columns())
}

fn opt_str<'a>(rows: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(rows.collect::<StringArray>())
}

/// The four source-coordinate columns every table starts with.
fn coord_columns<'a>(coords: impl Iterator<Item = &'a SourceCoords> + Clone) -> Vec<ArrayRef> {
    vec![
        Arc::new(
            coords
                .clone()
                .map(|c| Some(c.topic.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(coords.clone().map(|c| c.partition).collect::<Int32Array>()),
        Arc::new(coords.clone().map(|c| c.offset).collect::<Int64Array>()),
        Arc::new(
            coords
                .map(|c| c.kafka_timestamp.map(|t| t.timestamp_millis()))
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        ),
    ]
}

/// The three columns every table ends with.
fn stamp_columns(stamp: &Stamp, n: usize) -> [ArrayRef; 3] {
    [
        opt_str(std::iter::repeat_n(Some(stamp.pipeline.as_str()), n)),
        opt_str(std::iter::repeat_n(
            Some(stamp.pipeline_version.as_str()),
            n,
        )),
        Arc::new(Int32Array::from(vec![SCHEMA_VERSION; n])),
    ]
}

fn ts_us(v: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v.collect::<Vec<i64>>()).with_timezone("UTC"))
}

fn micros(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Builds a `comments` record batch from rows (all of one file).
pub fn comments_batch(rows: &[&Comment], stamp: &Stamp) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut score = Float64Builder::with_capacity(n);
    let mut attrs = MapBuilder::new(
        Some(MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for r in rows {
        score.append_option(r.score);
        for (k, v) in &r.attributes {
            attrs.keys().append_value(k);
            attrs.values().append_value(v);
        }
        attrs.append(true)?;
    }
    let mut columns = coord_columns(rows.iter().map(|r| &r.coords));
    let body: Vec<ArrayRef> = vec![
        opt_str(rows.iter().map(|r| Some(r.id.as_str()))),
        ts_us(rows.iter().map(|r| micros(&r.event_time))),
        opt_str(rows.iter().map(|r| Some(r.text.as_str()))),
        Arc::new(score.finish()),
        opt_str(rows.iter().map(|r| r.channel.as_deref())),
        opt_str(rows.iter().map(|r| r.staff_id.as_deref())),
        opt_str(rows.iter().map(|r| r.location.as_deref())),
        opt_str(rows.iter().map(|r| r.product.as_deref())),
        opt_str(rows.iter().map(|r| r.declared_language.as_deref())),
        opt_str(rows.iter().map(|r| r.customer_id.as_deref())),
        Arc::new(attrs.finish()),
        opt_str(rows.iter().map(|r| r.nlp.language)),
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.language_confidence)
                .collect::<Float32Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.pii_redacted.map(|n| n as i32))
                .collect::<Int32Array>(),
        ),
    ];
    let tail: Vec<ArrayRef> = vec![
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.token_count.map(|n| n as i32))
                .collect::<Int32Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.nlp.truncated)
                .collect::<BooleanArray>(),
        ),
        opt_str(rows.iter().map(|r| r.nlp.embedding_model.as_deref())),
        ts_us(rows.iter().map(|r| micros(&r.ingest_time))),
    ];
    columns.extend(body);
    columns.extend(flag_columns(rows)?);
    let repeat_of: Vec<Option<Vec<&str>>> = rows
        .iter()
        .map(|r| {
            r.nlp
                .repeat_of
                .as_ref()
                .map(|ids| ids.iter().map(String::as_str).collect())
        })
        .collect();
    columns.push(Arc::new(string_lists(&repeat_of)?));
    columns.extend(analysis_columns(rows)?);
    columns.extend(tail);
    columns.extend(stamp_columns(stamp, n));
    if let Some(dim) = stamp.embedding_dim {
        columns.push(embedding_array(rows, dim)?);
    }
    RecordBatch::try_new(comments_schema(stamp.embedding_dim), columns)
}

fn embedding_array(rows: &[&Comment], dim: usize) -> Result<ArrayRef, ArrowError> {
    vectors_array(rows.iter().map(|r| r.nlp.embedding.as_deref()), dim)
}

/// A `fixed_size_list<float32, dim>` column, null where a row has no vector.
fn vectors_array<'a>(
    rows: impl ExactSizeIterator<Item = Option<&'a [f32]>>,
    dim: usize,
) -> Result<ArrayRef, ArrowError> {
    let mut values = Vec::with_capacity(rows.len() * dim);
    let mut valid = Vec::with_capacity(rows.len());
    for r in rows {
        match r {
            Some(v) if v.len() == dim => {
                values.extend_from_slice(v);
                valid.push(true);
            }
            Some(v) => {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "embedding of {} values in a column of {dim}",
                    v.len()
                )))
            }
            None => {
                values.extend(std::iter::repeat_n(0.0, dim));
                valid.push(false);
            }
        }
    }
    let field = Arc::new(Field::new("item", DataType::Float32, false));
    Ok(Arc::new(FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(Float32Array::from(values)),
        Some(valid.into()),
    )?))
}

/// Builds a `rejected` record batch from rows (all of one file).
pub fn rejected_batch(rows: &[&Rejection], stamp: &Stamp) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut key = BinaryBuilder::new();
    let mut raw = BinaryBuilder::new();
    for r in rows {
        key.append_option(r.key.as_deref());
        raw.append_value(&r.raw);
    }
    let mut columns = coord_columns(rows.iter().map(|r| &r.coords));
    let body: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(raw.finish()),
        opt_str(rows.iter().map(|r| std::str::from_utf8(&r.raw).ok())),
        opt_str(rows.iter().map(|r| Some(r.reason.code()))),
        opt_str(rows.iter().map(|r| Some(r.message.as_str()))),
        ts_us(rows.iter().map(|r| micros(&r.ingest_time))),
    ];
    columns.extend(body);
    columns.extend(stamp_columns(stamp, n));
    RecordBatch::try_new(rejected_schema(), columns)
}

/// Renders a column table as Markdown (used to keep README in step).
pub fn columns_markdown(cols: &[(&'static str, DataType, bool, &'static str)]) -> String {
    let mut s = String::from("| column | type | null | meaning |\n|---|---|---|---|\n");
    for (n, t, null, doc) in cols {
        let t = match t {
            DataType::Utf8 => "string".to_string(),
            DataType::Int32 => "int32".into(),
            DataType::Int64 => "int64".into(),
            DataType::Float64 => "double".into(),
            DataType::Float32 => "float".into(),
            DataType::Boolean => "boolean".into(),
            DataType::Binary => "binary".into(),
            DataType::Timestamp(TimeUnit::Millisecond, _) => "timestamp(ms, UTC)".into(),
            DataType::Timestamp(TimeUnit::Microsecond, _) => "timestamp(us, UTC)".into(),
            DataType::Map(..) => "map<string, string>".into(),
            DataType::FixedSizeList(_, _) => "fixed_size_list<float, D>".into(),
            DataType::List(f) if f.data_type() == &DataType::Utf8 => "list<string>".into(),
            DataType::List(f) => match f.data_type() {
                DataType::Struct(fields) => format!(
                    "list<struct<{}>>",
                    fields
                        .iter()
                        .map(|x| format!(
                            "{} {}",
                            x.name(),
                            match x.data_type() {
                                DataType::Utf8 => "string",
                                DataType::Int32 => "int32",
                                DataType::Float32 => "float",
                                _ => "?",
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => format!("list<{other}>"),
            },
            other => format!("{other}"),
        };
        s.push_str(&format!(
            "| `{n}` | {t} | {} | {doc} |\n",
            if *null { "yes" } else { "no" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::{RejectReason, SourceCoords};
    use chrono::{TimeZone, Utc};

    fn stamp() -> Stamp {
        Stamp {
            pipeline: "p".into(),
            pipeline_version: "v".into(),
            embedding_dim: Some(3),
            mention_embedding_dim: Some(3),
        }
    }

    fn coords() -> SourceCoords {
        SourceCoords {
            topic: "t".into(),
            partition: 1,
            offset: 5,
            kafka_timestamp: None,
        }
    }

    #[test]
    fn mention_themes_go_to_mentions_and_the_comment_lists_them() {
        use crate::comment::{Aspect, Polarity};
        use arrow::array::{Array, AsArray};
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut c = Comment::new(coords(), "a".into(), "x, y".into(), t, t);
        let mention = |target: &str, theme: Option<u32>, start: u32| Aspect {
            target: target.into(),
            polarity: Polarity::Negative,
            confidence: 0.9,
            start,
            end: start + 1,
            text: "x".into(),
            vector: Some(vec![0.6, 0.8, 0.0]),
            theme: theme.map(|id| (id, Arc::from("label"), 0.7)),
        };
        c.nlp.aspects = Some(vec![
            mention("staff", Some(4), 0),
            mention("product", None, 3),
        ]);
        let plain = Comment::new(coords(), "b".into(), "z".into(), t, t);
        let b = comments_batch(&[&c, &plain], &stamp()).unwrap();
        let ids = b.column_by_name("theme_ids").unwrap().as_list::<i32>();
        assert_eq!(
            ids.value(0)
                .as_primitive::<arrow::datatypes::Int32Type>()
                .values(),
            &[4]
        );
        assert!(ids.is_null(1), "no mention theme: null, not an empty list");
        let m = mentions_batch(&[&c], &stamp()).unwrap();
        assert_eq!(m.num_columns(), mentions_columns(Some(3)).len());
        let th = m
            .column_by_name("theme_id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!((th.value(0), th.is_null(1)), (4, true));
        let e = m.column_by_name("embedding").unwrap().as_fixed_size_list();
        assert_eq!(
            e.value(1)
                .as_primitive::<arrow::datatypes::Float32Type>()
                .values(),
            &[0.6, 0.8, 0.0]
        );
        // Without themes per mention the vectors are not written.
        let whole = Stamp {
            mention_embedding_dim: None,
            ..stamp()
        };
        let m = mentions_batch(&[&c], &whole).unwrap();
        assert!(m.column_by_name("embedding").is_none());
    }

    #[test]
    fn comments_batch_matches_schema() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut c = Comment {
            coords: coords(),
            id: "a".into(),
            event_time: t,
            text: "hi".into(),
            score: Some(3.0),
            channel: None,
            staff_id: Some("s".into()),
            location: None,
            product: None,
            declared_language: None,
            customer_id: Some("h1".into()),
            attributes: Default::default(),
            ingest_time: t,
            nlp: Default::default(),
        };
        let c2 = {
            c.attributes.insert("k".into(), "v".into());
            let mut c2 = c.clone();
            c2.nlp.repeat_of = Some(vec!["a".into()]);
            c2
        };
        let b = comments_batch(&[&c, &c2], &stamp()).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.num_columns(), comments_columns(Some(3)).len());
        let mut bad = c2.clone();
        bad.nlp.embedding = Some(vec![1.0; 4]);
        assert!(
            comments_batch(&[&bad], &stamp()).is_err(),
            "wrong vector size is an error, not a panic"
        );
        let mut good = c2.clone();
        good.nlp.embedding = Some(vec![0.5; 3]);
        assert_eq!(
            comments_batch(&[&good, &c2], &stamp()).unwrap().num_rows(),
            2
        );
    }

    #[test]
    fn rejected_batch_matches_schema() {
        let r = Rejection {
            coords: coords(),
            key: Some(b"k".to_vec()),
            raw: b"\xff".to_vec(),
            reason: RejectReason::InvalidUtf8,
            message: "m".into(),
            ingest_time: Utc::now(),
        };
        let b = rejected_batch(&[&r], &stamp()).unwrap();
        assert_eq!(b.num_rows(), 1);
        assert!(b.column(6).is_null(0), "raw_text is null for non-UTF-8");
    }

    #[test]
    fn schema_doc_matches_readme() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let missing: Vec<String> = [
            columns_markdown(&comments_columns(Some(384))),
            columns_markdown(&rejected_columns()),
            columns_markdown(&mentions_columns(Some(384))),
            columns_markdown(&actions_columns()),
            columns_markdown(&responses_columns()),
        ]
        .into_iter()
        .filter(|t| !readme.contains(t.as_str()))
        .collect();
        assert!(
            missing.is_empty(),
            "README.md's schema tables are out of date; paste these in:\n{}",
            missing.join("\n")
        );
        for table in ["comments", "rejected", "mentions", "actions", "responses"] {
            let heading = format!("### `{table}/` (schema_version {SCHEMA_VERSION})");
            assert!(readme.contains(&heading), "README.md lacks {heading:?}");
        }
    }
}
