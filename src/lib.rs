//! # verbatim
//!
//! A stream job that reads customer-feedback comments from Kafka, enriches
//! them with local transformer models, and writes Parquet that analysts query
//! with DuckDB, Spark or Trino.
//!
//! One comment's path, one module per stage:
//!
//! | stage | module | what happens |
//! |---|---|---|
//! | source | [`source`] | a Kafka consumer-group member (or a file for `ingest`) hands over raw messages |
//! | decode | [`decode`] | bytes become a [`comment::Comment`] or a [`comment::Rejection`] with a reason |
//! | batch  | [`batch`]  | comments are gathered by count and age |
//! | nlp    | [`nlp`]    | operators enrich the batch: [`nlp::redact`] → [`nlp::language`] → [`nlp::flags`] → [`nlp::embed`] → [`nlp::analyze`] |
//! | themes | [`themes`] | [`themes::online`] assigns each comment a theme with a stable id |
//! | history | [`history`] | [`history::repeat`] raises `repeat_issue` when a customer complains again about the same target |
//! | sink   | [`sink`]   | rows are appended to Parquet; each range is committed by one marker, then published (folder or bucket) |
//! | commit | [`source::kafka::KafkaCommitter`] | Kafka offsets are committed only after the files are durable |
//!
//! [`pipeline`] wires the stages together; [`comment`] is the record they
//! pass along; [`config`] is the pipeline file, one section per stage.
//!
//! Offline, over what the job wrote: [`themes`] (refits, curation, the daily
//! table), [`followup`] (which queued comments were answered, and when),
//! [`report`], and the commands in [`cli`].
#![warn(missing_docs)]

// The record and its configuration.
pub mod comment;
pub mod config;

// The stream's stages, in order.
pub mod batch;
pub mod decode;
pub mod history;
pub mod nlp;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod themes;

// Offline work over the output, and the commands.
pub mod cli;
pub mod followup;
pub mod report;

// Operations.
pub mod failpoint;
pub mod metrics;
